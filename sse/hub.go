// Package sse fans the event log out to browsers: one Server-Sent Events
// stream per signed-in user, covering every room the user's ghost is
// joined to, resumable with Last-Event-ID.
package sse

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/openmeet-team/openmeet-bridge/database"
)

// Config is the stream section of the client API config.
type Config struct {
	Heartbeat time.Duration `yaml:"heartbeat"`
	// Buffer is how many events may wait for one connection before it is
	// cut off as too slow (it reconnects and resumes).
	Buffer int `yaml:"buffer"`
	// MaxPerUser bounds one user's simultaneous streams.
	MaxPerUser int `yaml:"max_per_user"`
	// ConnectRate and ConnectBurst bound new streams per second, bridge-wide
	// (beyond: 503).
	ConnectRate  float64 `yaml:"connect_rate"`
	ConnectBurst int     `yaml:"connect_burst"`
	// The same per user and per client address (beyond: 429). A zero rate
	// means no such limit.
	ConnectRatePerUser     float64 `yaml:"connect_rate_per_user"`
	ConnectBurstPerUser    int     `yaml:"connect_burst_per_user"`
	ConnectRatePerAddress  float64 `yaml:"connect_rate_per_address"`
	ConnectBurstPerAddress int     `yaml:"connect_burst_per_address"`
	// TrustedProxies are the addresses or CIDR prefixes of reverse proxies
	// whose X-Forwarded-For names the client address. Empty: the peer is
	// the client.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// Retention is how long events stay in the log for resuming streams;
	// older positions get a reset event.
	Retention time.Duration `yaml:"retention"`
	// Park takes HTTP/1.1 streams over after their headers, so an idle
	// stream costs no goroutine; Writers is the size of the pool that
	// writes to them.
	Park    bool `yaml:"park"`
	Writers int  `yaml:"writers"`
}

// Hub reads the event log as it grows and hands each event to the
// subscribers of its room. Subscribers are indexed by room and by user, so
// one event costs work proportional to the people who should get it.
type Hub struct {
	db     *database.Database
	cfg    Config
	log    zerolog.Logger
	feed   *database.Feed
	fmt    *formatter
	limits *connectLimits
	parker *parker
	// started is closed once Run knows where the log ends, the first time.
	started     chan struct{}
	startedOnce sync.Once
	// retryBase is the first wait before Run tries again to follow the
	// log; it doubles up to retryMax.
	retryBase, retryMax time.Duration
	// restarts counts Run's failed attempts to follow the log (Stats).
	restarts atomic.Uint64
	hooks    hooks
	observe  func(time.Duration)
	// delivering is held by whoever hands out events: Run's loop, or
	// Logged delivering a batch itself. running (guarded by it) is true
	// while Run follows the log.
	delivering sync.Mutex
	running    bool
	// Counted for Stats.
	userStreamsRefused, cutOffSlow atomic.Uint64

	mu       sync.Mutex
	position int64
	// following is true while Run follows the log from position; new
	// streams are refused otherwise (they would wait for nothing).
	following bool
	byRoom    map[id.RoomID]map[*subscriber]struct{}
	byUser    map[id.UserID]map[*subscriber]struct{}
	total     int
	// recent holds the newest member events handed out (see
	// recentMembers), for streams that register while the hub moves.
	recent recentMembers
}

// hooks let tests stop the hub where interleavings matter; nil in
// production.
type hooks struct {
	// beforeRegister runs when a new stream has read where it starts and
	// is about to register (attempt counts from 1; see subscribe).
	beforeRegister func(attempt int)
	// afterSubscribe and beforePark run in a stream's handler when it is
	// registered, and when it is about to park.
	afterSubscribe, beforePark func(*subscriber)
}

// NewHub builds a hub; Run starts it.
func NewHub(db *database.Database, cfg Config, log zerolog.Logger) *Hub {
	h := &Hub{
		db: db, cfg: cfg,
		log:       log.With().Str("component", "sse").Logger(),
		fmt:       newFormatter(db),
		limits:    newConnectLimits(cfg),
		started:   make(chan struct{}),
		retryBase: time.Second, retryMax: 30 * time.Second,
		recent: recentMembers{size: recentMemberEvents},
		byRoom: make(map[id.RoomID]map[*subscriber]struct{}),
		byUser: make(map[id.UserID]map[*subscriber]struct{}),
	}
	if db != nil {
		h.feed = db.EventLog.NewFeed(handedQueue, readBatch)
	}
	return h
}

const (
	// handedQueue is how many committed batches may wait for the hub
	// before further ones are dropped and read back from the log.
	handedQueue = 1024
	// readBatch is how many events one read of the log returns.
	readBatch = 500
)

// Started is closed once Run is following the log.
func (h *Hub) Started() <-chan struct{} { return h.started }

// Wake tells the hub that the log has grown (another replica wrote): it
// reads the log.
func (h *Hub) Wake() { h.feed.Wake() }

// Announced tells the hub that the log has rows up to position upTo (a
// replica's notification, perhaps of this one's own commit): it reads the
// log unless it has that far already (see database.Feed.Announced). 0
// means unknown: it reads the log.
func (h *Hub) Announced(upTo int64) {
	h.mu.Lock()
	at := h.position
	h.mu.Unlock()
	h.feed.Announced(upTo, at)
}

// Logged hands the hub the events of one commit of this process, in
// position order, right after the commit; they must not be changed
// afterwards. The hub delivers them without reading them back, unless they
// do not continue where it stands (then it reads the log, which has them).
//
// When they continue where the hub stands, go to few streams
// (inlineDeliveries) and nothing else is being delivered, they are
// delivered here, in the caller's goroutine, and the frames for up to
// inlineWrites parked connections are written here too: a message for a
// few people then reaches their sockets without waking another goroutine.
// Otherwise they are queued for the hub's own loop; Logged never waits for
// it.
func (h *Hub) Logged(events []*database.LoggedEvent, received time.Time) {
	if len(events) == 0 {
		return
	}
	if h.delivering.TryLock() {
		if h.running {
			h.mu.Lock()
			inline := events[0].Position == h.position+1 && h.smallLocked(events)
			h.mu.Unlock()
			if inline {
				var ready readyBatch
				err := h.deliverBatch(context.Background(), events, func(int64) int64 { return nanos(received) }, &ready, true)
				h.delivering.Unlock()
				ready.finish()
				if err != nil {
					// The rest is in the log.
					h.log.Err(err).Msg("Failed to format event")
					h.feed.Wake()
				}
				return
			}
		}
		h.delivering.Unlock()
	}
	h.feed.Hand(events, received)
}

// inlineDeliveries bounds the deliveries (events × their rooms' streams)
// of a batch that Logged hands out itself. Beyond, the pusher answers
// Synapse while the hub's loop delivers, so that storing the next
// transaction and delivering this one overlap (a broadcast, a mass join).
const inlineDeliveries = 16

// smallLocked reports whether events go to at most inlineDeliveries
// streams in all.
func (h *Hub) smallLocked(events []*database.LoggedEvent) bool {
	n := 0
	for _, evt := range events {
		if n += len(h.byRoom[evt.RoomID]) + 1; n > inlineDeliveries {
			return false
		}
	}
	return true
}

// deliverBatch formats and delivers events that continue the hub's
// position, stopping at the first that cannot be formatted (it stays
// undelivered, as do those after it). The caller holds delivering.
func (h *Hub) deliverBatch(ctx context.Context, events []*database.LoggedEvent, received func(pos int64) int64, ready *readyBatch, inline bool) error {
	for _, evt := range events {
		frame, p, err := h.fmt.frame(ctx, evt)
		if err != nil {
			return err
		}
		h.deliver(evt, outFrame{b: frame, received: received(evt.Position)}, p.Portal, ready)
		// Each event's streams get their writers before the next event
		// is formatted; in a small batch that Logged delivers, the
		// deliverer writes to the few itself. The hub's loop never does:
		// under a backlog it would spend on sends the time it needs to
		// hand out the rest.
		if inline {
			ready.finish()
		} else {
			ready.flush()
		}
	}
	return nil
}

// ObserveDelivery sets fn to be told, for every frame of a logged event
// handed in process (see Logged), how long after its push arrived the
// frame was written to a stream's connection. Set it before Run.
func (h *Hub) ObserveDelivery(fn func(time.Duration)) { h.observe = fn }

// outFrame is one frame on its way to a stream, with the time (Unix
// nanoseconds) the push that brought its event arrived; 0 when unknown or
// not a logged event (heartbeats, typing, …).
type outFrame struct {
	b        []byte
	received int64
}

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// delivered tells the observer about frames that were written now.
func (h *Hub) delivered(received ...int64) {
	if h.observe == nil {
		return
	}
	now := time.Now().UnixNano()
	for _, at := range received {
		if at != 0 {
			h.observe(time.Duration(now - at))
		}
	}
}

// currentPosition is the position up to which the hub has handed out
// events.
func (h *Hub) currentPosition() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.position
}

// Restart ends the open streams of users so that they start again, as
// clients do after a stream ends (resuming from their Last-Event-ID): a
// new start reads the rooms a user is in afresh. It is for rooms a user
// joined without a member event in the log (an adopted room's members,
// recorded from its state), which a running stream would not follow. It
// answers how many streams were ended.
func (h *Hub) Restart(users []id.UserID) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, user := range users {
		for sub := range h.byUser[user] {
			h.dropLocked(sub, dropRoomsChanged)
			n++
		}
	}
	return n
}

// Connections is the number of open streams.
func (h *Hub) Connections() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.total
}

// ErrHubNotRunning is returned to a new stream while the hub does not
// follow the log (it is starting, or waiting to try again after a
// failure): the stream is refused and the client retries.
var ErrHubNotRunning = errors.New("event stream hub is not running")

// Run follows the log until ctx ends, then closes every stream. When it
// cannot start following (the database is down), it tries again with a
// growing wait, logging each failure, until ctx ends; meanwhile Running is
// false and new streams are refused.
func (h *Hub) Run(ctx context.Context) error {
	wait := h.retryBase
	for {
		err := h.runOnce(ctx)
		if ctx.Err() != nil {
			return nil
		}
		h.restarts.Add(1)
		h.log.Err(err).Dur("retry_in", wait).Msg("Event stream hub stopped; restarting")
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-timer.C:
		}
		wait = min(2*wait, h.retryMax)
	}
}

// Running reports whether the hub follows the log: streams get live
// events. Readiness reports it.
func (h *Hub) Running() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.following
}

// runOnce is one run of the hub: it reads where the log ends, then hands
// out what is logged after, until ctx ends (nil) or it cannot start.
func (h *Hub) runOnce(ctx context.Context) error {
	start, err := h.db.EventLog.MaxPosition(ctx)
	if err != nil {
		return fmt.Errorf("failed to read where the event log ends: %w", err)
	}
	h.mu.Lock()
	h.position = start
	h.recent.reset(start)
	h.following = true
	h.mu.Unlock()
	defer h.closeAll()
	if h.cfg.Park && h.parkerOf() == nil {
		p, err := newParker(h, max(h.cfg.Writers, 1))
		if err != nil {
			h.log.Warn().Err(err).Msg("Cannot park streams; every stream keeps a goroutine")
		} else {
			h.mu.Lock()
			h.parker = p
			h.mu.Unlock()
			go p.watch(ctx)
			go h.heartbeats(ctx, p)
		}
	}
	h.delivering.Lock()
	h.running = true
	h.delivering.Unlock()
	defer func() {
		h.delivering.Lock()
		h.running = false
		h.delivering.Unlock()
	}()
	h.startedOnce.Do(func() { close(h.started) })
	for {
		batch, err := h.feed.NextAfter(ctx, h.currentPosition, time.Second)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			h.log.Err(err).Msg("Failed to read event log")
			continue
		}
		h.delivering.Lock()
		// Logged may have delivered batches of its own meanwhile. What
		// was read from the log holds all that followed the position it
		// was read after, so what of it follows the position now
		// continues it; a handed batch must start right after it.
		at := h.currentPosition()
		events := batch.Events
		for len(events) > 0 && events[0].Position <= at {
			events = events[1:]
		}
		if len(events) > 0 && !batch.FromLog && events[0].Position != at+1 {
			h.delivering.Unlock()
			h.feed.Wake()
			continue
		}
		var ready readyBatch
		err = h.deliverBatch(ctx, events, func(pos int64) int64 { return nanos(batch.Received(pos)) }, &ready, false)
		h.delivering.Unlock()
		if err != nil {
			// Not delivered: the position stays, the log is read again
			// at the next wake or poll.
			h.log.Err(err).Msg("Failed to format event")
		}
	}
}

// deliver hands one logged event to its room's subscribers and moves the
// hub's position past it. Membership changes of a subscriber's own user
// change which rooms it follows: a join before delivery (the user sees its
// own join), a leave after (the user sees its own leave, then nothing more).
// Other people's membership never cuts a stream off: a stream that is
// behind gets it coalesced (offerOthersMembership). A subscriber skips what
// its start already covers (from).
func (h *Hub) deliver(evt *database.LoggedEvent, frame outFrame, portal *PortalInfo, batch *readyBatch) {
	h.mu.Lock()
	defer h.mu.Unlock()
	isMember := evt.Type == event.StateMember.Type && evt.StateKey != nil
	var target id.UserID
	var membership event.Membership
	if isMember {
		target, membership = id.UserID(*evt.StateKey), membershipOf(evt)
		h.recent.add(memberChange{pos: evt.Position, room: evt.RoomID, user: target, join: membership == event.MembershipJoin})
		if membership == event.MembershipJoin {
			for sub := range h.byUser[target] {
				if sub.from < evt.Position {
					h.follow(sub, evt.RoomID)
				}
			}
		}
	}
	for sub := range h.byRoom[evt.RoomID] {
		switch {
		case sub.from >= evt.Position:
		case isMember && sub.user != target:
			sub.offerOthersMembership(frame, memberNote{room: evt.RoomID, portal: portal, pos: evt.Position}, batch)
		case !sub.offer(frame, batch):
			h.dropLocked(sub, dropTooSlow)
		}
	}
	if isMember && membership != event.MembershipJoin {
		for sub := range h.byUser[target] {
			if sub.from < evt.Position {
				h.unfollow(sub, evt.RoomID)
			}
		}
	}
	h.position = evt.Position
}

// Ephemeral hands typing and receipts to the subscribers of their room.
// They carry no stream position: they are not replayed on resume.
func (h *Hub) Ephemeral(roomID id.RoomID, frame []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var batch readyBatch
	for sub := range h.byRoom[roomID] {
		if !sub.offer(outFrame{b: frame}, &batch) {
			h.dropLocked(sub, dropTooSlow)
		}
	}
	batch.flush()
}

func (h *Hub) follow(sub *subscriber, roomID id.RoomID) {
	sub.rooms[roomID] = struct{}{}
	set := h.byRoom[roomID]
	if set == nil {
		set = make(map[*subscriber]struct{})
		h.byRoom[roomID] = set
	}
	set[sub] = struct{}{}
}

func (h *Hub) unfollow(sub *subscriber, roomID id.RoomID) {
	delete(sub.rooms, roomID)
	if set := h.byRoom[roomID]; set != nil {
		delete(set, sub)
		if len(set) == 0 {
			delete(h.byRoom, roomID)
		}
	}
}

// subscribe registers a stream for userID. It returns the position from
// which live events will arrive (everything after it goes through the
// subscriber, everything up to it must be read from the log) and the rooms
// the user is joined to as of that position.
//
// The rooms and the position must match exactly: a join or leave logged
// between reading the rooms and registering would otherwise never be
// applied. So both come from one database snapshot. If the hub has handed
// out events past it meanwhile, the user's own membership changes up to
// the hub's position are applied before the subscriber is registered: from
// the hub's record of recent member events (memory only, under the hub's
// lock) when it reaches back to the snapshot, else read from the log
// without the lock, and tried again from there. If the hub is behind the
// snapshot (a replica that has not caught up), the subscriber skips what
// its snapshot already holds.
func (h *Hub) subscribe(ctx context.Context, userID id.UserID, parked *parkedConn) (*subscriber, int64, map[id.RoomID]struct{}, error) {
	if h.userStreams(userID) >= h.cfg.MaxPerUser {
		h.userStreamsRefused.Add(1)
		return nil, 0, nil, errTooManyStreams
	}
	if !h.Running() {
		return nil, 0, nil, ErrHubNotRunning
	}
	snap, err := h.db.EventLog.StreamSnapshot(ctx, userID)
	if err != nil {
		return nil, 0, nil, fmt.Errorf("failed to read the stream's start: %w", err)
	}
	rooms := make(map[id.RoomID]struct{}, len(snap.Rooms))
	for _, roomID := range snap.Rooms {
		rooms[roomID] = struct{}{}
	}
	pos := snap.Position
	for attempt := 1; ; attempt++ {
		if h.hooks.beforeRegister != nil {
			h.hooks.beforeRegister(attempt)
		}
		h.mu.Lock()
		if !h.following {
			h.mu.Unlock()
			return nil, 0, nil, ErrHubNotRunning
		}
		hubPos := h.position
		if hubPos > pos && h.recent.covers(pos) {
			h.recent.apply(userID, rooms, pos, hubPos)
			pos = hubPos
		}
		if hubPos <= pos {
			sub, err := h.registerLocked(userID, rooms, pos, parked)
			h.mu.Unlock()
			return sub, pos, rooms, err
		}
		h.mu.Unlock()
		if attempt == maxRegisterAttempts {
			return nil, 0, nil, errHubOutran
		}
		if err := h.applyOwnMembership(ctx, userID, rooms, pos, hubPos); err != nil {
			return nil, 0, nil, err
		}
		pos = hubPos
	}
}

// errHubOutran: the hub kept handing out more member events than it
// records while a new stream read the log to catch up with it; the stream
// is refused and the client retries.
var errHubOutran = errors.New("the hub moved on faster than a new stream could catch up")

// maxRegisterAttempts bounds the reads of the log a new stream makes to
// catch up with the hub: each read brings it to where the hub stood, and
// only more than recentMemberEvents member events during one read send it
// round again.
const maxRegisterAttempts = 8

// applyOwnMembership applies to rooms what userID's own member events
// logged after position after, up to upTo, changed.
func (h *Hub) applyOwnMembership(ctx context.Context, userID id.UserID, rooms map[id.RoomID]struct{}, after, upTo int64) error {
	events, err := h.db.EventLog.MemberEventsBetween(ctx, userID, after, upTo)
	if err != nil {
		return fmt.Errorf("failed to read membership changes: %w", err)
	}
	for _, evt := range events {
		if membershipOf(evt) == event.MembershipJoin {
			rooms[evt.RoomID] = struct{}{}
		} else {
			delete(rooms, evt.RoomID)
		}
	}
	return nil
}

func (h *Hub) userStreams(userID id.UserID) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.byUser[userID])
}

func (h *Hub) registerLocked(userID id.UserID, rooms map[id.RoomID]struct{}, from int64, parked *parkedConn) (*subscriber, error) {
	if len(h.byUser[userID]) >= h.cfg.MaxPerUser {
		h.userStreamsRefused.Add(1)
		return nil, errTooManyStreams
	}
	sub := newSubscriber(userID, h.cfg.Buffer, parked)
	sub.from = from
	for roomID := range rooms {
		h.follow(sub, roomID)
	}
	set := h.byUser[userID]
	if set == nil {
		set = make(map[*subscriber]struct{})
		h.byUser[userID] = set
	}
	set[sub] = struct{}{}
	h.total++
	return sub, nil
}

// drop unregisters a subscriber and closes it.
func (h *Hub) drop(sub *subscriber, reason string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.dropLocked(sub, reason)
}

func (h *Hub) dropLocked(sub *subscriber, reason string) {
	set := h.byUser[sub.user]
	if _, ok := set[sub]; !ok {
		return
	}
	delete(set, sub)
	if len(set) == 0 {
		delete(h.byUser, sub.user)
	}
	for roomID := range sub.rooms {
		h.unfollow(sub, roomID)
	}
	h.total--
	if reason == dropTooSlow {
		h.cutOffSlow.Add(1)
	}
	sub.close(reason)
}

func (h *Hub) closeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.following = false
	for _, set := range h.byUser {
		for sub := range set {
			h.dropLocked(sub, "shutting down")
		}
	}
}

// PublishEphemeral sends a typing or receipt event to the room's streams,
// shaped like a logged event but without a stream position, with the users
// it is about named in users.
func (h *Hub) PublishEphemeral(ctx context.Context, roomID id.RoomID, eventType string, raw []byte) {
	portal, err := h.fmt.portal(ctx, roomID)
	if err != nil {
		h.log.Warn().Err(err).Msg("Failed to look up portal for ephemeral event")
		return
	}
	users, err := h.fmt.ephemeralUsers(ctx, roomID, eventType, raw)
	if err != nil {
		h.log.Warn().Err(err).Msg("Failed to name the users of an ephemeral event")
		return
	}
	h.Ephemeral(roomID, encodeFrame(0, eventType, &Payload{RoomID: roomID, Portal: portal, Users: users, Event: raw}))
}

func (h *Hub) heartbeats(ctx context.Context, p *parker) {
	ticker := time.NewTicker(h.cfg.Heartbeat)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			p.heartbeat()
		}
	}
}

// parkerOf returns the parker once Run has made it, or nil.
func (h *Hub) parkerOf() *parker {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.parker
}

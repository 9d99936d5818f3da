// Package sse fans the event log out to browsers: one Server-Sent Events
// stream per signed-in user, covering every room the user's ghost is
// joined to, resumable with Last-Event-ID.
package sse

import (
	"context"
	"sync"
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
	// ConnectRate and ConnectBurst bound new streams per second, bridge-wide.
	ConnectRate  float64 `yaml:"connect_rate"`
	ConnectBurst int     `yaml:"connect_burst"`
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
	db      *database.Database
	cfg     Config
	log     zerolog.Logger
	wake    chan struct{}
	fmt     *formatter
	limiter *rateLimiter
	parker  *parker
	// started is closed once Run knows where the log ends.
	started chan struct{}

	mu       sync.Mutex
	position int64
	byRoom   map[id.RoomID]map[*subscriber]struct{}
	byUser   map[id.UserID]map[*subscriber]struct{}
	total    int
}

// NewHub builds a hub; Run starts it.
func NewHub(db *database.Database, cfg Config, log zerolog.Logger) *Hub {
	return &Hub{
		db: db, cfg: cfg,
		log:     log.With().Str("component", "sse").Logger(),
		wake:    make(chan struct{}, 1),
		fmt:     newFormatter(db),
		limiter: newRateLimiter(cfg.ConnectRate, cfg.ConnectBurst),
		started: make(chan struct{}),
		byRoom:  make(map[id.RoomID]map[*subscriber]struct{}),
		byUser:  make(map[id.UserID]map[*subscriber]struct{}),
	}
}

// Started is closed once Run is following the log.
func (h *Hub) Started() <-chan struct{} { return h.started }

// Wake tells the hub that the log has grown.
func (h *Hub) Wake() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// Connections is the number of open streams.
func (h *Hub) Connections() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.total
}

// Run follows the log until ctx ends, then closes every stream.
func (h *Hub) Run(ctx context.Context) error {
	start, err := h.db.EventLog.MaxPosition(ctx)
	if err != nil {
		return err
	}
	h.mu.Lock()
	h.position = start
	h.mu.Unlock()
	defer h.closeAll()
	if h.cfg.Park {
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
	close(h.started)
	for {
		if err := h.catchUp(ctx); err != nil && ctx.Err() == nil {
			h.log.Err(err).Msg("Failed to read event log")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-h.wake:
		case <-time.After(time.Second):
		}
	}
}

func (h *Hub) catchUp(ctx context.Context) error {
	const batch = 500
	for {
		h.mu.Lock()
		from := h.position
		h.mu.Unlock()
		events, err := h.db.EventLog.After(ctx, from, batch)
		if err != nil {
			return err
		}
		for _, evt := range events {
			frame, err := h.fmt.frame(ctx, evt)
			if err != nil {
				return err
			}
			h.deliver(evt, frame)
		}
		if len(events) < batch {
			return nil
		}
	}
}

// deliver hands one logged event to its room's subscribers and moves the
// hub's position past it. Membership changes of a subscriber's own user
// change which rooms it follows: a join before delivery (the user sees its
// own join), a leave after (the user sees its own leave, then nothing more).
func (h *Hub) deliver(evt *database.LoggedEvent, frame []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var target id.UserID
	var membership event.Membership
	if evt.Type == event.StateMember.Type && evt.StateKey != nil {
		target, membership = id.UserID(*evt.StateKey), membershipOf(evt)
		if membership == event.MembershipJoin {
			for sub := range h.byUser[target] {
				h.follow(sub, evt.RoomID)
			}
		}
	}
	var batch readyBatch
	for sub := range h.byRoom[evt.RoomID] {
		if !sub.offer(frame, &batch) {
			h.dropLocked(sub, "too slow")
		}
	}
	batch.flush()
	if target != "" && membership != event.MembershipJoin {
		for sub := range h.byUser[target] {
			h.unfollow(sub, evt.RoomID)
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
		if !sub.offer(frame, &batch) {
			h.dropLocked(sub, "too slow")
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

// subscribe registers a stream for userID following rooms. It returns the
// position from which live events will arrive: everything after it goes
// through the subscriber, everything up to it must be read from the log.
func (h *Hub) subscribe(userID id.UserID, rooms []id.RoomID, parked *parkedConn) (*subscriber, int64, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.byUser[userID]) >= h.cfg.MaxPerUser {
		return nil, 0, errTooManyStreams
	}
	sub := newSubscriber(userID, h.cfg.Buffer, parked)
	for _, roomID := range rooms {
		h.follow(sub, roomID)
	}
	set := h.byUser[userID]
	if set == nil {
		set = make(map[*subscriber]struct{})
		h.byUser[userID] = set
	}
	set[sub] = struct{}{}
	h.total++
	return sub, h.position, nil
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
	sub.close(reason)
}

func (h *Hub) closeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
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

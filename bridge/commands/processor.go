// Package commands is the bridge bot: operators manage the bridge by talking
// to it from any Matrix client. It reads commands from the event log, so a
// command that arrives while the bot is busy or restarting is still seen.
package commands

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
	"github.com/rs/zerolog"
	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/format"
	"maunium.net/go/mautrix/id"

	"github.com/openmeet-team/openmeet-bridge/appservice"
	"github.com/openmeet-team/openmeet-bridge/database"
	"github.com/openmeet-team/openmeet-bridge/portal"
)

// Permission levels.
const (
	LevelNone = iota
	LevelUser
	LevelAdmin
)

// cursorKey is where the processor keeps its event log position.
const cursorKey = "commands.cursor"

// maxCommandAge: commands older than this (say, sent during a long outage)
// are not run when they are finally read.
const maxCommandAge = 10 * time.Minute

// A user without permission who sends the bot a command in a management
// room is told once that they may not, and then not again for
// refusalInterval: an answer to every message would let them make the bot
// talk as often as they like. In a portal room they are not told at all,
// for everyone in the room would read it. At most maxRefusalsTracked users
// are remembered; when more are refused within the interval, the
// longest-ago refused may be told again early.
const (
	refusalInterval    = 10 * time.Minute
	maxRefusalsTracked = 4096
)

// Texts of the bot's refusals.
const (
	refusalNotice = "Sorry, you may not use this bot: `%s` is not in the bridge's permissions. " +
		"I will ignore your commands and not say this again for %d minutes."
	declineReason = "Not allowed to use this bridge's bot (not in its permissions)"
)

// Config configures the bot's command handling.
type Config struct {
	// Prefix starts commands in portal rooms (in management rooms it is
	// optional).
	Prefix string
	// Permissions maps a user ID or server name to "admin" or "user". See
	// Level for the users it never applies to.
	Permissions map[string]string
	Version     string
	// Status adds lines to the status command (open connections, …).
	Status func(ctx context.Context) []string
}

// Processor reads messages and invites addressed to the bot and acts on
// them.
type Processor struct {
	cfg      Config
	db       *database.Database
	hs       *appservice.Homeserver
	portals  *portal.Registry
	outbox   *portal.Outbox
	botID    id.UserID
	log      zerolog.Logger
	feed     *database.Feed
	commands map[string]*command
	started  time.Time
	// refused holds users recently told they may not use the bot.
	refused *expirable.LRU[id.UserID, struct{}]
	// leading is set while Run holds the command lock; only then are
	// committed events handed to it.
	leading atomic.Bool
	// at is the position Run has read up to (for Announced).
	at atomic.Int64
	// management is the set of management rooms, loaded when Run starts
	// and kept by Run's goroutine alone: only the bot (the leader's Run)
	// adds or removes them.
	management map[id.RoomID]struct{}
}

const (
	// handedQueue is how many committed batches may wait for the bot
	// before further ones are dropped and read back from the log.
	handedQueue = 256
	// readBatch is how many events one read of the log returns.
	readBatch = 200
	// cursorSaveInterval is how often the cursor is stored when it moved
	// only past events the bot did not act on (see Run).
	cursorSaveInterval = 10 * time.Second
	// gatherDelay is how long the bot lets committed batches gather
	// before it takes them: it wakes at most this often while messages
	// flow, instead of once per transaction.
	gatherDelay = 20 * time.Millisecond
)

// New builds the processor; Run starts it.
func New(cfg Config, db *database.Database, hs *appservice.Homeserver, portals *portal.Registry, outbox *portal.Outbox, botID id.UserID, log zerolog.Logger) *Processor {
	p := &Processor{
		cfg: cfg, db: db, hs: hs, portals: portals, outbox: outbox, botID: botID,
		log:     log.With().Str("component", "commands").Logger(),
		feed:    db.EventLog.NewFeed(handedQueue, readBatch),
		started: time.Now(),
		refused: expirable.NewLRU[id.UserID, struct{}](maxRefusalsTracked, nil, refusalInterval),
	}
	p.commands = p.commandTable()
	return p
}

// Wake tells the processor that new events are in the log (another
// replica wrote them): it reads the log.
func (p *Processor) Wake() { p.feed.Wake() }

// Announced tells the processor that the log has rows up to position upTo
// (see Hub.Announced): it reads the log unless it is that far already or
// does not run commands (another replica leads). 0 means unknown.
func (p *Processor) Announced(upTo int64) {
	if upTo <= 0 || p.leading.Load() {
		p.feed.Announced(upTo, p.at.Load())
	}
}

// Logged hands the processor the events of one commit of this process, in
// position order, right after the commit; they must not be changed
// afterwards. It never blocks. Events that do not continue where the
// processor stands are read from the log instead.
func (p *Processor) Logged(events []*database.LoggedEvent) {
	if p.leading.Load() {
		p.feed.Hand(events, time.Time{})
	}
}

// Level returns the permission level of userID. Users the bridge acts as
// never get one from a server-wide entry: an OpenMeet user must not run the
// bot's commands because the operator made the homeserver's own users
// admins. Those of the exclusive namespace get none at all, for only the
// bridge can send as them; a legacy account (appservice.legacy_users) may
// still be named by a per-user entry, for its owner also logs in with a
// Matrix client of their own (what the bridge sends for them is never a
// command, see isBridgeSent).
func (p *Processor) Level(userID id.UserID) int {
	namer := p.portals.Namer()
	if namer.InGhostNamespace(userID) {
		return LevelNone
	}
	level, ok := p.cfg.Permissions[userID.String()]
	if !ok && !namer.Legacy().Contains(userID) {
		level = p.cfg.Permissions[userID.Homeserver()]
	}
	switch level {
	case "admin":
		return LevelAdmin
	case "user":
		return LevelUser
	}
	return LevelNone
}

// leaseName is the lease of the replica that runs commands.
const leaseName = "bot commands"

// Run processes the log until ctx ends. With several replicas on one
// PostgreSQL database only the one holding the bot's lease runs commands,
// so every command is answered once; the others wait to take over.
func (p *Processor) Run(ctx context.Context) {
	p.db.Leases.Lead(p.log.WithContext(ctx), leaseName, p.lead)
}

// Leading reports whether this replica runs the bot's commands now.
func (p *Processor) Leading() bool { return p.leading.Load() }

// lead runs commands while this replica holds the bot's lease, until ctx
// (the lease's) ends or a store of the cursor finds the lease lost: then
// another replica may run commands from the cursor it stored last.
func (p *Processor) lead(ctx context.Context, lease *database.Lease) {
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	cursor, err := p.loadCursor(ctx)
	if err == nil {
		err = p.loadManagementRooms(ctx)
	}
	for err != nil {
		p.log.Err(err).Msg("Failed to load command cursor or management rooms")
		select {
		case <-ctx.Done():
			return
		case <-time.After(5 * time.Second):
		}
		if cursor, err = p.loadCursor(ctx); err == nil {
			err = p.loadManagementRooms(ctx)
		}
	}
	p.at.Store(cursor)
	p.leading.Store(true)
	defer p.leading.Store(false)
	p.feed.Wake() // what was logged since the cursor, at once
	// The cursor is stored right after every event the bot acted on (a
	// command answered, an invite taken or declined), so a crash runs
	// none of them twice, unless it comes between the act and the store,
	// as ever. Past other events, which are nearly all, it is stored every
	// cursorSaveInterval and when leading ends: after a crash the bot
	// reads those again and again acts on none of them, which costs a scan
	// and nothing else. A store commits only while the lease is this
	// replica's: once another replica took over, this one has stopped
	// acting, and its cursor must not overwrite the new leader's.
	saved, savedAt := cursor, time.Now()
	save := func(ctx context.Context) {
		err := p.db.Leases.Fenced(ctx, lease, func(ctx context.Context) error {
			return p.db.Bot.SetState(ctx, cursorKey, strconv.FormatInt(cursor, 10))
		})
		if errors.Is(err, database.ErrLeaseLost) {
			p.log.Warn().Int64("token", lease.Token).Msg("Lost the bot's lease; no longer running commands")
			stop()
			return
		} else if err != nil {
			if ctx.Err() == nil {
				p.log.Err(err).Msg("Failed to store command cursor")
			}
			return
		}
		saved, savedAt = cursor, time.Now()
	}
	defer func() {
		if cursor != saved {
			ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			save(ctx)
		}
	}()
	for {
		// The bot needs no haste: letting batches gather for a moment
		// spares waking up for every transaction.
		select {
		case <-ctx.Done():
			return
		case <-time.After(gatherDelay):
		}
		batch, err := p.feed.Next(ctx, cursor, 5*time.Second)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			p.log.Err(err).Msg("Failed to read event log")
			continue
		}
		for _, evt := range batch.Events {
			if ctx.Err() != nil {
				break // the lease is lost: act on nothing more
			}
			acted := p.handle(ctx, evt)
			cursor = evt.Position
			if acted {
				save(ctx)
			}
		}
		p.at.Store(cursor)
		if cursor != saved && time.Since(savedAt) >= cursorSaveInterval {
			save(ctx)
		}
	}
}

// loadManagementRooms reads the management rooms into memory.
func (p *Processor) loadManagementRooms(ctx context.Context) error {
	rooms, err := p.db.Bot.ManagementRooms(ctx)
	if err != nil {
		return fmt.Errorf("failed to load management rooms: %w", err)
	}
	p.management = make(map[id.RoomID]struct{}, len(rooms))
	for _, roomID := range rooms {
		p.management[roomID] = struct{}{}
	}
	return nil
}

// loadCursor returns the stored position, or on first start the end of the
// log: commands from before the bot existed are not run.
func (p *Processor) loadCursor(ctx context.Context) (int64, error) {
	value, ok, err := p.db.Bot.State(ctx, cursorKey)
	if err != nil {
		return 0, err
	}
	if ok {
		return strconv.ParseInt(value, 10, 64)
	}
	return p.db.EventLog.MaxPosition(ctx)
}

// handle acts on one logged event if it is for the bot, and reports
// whether it did. What is not for the bot is told apart before any
// database read or JSON decoding: the bot's own events, member events of
// others, and messages that are neither in a management room nor start
// with the command prefix.
func (p *Processor) handle(ctx context.Context, logged *database.LoggedEvent) bool {
	if logged.Sender == p.botID {
		return false
	}
	switch logged.Type {
	case event.StateMember.Type:
		if logged.StateKey != nil && id.UserID(*logged.StateKey) == p.botID {
			return p.handleBotMembership(ctx, logged)
		}
	case event.EventMessage.Type:
		if _, ok := p.management[logged.RoomID]; ok || p.mayBeCommand(logged.Raw) {
			return p.handleMessage(ctx, logged)
		}
	}
	return false
}

// mayBeCommand reports whether a message's body starts with the command
// prefix, reading only that field. handleMessage decides on the whole
// event; this only keeps the rest from being decoded.
func (p *Processor) mayBeCommand(raw []byte) bool {
	body := gjson.GetBytes(raw, "content.body")
	if body.Type != gjson.String {
		return false
	}
	rest, ok := strings.CutPrefix(strings.TrimSpace(body.Str), p.cfg.Prefix)
	return ok && (rest == "" || rest[0] == ' ')
}

func parse(logged *database.LoggedEvent) (*event.Event, error) {
	var evt event.Event
	if err := json.Unmarshal(logged.Raw, &evt); err != nil {
		return nil, err
	}
	if err := evt.Content.ParseRaw(evt.Type); err != nil {
		return nil, err
	}
	return &evt, nil
}

// handleBotMembership accepts invites from permitted users (the room
// becomes a management room unless it is a portal) and declines others.
func (p *Processor) handleBotMembership(ctx context.Context, logged *database.LoggedEvent) bool {
	log := p.log.With().Stringer("room_id", logged.RoomID).Stringer("sender", logged.Sender).Logger()
	evt, err := parse(logged)
	if err != nil {
		return false
	}
	bot := p.hs.Bot().Client
	switch evt.Content.AsMember().Membership {
	case event.MembershipInvite:
		if existing, err := p.db.Portals.GetByRoomID(ctx, logged.RoomID); err != nil {
			log.Warn().Err(err).Msg("Failed to check whether an invite is to a portal's room; not answering it")
			return false
		} else if existing != nil {
			// A portal's room being taken over: the portal's sync joins it.
			return false
		}
		if p.Level(logged.Sender) == LevelNone {
			log.Info().Msg("Declining invite from user without permission")
			// The reason is what the inviter sees as the answer.
			if _, err := bot.LeaveRoom(ctx, logged.RoomID, &mautrix.ReqLeave{Reason: declineReason}); err != nil {
				log.Warn().Err(err).Msg("Failed to decline invite")
			}
			return true
		}
		if _, err := bot.JoinRoomByID(ctx, logged.RoomID); err != nil {
			log.Warn().Err(err).Msg("Failed to accept invite")
			return true
		}
		if existing, err := p.db.Portals.GetByRoomID(ctx, logged.RoomID); err == nil && existing == nil {
			if err := p.db.Bot.AddManagementRoom(ctx, logged.RoomID, logged.Sender); err != nil {
				log.Err(err).Msg("Failed to record management room")
			} else {
				p.management[logged.RoomID] = struct{}{}
			}
		}
		log.Info().Msg("Accepted invite")
		p.reply(ctx, logged.RoomID, "", fmt.Sprintf("Hello! I manage the OpenMeet bridge. Say `help` for what I can do (in portal rooms, prefix commands with `%s`).", p.cfg.Prefix))
		return true
	case event.MembershipLeave, event.MembershipBan:
		if err := p.db.Bot.RemoveManagementRoom(ctx, logged.RoomID); err != nil {
			log.Err(err).Msg("Failed to forget management room")
			return true
		}
		delete(p.management, logged.RoomID)
		return true
	}
	return false
}

func (p *Processor) handleMessage(ctx context.Context, logged *database.LoggedEvent) bool {
	evt, err := parse(logged)
	if err != nil {
		return false
	}
	msg := evt.Content.AsMessage()
	if msg.MsgType != event.MsgText || msg.RelatesTo.GetReplaceID() != "" {
		return false
	}
	if p.isBridgeSent(logged.Sender, evt) {
		p.log.Debug().Stringer("event_id", logged.EventID).Stringer("sender", logged.Sender).
			Msg("Ignoring a message the bridge sent for an OpenMeet user")
		return false
	}
	level := p.Level(logged.Sender)
	text := strings.TrimSpace(msg.Body)
	rest, prefixed := strings.CutPrefix(text, p.cfg.Prefix)
	prefixed = prefixed && (rest == "" || rest[0] == ' ')
	// A message is a command when it has the prefix, or when it is sent in
	// a management room.
	_, management := p.management[logged.RoomID]
	if prefixed {
		text = strings.TrimSpace(rest)
	} else if !management {
		return false
	}
	if age := time.Since(time.UnixMilli(logged.OriginTS)); age > maxCommandAge {
		p.log.Info().Stringer("event_id", logged.EventID).Dur("age", age).Msg("Skipping stale command")
		return false
	}
	if level == LevelNone {
		if !management {
			// Not in a portal room, where all would read it.
			p.log.Debug().Stringer("sender", logged.Sender).Stringer("room_id", logged.RoomID).
				Msg("Ignoring command from user without permission outside a management room")
			return false
		}
		return p.refuse(ctx, logged)
	}
	req := &request{p: p, evt: logged, level: level, management: management}
	req.args = strings.Fields(text)
	reply := p.dispatch(ctx, req)
	p.reply(ctx, logged.RoomID, logged.EventID, reply)
	return true
}

// isBridgeSent reports whether a message was sent by the bridge for an
// OpenMeet user (through the client API): sent as a user of the exclusive
// namespace, or carrying the outbox's txn id, as every message the outbox
// sends does, a legacy account's included. Such a message is never a
// command, whatever it says.
func (p *Processor) isBridgeSent(sender id.UserID, evt *event.Event) bool {
	if p.portals.Namer().InGhostNamespace(sender) {
		return true
	}
	_, marked := evt.Content.Raw[database.OutboxTxnIDKey]
	return marked
}

// refuse tells the sender of a command in a management room that they may
// not use the bot, unless they were told so within refusalInterval. It
// reports whether it told them.
func (p *Processor) refuse(ctx context.Context, logged *database.LoggedEvent) bool {
	log := p.log.With().Stringer("sender", logged.Sender).Stringer("room_id", logged.RoomID).Logger()
	if p.refused.Contains(logged.Sender) {
		log.Debug().Msg("Ignoring command from user without permission")
		return false
	}
	p.refused.Add(logged.Sender, struct{}{})
	log.Info().Msg("Refusing command from user without permission")
	p.reply(ctx, logged.RoomID, logged.EventID, fmt.Sprintf(refusalNotice, logged.Sender, int(refusalInterval/time.Minute)))
	return true
}

// reply sends a notice rendered from Markdown, as a reply to inReplyTo.
func (p *Processor) reply(ctx context.Context, roomID id.RoomID, inReplyTo id.EventID, markdown string) {
	content := format.RenderMarkdown(markdown, true, false)
	content.MsgType = event.MsgNotice
	if inReplyTo != "" {
		content.RelatesTo = (&event.RelatesTo{}).SetReplyTo(inReplyTo)
	}
	if _, err := p.hs.Bot().Client.SendMessageEvent(ctx, roomID, event.EventMessage, &content); err != nil {
		p.log.Err(err).Stringer("room_id", roomID).Msg("Failed to send reply")
	}
}

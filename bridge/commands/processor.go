// Package commands is the bridge bot: operators manage the bridge by talking
// to it from any Matrix client. It reads commands from the event log, so a
// command that arrives while the bot is busy or restarting is still seen.
package commands

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
	"github.com/rs/zerolog"
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

// A user without permission who sends the bot a command is told once that
// they may not, and then not again for refusalInterval: an answer to every
// message would let anyone in a portal room make the bot talk as often as
// they like. At most maxRefusalsTracked users are remembered; when more
// are refused within the interval, the longest-ago refused may be told
// again early.
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
	// Permissions maps a user ID or server name to "admin" or "user".
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
	wake     chan struct{}
	commands map[string]*command
	started  time.Time
	// refused holds users recently told they may not use the bot.
	refused *expirable.LRU[id.UserID, struct{}]
}

// New builds the processor; Run starts it.
func New(cfg Config, db *database.Database, hs *appservice.Homeserver, portals *portal.Registry, outbox *portal.Outbox, botID id.UserID, log zerolog.Logger) *Processor {
	p := &Processor{
		cfg: cfg, db: db, hs: hs, portals: portals, outbox: outbox, botID: botID,
		log:     log.With().Str("component", "commands").Logger(),
		wake:    make(chan struct{}, 1),
		started: time.Now(),
		refused: expirable.NewLRU[id.UserID, struct{}](maxRefusalsTracked, nil, refusalInterval),
	}
	p.commands = p.commandTable()
	return p
}

// Wake tells the processor that new events are in the log.
func (p *Processor) Wake() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Level returns the permission level of userID.
func (p *Processor) Level(userID id.UserID) int {
	level, ok := p.cfg.Permissions[userID.String()]
	if !ok {
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

// Run processes the log until ctx ends. With several replicas on one
// PostgreSQL database only one of them runs commands (it holds a lock), so
// every command is answered once.
func (p *Processor) Run(ctx context.Context) {
	for {
		release, ok, err := p.db.TryLock(ctx, "bot commands")
		if err != nil && ctx.Err() == nil {
			p.log.Warn().Err(err).Msg("Failed to check command leadership")
		}
		if ok {
			defer release()
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(10 * time.Second):
		}
	}
	cursor, err := p.loadCursor(ctx)
	for err != nil {
		p.log.Err(err).Msg("Failed to load command cursor")
		select {
		case <-ctx.Done():
			return
		case <-time.After(5 * time.Second):
		}
		cursor, err = p.loadCursor(ctx)
	}
	const batch = 200
	for {
		events, err := p.db.EventLog.After(ctx, cursor, batch)
		if err != nil && ctx.Err() == nil {
			p.log.Err(err).Msg("Failed to read event log")
		}
		for _, evt := range events {
			p.handle(ctx, evt)
			cursor = evt.Position
		}
		if len(events) > 0 {
			if err := p.db.Bot.SetState(ctx, cursorKey, strconv.FormatInt(cursor, 10)); err != nil && ctx.Err() == nil {
				p.log.Err(err).Msg("Failed to store command cursor")
			}
		}
		if len(events) == batch {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-p.wake:
		case <-time.After(5 * time.Second):
		}
	}
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

func (p *Processor) handle(ctx context.Context, logged *database.LoggedEvent) {
	if logged.Sender == p.botID {
		return
	}
	switch logged.Type {
	case event.StateMember.Type:
		if logged.StateKey != nil && id.UserID(*logged.StateKey) == p.botID {
			p.handleBotMembership(ctx, logged)
		}
	case event.EventMessage.Type:
		p.handleMessage(ctx, logged)
	}
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
func (p *Processor) handleBotMembership(ctx context.Context, logged *database.LoggedEvent) {
	log := p.log.With().Stringer("room_id", logged.RoomID).Stringer("sender", logged.Sender).Logger()
	evt, err := parse(logged)
	if err != nil {
		return
	}
	bot := p.hs.Bot().Client
	switch evt.Content.AsMember().Membership {
	case event.MembershipInvite:
		if existing, err := p.db.Portals.GetByRoomID(ctx, logged.RoomID); err != nil || existing != nil {
			// A portal's room being taken over: the portal's sync joins it.
			return
		}
		if p.Level(logged.Sender) == LevelNone {
			log.Info().Msg("Declining invite from user without permission")
			// The reason is what the inviter sees as the answer.
			if _, err := bot.LeaveRoom(ctx, logged.RoomID, &mautrix.ReqLeave{Reason: declineReason}); err != nil {
				log.Warn().Err(err).Msg("Failed to decline invite")
			}
			return
		}
		if _, err := bot.JoinRoomByID(ctx, logged.RoomID); err != nil {
			log.Warn().Err(err).Msg("Failed to accept invite")
			return
		}
		if existing, err := p.db.Portals.GetByRoomID(ctx, logged.RoomID); err == nil && existing == nil {
			if err := p.db.Bot.AddManagementRoom(ctx, logged.RoomID, logged.Sender); err != nil {
				log.Err(err).Msg("Failed to record management room")
			}
		}
		log.Info().Msg("Accepted invite")
		p.reply(ctx, logged.RoomID, "", fmt.Sprintf("Hello! I manage the OpenMeet bridge. Say `help` for what I can do (in portal rooms, prefix commands with `%s`).", p.cfg.Prefix))
	case event.MembershipLeave, event.MembershipBan:
		if err := p.db.Bot.RemoveManagementRoom(ctx, logged.RoomID); err != nil {
			log.Err(err).Msg("Failed to forget management room")
		}
	}
}

func (p *Processor) handleMessage(ctx context.Context, logged *database.LoggedEvent) {
	evt, err := parse(logged)
	if err != nil {
		return
	}
	msg := evt.Content.AsMessage()
	if msg.MsgType != event.MsgText || msg.RelatesTo.GetReplaceID() != "" {
		return
	}
	level := p.Level(logged.Sender)
	text := strings.TrimSpace(msg.Body)
	rest, prefixed := strings.CutPrefix(text, p.cfg.Prefix)
	prefixed = prefixed && (rest == "" || rest[0] == ' ')
	// A message is a command when it has the prefix, or when it is sent in
	// a management room. Commands of permitted users are also told whether
	// the room is one; a refusal needs not know.
	var management bool
	if !prefixed || level != LevelNone {
		if management, err = p.db.Bot.IsManagementRoom(ctx, logged.RoomID); err != nil {
			p.log.Err(err).Msg("Failed to check management room")
			return
		}
	}
	if prefixed {
		text = strings.TrimSpace(rest)
	} else if !management {
		return
	}
	if age := time.Since(time.UnixMilli(logged.OriginTS)); age > maxCommandAge {
		p.log.Info().Stringer("event_id", logged.EventID).Dur("age", age).Msg("Skipping stale command")
		return
	}
	if level == LevelNone {
		p.refuse(ctx, logged)
		return
	}
	req := &request{p: p, evt: logged, level: level, management: management}
	req.args = strings.Fields(text)
	reply := p.dispatch(ctx, req)
	p.reply(ctx, logged.RoomID, logged.EventID, reply)
}

// refuse tells the sender of a command that they may not use the bot,
// unless they were told so within refusalInterval.
func (p *Processor) refuse(ctx context.Context, logged *database.LoggedEvent) {
	log := p.log.With().Stringer("sender", logged.Sender).Stringer("room_id", logged.RoomID).Logger()
	if p.refused.Contains(logged.Sender) {
		log.Debug().Msg("Ignoring command from user without permission")
		return
	}
	p.refused.Add(logged.Sender, struct{}{})
	log.Info().Msg("Refusing command from user without permission")
	p.reply(ctx, logged.RoomID, logged.EventID, fmt.Sprintf(refusalNotice, logged.Sender, int(refusalInterval/time.Minute)))
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

package sse

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"sync"
	"time"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/openmeet-team/openmeet-bridge/database"
)

// TxnIDKey is the content key in which the client API carries the client's
// txn id on messages it sends, so the pushed copy names it even when it
// arrives before the homeserver has answered the send.
const TxnIDKey = "net.openmeet.txn_id"

// Payload is the data of one stream event: the Matrix event plus what a
// page needs to render it without another lookup.
type Payload struct {
	StreamPos int64           `json:"stream_pos,omitempty"`
	RoomID    id.RoomID       `json:"room_id"`
	Portal    *PortalInfo     `json:"portal,omitempty"`
	Sender    *SenderInfo     `json:"sender,omitempty"`
	TxnID     string          `json:"txn_id,omitempty"`
	Event     json.RawMessage `json:"event"`
}

// PortalInfo names the OpenMeet event or group of a room.
type PortalInfo struct {
	Tenant string `json:"tenant"`
	Kind   string `json:"kind"`
	Slug   string `json:"slug"`
	Name   string `json:"name"`
}

// SenderInfo names the sender; Slug is set for OpenMeet users (ghosts).
type SenderInfo struct {
	UserID      id.UserID `json:"user_id"`
	Displayname string    `json:"displayname"`
	Slug        string    `json:"slug,omitempty"`
}

// formatter turns log rows into SSE frames. Lookups are cached briefly:
// the same room and sender recur in every message of a conversation.
type formatter struct {
	db      *database.Database
	mu      sync.Mutex
	portals map[id.RoomID]cached[*PortalInfo]
	senders map[[2]string]cached[*SenderInfo]
}

type cached[T any] struct {
	value   T
	expires time.Time
}

const cacheTTL = 10 * time.Second

func newFormatter(db *database.Database) *formatter {
	return &formatter{db: db, portals: make(map[id.RoomID]cached[*PortalInfo]), senders: make(map[[2]string]cached[*SenderInfo])}
}

// Enrich builds the payload of a logged event.
func (f *formatter) payload(ctx context.Context, evt *database.LoggedEvent) (*Payload, error) {
	p := &Payload{StreamPos: evt.Position, RoomID: evt.RoomID, Event: evt.Raw}
	var err error
	if p.Portal, err = f.portal(ctx, evt.RoomID); err != nil {
		return nil, err
	}
	if p.Sender, err = f.sender(ctx, evt.RoomID, evt.Sender); err != nil {
		return nil, err
	}
	if evt.Type == event.EventMessage.Type || evt.Type == event.EventReaction.Type {
		p.TxnID = gjson.GetBytes(evt.Raw, "content.net\\.openmeet\\.txn_id").String()
	}
	return p, nil
}

func (f *formatter) frame(ctx context.Context, evt *database.LoggedEvent) ([]byte, error) {
	p, err := f.payload(ctx, evt)
	if err != nil {
		return nil, err
	}
	return encodeFrame(evt.Position, evt.Type, p), nil
}

// encodeFrame writes one SSE event; pos 0 means no id line (ephemeral).
func encodeFrame(pos int64, eventType string, data any) []byte {
	var b bytes.Buffer
	if pos > 0 {
		b.WriteString("id: ")
		b.WriteString(strconv.FormatInt(pos, 10))
		b.WriteByte('\n')
	}
	b.WriteString("event: ")
	b.WriteString(eventType)
	b.WriteString("\ndata: ")
	raw, _ := json.Marshal(data)
	b.Write(raw)
	b.WriteString("\n\n")
	return b.Bytes()
}

func (f *formatter) portal(ctx context.Context, roomID id.RoomID) (*PortalInfo, error) {
	f.mu.Lock()
	c, ok := f.portals[roomID]
	f.mu.Unlock()
	if ok && time.Now().Before(c.expires) {
		return c.value, nil
	}
	row, err := f.db.Portals.GetByRoomID(ctx, roomID)
	if err != nil {
		return nil, err
	}
	if row == nil {
		// Not cached: a new portal's first events arrive before its room ID
		// is stored.
		return nil, nil
	}
	info := &PortalInfo{Tenant: row.Tenant, Kind: row.Kind, Slug: row.Slug, Name: row.Name}
	f.mu.Lock()
	if len(f.portals) > 10000 {
		clear(f.portals)
	}
	f.portals[roomID] = cached[*PortalInfo]{info, time.Now().Add(cacheTTL)}
	f.mu.Unlock()
	return info, nil
}

func (f *formatter) sender(ctx context.Context, roomID id.RoomID, userID id.UserID) (*SenderInfo, error) {
	key := [2]string{string(roomID), string(userID)}
	f.mu.Lock()
	c, ok := f.senders[key]
	f.mu.Unlock()
	if ok && time.Now().Before(c.expires) {
		return c.value, nil
	}
	info := &SenderInfo{UserID: userID}
	ghost, err := f.db.Ghosts.GetByUserID(ctx, userID)
	if err != nil {
		return nil, err
	}
	if ghost != nil {
		info.Slug, info.Displayname = ghost.Slug, ghost.Displayname
	} else if info.Displayname, err = f.db.Members.Displayname(ctx, roomID, userID); err != nil {
		return nil, err
	}
	if info.Displayname == "" {
		info.Displayname = userID.Localpart()
	}
	f.mu.Lock()
	if len(f.senders) > 50000 {
		clear(f.senders)
	}
	f.senders[key] = cached[*SenderInfo]{info, time.Now().Add(cacheTTL)}
	f.mu.Unlock()
	return info, nil
}

func membershipOf(evt *database.LoggedEvent) event.Membership {
	if evt.Membership != "" {
		return evt.Membership
	}
	return event.Membership(gjson.GetBytes(evt.Raw, "content.membership").String())
}

// Payload shapes an event that did not come from the log (history read from
// Synapse) exactly like a stream event.
func (h *Hub) Payload(ctx context.Context, evt *database.LoggedEvent) (*Payload, error) {
	return h.fmt.payload(ctx, evt)
}

package sse

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/golang-lru/v2/expirable"
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
	StreamPos int64       `json:"stream_pos,omitempty"`
	RoomID    id.RoomID   `json:"room_id"`
	Portal    *PortalInfo `json:"portal,omitempty"`
	Sender    *SenderInfo `json:"sender,omitempty"`
	TxnID     string      `json:"txn_id,omitempty"`
	// Users names who a typing notice or a receipt is about.
	Users []*SenderInfo   `json:"users,omitempty"`
	Event json.RawMessage `json:"event"`
	// Media carries browser-usable URLs of the event's files (see media.go).
	Media *MediaURLs `json:"media,omitempty"`
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

// formatter turns log rows into SSE frames. Lookups are cached: the same
// room and sender recur in every message of a conversation. The caches are
// bounded LRUs whose entries expire one by one, cacheTTL after they were
// looked up, so a burst of new rooms or senders evicts the least used entries
// instead of emptying everything at once. What changes them comes through
// the log, on every replica: a member event (a new displayname, of a ghost
// too) drops its user's entry in its room, a room name event (a portal
// renamed) the room's portal; the expiry only bounds how long a change
// that reached the database but not yet the room can show old names.
type formatter struct {
	db      *database.Database
	portals *expirable.LRU[id.RoomID, *PortalInfo]
	senders *expirable.LRU[[2]string, *SenderInfo]
	// media signs the URLs of files and avatars (nil: none); avatars
	// caches avatar mxc URIs by room and user.
	media   MediaSigner
	avatars *expirable.LRU[[2]string, string]
}

const cacheTTL = 5 * time.Minute

func newFormatter(db *database.Database) *formatter {
	return &formatter{db: db,
		portals: expirable.NewLRU[id.RoomID, *PortalInfo](20000, nil, cacheTTL),
		senders: expirable.NewLRU[[2]string, *SenderInfo](100000, nil, cacheTTL)}
}

// changes drops what a logged event may change from the caches; call it
// before formatting the event.
func (f *formatter) changes(evt *database.LoggedEvent) {
	switch {
	case evt.Type == event.StateMember.Type && evt.StateKey != nil:
		f.senders.Remove([2]string{string(evt.RoomID), *evt.StateKey})
	case evt.Type == event.StateRoomName.Type:
		f.portals.Remove(evt.RoomID)
	}
}

// payload builds the payload of a logged event.
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
	if f.media != nil {
		if p.Media, err = f.mediaURLs(ctx, payloadSource{evt.RoomID, evt.Sender, evt.Type, evt.Raw}); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func (f *formatter) frame(ctx context.Context, evt *database.LoggedEvent) ([]byte, *Payload, error) {
	f.changes(evt)
	p, err := f.payload(ctx, evt)
	if err != nil {
		return nil, nil, err
	}
	return encodeFrame(evt.Position, evt.Type, p), p, nil
}

// The stream's event names. The event: line only ever carries one of these
// fixed names, never text from an event: an event type is chosen by whoever
// sends the event (any room member, any federated server), and a line break
// in it would let them write frames of their own into every member's
// stream. The real type is always inside the data, in event.type.
const (
	// EventOther names every logged or ephemeral event whose type is not
	// one of the named ones.
	EventOther = "m.event"
	// EventReset tells the page that its position is outside the log:
	// reload history.
	EventReset = "reset"
	// EventMembers tells the page that others' membership of a room
	// changed while the stream was behind (see offerOthersMembership).
	EventMembers = "members"
	// EventPosition carries only the stream's position (see positionFrame).
	EventPosition = "position"
)

var namedEvents = map[string]string{
	event.EventMessage.Type:          event.EventMessage.Type,
	event.EventReaction.Type:         event.EventReaction.Type,
	event.EventRedaction.Type:        event.EventRedaction.Type,
	event.StateMember.Type:           event.StateMember.Type,
	event.EphemeralEventTyping.Type:  event.EphemeralEventTyping.Type,
	event.EphemeralEventReceipt.Type: event.EphemeralEventReceipt.Type,
}

// eventName is the event: name of a Matrix event type.
func eventName(eventType string) string {
	if name, ok := namedEvents[eventType]; ok {
		return name
	}
	return EventOther
}

// encodeFrame writes one SSE event of a Matrix event type; pos 0 means no
// id line (ephemeral).
func encodeFrame(pos int64, eventType string, data any) []byte {
	return encodeNamedFrame(pos, eventName(eventType), data)
}

// nel is U+0085, NEXT LINE.
var nel = []byte("\u0085")

// unencodable is the data of a frame whose payload could not be encoded
// (an event that is not JSON): the frame still arrives, well formed, so the
// position moves on.
var unencodable = []byte(`{"error":"event could not be encoded"}`)

// encodeNamedFrame writes one SSE event named name, which must be one of
// the fixed names above. The data line is JSON as encoding/json writes it:
// no raw line breaks (SSE ends a line at CR, LF or CRLF), control
// characters, NUL, U+0085, U+2028 and U+2029 inside strings are escaped,
// whitespace between tokens is dropped; bytes that are not UTF-8 become
// U+FFFD.
func encodeNamedFrame(pos int64, name string, data any) []byte {
	raw, err := json.Marshal(data)
	if err != nil {
		raw = unencodable
	}
	if !utf8.Valid(raw) {
		// Invalid bytes can only be inside strings (anything else is not
		// JSON), where U+FFFD keeps the JSON valid.
		raw = bytes.ToValidUTF8(raw, []byte(`\ufffd`))
	}
	if bytes.Contains(raw, nel) {
		// Not a line break to SSE, but to parsers that split lines the
		// way Python's str.splitlines does, as U+2028 and U+2029 are
		// (which encoding/json escapes already).
		raw = bytes.ReplaceAll(raw, nel, []byte(`\u0085`))
	}
	b := make([]byte, 0, len(raw)+len(name)+40)
	if pos > 0 {
		b = append(b, "id: "...)
		b = strconv.AppendInt(b, pos, 10)
		b = append(b, '\n')
	}
	b = append(b, "event: "...)
	b = append(b, name...)
	b = append(b, "\ndata: "...)
	b = append(b, raw...)
	return append(b, "\n\n"...)
}

// positionFrame tells the client where its stream stands: an id line
// (also for position 0, so that a stream opened on an empty log can be
// resumed from its start) and the same position as data, since an
// EventSource dispatches no event for a frame without data.
func positionFrame(pos int64) []byte {
	b := make([]byte, 0, 80)
	b = append(b, "id: "...)
	b = strconv.AppendInt(b, pos, 10)
	b = append(b, "\nevent: "+EventPosition+"\ndata: {\"stream_pos\":"...)
	b = strconv.AppendInt(b, pos, 10)
	return append(b, "}\n\n"...)
}

func (f *formatter) portal(ctx context.Context, roomID id.RoomID) (*PortalInfo, error) {
	if info, ok := f.portals.Get(roomID); ok {
		return info, nil
	}
	row, err := f.db.Portals.GetByRoomID(ctx, roomID)
	if err != nil || row == nil {
		// Not cached when missing: a new portal's first events arrive
		// before its room ID is stored.
		return nil, err
	}
	info := &PortalInfo{Tenant: row.Tenant, Kind: row.Kind, Slug: row.Slug, Name: row.Name}
	f.portals.Add(roomID, info)
	return info, nil
}

func (f *formatter) sender(ctx context.Context, roomID id.RoomID, userID id.UserID) (*SenderInfo, error) {
	key := [2]string{string(roomID), string(userID)}
	if info, ok := f.senders.Get(key); ok {
		return info, nil
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
	// Only OpenMeet users are cached: an existing account may be adopted
	// (become an OpenMeet user) at any time.
	if ghost != nil {
		f.senders.Add(key, info)
	}
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

// ephemeralUsers names the users of a typing notice (who types) or a
// receipt (who read), as senders are named. Content that is not shaped as
// the spec says names nobody.
func (f *formatter) ephemeralUsers(ctx context.Context, roomID id.RoomID, eventType string, raw []byte) ([]*SenderInfo, error) {
	var userIDs []id.UserID
	seen := make(map[id.UserID]bool)
	add := func(u string) {
		if strings.HasPrefix(u, "@") && !seen[id.UserID(u)] {
			seen[id.UserID(u)] = true
			userIDs = append(userIDs, id.UserID(u))
		}
	}
	content := gjson.GetBytes(raw, "content")
	switch eventType {
	case event.EphemeralEventTyping.Type:
		if ids := content.Get("user_ids"); ids.IsArray() {
			for _, u := range ids.Array() {
				add(u.Str)
			}
		}
	case event.EphemeralEventReceipt.Type:
		// {event ID: {receipt type: {user ID: receipt}}}
		for _, byType := range objectValues(content) {
			for _, byUser := range objectValues(byType) {
				for _, user := range objectKeys(byUser) {
					add(user)
				}
			}
		}
	}
	users := make([]*SenderInfo, 0, len(userIDs))
	for _, u := range userIDs {
		info, err := f.sender(ctx, roomID, u)
		if err != nil {
			return nil, err
		}
		users = append(users, info)
	}
	return users, nil
}

// objectValues is the values of a JSON object; nothing for anything else.
func objectValues(r gjson.Result) []gjson.Result {
	if !r.IsObject() {
		return nil
	}
	var values []gjson.Result
	r.ForEach(func(_, v gjson.Result) bool {
		values = append(values, v)
		return true
	})
	return values
}

// objectKeys is the keys of a JSON object; nothing for anything else.
func objectKeys(r gjson.Result) []string {
	if !r.IsObject() {
		return nil
	}
	var keys []string
	r.ForEach(func(k, _ gjson.Result) bool {
		keys = append(keys, k.Str)
		return true
	})
	return keys
}

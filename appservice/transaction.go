package appservice

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/openmeet-team/openmeet-bridge/database"
)

// errNotJSON and errBadJSON separate the two ways a body can be wrong; the
// handler maps them to M_NOT_JSON and M_BAD_JSON.
var (
	errNotJSON = errors.New("body is not valid JSON")
	errBadJSON = errors.New("body is not a valid transaction")
)

// Ephemeral is an ephemeral event (typing, receipt, presence) of a
// transaction. These are best effort: Synapse drops them while the bridge is
// down, and they are never logged.
type Ephemeral struct {
	Type    string          `json:"type"`
	RoomID  id.RoomID       `json:"room_id,omitempty"`
	Content json.RawMessage `json:"content"`
}

// parseTransaction checks every event of a transaction body. It returns the
// timeline events to log (without duplicates inside the body) and the
// ephemeral events, or an error wrapping errNotJSON or errBadJSON; nothing is
// returned for a body with any bad event.
//
// It reads the body with gjson rather than encoding/json: this is the
// hottest path of the bridge, and one validating pass plus one pass per
// event is several times cheaper than decoding each event twice.
func parseTransaction(body []byte) ([]*database.LoggedEvent, []*Ephemeral, error) {
	if !gjson.ValidBytes(body) || !utf8.Valid(body) {
		return nil, nil, errNotJSON
	}
	root := gjson.ParseBytes(body)
	if !root.IsObject() {
		return nil, nil, fmt.Errorf("%w: the body must be a JSON object", errBadJSON)
	}
	timeline := root.Get("events")
	if !timeline.IsArray() {
		return nil, nil, fmt.Errorf("%w: events must be a list", errBadJSON)
	}
	var events []*database.LoggedEvent
	seen := make(map[id.EventID]struct{})
	var err error
	timeline.ForEach(func(i, raw gjson.Result) bool {
		var evt *database.LoggedEvent
		if evt, err = parseTimelineEvent(raw); err != nil {
			err = fmt.Errorf("%w: events[%d]: %v", errBadJSON, i.Int(), err)
			return false
		}
		if _, dup := seen[evt.EventID]; !dup {
			seen[evt.EventID] = struct{}{}
			events = append(events, evt)
		}
		return true
	})
	if err != nil {
		return nil, nil, err
	}
	ephemeral, err := parseEphemeral(root)
	if err != nil {
		return nil, nil, err
	}
	return events, ephemeral, nil
}

// parseEphemeral reads the ephemeral list. Synapse sends the same list under
// the stable and the MSC2409 key; the stable one wins when both are there.
func parseEphemeral(root gjson.Result) ([]*Ephemeral, error) {
	list := root.Get("ephemeral")
	if !list.Exists() {
		list = root.Get(`de\.sorunome\.msc2409\.ephemeral`)
	}
	if !list.Exists() {
		return nil, nil
	}
	if !list.IsArray() {
		return nil, fmt.Errorf("%w: ephemeral must be a list", errBadJSON)
	}
	var out []*Ephemeral
	var err error
	list.ForEach(func(i, raw gjson.Result) bool {
		typ, content, roomID := raw.Get("type"), raw.Get("content"), raw.Get("room_id")
		switch {
		case !raw.IsObject() || typ.Type != gjson.String || typ.Str == "" || !content.IsObject():
			err = fmt.Errorf("%w: ephemeral[%d]: needs a type and an object content", errBadJSON, i.Int())
		case roomID.Exists() && (roomID.Type != gjson.String || !strings.HasPrefix(roomID.Str, "!")):
			err = fmt.Errorf("%w: ephemeral[%d]: room_id %s is not a room ID", errBadJSON, i.Int(), roomID.Raw)
		default:
			out = append(out, &Ephemeral{Type: typ.Str, RoomID: id.RoomID(roomID.Str), Content: json.RawMessage(content.Raw)})
		}
		return err == nil
	})
	return out, err
}

// parseTimelineEvent checks one timeline event and extracts what the log
// keeps. The event's bytes are kept exactly as Synapse sent them.
func parseTimelineEvent(raw gjson.Result) (*database.LoggedEvent, error) {
	if !raw.IsObject() {
		return nil, errors.New("not an object")
	}
	evt := &database.LoggedEvent{Raw: []byte(raw.Raw)}
	var ts, content gjson.Result
	var err error
	raw.ForEach(func(key, value gjson.Result) bool {
		switch key.Str {
		case "event_id":
			evt.EventID, err = stringField[id.EventID](key.Str, value, "$")
		case "room_id":
			evt.RoomID, err = stringField[id.RoomID](key.Str, value, "!")
		case "sender":
			evt.Sender, err = stringField[id.UserID](key.Str, value, "@")
		case "type":
			evt.Type, err = stringField[string](key.Str, value, "")
		case "state_key":
			var sk string
			sk, err = stringField[string](key.Str, value, "")
			evt.StateKey = &sk
		case "origin_server_ts":
			ts = value
		case "content":
			content = value
		}
		return err == nil
	})
	if err != nil {
		return nil, err
	}
	switch {
	case evt.EventID == "":
		return nil, errors.New("event_id is missing")
	case evt.RoomID == "":
		return nil, errors.New("room_id is missing")
	case evt.Type == "":
		return nil, errors.New("type is missing")
	case ts.Type != gjson.Number:
		return nil, errors.New("origin_server_ts is missing or not a number")
	case !content.IsObject():
		return nil, errors.New("content is missing or not an object")
	}
	if _, _, err := evt.Sender.ParseAndValidateRelaxed(); err != nil {
		return nil, fmt.Errorf("sender %q is not a user ID", evt.Sender)
	}
	evt.OriginTS = ts.Int()
	if evt.Type == event.StateMember.Type && evt.StateKey != nil {
		membership := content.Get("membership")
		if membership.Type != gjson.String || membership.Str == "" {
			return nil, errors.New("m.room.member content has no membership")
		}
		if _, _, err := id.UserID(*evt.StateKey).ParseAndValidateRelaxed(); err != nil {
			return nil, fmt.Errorf("m.room.member state_key %q is not a user ID", *evt.StateKey)
		}
		evt.Membership = event.Membership(membership.Str)
		evt.MemberDisplayname = content.Get("displayname").String()
	}
	return evt, nil
}

// stringField checks that value is a non-empty string with the given sigil.
func stringField[T ~string](name string, value gjson.Result, sigil string) (T, error) {
	if value.Type != gjson.String {
		return "", fmt.Errorf("%s is not a string", name)
	}
	if sigil != "" && (!strings.HasPrefix(value.Str, sigil) || len(value.Str) < 2) {
		return "", fmt.Errorf("%s %q does not start with %q", name, value.Str, sigil)
	}
	return T(value.Str), nil
}

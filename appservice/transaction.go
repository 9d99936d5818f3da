package appservice

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

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

type transactionBody struct {
	Events          []json.RawMessage `json:"events"`
	Ephemeral       []json.RawMessage `json:"ephemeral"`
	SoruEphemeral   []json.RawMessage `json:"de.sorunome.msc2409.ephemeral"`
	ToDevice        []json.RawMessage `json:"de.sorunome.msc2409.to_device"`
	StableToDevice  []json.RawMessage `json:"to_device"`
	DeviceLists     json.RawMessage   `json:"device_lists"`
	SoruDeviceLists json.RawMessage   `json:"org.matrix.msc3202.device_lists"`
}

// eventFields are the parts of a timeline event the bridge checks and keeps.
type eventFields struct {
	EventID        id.EventID      `json:"event_id"`
	RoomID         id.RoomID       `json:"room_id"`
	Type           string          `json:"type"`
	Sender         id.UserID       `json:"sender"`
	StateKey       *string         `json:"state_key"`
	OriginServerTS *int64          `json:"origin_server_ts"`
	Content        json.RawMessage `json:"content"`
}

// parseTransaction checks every event of a transaction body. It returns the
// timeline events to log (without duplicates inside the body) and the
// ephemeral events, or an error wrapping errNotJSON or errBadJSON; nothing is
// returned for a body with any bad event.
func parseTransaction(body []byte) ([]*database.LoggedEvent, []*Ephemeral, error) {
	if !json.Valid(body) {
		return nil, nil, errNotJSON
	}
	if trimmed := bytes.TrimSpace(body); len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, nil, fmt.Errorf("%w: the body must be a JSON object", errBadJSON)
	}
	var txn transactionBody
	if err := json.Unmarshal(body, &txn); err != nil {
		return nil, nil, fmt.Errorf("%w: %v", errBadJSON, err)
	}
	events := make([]*database.LoggedEvent, 0, len(txn.Events))
	seen := make(map[id.EventID]struct{}, len(txn.Events))
	for i, raw := range txn.Events {
		evt, err := parseTimelineEvent(raw)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: events[%d]: %v", errBadJSON, i, err)
		}
		if _, dup := seen[evt.EventID]; dup {
			continue
		}
		seen[evt.EventID] = struct{}{}
		events = append(events, evt)
	}
	ephemeral := make([]*Ephemeral, 0, len(txn.Ephemeral)+len(txn.SoruEphemeral))
	// Synapse sends the same list under both keys; take the stable one when
	// it is there.
	ephemeralRaw := txn.Ephemeral
	if ephemeralRaw == nil {
		ephemeralRaw = txn.SoruEphemeral
	}
	for i, raw := range ephemeralRaw {
		var eph Ephemeral
		if err := json.Unmarshal(raw, &eph); err != nil || eph.Type == "" || !isObject(eph.Content) {
			return nil, nil, fmt.Errorf("%w: ephemeral[%d]: needs a type and an object content", errBadJSON, i)
		}
		if eph.RoomID != "" && !strings.HasPrefix(string(eph.RoomID), "!") {
			return nil, nil, fmt.Errorf("%w: ephemeral[%d]: room_id %q is not a room ID", errBadJSON, i, eph.RoomID)
		}
		ephemeral = append(ephemeral, &eph)
	}
	return events, ephemeral, nil
}

func parseTimelineEvent(raw json.RawMessage) (*database.LoggedEvent, error) {
	if !utf8.Valid(raw) {
		return nil, errors.New("not valid UTF-8")
	}
	var f eventFields
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, err
	}
	switch {
	case !strings.HasPrefix(string(f.EventID), "$") || len(f.EventID) < 2:
		return nil, fmt.Errorf("event_id %q is not an event ID", f.EventID)
	case !strings.HasPrefix(string(f.RoomID), "!") || len(f.RoomID) < 2:
		return nil, fmt.Errorf("room_id %q is not a room ID", f.RoomID)
	case f.Type == "":
		return nil, errors.New("type is missing")
	case f.OriginServerTS == nil:
		return nil, errors.New("origin_server_ts is missing")
	case !isObject(f.Content):
		return nil, errors.New("content is not an object")
	}
	if _, _, err := f.Sender.ParseAndValidateRelaxed(); err != nil {
		return nil, fmt.Errorf("sender %q is not a user ID", f.Sender)
	}
	evt := &database.LoggedEvent{
		EventID:  f.EventID,
		RoomID:   f.RoomID,
		Type:     f.Type,
		Sender:   f.Sender,
		StateKey: f.StateKey,
		OriginTS: *f.OriginServerTS,
		Raw:      raw,
	}
	if f.Type == event.StateMember.Type && f.StateKey != nil {
		var member struct {
			Membership event.Membership `json:"membership"`
		}
		if err := json.Unmarshal(f.Content, &member); err != nil || member.Membership == "" {
			return nil, errors.New("m.room.member content has no membership")
		}
		if _, _, err := id.UserID(*f.StateKey).ParseAndValidateRelaxed(); err != nil {
			return nil, fmt.Errorf("m.room.member state_key %q is not a user ID", *f.StateKey)
		}
		evt.Membership = member.Membership
	}
	return evt, nil
}

func isObject(raw json.RawMessage) bool {
	trimmed := bytes.TrimSpace(raw)
	return len(trimmed) > 0 && trimmed[0] == '{'
}

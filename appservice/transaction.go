package appservice

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	lru "github.com/hashicorp/golang-lru/v2"
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

// maxFieldBytes bounds every identifier, event type and state key: the
// spec's size limit for each of them (and for txn ids, which it leaves
// open).
const maxFieldBytes = 255

// maxDisplaynameRunes is Synapse's limit on display names; a member event
// with a longer one (or one that is no string, or holds NUL) is logged
// without it.
const maxDisplaynameRunes = 256

// The reasons an event of a transaction is skipped: the values of the
// reason label of openmeet_appservice_events_rejected_total. A fixed set,
// so that no sender can make up label values.
const (
	rejectNotObject     = "not_object"     // the event is no JSON object
	rejectMissingField  = "missing_field"  // a field it must have is missing or empty
	rejectWrongType     = "wrong_type"     // a field is of the wrong JSON type
	rejectTooLong       = "too_long"       // a field is over maxFieldBytes
	rejectNUL           = "nul"            // a field holds a NUL character
	rejectBadID         = "bad_id"         // an ID lacks its sigil, is no valid user ID, or holds white space or control characters
	rejectDuplicateKey  = "duplicate_key"  // a field appears twice (readers of the log would disagree on its value)
	rejectBadMembership = "bad_membership" // an m.room.member event without a usable membership
)

var rejectReasons = []string{rejectNotObject, rejectMissingField, rejectWrongType, rejectTooLong, rejectNUL, rejectBadID, rejectDuplicateKey, rejectBadMembership}

// Ephemeral is an ephemeral event (typing, receipt, presence) of a
// transaction. These are best effort: Synapse drops them while the bridge is
// down, and they are never logged.
type Ephemeral struct {
	Type    string          `json:"type"`
	RoomID  id.RoomID       `json:"room_id,omitempty"`
	Content json.RawMessage `json:"content"`
}

// transaction is what a body holds: the events to log (valid ones, without
// duplicates inside the body), the valid ephemeral events, and the events
// that were skipped.
//
// Nothing in it shares memory with the body: whatever outlives the request
// (caches keyed by room or sender further down) must not keep whole
// transaction bodies alive.
type transaction struct {
	events    []*database.LoggedEvent
	ephemeral []*Ephemeral
	rejected  []rejectedEvent
}

// rejectedEvent is an event that was skipped, and why.
type rejectedEvent struct {
	list  string // "events" or "ephemeral"
	index int
	err   *eventError
}

// eventError says why one event is skipped; reason is one of the reject
// constants.
type eventError struct {
	reason string
	msg    string
}

func (e *eventError) Error() string { return e.msg }

func reject(reason, format string, args ...any) *eventError {
	return &eventError{reason: reason, msg: fmt.Sprintf(format, args...)}
}

// parseTransaction checks a transaction body. A body that is not JSON, or
// not a transaction (no events list), is an error wrapping errNotJSON or
// errBadJSON. An individual malformed event is skipped and listed in
// rejected: one bad event must not make Synapse retry the whole
// transaction for ever, holding up everything behind it.
//
// It reads the body with gjson rather than encoding/json: this is the
// hottest path of the bridge, and one validating pass plus one pass per
// event is several times cheaper than decoding each event twice
// (BenchmarkTransactionIngest; BENCHMARKS.md).
func parseTransaction(body []byte) (*transaction, error) {
	if !gjson.ValidBytes(body) || !utf8.Valid(body) {
		return nil, errNotJSON
	}
	return parseRoot(gjson.ParseBytes(body))
}

// parseRoot checks the parsed body of a transaction. Every string gjson
// hands out is a slice of one copy of the whole body; what parseRoot
// returns is copied out of it.
func parseRoot(root gjson.Result) (*transaction, error) {
	if !root.IsObject() {
		return nil, fmt.Errorf("%w: the body must be a JSON object", errBadJSON)
	}
	// One pass over the top level: each Get would scan it from the start,
	// stepping over the whole events list again.
	var timeline, ephemeral, ephemeralMSC gjson.Result
	root.ForEach(func(key, value gjson.Result) bool {
		// The first of repeated keys counts, as with Get.
		switch key.Str {
		case "events":
			if !timeline.Exists() {
				timeline = value
			}
		case "ephemeral":
			if !ephemeral.Exists() {
				ephemeral = value
			}
		case "de.sorunome.msc2409.ephemeral":
			if !ephemeralMSC.Exists() {
				ephemeralMSC = value
			}
		}
		return true
	})
	if !timeline.IsArray() {
		return nil, fmt.Errorf("%w: events must be a list", errBadJSON)
	}
	if !ephemeral.Exists() {
		// Synapse sends the same list under the stable and the MSC2409
		// key; the stable one wins when both are there.
		ephemeral = ephemeralMSC
	}
	if ephemeral.Exists() && !ephemeral.IsArray() {
		return nil, fmt.Errorf("%w: ephemeral must be a list", errBadJSON)
	}
	txn := &transaction{}
	seen := make(map[id.EventID]struct{})
	index := 0
	timeline.ForEach(func(_, raw gjson.Result) bool {
		evt, err := parseTimelineEvent(raw)
		if err != nil {
			txn.rejected = append(txn.rejected, rejectedEvent{list: "events", index: index, err: err})
		} else if _, dup := seen[evt.EventID]; !dup {
			seen[evt.EventID] = struct{}{}
			txn.events = append(txn.events, evt)
		}
		index++
		return true
	})
	index = 0
	ephemeral.ForEach(func(_, raw gjson.Result) bool {
		if eph, err := parseEphemeralEvent(raw); err != nil {
			txn.rejected = append(txn.rejected, rejectedEvent{list: "ephemeral", index: index, err: err})
		} else {
			txn.ephemeral = append(txn.ephemeral, eph)
		}
		index++
		return true
	})
	return txn, nil
}

// The top-level fields of a timeline event that the bridge reads.
const (
	fieldEventID = iota
	fieldRoomID
	fieldSender
	fieldType
	fieldStateKey
	fieldOriginTS
	fieldContent
)

var timelineFields = [...]string{"event_id", "room_id", "sender", "type", "state_key", "origin_server_ts", "content"}

// The fields of an ephemeral event that the bridge reads.
const (
	fieldEphType = iota
	fieldEphRoomID
	fieldEphContent
)

var ephemeralFields = [...]string{"type", "room_id", "content"}

// fields picks the named fields of an object into values (one per name).
// A name that appears twice is refused: gjson lookups (as the stream and
// the bot do on the logged event) take the first, most JSON parsers
// (browsers, Synapse) the last.
func fields(raw gjson.Result, names []string, values []gjson.Result) *eventError {
	if !raw.IsObject() {
		return reject(rejectNotObject, "not an object")
	}
	var err *eventError
	raw.ForEach(func(key, value gjson.Result) bool {
		for i, name := range names {
			if key.Str != name {
				continue
			}
			if values[i].Exists() {
				err = reject(rejectDuplicateKey, "%s appears more than once", name)
				return false
			}
			values[i] = value
		}
		return true
	})
	return err
}

// parseTimelineEvent checks one timeline event and extracts what the log
// keeps. The event's bytes are kept exactly as Synapse sent them.
func parseTimelineEvent(raw gjson.Result) (*database.LoggedEvent, *eventError) {
	var f [len(timelineFields)]gjson.Result
	err := fields(raw, timelineFields[:], f[:])
	if err != nil {
		return nil, err
	}
	evt := &database.LoggedEvent{Raw: []byte(raw.Raw)}
	var eventID, roomID, sender string
	if eventID, err = idField("event_id", f[fieldEventID], '$'); err != nil {
		return nil, err
	}
	if roomID, err = idField("room_id", f[fieldRoomID], '!'); err != nil {
		return nil, err
	}
	if sender, err = userIDField("sender", f[fieldSender]); err != nil {
		return nil, err
	}
	if evt.Type, err = textField("type", f[fieldType]); err != nil {
		return nil, err
	} else if evt.Type == "" {
		return nil, reject(rejectMissingField, "type is empty")
	}
	if f[fieldStateKey].Exists() {
		var sk string
		if sk, err = textField("state_key", f[fieldStateKey]); err != nil {
			return nil, err
		}
		evt.StateKey = &sk
	}
	switch ts := f[fieldOriginTS]; {
	case !ts.Exists():
		return nil, reject(rejectMissingField, "origin_server_ts is missing")
	case ts.Type != gjson.Number:
		return nil, reject(rejectWrongType, "origin_server_ts is not a number")
	default:
		evt.OriginTS = ts.Int()
	}
	content := f[fieldContent]
	switch {
	case !content.Exists():
		return nil, reject(rejectMissingField, "content is missing")
	case !content.IsObject():
		return nil, reject(rejectWrongType, "content is not an object")
	}
	evt.EventID, evt.RoomID, evt.Sender = id.EventID(eventID), id.RoomID(roomID), id.UserID(sender)
	if evt.Type == event.StateMember.Type && evt.StateKey != nil {
		if err = parseMember(evt, content); err != nil {
			return nil, err
		}
	}
	detach((*string)(&evt.EventID), (*string)(&evt.RoomID), (*string)(&evt.Sender), &evt.Type, evt.StateKey,
		(*string)(&evt.Membership), &evt.MemberDisplayname)
	return evt, nil
}

// parseMember reads the membership and display name of an m.room.member
// event, whose state key must be a user ID.
func parseMember(evt *database.LoggedEvent, content gjson.Result) *eventError {
	if err := checkUserID("state_key", *evt.StateKey); err != nil {
		return err
	}
	membership := content.Get("membership")
	if membership.Type != gjson.String || membership.Str == "" {
		return reject(rejectBadMembership, "m.room.member content has no membership")
	}
	if err := checkText("content.membership", membership.Str); err != nil {
		return err
	}
	evt.Membership = event.Membership(membership.Str)
	if name := content.Get("displayname"); name.Type == gjson.String && strings.IndexByte(name.Str, 0) < 0 &&
		utf8.RuneCountInString(name.Str) <= maxDisplaynameRunes {
		evt.MemberDisplayname = name.Str
	}
	return nil
}

// parseEphemeralEvent checks one ephemeral event.
func parseEphemeralEvent(raw gjson.Result) (*Ephemeral, *eventError) {
	var f [len(ephemeralFields)]gjson.Result
	err := fields(raw, ephemeralFields[:], f[:])
	if err != nil {
		return nil, err
	}
	eph := &Ephemeral{}
	if eph.Type, err = textField("type", f[fieldEphType]); err != nil {
		return nil, err
	} else if eph.Type == "" {
		return nil, reject(rejectMissingField, "type is empty")
	}
	if f[fieldEphRoomID].Exists() {
		var roomID string
		if roomID, err = idField("room_id", f[fieldEphRoomID], '!'); err != nil {
			return nil, err
		}
		eph.RoomID = id.RoomID(roomID)
	}
	switch content := f[fieldEphContent]; {
	case !content.Exists():
		return nil, reject(rejectMissingField, "content is missing")
	case !content.IsObject():
		return nil, reject(rejectWrongType, "content is not an object")
	default:
		eph.Content = json.RawMessage(content.Raw) // a copy
	}
	detach(&eph.Type, (*string)(&eph.RoomID))
	return eph, nil
}

// textField checks that value is a string of at most maxFieldBytes
// without NUL. The database refuses NUL (PostgreSQL) or cuts the string
// there (SQLite).
func textField(name string, value gjson.Result) (string, *eventError) {
	switch {
	case !value.Exists():
		return "", reject(rejectMissingField, "%s is missing", name)
	case value.Type != gjson.String:
		return "", reject(rejectWrongType, "%s is not a string", name)
	}
	return value.Str, checkText(name, value.Str)
}

func checkText(name, s string) *eventError {
	if len(s) > maxFieldBytes {
		return reject(rejectTooLong, "%s is %d bytes long, over %d", name, len(s), maxFieldBytes)
	}
	if strings.IndexByte(s, 0) >= 0 {
		return reject(rejectNUL, "%s %s contains NUL", name, clip(s))
	}
	return nil
}

// idField checks that value is an identifier with the given sigil.
func idField(name string, value gjson.Result, sigil byte) (string, *eventError) {
	s, err := textField(name, value)
	if err == nil {
		err = checkID(name, s, sigil)
	}
	return s, err
}

// checkID checks that s is an identifier with the given sigil: a text
// field without white space or control characters.
func checkID(name, s string, sigil byte) *eventError {
	if err := checkText(name, s); err != nil {
		return err
	}
	if len(s) < 2 || s[0] != sigil {
		return reject(rejectBadID, "%s %s does not start with %q", name, clip(s), sigil)
	}
	if !printable(s) {
		return reject(rejectBadID, "%s %s contains white space or a control character", name, clip(s))
	}
	return nil
}

// printable reports whether s has no white space and no control
// characters. IDs are nearly always ASCII; that case is a plain loop.
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= utf8.RuneSelf {
			return strings.IndexFunc(s[i:], func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) < 0
		} else if c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

// userIDField checks that value is a user ID.
func userIDField(name string, value gjson.Result) (string, *eventError) {
	s, err := textField(name, value)
	if err == nil {
		err = checkUserID(name, s)
	}
	return s, err
}

// checkUserID checks that s is a user ID (historical localparts allowed,
// as Synapse allows them).
func checkUserID(name, s string) *eventError {
	if err := checkID(name, s, '@'); err != nil {
		return err
	}
	if !validUserID(s) {
		return reject(rejectBadID, "%s %s is not a user ID", name, clip(s))
	}
	return nil
}

// validServerNames holds server names that passed id.ValidateServerName.
// Its regular expression was 2.5–4.5% of the CPU of
// BenchmarkTransactionIngest, for senders from a handful of servers. Only
// names that passed are kept, so what it holds cannot make the bridge
// accept anything the check refuses; a flood of new names only pushes out
// old ones.
var validServerNames = func() *lru.Cache[string, struct{}] {
	c, err := lru.New[string, struct{}](1024)
	if err != nil {
		panic(err)
	}
	return c
}()

// validUserID is id.UserID.ParseAndValidateRelaxed, with the server names
// that passed remembered.
func validUserID(s string) bool {
	if len(s) > id.UserIDMaxLength {
		return false
	}
	_, server, err := id.UserID(s).Parse()
	if err != nil {
		return false
	}
	if _, ok := validServerNames.Get(server); ok {
		return true
	}
	if !id.ValidateServerName(server) {
		return false
	}
	// A copy: server is a slice of the transaction body.
	validServerNames.Add(strings.Clone(server), struct{}{})
	return true
}

// clip quotes s for an error message, shortened: messages are logged, and
// a field may be as long as the body.
func clip(s string) string {
	const max = 64
	if len(s) <= max {
		return fmt.Sprintf("%q", s)
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%q…", s[:cut])
}

// detach copies the strings into one new allocation and points them at it
// (nil pointers are left alone). Strings cut from a gjson parse are slices
// of the whole body; one of them kept in a long-lived cache keeps every
// byte of the body alive.
func detach(fields ...*string) {
	n := 0
	for _, f := range fields {
		if f != nil {
			n += len(*f)
		}
	}
	var b strings.Builder
	b.Grow(n)
	for _, f := range fields {
		if f != nil {
			b.WriteString(*f)
		}
	}
	all, off := b.String(), 0
	for _, f := range fields {
		if f != nil {
			*f = all[off : off+len(*f)]
			off += len(*f)
		}
	}
}

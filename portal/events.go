package portal

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"
)

var (
	// ErrNoSuchEvent is returned by Event when the homeserver has no event
	// of that ID in the room, or none the user may see.
	ErrNoSuchEvent = errors.New("no such event in this room")
	// ErrMalformedEvent is returned by Event when the homeserver's answer is
	// not the event asked for.
	ErrMalformedEvent = errors.New("homeserver returned a malformed event")
	// ErrBadEventID is returned by CheckEventID.
	ErrBadEventID = errors.New("not an event ID")
)

// maxIDLength is the longest identifier the Matrix spec allows, in bytes.
const maxIDLength = 255

// CheckEventID accepts what can be an event ID: "$" and an opaque part,
// at most 255 bytes of UTF-8 without control characters or spaces, so it
// is safe to log, store and put into a homeserver URL.
func CheckEventID(eventID string) error {
	if len(eventID) < 2 || len(eventID) > maxIDLength || eventID[0] != '$' || !utf8.ValidString(eventID) ||
		strings.IndexFunc(eventID, func(c rune) bool { return unicode.IsControl(c) || unicode.IsSpace(c) }) >= 0 {
		return ErrBadEventID
	}
	return nil
}

// RoomEvent is what the bridge needs of an event it read from the
// homeserver.
type RoomEvent struct {
	ID       id.EventID
	RoomID   id.RoomID
	Sender   id.UserID
	Type     string
	OriginTS int64
}

// Event reads an event of roomID from the homeserver as userID's ghost, so
// Synapse's visibility rules apply: an event the user may not see, or one
// of another room, is ErrNoSuchEvent. Nothing of the answer is trusted that
// was not checked.
func (r *Registry) Event(ctx context.Context, userID id.UserID, roomID id.RoomID, eventID id.EventID) (*RoomEvent, error) {
	if err := CheckEventID(eventID.String()); err != nil {
		return nil, err
	}
	r.hs.MarkRegistered(ctx, userID)
	evt, err := r.hs.Intent(userID).Client.GetEvent(ctx, roomID, eventID)
	var httpErr mautrix.HTTPError
	if errors.As(err, &httpErr) && (httpErr.IsStatus(404) || httpErr.IsStatus(403)) {
		return nil, ErrNoSuchEvent
	} else if err != nil {
		return nil, fmt.Errorf("failed to read event: %w", err)
	}
	if evt == nil || evt.ID != eventID || evt.Type.Type == "" || len(evt.Type.Type) > maxIDLength {
		return nil, ErrMalformedEvent
	}
	if _, _, err := evt.Sender.ParseAndValidateRelaxed(); err != nil {
		return nil, ErrMalformedEvent
	}
	if evt.RoomID != roomID {
		return nil, ErrNoSuchEvent
	}
	return &RoomEvent{ID: evt.ID, RoomID: evt.RoomID, Sender: evt.Sender, Type: evt.Type.Type, OriginTS: evt.Timestamp}, nil
}

// AwaitLogged waits until Synapse's push of eventID has been logged and
// returns its position; ok is false when that did not happen by the
// deadline.
func (r *Registry) AwaitLogged(ctx context.Context, eventID id.EventID, deadline time.Time) (pos int64, ok bool, err error) {
	err = poll(ctx, deadline, func(ctx context.Context) (bool, error) {
		var err error
		pos, ok, err = r.db.EventLog.Position(ctx, eventID)
		return ok, err
	})
	if errors.Is(err, ErrPending) {
		err = nil
	}
	return pos, ok, err
}

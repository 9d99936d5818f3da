package sse

import (
	"context"
	"fmt"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/openmeet-team/openmeet-bridge/database"
)

// A resumed stream replays a range of the log. It may carry only what its
// user could see at each position, by the user's membership and the room's
// history visibility at that position (the client-server spec's "history
// visibility" rules, as Synapse's filter_events_for_client applies them),
// never by the rooms the user is in now: a user who joins a room whose
// history is "joined" must not get the messages sent before, by resuming
// from a position taken before.
//
// historyFilter walks the range in log order. For each room of the range
// that the user is in at its end, or whose membership of the user changed
// in it, it reads the user's membership and the room's visibility as of
// the range's start (two indexed reads, only for rooms the range has
// events of, and none for a room the user stayed joined to), then applies
// the member and visibility events of the range as they come. Every other
// room's events are the user's own membership or nothing.
//
// The rule for an event of someone else, with the state after the event:
//   - the user is joined: visible;
//   - else only if the user joins the room later (in the range or by its
//     end: a user who left or never joined sees nothing of the room, as
//     Synapse's /messages stops at a leave), and the visibility is shared
//     or world_readable, or invited while the user is invited;
//   - a history visibility event counts with the less restrictive of the
//     visibility before and after it (as Synapse does).
//
// The user's own member events are always visible: the stream is how the
// client learns its rooms. When the log no longer holds the state as of the
// start (pruned), the user counts as not a member and the visibility as
// joined: that can only hide events, never show more. (room_member cannot
// stand in: the state is read only for rooms whose membership of the user
// changed in the range, so its row is always newer than the start; a room
// the user stayed joined to needs no read.)
type historyFilter struct {
	db   *database.Database
	user id.UserID
	from int64
	// rooms are the rooms that may have visible events; the value says
	// how the user's membership changed in the range.
	rooms map[id.RoomID]*roomRange
}

// roomRange is one room of the range: whether the user is joined at its
// end, where they last joined in it, whether their membership changed in
// it, and the state as of the event being looked at, once read.
type roomRange struct {
	joinedAtEnd bool
	lastJoin    int64
	changed     bool
	known       bool
	membership  event.Membership
	visibility  event.HistoryVisibility
}

// newHistoryFilter prepares the filter of the range (from, to] of userID's
// stream, whose rooms at to are follows.
func newHistoryFilter(ctx context.Context, db *database.Database, userID id.UserID, follows map[id.RoomID]struct{}, from, to int64) (*historyFilter, error) {
	f := &historyFilter{db: db, user: userID, from: from, rooms: make(map[id.RoomID]*roomRange, len(follows))}
	for roomID := range follows {
		f.rooms[roomID] = &roomRange{joinedAtEnd: true}
	}
	own, err := db.EventLog.MemberEventsBetween(ctx, userID, from, to)
	if err != nil {
		return nil, fmt.Errorf("failed to read membership changes: %w", err)
	}
	for _, evt := range own {
		r := f.rooms[evt.RoomID]
		if r == nil {
			r = &roomRange{}
			f.rooms[evt.RoomID] = r
		}
		r.changed = true
		if membershipOf(evt) == event.MembershipJoin {
			r.lastJoin = evt.Position
		}
	}
	return f, nil
}

// visible reports whether the user may see evt, the next event of the
// range in log order.
func (f *historyFilter) visible(ctx context.Context, evt *database.LoggedEvent) (bool, error) {
	own := isAbout(evt, f.user)
	r := f.rooms[evt.RoomID]
	if r == nil {
		return own, nil
	}
	if !r.changed {
		// Joined at the end, and no change since the start: joined
		// throughout.
		return true, nil
	}
	if !r.known {
		if err := f.readStart(ctx, evt.RoomID, r); err != nil {
			return false, err
		}
	}
	if own {
		r.membership = membershipOf(evt)
		return true, nil
	}
	visibility := r.visibility
	if evt.Type == event.StateHistoryVisibility.Type && evt.StateKey != nil && *evt.StateKey == "" {
		r.visibility = visibilityOf(evt)
		visibility = laxer(visibility, r.visibility)
	}
	if r.membership == event.MembershipJoin {
		return true, nil
	}
	if !r.joinedAtEnd && r.lastJoin <= evt.Position {
		return false, nil
	}
	switch visibility {
	case event.HistoryVisibilityWorldReadable, event.HistoryVisibilityShared:
		return true, nil
	case event.HistoryVisibilityInvited:
		return r.membership == event.MembershipInvite, nil
	}
	return false, nil
}

// readStart reads the user's membership and the room's visibility as of
// the range's start.
func (f *historyFilter) readStart(ctx context.Context, roomID id.RoomID, r *roomRange) error {
	r.known = true
	r.membership, r.visibility = event.MembershipLeave, event.HistoryVisibilityJoined
	member, err := f.db.EventLog.StateAt(ctx, roomID, event.StateMember.Type, f.user.String(), f.from)
	if err != nil {
		return fmt.Errorf("failed to read membership at the stream's position: %w", err)
	}
	if member != nil {
		r.membership = membershipOf(member)
	}
	vis, err := f.db.EventLog.StateAt(ctx, roomID, event.StateHistoryVisibility.Type, "", f.from)
	if err != nil {
		return fmt.Errorf("failed to read history visibility at the stream's position: %w", err)
	}
	if vis != nil {
		r.visibility = visibilityOf(vis)
	}
	return nil
}

// visibilityOf is the history visibility a logged m.room.history_visibility
// event sets; one Synapse does not know counts as shared, as there.
func visibilityOf(evt *database.LoggedEvent) event.HistoryVisibility {
	v := event.HistoryVisibility(gjson.GetBytes(evt.Raw, "content.history_visibility").String())
	if visibilityRank(v) < 0 {
		return event.HistoryVisibilityShared
	}
	return v
}

// visibilityRank orders the visibilities from the most open; -1 for an
// unknown one.
func visibilityRank(v event.HistoryVisibility) int {
	switch v {
	case event.HistoryVisibilityWorldReadable:
		return 0
	case event.HistoryVisibilityShared:
		return 1
	case event.HistoryVisibilityInvited:
		return 2
	case event.HistoryVisibilityJoined:
		return 3
	}
	return -1
}

// laxer is the less restrictive of two visibilities.
func laxer(a, b event.HistoryVisibility) event.HistoryVisibility {
	if visibilityRank(a) < visibilityRank(b) {
		return a
	}
	return b
}

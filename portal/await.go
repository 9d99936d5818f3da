package portal

import (
	"context"
	"errors"
	"fmt"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/openmeet-team/openmeet-bridge/database"
)

// A membership call answers 200 only when the bridge's own view of the room
// -- the room_member table, written from the member events Synapse pushes --
// shows what the call asked for, because that view is what the client API
// checks on the caller's next request. Synapse answers a join before it
// pushes the join, so "Synapse has it" alone is not enough.
//
// The bridge never writes that view itself (a kick pushed in between would
// be overwritten). Instead it asks Synapse, once the sync is done, which
// member event is now current for each user, and waits until that event has
// been pushed and logged: rows only move forward in log order, so from then
// on the row shows that event or a newer one, and a stale row (say, a join
// from before a leave whose push is still on its way) can never pass for
// the new state.

// memberSnapshotLimit is up to how many users are looked up one by one in
// Synapse and in the table; above it, the whole room is read at once.
const memberSnapshotLimit = 16

// pollInterval bounds how often a wait re-reads the database: often enough
// that a push (typically a few tens of milliseconds behind the answer) is
// noticed at once, on any replica, without a notification path.
const (
	pollFirst = 5 * time.Millisecond
	pollMax   = 50 * time.Millisecond
)

// poll calls check until it reports done, an error occurs, the deadline
// passes or ctx ends; the last two return ErrPending.
func poll(ctx context.Context, deadline time.Time, check func(context.Context) (bool, error)) error {
	interval := pollFirst
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		if done, err := check(ctx); err != nil || done {
			return err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return ErrPending
		}
		timer.Reset(min(interval, left))
		select {
		case <-timer.C:
		case <-ctx.Done():
			return ErrPending
		}
		interval = min(interval*2, pollMax)
	}
}

// SyncMembers applies a change of the portal's members and waits, within
// one portals.sync_wait, until Synapse has applied it (the portal is synced
// first if its stored state lags) and then until the bridge's own view of
// the room shows each of users joined if the portal wants them and not
// joined otherwise. It returns ErrPending when the wait ran out, and the
// sync's error when Synapse refused.
func (r *Registry) SyncMembers(ctx context.Context, key database.PortalKey, users []id.UserID) error {
	deadline := time.Now().Add(r.cfg.SyncWait)
	p, err := r.db.Portals.Get(ctx, key)
	if err != nil {
		return fmt.Errorf("failed to load portal: %w", err)
	}
	if p == nil {
		return nil
	}
	if !p.Synced() {
		if err := r.wait(ctx, r.portals.request(key, true), deadline); err != nil {
			return err
		}
	}
	return r.awaitMembers(ctx, key, users, deadline)
}

// currentMember is a user's member event in Synapse's current room state.
type currentMember struct {
	eventID    id.EventID
	membership event.Membership
}

// awaitMembers waits until the room_member table shows users as the portal
// wants them, as described at the top of this file.
func (r *Registry) awaitMembers(ctx context.Context, key database.PortalKey, users []id.UserID, deadline time.Time) error {
	p, err := r.db.Portals.Get(ctx, key)
	if err != nil {
		return fmt.Errorf("failed to load portal: %w", err)
	}
	if p == nil || len(users) == 0 || (p.Closed && !r.cfg.Close.RemoveMembers) {
		return nil
	}
	want, err := r.wantedJoins(ctx, p, users)
	if err != nil {
		return err
	}
	if p.RoomID == "" {
		for _, join := range want {
			if join {
				return ErrPending // no room yet, so nobody can be in it
			}
		}
		return nil
	}
	current, err := r.currentMembers(ctx, p.RoomID, users)
	if err != nil {
		return err
	}
	for _, userID := range users {
		if (current[userID].membership == event.MembershipJoin) != want[userID] {
			// Changed again since the sync (a kick, or another call): the
			// view cannot come to show what this call asked for.
			return ErrPending
		}
	}
	return poll(ctx, deadline, func(ctx context.Context) (bool, error) {
		rows, err := r.memberRows(ctx, p.RoomID, users)
		if err != nil {
			return false, err
		}
		for _, userID := range users {
			if ok, err := r.rowShows(ctx, rows[userID], current[userID], want[userID]); err != nil || !ok {
				return false, err
			}
		}
		return true, nil
	})
}

// wantedJoins says for each user whether the portal wants it joined.
func (r *Registry) wantedJoins(ctx context.Context, p *database.Portal, users []id.UserID) (map[id.UserID]bool, error) {
	members, err := r.db.PortalMembers.List(ctx, p.Key())
	if err != nil {
		return nil, fmt.Errorf("failed to load members: %w", err)
	}
	want := make(map[id.UserID]bool, len(users))
	for _, userID := range users {
		want[userID] = false
	}
	if p.Closed {
		return want, nil // closing takes every ghost out
	}
	for _, m := range members {
		if _, asked := want[m.UserID]; asked {
			want[m.UserID] = true
		}
	}
	return want, nil
}

// rowShows reports whether a user's row already reflects Synapse's current
// member event cur with the wanted membership.
func (r *Registry) rowShows(ctx context.Context, row *database.RoomMember, cur currentMember, join bool) (bool, error) {
	if row == nil {
		// Never pushed: fine only for someone who should not be joined and
		// never had a member event.
		return !join && cur.eventID == "", nil
	}
	if (row.Membership == event.MembershipJoin) != join {
		return false, nil
	}
	if cur.eventID == "" || row.EventID == cur.eventID {
		return true, nil
	}
	// Another event: older (cur's push is still on its way) or newer (cur
	// was logged and something followed it).
	_, logged, err := r.db.EventLog.Position(ctx, cur.eventID)
	return logged, err
}

// memberRows reads the table rows of users in roomID.
func (r *Registry) memberRows(ctx context.Context, roomID id.RoomID, users []id.UserID) (map[id.UserID]*database.RoomMember, error) {
	rows := make(map[id.UserID]*database.RoomMember, len(users))
	if len(users) > memberSnapshotLimit {
		all, err := r.db.Members.List(ctx, roomID)
		if err != nil {
			return nil, fmt.Errorf("failed to read room members: %w", err)
		}
		for _, m := range all {
			rows[m.UserID] = m
		}
		return rows, nil
	}
	for _, userID := range users {
		m, err := r.db.Members.Get(ctx, roomID, userID)
		if err != nil {
			return nil, fmt.Errorf("failed to read room member: %w", err)
		}
		rows[userID] = m
	}
	return rows, nil
}

// currentMembers asks Synapse, as the bot, for the member events of users
// in its current room state; a user without one is left out.
func (r *Registry) currentMembers(ctx context.Context, roomID id.RoomID, users []id.UserID) (map[id.UserID]currentMember, error) {
	bot := r.hs.Bot().Client
	out := make(map[id.UserID]currentMember, len(users))
	if len(users) > memberSnapshotLimit {
		resp, err := bot.Members(ctx, roomID)
		if err != nil {
			return nil, fmt.Errorf("failed to read room members: %w", err)
		}
		for _, evt := range resp.Chunk {
			if evt != nil && evt.StateKey != nil && evt.ID != "" {
				out[id.UserID(*evt.StateKey)] = currentMember{evt.ID, evt.Content.AsMember().Membership}
			}
		}
		return out, nil
	}
	for _, userID := range users {
		evt, err := bot.FullStateEvent(ctx, roomID, event.StateMember, userID.String())
		if errors.Is(err, mautrix.MNotFound) {
			continue
		} else if err != nil {
			return nil, fmt.Errorf("failed to read member event of %s: %w", userID, err)
		}
		if evt == nil || evt.ID == "" || evt.StateKey == nil || *evt.StateKey != userID.String() {
			return nil, fmt.Errorf("homeserver gave a malformed member event for %s", userID)
		}
		out[userID] = currentMember{evt.ID, evt.Content.AsMember().Membership}
	}
	return out, nil
}

package database

import (
	"context"
	"database/sql"
	"errors"

	"go.mau.fi/util/dbutil"
	"maunium.net/go/mautrix/id"
)

// Queries of the event stream: where a new stream starts and what changed
// of its user's membership since.

const (
	// One statement reads one snapshot (SQLite and PostgreSQL alike): the
	// committed position and the membership rows written by the same
	// transactions, so the rooms are exactly those of that position. The
	// LEFT JOIN gives one row with a NULL room when the user has none.
	streamSnapshotQuery = `
		SELECT sp.position, rm.room_id FROM stream_position sp
		LEFT JOIN room_member rm ON rm.user_id = $1 AND rm.membership = 'join'
		WHERE sp.id = 1 ORDER BY rm.room_id`
	memberEventsBetweenQuery = `
		SELECT stream_pos, event_id, room_id, event_type, sender, state_key, origin_ts, event
		FROM event_log
		WHERE state_key = $1 AND stream_pos > $2 AND stream_pos <= $3 AND event_type = 'm.room.member'
		ORDER BY stream_pos`
	// event_log_state_idx finds it without reading the room's messages.
	stateAtQuery = `
		SELECT stream_pos, event_id, room_id, event_type, sender, state_key, origin_ts, event
		FROM event_log
		WHERE room_id = $1 AND event_type = $2 AND state_key = $3 AND stream_pos <= $4
		ORDER BY stream_pos DESC LIMIT 1`
)

// StreamSnapshot is where a new stream starts: the highest committed log
// position, and the rooms the user is joined to as of that position.
type StreamSnapshot struct {
	Position int64
	Rooms    []id.RoomID
}

// StreamSnapshot reads userID's joined rooms and the committed log position
// atomically: every membership change logged at or before Position is in
// Rooms, none after it.
func (q *EventLogQuery) StreamSnapshot(ctx context.Context, userID id.UserID) (*StreamSnapshot, error) {
	rows, err := q.db.Query(ctx, streamSnapshotQuery, userID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var snap StreamSnapshot
	for rows.Next() {
		var room sql.NullString
		if err := rows.Scan(&snap.Position, &room); err != nil {
			return nil, err
		}
		if room.Valid {
			snap.Rooms = append(snap.Rooms, id.RoomID(room.String))
		}
	}
	return &snap, rows.Err()
}

// MemberEventsBetween returns the logged m.room.member events about userID
// (state key) after position after and up to upTo, in log order. Read back
// from the log, their Membership field is not set (it is in Raw).
func (q *EventLogQuery) MemberEventsBetween(ctx context.Context, userID id.UserID, after, upTo int64) ([]*LoggedEvent, error) {
	rows, err := q.db.Query(ctx, memberEventsBetweenQuery, userID, after, upTo)
	return dbutil.NewRowIterWithError(rows, scanLoggedEvent, err).AsList()
}

// StateAt returns the room's newest logged state event of that type and
// state key at or before position at, or nil when the log holds none (the
// room never had one, or it was pruned).
func (q *EventLogQuery) StateAt(ctx context.Context, roomID id.RoomID, eventType, stateKey string, at int64) (*LoggedEvent, error) {
	evt, err := scanLoggedEvent(q.db.QueryRow(ctx, stateAtQuery, roomID, eventType, stateKey, at))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	return evt, err
}

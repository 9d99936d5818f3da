package database

import (
	"context"
	"database/sql"
	"errors"

	"go.mau.fi/util/dbutil"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// RoomMemberQuery reads the room_member table: membership as Synapse
// reported it. Rows are written by the event log as member events arrive.
type RoomMemberQuery struct {
	db *dbutil.Database
}

type memberKey struct {
	room id.RoomID
	user id.UserID
}

type memberRow struct {
	RoomID      id.RoomID
	UserID      id.UserID
	Membership  event.Membership
	Displayname string
	EventID     id.EventID
	Position    int64
}

func (m *memberRow) GetMassInsertValues() [6]any {
	return [6]any{m.RoomID, m.UserID, m.Membership, m.Displayname, m.EventID, m.Position}
}

const (
	// Only a newer event may overwrite a row, so a replayed old transaction
	// cannot roll membership back.
	upsertMemberQuery = `
		INSERT INTO room_member (room_id, user_id, membership, displayname, event_id, stream_pos)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (room_id, user_id) DO UPDATE
			SET membership = excluded.membership, displayname = excluded.displayname,
				event_id = excluded.event_id, stream_pos = excluded.stream_pos
			WHERE excluded.stream_pos > room_member.stream_pos`
	getMembershipQuery    = `SELECT membership FROM room_member WHERE room_id = $1 AND user_id = $2`
	getJoinedRoomsQuery   = `SELECT room_id FROM room_member WHERE user_id = $1 AND membership = 'join' ORDER BY room_id`
	getDisplaynameQuery   = `SELECT displayname FROM room_member WHERE room_id = $1 AND user_id = $2`
	getJoinedMembersQuery = `SELECT user_id FROM room_member WHERE room_id = $1 AND membership = 'join' ORDER BY user_id`
	getRoomMemberQuery    = `SELECT user_id, membership, event_id, stream_pos FROM room_member WHERE room_id = $1 AND user_id = $2`
	listRoomMembersQuery  = `SELECT user_id, membership, event_id, stream_pos FROM room_member WHERE room_id = $1 ORDER BY user_id`
)

// RoomMember is a user's membership in a room as Synapse last pushed it.
type RoomMember struct {
	UserID     id.UserID
	Membership event.Membership
	// EventID is the member event the row comes from, logged at Position.
	EventID  id.EventID
	Position int64
}

func scanRoomMember(row dbutil.Scannable) (*RoomMember, error) {
	var m RoomMember
	return dbutil.ValueOrErr(&m, row.Scan(&m.UserID, &m.Membership, &m.EventID, &m.Position))
}

// Get returns userID's row in roomID, or nil when Synapse never reported a
// membership.
func (q *RoomMemberQuery) Get(ctx context.Context, roomID id.RoomID, userID id.UserID) (*RoomMember, error) {
	m, err := scanRoomMember(q.db.QueryRow(ctx, getRoomMemberQuery, roomID, userID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	return m, err
}

// List returns every row of roomID, whatever the membership, by user ID.
func (q *RoomMemberQuery) List(ctx context.Context, roomID id.RoomID) ([]*RoomMember, error) {
	rows, err := q.db.Query(ctx, listRoomMembersQuery, roomID)
	return dbutil.NewRowIterWithError(rows, scanRoomMember, err).AsList()
}

var memberUpsertBuilder = dbutil.NewMassInsertBuilder[*memberRow, [0]any](upsertMemberQuery, "($%d, $%d, $%d, $%d, $%d, $%d)")

// Membership returns userID's membership in roomID as Synapse last reported
// it, or "" when it never did.
func (q *RoomMemberQuery) Membership(ctx context.Context, roomID id.RoomID, userID id.UserID) (event.Membership, error) {
	var m event.Membership
	err := q.db.QueryRow(ctx, getMembershipQuery, roomID, userID).Scan(&m)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return m, err
}

// JoinedRooms lists the rooms userID is joined to.
func (q *RoomMemberQuery) JoinedRooms(ctx context.Context, userID id.UserID) ([]id.RoomID, error) {
	rows, err := q.db.Query(ctx, getJoinedRoomsQuery, userID)
	return dbutil.NewRowIterWithError(rows, dbutil.ScanSingleColumn[id.RoomID], err).AsList()
}

// JoinedMembers lists the users joined to roomID.
func (q *RoomMemberQuery) JoinedMembers(ctx context.Context, roomID id.RoomID) ([]id.UserID, error) {
	rows, err := q.db.Query(ctx, getJoinedMembersQuery, roomID)
	return dbutil.NewRowIterWithError(rows, dbutil.ScanSingleColumn[id.UserID], err).AsList()
}

// Displayname returns the display name userID has in roomID according to
// its last member event, or "".
func (q *RoomMemberQuery) Displayname(ctx context.Context, roomID id.RoomID, userID id.UserID) (string, error) {
	var name string
	err := q.db.QueryRow(ctx, getDisplaynameQuery, roomID, userID).Scan(&name)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return name, err
}

// BackfilledMember is a membership read from a room's state rather than
// pushed by Synapse.
type BackfilledMember struct {
	UserID      id.UserID
	Membership  event.Membership
	Displayname string
	EventID     id.EventID
}

// A backfilled row never replaces one that a pushed event wrote.
const backfillMemberQuery = `
	INSERT INTO room_member (room_id, user_id, membership, displayname, event_id, stream_pos)
	VALUES ($1, $2, $3, $4, $5, 0)
	ON CONFLICT (room_id, user_id) DO NOTHING`

// Backfill records memberships of roomID that Synapse never pushed (members
// who joined before the bridge was interested in the room). Rows already
// present are left alone; the new ones have position 0, so any member event
// pushed later overwrites them.
func (q *RoomMemberQuery) Backfill(ctx context.Context, roomID id.RoomID, rows []BackfilledMember) error {
	if len(rows) == 0 {
		return nil
	}
	return q.db.DoTxn(ctx, nil, func(ctx context.Context) error {
		for _, m := range rows {
			if _, err := q.db.Exec(ctx, backfillMemberQuery, roomID, m.UserID, m.Membership, m.Displayname, m.EventID); err != nil {
				return err
			}
		}
		return nil
	})
}

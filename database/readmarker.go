package database

import (
	"context"

	"go.mau.fi/util/dbutil"
	"maunium.net/go/mautrix/id"
)

// ReadMarkerQuery reads and writes the read_marker table.
type ReadMarkerQuery struct {
	db *dbutil.Database
}

const (
	// A marker only moves forward.
	setReadMarkerQuery = `
		INSERT INTO read_marker (user_id, room_id, stream_pos) VALUES ($1, $2, $3)
		ON CONFLICT (user_id, room_id) DO UPDATE SET stream_pos = excluded.stream_pos
		WHERE excluded.stream_pos > read_marker.stream_pos`
	// Counting stops at a cap, so a long-unread room costs little.
	unreadQuery = `
		SELECT COUNT(*) FROM (
			SELECT 1 FROM event_log
			WHERE room_id = $2 AND event_type = 'm.room.message' AND sender <> $1
				AND stream_pos > COALESCE((SELECT stream_pos FROM read_marker WHERE user_id = $1 AND room_id = $2), 0)
			LIMIT $3
		) unread`
	// SQLite walks the room's chain from its newest event down to the
	// marker (00-latest.sql); the walk stops once limit messages counted.
	unreadQuerySQLite = `
		WITH RECURSIVE marker(pos) AS (
			SELECT COALESCE((SELECT stream_pos FROM read_marker WHERE user_id = $1 AND room_id = $2), 0)
		), chain(pos, prev, counts) AS (
			SELECT e.stream_pos, e.prev_in_room, e.event_type = 'm.room.message' AND e.sender <> $1
			FROM room_head h JOIN event_log e ON e.stream_pos = h.stream_pos JOIN marker m
			WHERE h.room_id = $2 AND e.stream_pos > m.pos
			UNION ALL
			SELECT e.stream_pos, e.prev_in_room, e.event_type = 'm.room.message' AND e.sender <> $1
			FROM chain JOIN event_log e ON e.stream_pos = chain.prev JOIN marker m
			WHERE chain.prev < chain.pos AND chain.prev > m.pos
		)
		SELECT COUNT(*) FROM (SELECT 1 FROM chain WHERE counts LIMIT $3) unread`
)

// Set moves userID's marker in roomID forward to pos.
func (q *ReadMarkerQuery) Set(ctx context.Context, userID id.UserID, roomID id.RoomID, pos int64) error {
	_, err := q.db.Exec(ctx, setReadMarkerQuery, userID, roomID, pos)
	return err
}

// Unread counts messages from others after userID's marker, up to limit.
func (q *ReadMarkerQuery) Unread(ctx context.Context, userID id.UserID, roomID id.RoomID, limit int) (n int, err error) {
	query := unreadQuery
	if q.db.Dialect == dbutil.SQLite {
		query = unreadQuerySQLite
	}
	err = q.db.QueryRow(ctx, query, userID, roomID, limit).Scan(&n)
	return
}

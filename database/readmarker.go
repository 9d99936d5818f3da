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
)

// Set moves userID's marker in roomID forward to pos.
func (q *ReadMarkerQuery) Set(ctx context.Context, userID id.UserID, roomID id.RoomID, pos int64) error {
	_, err := q.db.Exec(ctx, setReadMarkerQuery, userID, roomID, pos)
	return err
}

// Unread counts messages from others after userID's marker, up to limit.
func (q *ReadMarkerQuery) Unread(ctx context.Context, userID id.UserID, roomID id.RoomID, limit int) (n int, err error) {
	err = q.db.QueryRow(ctx, unreadQuery, userID, roomID, limit).Scan(&n)
	return
}

package database

import (
	"context"
	"strings"

	"go.mau.fi/util/dbutil"

	"maunium.net/go/mautrix/id"
)

// The event as JSON holds the URI as a quoted string; the quotes keep
// mxc://s/abc from matching mxc://s/abcd. LIKE's wildcards in it are
// escaped (media IDs may hold "_").
const (
	mediaReferenceQuery = `SELECT 1 FROM event_log WHERE room_id = $1 AND event LIKE $2 ESCAPE '\' LIMIT 1`
	// SQLite walks the room's chain from its newest event (00-latest.sql),
	// one row per step, and stops at the first match.
	mediaReferenceQuerySQLite = `
		WITH RECURSIVE chain(pos, prev, hit) AS (
			SELECT e.stream_pos, e.prev_in_room, e.event LIKE $2 ESCAPE '\'
			FROM room_head h JOIN event_log e ON e.stream_pos = h.stream_pos WHERE h.room_id = $1
			UNION ALL
			SELECT e.stream_pos, e.prev_in_room, e.event LIKE $2 ESCAPE '\'
			FROM chain JOIN event_log e ON e.stream_pos = chain.prev WHERE chain.prev < chain.pos
		)
		SELECT 1 FROM chain WHERE hit LIMIT 1`
)

// ReferencesMedia reports whether an event of the room, among those still
// in the log, names the mxc URI (a message's file or thumbnail, an
// avatar).
func (q *EventLogQuery) ReferencesMedia(ctx context.Context, roomID id.RoomID, mxc string) (bool, error) {
	escaped := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(mxc)
	var one int
	query := mediaReferenceQuery
	if q.db.Dialect == dbutil.SQLite {
		query = mediaReferenceQuerySQLite
	}
	err := q.db.QueryRow(ctx, query, roomID, `%"`+escaped+`"%`).Scan(&one)
	if _, err = nilIfNoRows(&one, err); err != nil {
		return false, err
	}
	return one == 1, nil
}

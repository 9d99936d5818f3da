package database

import (
	"context"
	"strings"

	"maunium.net/go/mautrix/id"
)

// The event as JSON holds the URI as a quoted string; the quotes keep
// mxc://s/abc from matching mxc://s/abcd. LIKE's wildcards in it are
// escaped (media IDs may hold "_").
const mediaReferenceQuery = `SELECT 1 FROM event_log WHERE room_id = $1 AND event LIKE $2 ESCAPE '\' LIMIT 1`

// ReferencesMedia reports whether an event of the room, among those still
// in the log, names the mxc URI (a message's file or thumbnail, an
// avatar).
func (q *EventLogQuery) ReferencesMedia(ctx context.Context, roomID id.RoomID, mxc string) (bool, error) {
	escaped := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(mxc)
	var one int
	err := q.db.QueryRow(ctx, mediaReferenceQuery, roomID, `%"`+escaped+`"%`).Scan(&one)
	if _, err = nilIfNoRows(&one, err); err != nil {
		return false, err
	}
	return one == 1, nil
}

package database

import (
	"context"

	"go.mau.fi/util/dbutil"
	"maunium.net/go/mautrix/id"
)

const listManagementRoomsQuery = `SELECT room_id FROM management_room`

// ManagementRooms returns every management room, for the bot to keep in
// memory.
func (q *BotQuery) ManagementRooms(ctx context.Context) ([]id.RoomID, error) {
	rows, err := q.db.Query(ctx, listManagementRoomsQuery)
	return dbutil.NewRowIterWithError(rows, func(row dbutil.Scannable) (roomID id.RoomID, err error) {
		err = row.Scan(&roomID)
		return
	}, err).AsList()
}

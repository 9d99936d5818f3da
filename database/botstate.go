package database

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"go.mau.fi/util/dbutil"
	"maunium.net/go/mautrix/id"
)

// BotQuery reads and writes the bot's tables.
type BotQuery struct {
	db *dbutil.Database
}

const (
	getBotStateQuery = `SELECT value FROM bot_state WHERE key = $1`
	setBotStateQuery = `
		INSERT INTO bot_state (key, value) VALUES ($1, $2)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value`
	addManagementRoomQuery = `
		INSERT INTO management_room (room_id, user_id, created_at) VALUES ($1, $2, $3)
		ON CONFLICT (room_id) DO NOTHING`
	isManagementRoomQuery     = `SELECT EXISTS (SELECT 1 FROM management_room WHERE room_id = $1)`
	removeManagementRoomQuery = `DELETE FROM management_room WHERE room_id = $1`
)

// State returns the value stored under key; ok is false when there is none.
func (q *BotQuery) State(ctx context.Context, key string) (value string, ok bool, err error) {
	err = q.db.QueryRow(ctx, getBotStateQuery, key).Scan(&value)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	return value, err == nil, err
}

// SetState stores value under key.
func (q *BotQuery) SetState(ctx context.Context, key, value string) error {
	_, err := q.db.Exec(ctx, setBotStateQuery, key, value)
	return err
}

// AddManagementRoom records a room where userID talks to the bot.
func (q *BotQuery) AddManagementRoom(ctx context.Context, roomID id.RoomID, userID id.UserID) error {
	_, err := q.db.Exec(ctx, addManagementRoomQuery, roomID, userID, time.Now().UnixMilli())
	return err
}

// IsManagementRoom reports whether roomID is a management room.
func (q *BotQuery) IsManagementRoom(ctx context.Context, roomID id.RoomID) (ok bool, err error) {
	err = q.db.QueryRow(ctx, isManagementRoomQuery, roomID).Scan(&ok)
	return
}

// RemoveManagementRoom forgets a room the bot left.
func (q *BotQuery) RemoveManagementRoom(ctx context.Context, roomID id.RoomID) error {
	_, err := q.db.Exec(ctx, removeManagementRoomQuery, roomID)
	return err
}

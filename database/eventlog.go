package database

import (
	"cmp"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.mau.fi/util/dbutil"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// LoggedEvent is one row of the event log: a timeline event as Synapse
// pushed it, with its stream position.
type LoggedEvent struct {
	Position int64
	EventID  id.EventID
	RoomID   id.RoomID
	Type     string
	Sender   id.UserID
	StateKey *string
	OriginTS int64
	// Raw is the event exactly as Synapse sent it.
	Raw []byte
	// Membership is content.membership of m.room.member events, else empty.
	// It is set on events being written, not on events read back, as is
	// MemberDisplayname (content.displayname).
	Membership        event.Membership
	MemberDisplayname string
}

// GetMassInsertValues implements dbutil.MassInsertable.
func (e *LoggedEvent) GetMassInsertValues() [8]any {
	return [8]any{e.Position, e.EventID, e.RoomID, e.Type, e.Sender, e.StateKey, e.OriginTS, string(e.Raw)}
}

// EventLogQuery reads and writes the event_log table.
type EventLogQuery struct {
	db *dbutil.Database
	// onEcho is told which outbox entries an append settled (see OnEcho).
	onEcho echoHook
	// delivered is the outbox's OnDelivered hook, told of the same entries.
	delivered *deliveredHook
}

const (
	// A known txn id with the same digest is a retry and changes nothing;
	// with another digest it is a new txn that reuses the id.
	insertTxnQuery = `
		INSERT INTO appservice_txn (txn_id, received_at, event_count, digest) VALUES ($1, $2, $3, $4)
		ON CONFLICT (txn_id) DO UPDATE SET
			received_at = excluded.received_at, event_count = excluded.event_count, digest = excluded.digest
		WHERE appservice_txn.digest <> excluded.digest`
	// The row lock taken here is held until commit, so writers of the log
	// commit in the order of the positions they were given.
	reservePositionsQuery = `UPDATE stream_position SET position = position + $1 WHERE id = 1 RETURNING position`
	insertEventQuery      = `
		INSERT INTO event_log (txn_id, logged_at, stream_pos, event_id, room_id, event_type, sender, state_key, origin_ts, event)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
		ON CONFLICT (event_id) DO NOTHING
		RETURNING stream_pos`
	getEventsAfterQuery = `
		SELECT stream_pos, event_id, room_id, event_type, sender, state_key, origin_ts, event
		FROM event_log WHERE stream_pos > $1 ORDER BY stream_pos LIMIT $2`
	getEventQuery = `
		SELECT stream_pos, event_id, room_id, event_type, sender, state_key, origin_ts, event
		FROM event_log WHERE event_id = $1`
	getPositionQuery  = `SELECT stream_pos FROM event_log WHERE event_id = $1`
	newestInRoomQuery = `
		SELECT stream_pos, origin_ts FROM event_log WHERE room_id = $1 ORDER BY stream_pos DESC LIMIT 1`
	countEventsQuery = `SELECT COUNT(*) FROM event_log`
	maxPositionQuery = `SELECT position FROM stream_position WHERE id = 1`
	lastTxnQuery     = `SELECT txn_id, received_at FROM appservice_txn ORDER BY received_at DESC LIMIT 1`
)

var eventInsertBuilder = dbutil.NewMassInsertBuilder[*LoggedEvent, [2]any](insertEventQuery, "($1, $2, $%d, $%d, $%d, $%d, $%d, $%d, $%d, $%d)")

// ErrDuplicateTxn is returned by AppendTransaction when the same txn was
// applied before; nothing is written.
var ErrDuplicateTxn = errors.New("transaction already applied")

// TxnDigest identifies what a transaction holds: a hash of its event IDs
// and ephemeral events, in order.
func TxnDigest(events []*LoggedEvent, ephemeral [][]byte) string {
	h := sha256.New()
	for _, evt := range events {
		h.Write([]byte(evt.EventID))
		h.Write([]byte{0})
	}
	for _, raw := range ephemeral {
		h.Write([]byte{1})
		h.Write(raw)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// AppendTransaction writes the events of one appservice transaction to the
// log, together with the txn id and digest, in one database transaction.
// Events whose id is already logged are skipped. It returns the events
// actually written, with their positions set, in log order.
func (q *EventLogQuery) AppendTransaction(ctx context.Context, txnID, digest string, events []*LoggedEvent) (written []*LoggedEvent, err error) {
	now := time.Now().UnixMilli()
	var echoed, accepted []int64
	err = q.db.DoTxn(ctx, nil, func(ctx context.Context) error {
		res, err := q.db.Exec(ctx, insertTxnQuery, txnID, now, len(events), digest)
		if err != nil {
			return fmt.Errorf("failed to record txn id: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrDuplicateTxn
		}
		if written, err = q.append(ctx, txnID, now, events); err != nil || len(written) == 0 {
			return err
		}
		// The echo of a message the outbox sent settles its entry in the
		// same transaction that logs it.
		if echoed, accepted, err = settleEchoes(ctx, q.db, written); err != nil {
			return err
		}
		if q.db.Dialect == dbutil.Postgres {
			_, err = q.db.Exec(ctx, notifyQuery)
		}
		return err
	})
	if errors.Is(err, ErrDuplicateTxn) {
		return nil, ErrDuplicateTxn
	}
	if err == nil {
		q.echoed(echoed)
		reportDelivered(q.delivered, accepted...)
	}
	return written, err
}

// append logs events inside the caller's transaction.
func (q *EventLogQuery) append(ctx context.Context, txnID string, now int64, events []*LoggedEvent) ([]*LoggedEvent, error) {
	if len(events) == 0 {
		return nil, nil
	}
	var last int64
	if err := q.db.QueryRow(ctx, reservePositionsQuery, len(events)).Scan(&last); err != nil {
		return nil, fmt.Errorf("failed to reserve stream positions: %w", err)
	}
	byPos := make(map[int64]*LoggedEvent, len(events))
	first := last - int64(len(events)) + 1
	for i, evt := range events {
		evt.Position = first + int64(i)
		byPos[evt.Position] = evt
	}
	query, params := eventInsertBuilder.Build([2]any{txnID, now}, events)
	rows, err := q.db.Query(ctx, query, params...)
	if err != nil {
		return nil, fmt.Errorf("failed to insert events: %w", err)
	}
	written := make([]*LoggedEvent, 0, len(events))
	for rows.Next() {
		var pos int64
		if err = rows.Scan(&pos); err != nil {
			_ = rows.Close()
			return nil, fmt.Errorf("failed to read inserted positions: %w", err)
		}
		written = append(written, byPos[pos])
	}
	if err = rows.Close(); err != nil {
		return nil, fmt.Errorf("failed to insert events: %w", err)
	}
	if err = rows.Err(); err != nil {
		return nil, fmt.Errorf("failed to insert events: %w", err)
	}
	// RETURNING does not promise the order of the VALUES list.
	slices.SortFunc(written, func(a, b *LoggedEvent) int { return cmp.Compare(a.Position, b.Position) })
	if err = q.updateMembers(ctx, written); err != nil {
		return nil, err
	}
	return written, nil
}

func (q *EventLogQuery) updateMembers(ctx context.Context, written []*LoggedEvent) error {
	latest := make(map[memberKey]*LoggedEvent)
	var order []memberKey
	for _, evt := range written {
		if evt.Membership == "" || evt.StateKey == nil {
			continue
		}
		key := memberKey{evt.RoomID, id.UserID(*evt.StateKey)}
		if _, seen := latest[key]; !seen {
			order = append(order, key)
		}
		latest[key] = evt
	}
	if len(order) == 0 {
		return nil
	}
	rows := make([]*memberRow, len(order))
	for i, key := range order {
		evt := latest[key]
		rows[i] = &memberRow{RoomID: key.room, UserID: key.user, Membership: evt.Membership, Displayname: evt.MemberDisplayname, EventID: evt.EventID, Position: evt.Position}
	}
	query, params := memberUpsertBuilder.Build([0]any{}, rows)
	if _, err := q.db.Exec(ctx, query, params...); err != nil {
		return fmt.Errorf("failed to update room members: %w", err)
	}
	return nil
}

// After returns up to limit events logged after position, in order.
func (q *EventLogQuery) After(ctx context.Context, position int64, limit int) ([]*LoggedEvent, error) {
	rows, err := q.db.Query(ctx, getEventsAfterQuery, position, limit)
	return dbutil.NewRowIterWithError(rows, scanLoggedEvent, err).AsList()
}

// Get returns the logged event with the given id, or nil.
func (q *EventLogQuery) Get(ctx context.Context, eventID id.EventID) (*LoggedEvent, error) {
	evt, err := scanLoggedEvent(q.db.QueryRow(ctx, getEventQuery, eventID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	return evt, err
}

// Position returns the stream position of a logged event; ok is false when
// the log does not have it (not pushed yet, pruned, or never seen).
func (q *EventLogQuery) Position(ctx context.Context, eventID id.EventID) (pos int64, ok bool, err error) {
	err = q.db.QueryRow(ctx, getPositionQuery, eventID).Scan(&pos)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	return pos, err == nil, err
}

// NewestInRoom returns the position and origin timestamp of the newest
// logged event of roomID; ok is false when the log has none.
func (q *EventLogQuery) NewestInRoom(ctx context.Context, roomID id.RoomID) (pos, originTS int64, ok bool, err error) {
	err = q.db.QueryRow(ctx, newestInRoomQuery, roomID).Scan(&pos, &originTS)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, 0, false, nil
	}
	return pos, originTS, err == nil, err
}

// Count is the number of logged events.
func (q *EventLogQuery) Count(ctx context.Context) (n int64, err error) {
	err = q.db.QueryRow(ctx, countEventsQuery).Scan(&n)
	return
}

// MaxPosition is the highest position handed out.
func (q *EventLogQuery) MaxPosition(ctx context.Context) (pos int64, err error) {
	err = q.db.QueryRow(ctx, maxPositionQuery).Scan(&pos)
	return
}

// LastTxn returns the id and receive time of the newest applied appservice
// transaction; ok is false when there is none.
func (q *EventLogQuery) LastTxn(ctx context.Context) (txnID string, at time.Time, ok bool, err error) {
	var ms int64
	err = q.db.QueryRow(ctx, lastTxnQuery).Scan(&txnID, &ms)
	if errors.Is(err, sql.ErrNoRows) {
		return "", time.Time{}, false, nil
	} else if err != nil {
		return "", time.Time{}, false, err
	}
	return txnID, time.UnixMilli(ms), true, nil
}

func scanLoggedEvent(row dbutil.Scannable) (*LoggedEvent, error) {
	var evt LoggedEvent
	var stateKey sql.NullString
	var raw string
	err := row.Scan(&evt.Position, &evt.EventID, &evt.RoomID, &evt.Type, &evt.Sender, &stateKey, &evt.OriginTS, &raw)
	if err != nil {
		return nil, err
	}
	if stateKey.Valid {
		evt.StateKey = &stateKey.String
	}
	evt.Raw = []byte(raw)
	return &evt, nil
}

const oldestPositionQuery = `SELECT COALESCE(MIN(stream_pos), 0) FROM event_log`

// OldestPosition is the lowest position still in the log, or 0 when it is
// empty.
func (q *EventLogQuery) OldestPosition(ctx context.Context) (pos int64, err error) {
	err = q.db.QueryRow(ctx, oldestPositionQuery).Scan(&pos)
	return
}

const pruneEventsQuery = `
	DELETE FROM event_log WHERE stream_pos IN (
		SELECT stream_pos FROM event_log WHERE logged_at < $1 ORDER BY stream_pos LIMIT $2
	)`

// Prune deletes up to limit events logged before the given time, oldest
// first. Streams resuming from before them get a reset.
func (q *EventLogQuery) Prune(ctx context.Context, before time.Time, limit int) (int64, error) {
	res, err := q.db.Exec(ctx, pruneEventsQuery, before.UnixMilli(), limit)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

const pruneTxnsQuery = `DELETE FROM appservice_txn WHERE received_at < $1`

// PruneTxns forgets applied txn ids older than the given time; Synapse
// retries a txn within minutes, not days.
func (q *EventLogQuery) PruneTxns(ctx context.Context, before time.Time) error {
	_, err := q.db.Exec(ctx, pruneTxnsQuery, before.UnixMilli())
	return err
}

package database

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unsafe"

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
	getEventsAfterQuery   = `
		SELECT stream_pos, event_id, room_id, event_type, sender, state_key, origin_ts, event
		FROM event_log WHERE stream_pos > $1 ORDER BY stream_pos LIMIT $2`
	getEventQuery = `
		SELECT stream_pos, event_id, room_id, event_type, sender, state_key, origin_ts, event
		FROM event_log WHERE event_id = $1`
	getPositionQuery  = `SELECT stream_pos FROM event_log WHERE event_id = $1`
	newestInRoomQuery = `
		SELECT stream_pos, origin_ts FROM event_log WHERE room_id = $1 ORDER BY stream_pos DESC LIMIT 1`
	// SQLite keeps each room's newest event in room_head (00-latest.sql).
	newestInRoomQuerySQLite = `SELECT stream_pos, origin_ts FROM room_head WHERE room_id = $1`
	countEventsQuery        = `SELECT COUNT(*) FROM event_log`
	maxPositionQuery        = `SELECT position FROM stream_position WHERE id = 1`
	lastTxnQuery            = `SELECT txn_id, received_at FROM appservice_txn ORDER BY received_at DESC LIMIT 1`
)

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
	if err = ctx.Err(); err != nil {
		return nil, err
	}
	if q.db.Dialect == dbutil.SQLite {
		// A write once begun finishes or fails on its own: Synapse going
		// away meanwhile changes nothing (its retry is a duplicate). With
		// no cancellation to watch, go-sqlite3 runs each statement on the
		// calling goroutine instead of starting one per statement. SQLite
		// waits for a lock at most busy_timeout; on PostgreSQL the context
		// stays, as a connection that hangs must not hold the request.
		ctx = context.WithoutCancel(ctx)
	}
	if q.db.Dialect == dbutil.Postgres && !mayHoldEcho(events) {
		// One statement in its own transaction: one round trip.
		written, err = q.appendPostgres(ctx, txnID, digest, now, events)
	} else {
		filter := false
		for {
			err = q.db.DoTxn(ctx, nil, func(ctx context.Context) error {
				if q.db.Dialect == dbutil.Postgres {
					written, err = q.appendPostgres(ctx, txnID, digest, now, events)
				} else {
					written, err = q.appendSQLite(ctx, txnID, digest, now, events, filter)
				}
				if err != nil || len(written) == 0 {
					return err
				}
				// The echo of a message the outbox sent settles its entry in
				// the same transaction that logs it.
				echoed, accepted, err = settleEchoes(ctx, q.db, written)
				return err
			})
			if !errors.Is(err, errLoggedBefore) || filter {
				break
			}
			// Rare: Synapse sent again an event it had sent before. Done
			// again, leaving those out first, so that no room's chain
			// points at a position whose row was skipped.
			filter = true
		}
	}
	if errors.Is(err, ErrDuplicateTxn) {
		return nil, ErrDuplicateTxn
	}
	if err == nil {
		q.echoed(echoed)
		reportDelivered(q.delivered, accepted...)
	}
	return written, err
}

// appendSQLite logs a transaction inside the caller's database
// transaction, statement by statement: on SQLite a statement is a call
// into the library, not a round trip, and the connection keeps each
// statement prepared (see sqliteDSN).
func (q *EventLogQuery) appendSQLite(ctx context.Context, txnID, digest string, now int64, events []*LoggedEvent, filter bool) ([]*LoggedEvent, error) {
	res, err := q.db.Exec(ctx, insertTxnQuery, txnID, now, len(events), digest)
	if err != nil {
		return nil, fmt.Errorf("failed to record txn id: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil, ErrDuplicateTxn
	}
	if filter {
		if events, err = q.notLogged(ctx, events); err != nil {
			return nil, err
		}
	}
	if len(events) == 0 {
		return nil, nil
	}
	var last int64
	if err = q.db.QueryRow(ctx, reservePositionsQuery, len(events)).Scan(&last); err != nil {
		return nil, fmt.Errorf("failed to reserve stream positions: %w", err)
	}
	first := last - int64(len(events)) + 1
	for i, evt := range events {
		evt.Position = first + int64(i)
	}
	inserted, err := q.insertEvents(ctx, txnID, now, events)
	if err != nil {
		return nil, err
	}
	if inserted < int64(len(events)) {
		if filter {
			// The write lock is held since notLogged: nobody else wrote.
			return nil, fmt.Errorf("failed to insert events: %d of %d skipped after filtering", int64(len(events))-inserted, len(events))
		}
		return nil, errLoggedBefore
	}
	if err = q.updateMembers(ctx, events); err != nil {
		return nil, err
	}
	if err = q.writeMediaChanges(ctx, events); err != nil {
		return nil, err
	}
	return events, nil
}

// errLoggedBefore: an event of the transaction was logged before, so its
// row was skipped; AppendTransaction rolls back and does it again with
// filter set.
var errLoggedBefore = errors.New("an event of the transaction is already logged")

const loggedAmongQuery = `SELECT event_id FROM event_log WHERE event_id IN (SELECT value FROM json_each($1))`

// notLogged returns those of events whose id is not in the log yet, each
// once.
func (q *EventLogQuery) notLogged(ctx context.Context, events []*LoggedEvent) ([]*LoggedEvent, error) {
	ids := make([]id.EventID, len(events))
	for i, evt := range events {
		ids[i] = evt.EventID
	}
	list, err := json.Marshal(ids)
	if err != nil {
		return nil, err
	}
	rows, err := q.db.Query(ctx, loggedAmongQuery, string(list))
	logged, err := dbutil.NewRowIterWithError(rows, dbutil.ScanSingleColumn[id.EventID], err).AsList()
	if err != nil {
		return nil, fmt.Errorf("failed to look for logged events: %w", err)
	}
	skip := make(map[id.EventID]struct{}, len(events))
	for _, evtID := range logged {
		skip[evtID] = struct{}{}
	}
	// A repeat within events goes too (the first one stays), and what
	// goes keeps no position from the attempt rolled back.
	return slices.DeleteFunc(slices.Clone(events), func(evt *LoggedEvent) bool {
		if _, ok := skip[evt.EventID]; ok {
			evt.Position = 0
			return true
		}
		skip[evt.EventID] = struct{}{}
		return false
	}), nil
}

// insertChunks are the row counts of the multi-row inserts: a transaction
// is written in chunks of these sizes, largest first, so that a connection
// needs at most len(insertChunks) statement texts prepared, whatever the
// size of the transactions.
var insertChunks = [...]int{64, 32, 16, 8, 4, 2, 1}

// insertChunkQueries[i] inserts insertChunks[i] rows; $1 and $2 are the txn
// id and the time, then 9 parameters per row, the last the position of the
// room's previous event in this transaction (NULL for its first: the
// event_log_chain trigger takes it from room_head). SQLite only.
var insertChunkQueries = func() (queries [len(insertChunks)]string) {
	for i, n := range insertChunks {
		var b strings.Builder
		b.WriteString(`INSERT INTO event_log (txn_id, logged_at, stream_pos, event_id, room_id, event_type, sender, state_key, origin_ts, event, prev_in_room) VALUES `)
		for row := range n {
			if row > 0 {
				b.WriteString(", ")
			}
			p := 3 + row*9
			fmt.Fprintf(&b, "($1, $2, $%d, $%d, $%d, $%d, $%d, $%d, $%d, $%d, $%d)", p, p+1, p+2, p+3, p+4, p+5, p+6, p+7, p+8)
		}
		b.WriteString(` ON CONFLICT (event_id) DO NOTHING`)
		queries[i] = b.String()
	}
	return
}()

// insertEvents inserts events (positions set) and returns how many rows
// were written; events whose id is already logged are skipped.
func (q *EventLogQuery) insertEvents(ctx context.Context, txnID string, now int64, events []*LoggedEvent) (int64, error) {
	params := make([]any, 2, 2+9*min(len(events), insertChunks[0]))
	params[0], params[1] = txnID, now
	// The newest position of each room in this transaction so far.
	heads := make(map[id.RoomID]int64)
	var inserted int64
	for i := 0; len(events) > 0; {
		if insertChunks[i] > len(events) {
			i++
			continue
		}
		chunk := events[:insertChunks[i]]
		events = events[insertChunks[i]:]
		params = params[:2]
		for _, evt := range chunk {
			// Raw as a string without a copy: SQLite copies bound text
			// before the call returns, and Raw is not changed after
			// parsing.
			var stateKey any
			if evt.StateKey != nil {
				stateKey = *evt.StateKey
			}
			var prev any
			if pos, ok := heads[evt.RoomID]; ok {
				prev = pos
			}
			heads[evt.RoomID] = evt.Position
			params = append(params, evt.Position, string(evt.EventID), string(evt.RoomID), evt.Type,
				string(evt.Sender), stateKey, evt.OriginTS, unsafe.String(unsafe.SliceData(evt.Raw), len(evt.Raw)), prev)
		}
		res, err := q.db.Exec(ctx, insertChunkQueries[i], params...)
		if err != nil {
			return 0, fmt.Errorf("failed to insert events: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return 0, fmt.Errorf("failed to insert events: %w", err)
		}
		inserted += n
	}
	return inserted, nil
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
	query := newestInRoomQuery
	if q.db.Dialect == dbutil.SQLite {
		query = newestInRoomQuerySQLite
	}
	err = q.db.QueryRow(ctx, query, roomID).Scan(&pos, &originTS)
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

// Only a prefix of the log goes: of the oldest limit events, those before
// the first one logged at or after the time. logged_at need not grow with
// the position (the clock can step back, and a transaction takes its time
// before it waits for the write lock); a hole in the middle would lose
// events for a stream resuming before it, and on SQLite cut room chains.
const pruneEventsQuery = `
	WITH oldest AS (
		SELECT stream_pos, logged_at FROM event_log ORDER BY stream_pos LIMIT $2
	), kept AS (
		SELECT MIN(stream_pos) AS stream_pos FROM oldest WHERE logged_at >= $1
	)
	DELETE FROM event_log WHERE stream_pos IN (
		SELECT stream_pos FROM oldest
		WHERE stream_pos < COALESCE((SELECT stream_pos FROM kept), 9223372036854775807)
	)`

// Prune deletes up to limit events logged before the given time, oldest
// first, stopping at the first newer one. Streams resuming from before
// them get a reset.
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

package database

import (
	"cmp"
	"context"
	"database/sql"
	"slices"
	"time"

	"go.mau.fi/util/dbutil"
	"maunium.net/go/mautrix/id"
)

// Outbox states.
const (
	OutboxPending = "pending"
	OutboxSent    = "sent"
	OutboxFailed  = "failed"
)

// OutboxEntry is a message accepted from the client API.
type OutboxEntry struct {
	ID            int64
	UserID        id.UserID
	RoomID        id.RoomID
	TxnID         string
	EventType     string
	Content       string
	State         string
	EventID       id.EventID
	Attempts      int
	NextAttemptAt int64
	LastError     string
	CreatedAt     int64
}

// OutboxQuery reads and writes the outbox table.
type OutboxQuery struct {
	db *dbutil.Database
}

const (
	outboxColumns     = `id, user_id, room_id, txn_id, event_type, content, state, event_id, attempts, next_attempt_at, last_error, created_at`
	insertOutboxQuery = `
		INSERT INTO outbox (user_id, room_id, txn_id, event_type, content, state, next_attempt_at, created_at)
		VALUES ($1, $2, $3, $4, $5, 'pending', $6, $6)
		ON CONFLICT (user_id, txn_id) DO NOTHING`
	getOutboxByTxnQuery = `SELECT ` + outboxColumns + ` FROM outbox WHERE user_id = $1 AND txn_id = $2`
	getOutboxByIDQuery  = `SELECT ` + outboxColumns + ` FROM outbox WHERE id = $1`
	// Claiming sets claimed_until, so another worker (another replica)
	// skips the row while it is being sent; SKIP LOCKED keeps two claims
	// from blocking each other on PostgreSQL.
	claimOutboxPostgres = `
		UPDATE outbox SET claimed_until = $2 WHERE id IN (
			SELECT id FROM outbox WHERE state = 'pending' AND next_attempt_at <= $1 AND claimed_until <= $1
			ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED
		) RETURNING ` + outboxColumns
	claimOutboxSQLite = `
		UPDATE outbox SET claimed_until = $2 WHERE id IN (
			SELECT id FROM outbox WHERE state = 'pending' AND next_attempt_at <= $1 AND claimed_until <= $1
			ORDER BY id LIMIT $3
		) RETURNING ` + outboxColumns
	markOutboxSentQuery   = `UPDATE outbox SET state = 'sent', event_id = $2, last_error = '', claimed_until = 0 WHERE id = $1`
	markOutboxRetryQuery  = `UPDATE outbox SET attempts = attempts + 1, next_attempt_at = $2, last_error = $3, claimed_until = 0 WHERE id = $1`
	markOutboxFailedQuery = `UPDATE outbox SET state = 'failed', attempts = attempts + 1, last_error = $2, claimed_until = 0 WHERE id = $1`
	retryOutboxQuery      = `UPDATE outbox SET state = 'pending', next_attempt_at = $2, claimed_until = 0 WHERE id = $1 AND state <> 'sent'`
	releaseOutboxQuery    = `UPDATE outbox SET claimed_until = 0 WHERE id = $1 AND state = 'pending'`
	dueNowQuery           = `UPDATE outbox SET next_attempt_at = $1 WHERE state = 'pending' AND next_attempt_at > $1`
	dropOutboxQuery       = `DELETE FROM outbox WHERE id = $1 AND state <> 'sent'`
	waitingOutboxQuery    = `SELECT ` + outboxColumns + ` FROM outbox WHERE state <> 'sent' ORDER BY id LIMIT $1`
	countWaitingQuery     = `SELECT COUNT(*) FROM outbox WHERE state = 'pending'`
)

// Add stores a message unless (user, txn id) is already there; it returns
// the stored entry either way and whether it was new.
func (q *OutboxQuery) Add(ctx context.Context, e *OutboxEntry) (*OutboxEntry, bool, error) {
	res, err := q.db.Exec(ctx, insertOutboxQuery, e.UserID, e.RoomID, e.TxnID, e.EventType, e.Content, time.Now().UnixMilli())
	added, err := affected(res, err)
	if err != nil {
		return nil, false, err
	}
	stored, err := q.ByTxn(ctx, e.UserID, e.TxnID)
	return stored, added, err
}

// ByTxn returns the entry of a user's txn id, or nil.
func (q *OutboxQuery) ByTxn(ctx context.Context, userID id.UserID, txnID string) (*OutboxEntry, error) {
	return nilIfNoRows(scanOutbox(q.db.QueryRow(ctx, getOutboxByTxnQuery, userID, txnID)))
}

// ByID returns an entry, or nil.
func (q *OutboxQuery) ByID(ctx context.Context, entryID int64) (*OutboxEntry, error) {
	return nilIfNoRows(scanOutbox(q.db.QueryRow(ctx, getOutboxByIDQuery, entryID)))
}

// Claim takes up to limit due entries for sending, oldest first, for the
// given time.
func (q *OutboxQuery) Claim(ctx context.Context, limit int, claimFor time.Duration) ([]*OutboxEntry, error) {
	query := claimOutboxSQLite
	if q.db.Dialect == dbutil.Postgres {
		query = claimOutboxPostgres
	}
	now := time.Now()
	rows, err := q.db.Query(ctx, query, now.UnixMilli(), now.Add(claimFor).UnixMilli(), limit)
	entries, err := dbutil.NewRowIterWithError(rows, scanOutbox, err).AsList()
	// RETURNING does not promise an order; sends go oldest first.
	slices.SortFunc(entries, func(a, b *OutboxEntry) int { return cmp.Compare(a.ID, b.ID) })
	return entries, err
}

// MarkSent records delivery.
func (q *OutboxQuery) MarkSent(ctx context.Context, entryID int64, eventID id.EventID) error {
	_, err := q.db.Exec(ctx, markOutboxSentQuery, entryID, eventID)
	return err
}

// MarkRetry records a failed attempt and when to try again.
func (q *OutboxQuery) MarkRetry(ctx context.Context, entryID int64, next time.Time, msg string) error {
	_, err := q.db.Exec(ctx, markOutboxRetryQuery, entryID, next.UnixMilli(), msg)
	return err
}

// MarkFailed gives up on an entry the homeserver refused for good.
func (q *OutboxQuery) MarkFailed(ctx context.Context, entryID int64, msg string) error {
	_, err := q.db.Exec(ctx, markOutboxFailedQuery, entryID, msg)
	return err
}

// Retry makes a failed or waiting entry due now; false if there is none.
func (q *OutboxQuery) Retry(ctx context.Context, entryID int64) (bool, error) {
	return affected(q.db.Exec(ctx, retryOutboxQuery, entryID, time.Now().UnixMilli()))
}

// Release gives up this process's claim on an entry it did not get to send.
func (q *OutboxQuery) Release(ctx context.Context, entryID int64) error {
	_, err := q.db.Exec(ctx, releaseOutboxQuery, entryID)
	return err
}

// DueNow makes every waiting entry due at once (the homeserver is back).
func (q *OutboxQuery) DueNow(ctx context.Context) error {
	_, err := q.db.Exec(ctx, dueNowQuery, time.Now().UnixMilli())
	return err
}

// Drop deletes an undelivered entry; false if there is none.
func (q *OutboxQuery) Drop(ctx context.Context, entryID int64) (bool, error) {
	return affected(q.db.Exec(ctx, dropOutboxQuery, entryID))
}

// Waiting lists undelivered entries, oldest first.
func (q *OutboxQuery) Waiting(ctx context.Context, limit int) ([]*OutboxEntry, error) {
	rows, err := q.db.Query(ctx, waitingOutboxQuery, limit)
	return dbutil.NewRowIterWithError(rows, scanOutbox, err).AsList()
}

// Depth is the number of entries waiting to be delivered.
func (q *OutboxQuery) Depth(ctx context.Context) (n int64, err error) {
	err = q.db.QueryRow(ctx, countWaitingQuery).Scan(&n)
	return
}

func scanOutbox(row dbutil.Scannable) (*OutboxEntry, error) {
	var e OutboxEntry
	var eventID sql.NullString
	err := row.Scan(&e.ID, &e.UserID, &e.RoomID, &e.TxnID, &e.EventType, &e.Content, &e.State, &eventID,
		&e.Attempts, &e.NextAttemptAt, &e.LastError, &e.CreatedAt)
	if err != nil {
		return nil, err
	}
	e.EventID = id.EventID(eventID.String)
	return &e, nil
}

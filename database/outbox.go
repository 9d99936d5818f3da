package database

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/tidwall/gjson"
	"go.mau.fi/util/dbutil"
	"maunium.net/go/mautrix/id"
)

// Outbox states.
const (
	OutboxPending = "pending"
	OutboxSent    = "sent"
	OutboxFailed  = "failed"
)

// OutboxTxnIDKey is the content key in which every message the outbox
// sends carries the client's txn id (the client API's sse.TxnIDKey). When
// the event log appends an event with it, the matching entry is settled.
const OutboxTxnIDKey = "net.openmeet.txn_id"

// ErrClaimLost is returned by the outbox's fenced writes when the caller's
// claim is no longer the entry's: it expired and another worker claimed the
// entry, the entry was settled by its echo, or an admin dropped it. Nothing
// is written.
var ErrClaimLost = errors.New("outbox claim lost")

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
	// ClaimToken is the token of the claim that returned the entry; the
	// fenced writes need it.
	ClaimToken int64
	// MaybeSent says that a send was begun before: the homeserver may have
	// the message even though no answer came back.
	MaybeSent bool
	// HSTxnID is the txn id the entry is sent to the homeserver with,
	// chosen at random by Add. Entries made before it was random have
	// "om" and their row id.
	HSTxnID string
	// RequestDigest identifies what the client asked for (see the client
	// API); empty for entries made before it was recorded.
	RequestDigest string
}

// OutboxQuery reads and writes the outbox table.
type OutboxQuery struct {
	db        *dbutil.Database
	delivered *deliveredHook
}

// deliveredHook is where OnDelivered keeps its function; the outbox and the
// event log (which settles entries by their echo) share it.
type deliveredHook = atomic.Pointer[func(waited time.Duration)]

// OnDelivered registers fn to be told, after the commit, how long each
// entry waited from being accepted until it was recorded as sent, by the
// send's answer or by its echo, whichever came first (each entry once).
func (q *OutboxQuery) OnDelivered(fn func(waited time.Duration)) {
	q.delivered.Store(&fn)
}

func reportDelivered(hook *deliveredHook, acceptedMillis ...int64) {
	fn := hook.Load()
	if fn == nil {
		return
	}
	now := time.Now()
	for _, ms := range acceptedMillis {
		(*fn)(max(now.Sub(time.UnixMilli(ms)), 0))
	}
}

const (
	outboxColumns     = `id, user_id, room_id, txn_id, event_type, content, state, event_id, attempts, next_attempt_at, last_error, created_at, claim_token, maybe_sent, hs_txn_id, request_digest`
	insertOutboxQuery = `
		INSERT INTO outbox (user_id, room_id, txn_id, event_type, content, state, next_attempt_at, created_at, hs_txn_id, request_digest)
		VALUES ($1, $2, $3, $4, $5, 'pending', $6, $6, $7, $8)
		ON CONFLICT (user_id, txn_id) DO NOTHING`
	getOutboxByTxnQuery = `SELECT ` + outboxColumns + ` FROM outbox WHERE user_id = $1 AND txn_id = $2`
	getOutboxByIDQuery  = `SELECT ` + outboxColumns + ` FROM outbox WHERE id = $1`
	// Each (user, room) is one queue and only its head -- the oldest
	// pending entry -- may be claimed, and only while no other entry of the
	// queue is claimed: a message is sent only once every earlier one of
	// the same user in the same room has settled, whatever the backoff and
	// however many workers (replicas) claim. Other queues are not held up.
	// Every claim gives the entry a new token. SKIP LOCKED keeps two
	// claims from blocking each other on PostgreSQL; a row another claim
	// committed meanwhile is re-checked and skipped, as its claimed_until
	// is then in the future.
	claimOutboxWhere = `
		SELECT id FROM outbox o WHERE state = 'pending' AND next_attempt_at <= $1 AND claimed_until <= $1
		AND NOT EXISTS (
			SELECT 1 FROM outbox p
			WHERE p.user_id = o.user_id AND p.room_id = o.room_id AND p.state = 'pending'
			AND (p.id < o.id OR p.claimed_until > $1)
		)
		ORDER BY id LIMIT $3`
	claimOutboxQuery = `
		UPDATE outbox SET claimed_until = $2, claim_token = claim_token + 1
		WHERE id IN (` + claimOutboxWhere + ` %s) RETURNING ` + outboxColumns
	// The fence of every write a claim holder makes: its token is still
	// the entry's, it has not ended its claim itself, and the entry is
	// still waiting.
	outboxFence = `id = $1 AND claim_token = $2 AND claimed_until <> 0 AND state = 'pending'`
	// A send is about to begin: note that the homeserver may get it, and
	// make the claim cover the whole delivery from now.
	beginOutboxAttemptQuery = `UPDATE outbox SET maybe_sent = true, claimed_until = $3 WHERE ` + outboxFence
	markOutboxSentQuery     = `UPDATE outbox SET state = 'sent', event_id = $3, last_error = '', claimed_until = 0 WHERE ` + outboxFence
	markOutboxRetryQuery    = `UPDATE outbox SET attempts = attempts + 1, next_attempt_at = $3, last_error = $4, claimed_until = 0 WHERE ` + outboxFence
	markOutboxFailedQuery   = `UPDATE outbox SET state = 'failed', attempts = attempts + 1, last_error = $3, claimed_until = 0 WHERE ` + outboxFence
	releaseOutboxQuery      = `UPDATE outbox SET claimed_until = 0 WHERE ` + outboxFence
	// An admin's retry leaves a live claim alone: its holder is still
	// sending, and a second claim would send a second copy.
	retryOutboxQuery   = `UPDATE outbox SET state = 'pending', next_attempt_at = $2 WHERE id = $1 AND state <> 'sent'`
	dueNowQuery        = `UPDATE outbox SET next_attempt_at = $1 WHERE state = 'pending' AND next_attempt_at > $1`
	dropOutboxQuery    = `DELETE FROM outbox WHERE id = $1 AND state <> 'sent'`
	waitingOutboxQuery = `SELECT ` + outboxColumns + ` FROM outbox WHERE state <> 'sent' ORDER BY id LIMIT $1`
	countWaitingQuery  = `SELECT COUNT(*) FROM outbox WHERE state = 'pending'`
	// Counts up to $2 rows, through outbox_user_pending_idx: the cost
	// stays small however many messages the user sent before.
	countPendingOfUserQuery = `SELECT COUNT(*) FROM (SELECT 1 FROM outbox WHERE user_id = $1 AND state = 'pending' LIMIT $2) AS p`
	backlogQuery            = `SELECT COUNT(*), COALESCE(MIN(created_at), 0) FROM outbox WHERE state = 'pending'`
	// The echo of a sent message: the homeserver has it, whatever became
	// of the send's answer. Ending the claim fences off the worker that
	// sent it. A failed entry whose echo arrives was sent after all.
	settleOutboxEchoQuery = `
		UPDATE outbox SET state = 'sent', event_id = $5, last_error = '', claimed_until = 0
		WHERE user_id = $1 AND txn_id = $2 AND room_id = $3 AND event_type = $4 AND state <> 'sent'
		RETURNING id, created_at`
)

var (
	claimOutboxPostgres = fmt.Sprintf(claimOutboxQuery, "FOR UPDATE SKIP LOCKED")
	claimOutboxSQLite   = fmt.Sprintf(claimOutboxQuery, "")
)

// Add stores a message unless (user, txn id) is already there; it returns
// the stored entry either way and whether it was new. A new entry gets a
// random homeserver txn id (e.HSTxnID is not read) and keeps
// e.RequestDigest.
func (q *OutboxQuery) Add(ctx context.Context, e *OutboxEntry) (*OutboxEntry, bool, error) {
	res, err := q.db.Exec(ctx, insertOutboxQuery, e.UserID, e.RoomID, e.TxnID, e.EventType, e.Content, time.Now().UnixMilli(),
		NewHSTxnID(), e.RequestDigest)
	added, err := affected(res, err)
	if err != nil {
		return nil, false, err
	}
	stored, err := q.ByTxn(ctx, e.UserID, e.TxnID)
	return stored, added, err
}

// NewHSTxnID is a homeserver txn id no entry had before: random (at least
// 128 bits), not derived from the row id, which SQLite hands out again
// after the newest entry is dropped and both engines hand out again after
// a backup is restored. Synapse answers a txn id it has seen (from the
// same appservice, in the same room) with the earlier event, so a reused
// one would make a new message vanish.
func NewHSTxnID() string {
	return "om" + rand.Text()
}

// ByTxn returns the entry of a user's txn id, or nil.
func (q *OutboxQuery) ByTxn(ctx context.Context, userID id.UserID, txnID string) (*OutboxEntry, error) {
	return nilIfNoRows(scanOutbox(q.db.QueryRow(ctx, getOutboxByTxnQuery, userID, txnID)))
}

// ByID returns an entry, or nil.
func (q *OutboxQuery) ByID(ctx context.Context, entryID int64) (*OutboxEntry, error) {
	return nilIfNoRows(scanOutbox(q.db.QueryRow(ctx, getOutboxByIDQuery, entryID)))
}

// Claim takes up to limit due entries for sending, for the given time,
// oldest first: the head of each (user, room) queue that is due and not
// held by another claim. Each returned entry carries its claim token.
func (q *OutboxQuery) Claim(ctx context.Context, limit int, claimFor time.Duration) ([]*OutboxEntry, error) {
	query := claimOutboxSQLite
	if q.db.Dialect == dbutil.Postgres {
		query = claimOutboxPostgres
	}
	now := time.Now()
	rows, err := q.db.Query(ctx, query, now.UnixMilli(), now.Add(claimFor).UnixMilli(), limit)
	entries, err := dbutil.NewRowIterWithError(rows, scanOutbox, err).AsList()
	// RETURNING does not promise an order.
	slices.SortFunc(entries, func(a, b *OutboxEntry) int { return cmp.Compare(a.ID, b.ID) })
	return entries, err
}

// BeginAttempt records that a send of a claimed entry is about to begin and
// extends the claim to cover it (claimFor from now). It returns
// ErrClaimLost, and the caller must not send, when the claim is no longer
// the caller's or the entry no longer waits.
func (q *OutboxQuery) BeginAttempt(ctx context.Context, e *OutboxEntry, claimFor time.Duration) error {
	return fenced(q.db.Exec(ctx, beginOutboxAttemptQuery, e.ID, e.ClaimToken, time.Now().Add(claimFor).UnixMilli()))
}

// MarkSent records delivery; ErrClaimLost when the claim is no longer the
// caller's.
func (q *OutboxQuery) MarkSent(ctx context.Context, e *OutboxEntry, eventID id.EventID) error {
	err := fenced(q.db.Exec(ctx, markOutboxSentQuery, e.ID, e.ClaimToken, eventID))
	if err == nil {
		reportDelivered(q.delivered, e.CreatedAt)
	}
	return err
}

// MarkRetry records a failed attempt and when to try again, ending the
// claim; ErrClaimLost when the claim is no longer the caller's.
func (q *OutboxQuery) MarkRetry(ctx context.Context, e *OutboxEntry, next time.Time, msg string) error {
	return fenced(q.db.Exec(ctx, markOutboxRetryQuery, e.ID, e.ClaimToken, next.UnixMilli(), msg))
}

// MarkFailed gives up on an entry the homeserver refused for good;
// ErrClaimLost when the claim is no longer the caller's.
func (q *OutboxQuery) MarkFailed(ctx context.Context, e *OutboxEntry, msg string) error {
	return fenced(q.db.Exec(ctx, markOutboxFailedQuery, e.ID, e.ClaimToken, msg))
}

// Release gives up the caller's claim on an entry it did not send, so
// that it need not wait for the claim to expire; ErrClaimLost when the
// claim is no longer the caller's.
func (q *OutboxQuery) Release(ctx context.Context, e *OutboxEntry) error {
	return fenced(q.db.Exec(ctx, releaseOutboxQuery, e.ID, e.ClaimToken))
}

func fenced(res sql.Result, err error) error {
	ok, err := affected(res, err)
	if err == nil && !ok {
		err = ErrClaimLost
	}
	return err
}

// Retry makes a failed or waiting entry due now; false if there is none.
func (q *OutboxQuery) Retry(ctx context.Context, entryID int64) (bool, error) {
	return affected(q.db.Exec(ctx, retryOutboxQuery, entryID, time.Now().UnixMilli()))
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

// PendingOf is the number of a user's entries waiting to be delivered,
// counted up to limit.
func (q *OutboxQuery) PendingOf(ctx context.Context, userID id.UserID, limit int) (n int, err error) {
	err = q.db.QueryRow(ctx, countPendingOfUserQuery, userID, limit).Scan(&n)
	return
}

// Backlog is the number of entries waiting to be delivered and when the
// oldest of them was accepted (zero when none waits).
func (q *OutboxQuery) Backlog(ctx context.Context) (n int64, oldest time.Time, err error) {
	var ms int64
	if err = q.db.QueryRow(ctx, backlogQuery).Scan(&n, &ms); err == nil && n > 0 {
		oldest = time.UnixMilli(ms)
	}
	return
}

// OnEcho registers fn to be called, after the commit, with the ids of the
// outbox entries that an appended transaction settled by their echo.
func (q *EventLogQuery) OnEcho(fn func(entryIDs []int64)) {
	q.onEcho.Store(&fn)
}

// echoHook is where EventLogQuery keeps the function OnEcho registered.
type echoHook = atomic.Pointer[func([]int64)]

func (q *EventLogQuery) echoed(entryIDs []int64) {
	if fn := q.onEcho.Load(); fn != nil && len(entryIDs) > 0 {
		(*fn)(entryIDs)
	}
}

var txnIDKeyBytes = []byte(OutboxTxnIDKey)

// settleEchoes marks sent, inside the caller's transaction, the outbox
// entries whose echo is among the events just logged: an event of the
// entry's user in the entry's room, of its type, carrying its txn id. Only
// the bridge can send as a ghost, so no one else can settle its entries.
// It returns the ids of the settled entries and when each was accepted.
func settleEchoes(ctx context.Context, db *dbutil.Database, written []*LoggedEvent) (settled, accepted []int64, err error) {
	for _, evt := range written {
		if !bytes.Contains(evt.Raw, txnIDKeyBytes) {
			continue
		}
		txnID := gjson.GetBytes(evt.Raw, "content.net\\.openmeet\\.txn_id")
		if txnID.Type != gjson.String || txnID.Str == "" {
			continue
		}
		rows, err := db.Query(ctx, settleOutboxEchoQuery, evt.Sender, txnID.Str, evt.RoomID, evt.Type, evt.EventID)
		pairs, err := dbutil.NewRowIterWithError(rows, scanSettled, err).AsList()
		if err != nil {
			return nil, nil, fmt.Errorf("failed to settle outbox entry by its echo: %w", err)
		}
		for _, p := range pairs {
			settled, accepted = append(settled, p[0]), append(accepted, p[1])
		}
	}
	return settled, accepted, nil
}

func scanSettled(row dbutil.Scannable) (p [2]int64, err error) {
	err = row.Scan(&p[0], &p[1])
	return
}

func scanOutbox(row dbutil.Scannable) (*OutboxEntry, error) {
	var e OutboxEntry
	var eventID sql.NullString
	err := row.Scan(&e.ID, &e.UserID, &e.RoomID, &e.TxnID, &e.EventType, &e.Content, &e.State, &eventID,
		&e.Attempts, &e.NextAttemptAt, &e.LastError, &e.CreatedAt, &e.ClaimToken, &e.MaybeSent, &e.HSTxnID, &e.RequestDigest)
	if err != nil {
		return nil, err
	}
	e.EventID = id.EventID(eventID.String)
	return &e, nil
}

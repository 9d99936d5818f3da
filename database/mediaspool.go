package database

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"go.mau.fi/util/dbutil"
	"maunium.net/go/mautrix/id"
)

// SpoolFile is a file waiting in the media spool.
type SpoolFile struct {
	ID        int64
	UserID    id.UserID
	TxnID     string
	MediaType string
	Filename  string
	Size      int64
	Complete  bool
	CreatedAt int64
}

// MediaSpoolQuery reads and writes media_spool and its chunks.
type MediaSpoolQuery struct {
	db *dbutil.Database
}

const (
	spoolColumns       = `id, user_id, txn_id, media_type, filename, size, complete, created_at`
	createSpoolQuery   = `INSERT INTO media_spool (user_id, txn_id, media_type, filename, size, created_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`
	addSpoolChunkQuery = `INSERT INTO media_spool_chunk (spool_id, seq, data) VALUES ($1, $2, $3)`
	completeSpoolQuery = `UPDATE media_spool SET complete = true WHERE id = $1`
	deleteSpoolQuery   = `DELETE FROM media_spool WHERE id = $1`
	getSpoolQuery      = `SELECT ` + spoolColumns + ` FROM media_spool WHERE id = $1`
	getSpoolChunkQuery = `SELECT data FROM media_spool_chunk WHERE spool_id = $1 AND seq = $2`
	// Files whose message no longer waits (sent, failed and dropped, or
	// never stored because the upload broke off) and that are older than
	// the cut-off.
	pruneSpoolQuery = `
		DELETE FROM media_spool WHERE created_at < $1 AND NOT EXISTS (
			SELECT 1 FROM outbox o WHERE o.user_id = media_spool.user_id AND o.txn_id = media_spool.txn_id AND o.state = 'pending'
		)`
	spoolBytesQuery = `SELECT COALESCE(SUM(size), 0) FROM media_spool`
	// The content of an entry whose spooled file was uploaded, fenced like
	// the outbox's other writes.
	setOutboxContentQuery = `UPDATE outbox SET content = $3 WHERE ` + outboxFence
)

// Create starts a spooled file; its chunks follow.
func (q *MediaSpoolQuery) Create(ctx context.Context, f *SpoolFile) (int64, error) {
	var spoolID int64
	err := q.db.QueryRow(ctx, createSpoolQuery, f.UserID, f.TxnID, f.MediaType, f.Filename, f.Size, time.Now().UnixMilli()).Scan(&spoolID)
	return spoolID, err
}

// AddChunk stores one chunk (seq counts from 0).
func (q *MediaSpoolQuery) AddChunk(ctx context.Context, spoolID int64, seq int, data []byte) error {
	_, err := q.db.Exec(ctx, addSpoolChunkQuery, spoolID, seq, data)
	return err
}

// Complete marks every chunk written.
func (q *MediaSpoolQuery) Complete(ctx context.Context, spoolID int64) error {
	_, err := q.db.Exec(ctx, completeSpoolQuery, spoolID)
	return err
}

// Delete removes a spooled file and its chunks.
func (q *MediaSpoolQuery) Delete(ctx context.Context, spoolID int64) error {
	_, err := q.db.Exec(ctx, deleteSpoolQuery, spoolID)
	return err
}

// Get returns a spooled file, or nil.
func (q *MediaSpoolQuery) Get(ctx context.Context, spoolID int64) (*SpoolFile, error) {
	var f SpoolFile
	err := q.db.QueryRow(ctx, getSpoolQuery, spoolID).Scan(&f.ID, &f.UserID, &f.TxnID, &f.MediaType, &f.Filename, &f.Size, &f.Complete, &f.CreatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	return &f, err
}

// Chunk returns one chunk, or nil after the last.
func (q *MediaSpoolQuery) Chunk(ctx context.Context, spoolID int64, seq int) ([]byte, error) {
	var data []byte
	err := q.db.QueryRow(ctx, getSpoolChunkQuery, spoolID, seq).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	return data, err
}

// Prune deletes files older than before whose message no longer waits.
func (q *MediaSpoolQuery) Prune(ctx context.Context, before time.Time) (int64, error) {
	res, err := q.db.Exec(ctx, pruneSpoolQuery, before.UnixMilli())
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// Bytes is the size of all spooled files together.
func (q *MediaSpoolQuery) Bytes(ctx context.Context) (n int64, err error) {
	err = q.db.QueryRow(ctx, spoolBytesQuery).Scan(&n)
	return
}

// SetContent replaces a claimed outbox entry's content; ErrClaimLost when
// the claim is no longer the caller's.
func (q *OutboxQuery) SetContent(ctx context.Context, e *OutboxEntry, content string) error {
	return fenced(q.db.Exec(ctx, setOutboxContentQuery, e.ID, e.ClaimToken, content))
}

package database

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"time"

	"go.mau.fi/util/dbutil"
)

// TicketQuery stores single-use stream tickets. Only hashes are kept, so a
// database dump holds no usable ticket.
type TicketQuery struct {
	db *dbutil.Database
}

const (
	insertTicketQuery = `INSERT INTO stream_ticket (ticket_hash, tenant, user_slug, expires_at) VALUES ($1, $2, $3, $4)`
	// Redeeming deletes the row, so a ticket works once even when two
	// replicas see it at the same moment.
	redeemTicketQuery = `DELETE FROM stream_ticket WHERE ticket_hash = $1 RETURNING tenant, user_slug, expires_at`
	pruneTicketsQuery = `DELETE FROM stream_ticket WHERE expires_at < $1`
)

func hashTicket(ticket string) string {
	sum := sha256.Sum256([]byte(ticket))
	return hex.EncodeToString(sum[:])
}

// Add stores a ticket for (tenant, slug) valid until expires.
func (q *TicketQuery) Add(ctx context.Context, ticket, tenant, slug string, expires time.Time) error {
	_, err := q.db.Exec(ctx, insertTicketQuery, hashTicket(ticket), tenant, slug, expires.UnixMilli())
	return err
}

// Redeem uses up a ticket and returns its user; ok is false when the ticket
// is unknown, used or expired.
func (q *TicketQuery) Redeem(ctx context.Context, ticket string) (tenant, slug string, ok bool, err error) {
	var expires int64
	err = q.db.QueryRow(ctx, redeemTicketQuery, hashTicket(ticket)).Scan(&tenant, &slug, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return "", "", false, nil
	} else if err != nil {
		return "", "", false, err
	}
	return tenant, slug, time.Now().UnixMilli() <= expires, nil
}

// Prune deletes expired tickets.
func (q *TicketQuery) Prune(ctx context.Context) error {
	_, err := q.db.Exec(ctx, pruneTicketsQuery, time.Now().UnixMilli())
	return err
}

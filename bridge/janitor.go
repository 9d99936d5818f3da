package bridge

import (
	"context"
	"errors"
	"time"

	"github.com/openmeet-team/openmeet-bridge/database"
)

// janitorInterval is how often old log rows, txn ids and tickets go.
const janitorInterval = 10 * time.Minute

// janitorLease is the lease of the replica that prunes: one at a time.
const janitorLease = "janitor"

// runJanitor keeps the event log within its retention, until ctx ends,
// while this replica holds the janitor's lease.
func (b *Bridge) runJanitor(ctx context.Context) {
	b.DB.Leases.Lead(b.Log.WithContext(ctx), janitorLease, b.janitor)
}

// janitor prunes every janitorInterval until ctx (the lease's) ends. Each
// deletion commits only while the lease is still this replica's.
func (b *Bridge) janitor(ctx context.Context, lease *database.Lease) {
	retention := b.Config.ClientAPI.Stream.Retention
	if retention <= 0 {
		retention = 7 * 24 * time.Hour
	}
	lost := false
	fenced := func(what string, fn func(ctx context.Context) error) bool {
		if lost {
			return false
		}
		err := b.DB.Leases.Fenced(ctx, lease, fn)
		if errors.Is(err, database.ErrLeaseLost) {
			b.Log.Warn().Str("pruning", what).Msg("Lost the janitor's lease; not pruning")
			lost = true
			return false
		} else if err != nil && ctx.Err() == nil {
			b.Log.Warn().Err(err).Str("pruning", what).Msg("Failed to prune")
		}
		return err == nil
	}
	for {
		before := time.Now().Add(-retention)
		for {
			var n int64
			ok := fenced("event log", func(ctx context.Context) (err error) {
				n, err = b.DB.EventLog.Prune(ctx, before, 10000)
				return err
			})
			if !ok || n < 10000 {
				break
			}
		}
		fenced("txn ids", func(ctx context.Context) error { return b.DB.EventLog.PruneTxns(ctx, before) })
		fenced("stream tickets", b.DB.Tickets.Prune)
		if lost {
			return // Lead tries to take the lease again
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(janitorInterval):
		}
	}
}

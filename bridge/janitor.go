package bridge

import (
	"context"
	"time"
)

// janitorInterval is how often old log rows, txn ids and tickets go.
const janitorInterval = 10 * time.Minute

// runJanitor keeps the event log within its retention, until ctx ends.
func (b *Bridge) runJanitor(ctx context.Context) {
	retention := b.Config.ClientAPI.Stream.Retention
	if retention <= 0 {
		retention = 7 * 24 * time.Hour
	}
	for {
		before := time.Now().Add(-retention)
		for {
			n, err := b.DB.EventLog.Prune(ctx, before, 10000)
			if err != nil {
				if ctx.Err() == nil {
					b.Log.Warn().Err(err).Msg("Failed to prune event log")
				}
				break
			}
			if n < 10000 {
				break
			}
		}
		if err := b.DB.EventLog.PruneTxns(ctx, before); err != nil && ctx.Err() == nil {
			b.Log.Warn().Err(err).Msg("Failed to prune txn ids")
		}
		if err := b.DB.Tickets.Prune(ctx); err != nil && ctx.Err() == nil {
			b.Log.Warn().Err(err).Msg("Failed to prune stream tickets")
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(janitorInterval):
		}
	}
}

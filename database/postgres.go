package database

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"
	"go.mau.fi/util/dbutil"
)

// NotifyChannel is the PostgreSQL channel on which replicas announce new
// event log rows, so the others' streams and workers wake at once.
const NotifyChannel = "openmeet_event_log"

// IsPostgres reports whether the database is PostgreSQL, where several
// replicas may share it.
func (db *Database) IsPostgres() bool { return db.Dialect == dbutil.Postgres }

// Listen calls fn whenever another replica (or this one) announces new
// event log rows, until ctx ends. It reconnects after errors. On SQLite it
// returns at once: there is only one process.
func (db *Database) Listen(ctx context.Context, uri string, log zerolog.Logger, fn func()) {
	db.ListenPositions(ctx, uri, log, func(int64) { fn() })
}

// ListenPositions is Listen telling fn the position each announcement
// goes up to: the log has rows up to it. 0 means unknown (an announcement
// without a position, or a reconnection after which anything may have
// been missed): fn must then read the log.
func (db *Database) ListenPositions(ctx context.Context, uri string, log zerolog.Logger, fn func(upTo int64)) {
	if !db.IsPostgres() {
		return
	}
	backoff := time.Second
	for ctx.Err() == nil {
		err := db.listenOnce(ctx, uri, fn)
		if ctx.Err() != nil {
			return
		}
		log.Warn().Err(err).Dur("retry_in", backoff).Msg("Lost the PostgreSQL notification connection")
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, time.Minute)
		// Anything announced while disconnected must not be missed.
		fn(0)
	}
}

func (db *Database) listenOnce(ctx context.Context, uri string, fn func(int64)) error {
	conn, err := pgx.Connect(ctx, uri)
	if err != nil {
		return fmt.Errorf("failed to connect: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err = conn.Exec(ctx, "LISTEN "+NotifyChannel); err != nil {
		return fmt.Errorf("failed to listen: %w", err)
	}
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		pos, err := strconv.ParseInt(n.Payload, 10, 64)
		if err != nil || pos <= 0 {
			pos = 0 // an older replica's announcement: read the log
		}
		fn(pos)
	}
}

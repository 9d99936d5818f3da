package database

import (
	"context"
	"fmt"
	"hash/fnv"
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

// lockKey maps a name to an advisory lock key.
func lockKey(name string) int64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return int64(h.Sum64())
}

// Lock takes a lock named name that holds across replicas (a PostgreSQL
// advisory lock on a connection of its own) and returns its release. On
// SQLite there is one process, and it returns a no-op.
func (db *Database) Lock(ctx context.Context, name string) (func(), error) {
	if !db.IsPostgres() {
		return func() {}, nil
	}
	conn, err := db.RawDB.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("failed to get a connection for lock %s: %w", name, err)
	}
	key := lockKey(name)
	if _, err = conn.ExecContext(ctx, "SELECT pg_advisory_lock($1)", key); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("failed to take lock %s: %w", name, err)
	}
	return func() {
		_, _ = conn.ExecContext(context.Background(), "SELECT pg_advisory_unlock($1)", key)
		_ = conn.Close()
	}, nil
}

// TryLock is Lock without waiting: ok is false when another replica holds
// it.
func (db *Database) TryLock(ctx context.Context, name string) (release func(), ok bool, err error) {
	if !db.IsPostgres() {
		return func() {}, true, nil
	}
	conn, err := db.RawDB.Conn(ctx)
	if err != nil {
		return nil, false, err
	}
	key := lockKey(name)
	if err = conn.QueryRowContext(ctx, "SELECT pg_try_advisory_lock($1)", key).Scan(&ok); err != nil || !ok {
		_ = conn.Close()
		return nil, false, err
	}
	return func() {
		_, _ = conn.ExecContext(context.Background(), "SELECT pg_advisory_unlock($1)", key)
		_ = conn.Close()
	}, true, nil
}

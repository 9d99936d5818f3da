package database

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/mattn/go-sqlite3"
	"github.com/rs/zerolog"
)

// SQLite drivers of our own, one per database.type. They match dbutil's
// sqlite3-fk-wal drivers except that SQLite does not checkpoint the WAL
// inside a committing transaction: a checkpoint writes and syncs the
// database file, which would put a spike of several milliseconds on the
// answer to whichever Synapse transaction happened to trigger it. The
// checkpointer goroutine does that work instead.
//
// temp_store = MEMORY keeps statement journals in memory: a multi-row
// insert inside a transaction saves the pages it changes so that it can be
// undone alone, and SQLite wrote those to a temporary file (4% of the CPU
// of BenchmarkAppendTransaction with 100 events). They are never needed
// after the statement, so this changes nothing about what survives a
// crash.
var sqliteDrivers = map[string]string{
	"sqlite3-fk-wal":          "openmeet-sqlite3-normal",
	"sqlite3-fk-wal-fullsync": "openmeet-sqlite3-full",
}

func init() {
	register := func(name, synchronous string) {
		sql.Register(name, &sqlite3.SQLiteDriver{ConnectHook: func(conn *sqlite3.SQLiteConn) error {
			for _, pragma := range []string{
				"PRAGMA foreign_keys = ON",
				"PRAGMA journal_mode = WAL",
				"PRAGMA synchronous = " + synchronous,
				"PRAGMA busy_timeout = 5000",
				"PRAGMA wal_autocheckpoint = 0",
				"PRAGMA journal_size_limit = " + strconv.Itoa(walSizeLimit),
				"PRAGMA temp_store = MEMORY",
			} {
				if _, err := conn.Exec(pragma, []driver.Value{}); err != nil {
					return err
				}
			}
			return nil
		}})
	}
	register("openmeet-sqlite3-normal", "NORMAL")
	register("openmeet-sqlite3-full", "FULL")
}

// stmtCacheSize is how many prepared statements each SQLite connection
// keeps. Preparing a statement (parsing and planning it) cost more than
// running most of the bridge's statements: 10–14% of all CPU in the
// many-rooms profile of BENCHMARKS.md, when every call prepared anew. The
// bridge has fewer distinct hot statements than this; the multi-row
// inserts of the event log come in a fixed set of sizes (insertChunks).
const stmtCacheSize = 128

// sqliteDSN adds the statement cache to database.uri unless it sets its
// own _stmt_cache_size.
func sqliteDSN(uri string) string {
	if strings.Contains(uri, "_stmt_cache_size=") {
		return uri
	}
	sep := "?"
	if strings.Contains(uri, "?") {
		sep = "&"
	}
	return uri + sep + "_stmt_cache_size=" + strconv.Itoa(stmtCacheSize)
}

// checkpointInterval is how often the WAL is folded back into the database
// file. At the bridge's write rates the WAL stays at a few megabytes.
const checkpointInterval = time.Second

// walRestartFrames is the WAL length (in pages) from which a checkpoint also
// makes the next write start the WAL over from its beginning.
//
// A PASSIVE checkpoint never blocks, but it only lets the WAL start over if
// no commit happened while it ran; under a steady stream of transactions
// one always does, and the WAL then grew for as long as the load lasted
// (456 MB after 150,000 events in BenchmarkAppendTransaction), every
// commit appending to a growing file instead of rewriting pages the
// kernel already holds. RESTART waits for the writer and the readers of
// the WAL (a few milliseconds for the one transaction that waits, at most
// once per checkpointInterval) and copies what PASSIVE left.
const walRestartFrames = 4096

// walSizeLimit is what the WAL file is cut back to when it starts over
// after a burst made it larger.
const walSizeLimit = 64 << 20

// walRestartWait bounds how long a RESTART checkpoint waits for the
// writer and the readers of the WAL. It holds the write lock while it
// waits for readers, so a long read would otherwise stall every write for
// up to busy_timeout; when the wait runs out, the WAL starts over at a
// later round.
const walRestartWait = 20 * time.Millisecond

// runCheckpointer checkpoints the WAL until ctx ends.
func (db *Database) runCheckpointer(ctx context.Context, log zerolog.Logger) {
	ticker := time.NewTicker(checkpointInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		if err := db.checkpoint(ctx, walRestartFrames, walRestartWait); err != nil && ctx.Err() == nil {
			log.Warn().Err(err).Msg("WAL checkpoint failed")
		}
	}
}

// checkpoint copies the WAL into the database file without blocking
// anyone (PASSIVE) and, when the WAL holds restartFrames pages or more,
// finishes the job (RESTART, waiting at most wait for others) so that the
// next commit starts the WAL over.
func (db *Database) checkpoint(ctx context.Context, restartFrames int, wait time.Duration) error {
	var busy, frames, copied int
	if err := db.RawDB.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &frames, &copied); err != nil {
		return err
	}
	if frames < restartFrames {
		return nil
	}
	conn, err := db.RawDB.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err = conn.ExecContext(ctx, "PRAGMA busy_timeout = "+strconv.FormatInt(wait.Milliseconds(), 10)); err != nil {
		return err
	}
	// busy = 1 when the wait ran out: the next round tries again.
	err = conn.QueryRowContext(ctx, "PRAGMA wal_checkpoint(RESTART)").Scan(&busy, &frames, &copied)
	if _, restoreErr := conn.ExecContext(context.WithoutCancel(ctx), "PRAGMA busy_timeout = 5000"); restoreErr != nil {
		// Not back in the pool with the short wait.
		_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		return errors.Join(err, restoreErr)
	}
	return err
}

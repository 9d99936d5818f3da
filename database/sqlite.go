package database

import (
	"context"
	"database/sql"
	"database/sql/driver"
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

// runCheckpointer checkpoints the WAL until ctx ends. PASSIVE never blocks
// writers or readers; it copies what it can and leaves the rest for the
// next round.
func (db *Database) runCheckpointer(ctx context.Context, log zerolog.Logger) {
	ticker := time.NewTicker(checkpointInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		if _, err := db.RawDB.ExecContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)"); err != nil && ctx.Err() == nil {
			log.Warn().Err(err).Msg("WAL checkpoint failed")
		}
	}
}

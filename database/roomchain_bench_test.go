package database_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.mau.fi/util/dbutil"

	"github.com/openmeet-team/openmeet-bridge/database"
)

// fillLog appends events 100-event transactions to db, over rooms rooms
// (room i of event n is n % rooms).
func fillLog(tb testing.TB, db *database.Database, events, rooms int) {
	tb.Helper()
	ctx := context.Background()
	for txn := range events / 100 {
		evs := make([]*database.LoggedEvent, 100)
		for i := range evs {
			n := txn*100 + i
			evs[i] = msg(fmt.Sprintf("$event-%d", n), fmt.Sprintf("!room%d:test", n%rooms))
			evs[i].Sender = "@alice:test"
		}
		if _, err := appendTxn(ctx, db, fmt.Sprint(txn), evs); err != nil {
			tb.Fatal(err)
		}
	}
}

// BenchmarkRoomChainWalk: the queries that walk a room's chain on SQLite,
// in one room of 200,000 events: an unread count stopping at its limit of
// 100, and a media check that finds nothing (once a walk of the whole
// room, now one lookup in media_ref).
func BenchmarkRoomChainWalk(b *testing.B) {
	db := openDB(b, database.Config{Type: "sqlite3-fk-wal", URI: "file:" + filepath.Join(b.TempDir(), "walk.db") + "?_txlock=immediate"})
	fillLog(b, db, 200_000, 1)
	ctx := context.Background()
	b.Run("unread-100", func(b *testing.B) {
		for b.Loop() {
			if n, err := db.ReadMarkers.Unread(ctx, "@bob:test", "!room0:test", 100); err != nil || n != 100 {
				b.Fatalf("%d unread, %v", n, err)
			}
		}
	})
	b.Run("media-whole-room", func(b *testing.B) {
		for b.Loop() {
			if ok, err := db.EventLog.ReferencesMedia(ctx, "!room0:test", "mxc://test/none"); err != nil || ok {
				b.Fatalf("%v %v", ok, err)
			}
		}
	})
}

// BenchmarkUpgradeToV7: migration 7 on an SQLite log of 1,000,000 events
// over 1,000 rooms written by schema 6 (version 1, then the shipped
// upgrades to 6, then the rows). Run with -benchtime 1x; it reports the seconds of the
// upgrade alone.
func BenchmarkUpgradeToV7(b *testing.B) {
	ctx := context.Background()
	for range b.N {
		b.StopTimer()
		db, err := database.Open(database.Config{Type: "sqlite3-fk-wal", URI: "file:" + filepath.Join(b.TempDir(), "v6.db") + "?_txlock=immediate"}, zerolog.Nop())
		if err != nil {
			b.Fatal(err)
		}
		current := db.UpgradeTable
		db.UpgradeTable = dbutil.BuildUpgradeTable().WithFSPath(v1Schema, "testdata/v1").Finish()
		if err := db.Upgrade(ctx); err != nil {
			b.Fatal(err)
		}
		db.UpgradeTable = current[:6]
		if err := db.Upgrade(ctx); err != nil {
			b.Fatal(err)
		}
		// Rows as a bridge of schema 6 wrote them: this version's insert
		// needs the chain's column.
		for txn := range 10_000 {
			var q strings.Builder
			q.WriteString(`INSERT INTO event_log (stream_pos, event_id, room_id, event_type, sender, state_key, origin_ts, event, txn_id, logged_at) VALUES `)
			for i := range 100 {
				n := txn*100 + i
				if i > 0 {
					q.WriteString(", ")
				}
				fmt.Fprintf(&q, `(%d, '$event-%d', '!room%d:test', 'm.room.message', '@alice:test', NULL, 1, '{"event_id":"$event-%d"}', 't%d', 1)`, n+1, n, n%1000, n, txn)
			}
			if _, err := db.Exec(ctx, q.String()); err != nil {
				b.Fatal(err)
			}
		}
		db.UpgradeTable = current
		b.StartTimer()
		start := time.Now()
		if err := db.Upgrade(ctx); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(time.Since(start).Seconds(), "upgrade_s")
		b.StopTimer()
		if n, err := db.ReadMarkers.Unread(ctx, "@bob:test", "!room5:test", 2000); err != nil || n != 1000 {
			b.Fatalf("after the upgrade %d unread in a room of 1,000, %v", n, err)
		}
		_ = db.Close()
	}
}

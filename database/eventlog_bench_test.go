package database_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/id"

	"github.com/openmeet-team/openmeet-bridge/database"
	"github.com/openmeet-team/openmeet-bridge/internal/harness"
)

// BenchmarkAppendTransaction measures the event log's write path alone:
// one AppendTransaction (txn id, positions, events, member rows, commit)
// per operation, for transactions of 1, 2 and 100 events shaped like those
// of BenchmarkTransactionIngest. It reports µs per transaction (p50 and
// p99) beside ns/op. The "-hashids" variants give the events IDs shaped
// like Synapse's (room versions 4 and later: base64 of a hash), which land
// at random places in the event_id index, where the benchmark's own IDs
// sort in the order they are written. The "-files" variant makes every
// tenth event an image with a thumbnail (two media_ref rows each).
func BenchmarkAppendTransaction(b *testing.B) {
	engines := []struct {
		name string
		cfg  func(b *testing.B) database.Config
	}{
		{"sqlite", func(b *testing.B) database.Config {
			return database.Config{Type: "sqlite3-fk-wal", URI: "file:" + filepath.Join(b.TempDir(), "bench.db") + "?_txlock=immediate"}
		}},
		{"postgres", func(b *testing.B) database.Config {
			return database.Config{Type: "postgres", URI: harness.PostgresURI(b), MaxOpenConns: 10}
		}},
	}
	for _, engine := range engines {
		for _, shape := range []struct {
			n      int
			hashed bool
			files  bool
		}{{1, false, false}, {2, false, false}, {100, false, false}, {100, true, false}, {100, false, true}} {
			n := shape.n
			name := fmt.Sprintf("%s/%d", engine.name, n)
			if shape.hashed {
				name += "-hashids"
			}
			if shape.files {
				name += "-files"
			}
			b.Run(name, func(b *testing.B) {
				db, err := database.Open(engine.cfg(b), zerolog.Nop())
				if err != nil {
					b.Fatal(err)
				}
				defer db.Close()
				ctx := context.Background()
				if err := db.Upgrade(ctx); err != nil {
					b.Fatal(err)
				}
				txns := make([][]*database.LoggedEvent, b.N)
				for i := range txns {
					txns[i] = benchEvents(i, n)
					if shape.hashed {
						hashEventIDs(txns[i])
					}
					if shape.files {
						withFiles(txns[i])
					}
				}
				took := make([]time.Duration, 0, b.N)
				b.ResetTimer()
				for i, events := range txns {
					t0 := time.Now()
					written, err := db.EventLog.AppendTransaction(ctx, fmt.Sprint(i), database.TxnDigest(events, nil), events)
					took = append(took, time.Since(t0))
					if err != nil || len(written) != n {
						b.Fatalf("txn %d: %d written, %v", i, len(written), err)
					}
				}
				b.StopTimer()
				slices.Sort(took)
				b.ReportMetric(float64(took[len(took)/2].Microseconds()), "p50_µs")
				b.ReportMetric(float64(took[len(took)*99/100].Microseconds()), "p99_µs")
			})
		}
	}
}

// benchEvents makes n events like BenchmarkTransactionIngest's: ~450-byte
// messages, every tenth a join.
func benchEvents(txn, n int) []*database.LoggedEvent {
	events := make([]*database.LoggedEvent, n)
	for i := range events {
		evtID := fmt.Sprintf("$bench-%d-%d-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789", txn, i)
		room := fmt.Sprintf("!room%d:bench.local", (txn+i)%20)
		user := fmt.Sprintf("@openmeet_acme_user%d:bench.local", i%50)
		raw := fmt.Sprintf(`{"event_id":%q,"room_id":%q,"type":"m.room.message","sender":%q,"origin_server_ts":1732480000000,"content":{"msgtype":"m.text","body":"Hello everyone, see you at the meetup tonight! Message %d of transaction %d.","format":"org.matrix.custom.html","formatted_body":"Hello everyone, see you at the <b>meetup</b> tonight!"},"unsigned":{"age":12,"transaction_id":"m1732480000000.%d"}}`, evtID, room, user, i, txn, i)
		evt := &database.LoggedEvent{EventID: id.EventID(evtID), RoomID: id.RoomID(room), Type: "m.room.message",
			Sender: id.UserID(user), OriginTS: 1732480000000, Raw: []byte(raw)}
		if i%10 == 9 {
			evt.Type, evt.StateKey, evt.Membership, evt.MemberDisplayname = "m.room.member", &user, "join", "User"
		}
		events[i] = evt
	}
	return events
}

// withFiles makes every tenth message an image with a thumbnail.
func withFiles(events []*database.LoggedEvent) {
	for i, evt := range events {
		if i%10 != 4 || evt.Type != "m.room.message" {
			continue
		}
		evt.Raw = fmt.Appendf(nil, `{"event_id":%q,"room_id":%q,"type":"m.room.message","sender":%q,"origin_server_ts":1732480000000,"content":{"msgtype":"m.image","body":"photo.jpg","url":"mxc://bench.local/file%[4]s","info":{"mimetype":"image/jpeg","size":123456,"w":1200,"h":900,"thumbnail_url":"mxc://bench.local/thumb%[4]s","thumbnail_info":{"mimetype":"image/jpeg","w":800,"h":600}}}}`,
			evt.EventID, evt.RoomID, evt.Sender, strings.TrimPrefix(string(evt.EventID), "$"))
	}
}

// hashEventIDs replaces the events' IDs by IDs shaped like Synapse's for
// room versions 4 and later: "$" and the URL-safe base64 of a SHA-256.
func hashEventIDs(events []*database.LoggedEvent) {
	for _, evt := range events {
		sum := sha256.Sum256([]byte(evt.EventID))
		evt.EventID = id.EventID("$" + base64.RawURLEncoding.EncodeToString(sum[:]))
	}
}

// BenchmarkWALPagesPerCommit counts the pages a 100-event AppendTransaction
// writes to the SQLite WAL (reported as wal_pages/txn and KiB/txn): every
// page a commit changes is written whole to the WAL at the commit and again
// to the database file at the next checkpoint. After each commit a PASSIVE
// checkpoint copies the WAL back, so the next commit starts it over and the
// WAL's length is what that one commit wrote. Timings here are not the
// write path's (the checkpoint is in the loop); BenchmarkAppendTransaction
// measures those.
func BenchmarkWALPagesPerCommit(b *testing.B) {
	for _, hashed := range []bool{false, true} {
		name := "benchids"
		if hashed {
			name = "hashids"
		}
		b.Run(name, func(b *testing.B) {
			db, err := database.Open(database.Config{Type: "sqlite3-fk-wal", URI: "file:" + filepath.Join(b.TempDir(), "bench.db") + "?_txlock=immediate"}, zerolog.Nop())
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			ctx := context.Background()
			if err := db.Upgrade(ctx); err != nil {
				b.Fatal(err)
			}
			var pageSize int
			if err := db.RawDB.QueryRowContext(ctx, "PRAGMA page_size").Scan(&pageSize); err != nil {
				b.Fatal(err)
			}
			pages := 0
			b.ResetTimer()
			for i := range b.N {
				events := benchEvents(i, 100)
				if hashed {
					hashEventIDs(events)
				}
				if _, err := db.EventLog.AppendTransaction(ctx, fmt.Sprint(i), database.TxnDigest(events, nil), events); err != nil {
					b.Fatal(err)
				}
				var busy, frames, copied int
				if err := db.RawDB.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &frames, &copied); err != nil {
					b.Fatal(err)
				}
				pages += frames
			}
			b.StopTimer()
			b.ReportMetric(float64(pages)/float64(b.N), "wal_pages/txn")
			b.ReportMetric(float64(pages)/float64(b.N)*float64(pageSize)/1024, "KiB/txn")
		})
	}
}

package database_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
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
// p99) beside ns/op.
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
		for _, n := range []int{1, 2, 100} {
			b.Run(fmt.Sprintf("%s/%d", engine.name, n), func(b *testing.B) {
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

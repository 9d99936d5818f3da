package appservice

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/mux"
	"github.com/rs/zerolog"

	"github.com/openmeet-team/openmeet-bridge/database"
	"github.com/openmeet-team/openmeet-bridge/internal/harness"
)

// benchEvent is shaped like what Synapse pushes for a message: ~450 bytes
// with unsigned data. Every tenth event is a join, which also updates
// room_member.
func benchEvent(txn, i int) string {
	return benchEventID(txn, i, false)
}

// benchEventID is benchEvent, with an event ID shaped like Synapse's (room
// versions 4 and later: "$" and the URL-safe base64 of a SHA-256) if
// hashed. The benchmark's own IDs sort in the order they are written, so
// each commit touches few leaves of the event_id index; hashed ones land
// at random places in it, as real traffic does.
func benchEventID(txn, i int, hashed bool) string {
	evtID := fmt.Sprintf("$bench-%d-%d-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789", txn, i)
	if hashed {
		sum := sha256.Sum256([]byte(evtID))
		evtID = "$" + base64.RawURLEncoding.EncodeToString(sum[:])
	}
	room := fmt.Sprintf("!room%d:bench.local", i%20)
	if i%10 == 0 {
		return fmt.Sprintf(`{"event_id":%q,"room_id":%q,"type":"m.room.member","state_key":"@openmeet_acme_user%d:bench.local","sender":"@openmeet_acme_user%d:bench.local","origin_server_ts":1732480000000,"content":{"membership":"join","displayname":"User %d"},"unsigned":{"age":12}}`, evtID, room, i, i, i)
	}
	return fmt.Sprintf(`{"event_id":%q,"room_id":%q,"type":"m.room.message","sender":"@openmeet_acme_user%d:bench.local","origin_server_ts":1732480000000,"content":{"msgtype":"m.text","body":"Hello everyone, see you at the meetup tonight! Message %d of transaction %d.","format":"org.matrix.custom.html","formatted_body":"Hello everyone, see you at the <b>meetup</b> tonight!"},"unsigned":{"age":12,"transaction_id":"m1732480000000.%d"}}`, evtID, room, i%50, i, txn, i)
}

func benchTxn(txn, n int) []byte {
	return benchTxnIDs(txn, n, false)
}

func benchTxnIDs(txn, n int, hashed bool) []byte {
	var buf bytes.Buffer
	buf.WriteString(`{"events":[`)
	for i := range n {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.WriteString(benchEventID(txn, i, hashed))
	}
	buf.WriteString(`]}`)
	return buf.Bytes()
}

// BenchmarkTransactionIngest pushes 100-event transactions, one at a time as
// Synapse does, through the real HTTP handler into the event log, and
// reports events/s and the p50/p99 time to the 200.
func BenchmarkTransactionIngest(b *testing.B) {
	hundred := func(int) int { return 100 }
	b.Run("sqlite", func(b *testing.B) {
		benchIngest(b, database.Config{Type: "sqlite3-fk-wal", URI: "file:" + filepath.Join(b.TempDir(), "bench.db") + "?_txlock=immediate"}, hundred)
	})
	b.Run("sqlite-hashids", func(b *testing.B) {
		benchIngestIDs(b, database.Config{Type: "sqlite3-fk-wal", URI: "file:" + filepath.Join(b.TempDir(), "bench.db") + "?_txlock=immediate"}, hundred, true)
	})
	b.Run("sqlite-fullsync", func(b *testing.B) {
		benchIngest(b, database.Config{Type: "sqlite3-fk-wal-fullsync", URI: "file:" + filepath.Join(b.TempDir(), "bench.db") + "?_txlock=immediate"}, hundred)
	})
	// The shared test cluster runs with fsync off; the durable one has a
	// real server's defaults, so every commit waits for the disk.
	b.Run("postgres", func(b *testing.B) {
		benchIngest(b, database.Config{Type: "postgres", URI: harness.PostgresURI(b), MaxOpenConns: 10}, hundred)
	})
	b.Run("postgres-durable", func(b *testing.B) {
		pg, err := harness.StartPostgres(true)
		if err != nil {
			b.Skip(err)
		}
		defer pg.Stop()
		uri, err := pg.CreateDatabase(context.Background(), "bench")
		if err != nil {
			b.Fatal(err)
		}
		benchIngest(b, database.Config{Type: "postgres", URI: uri, MaxOpenConns: 10}, hundred)
	})
}

// BenchmarkSynapseSizedIngest is BenchmarkTransactionIngest with the
// transactions Synapse sends at a steady trickle of messages over many
// rooms: one in flight, the next carrying what queued meanwhile, here 1 or
// 2 events in turn (the many-synapse scenario of bench/ssefanout sees 1.4–2
// per transaction). Per-transaction costs (the commit, the round trips, the
// HTTP request) dominate here, not per-event ones.
func BenchmarkSynapseSizedIngest(b *testing.B) {
	size := func(txn int) int { return 1 + txn%2 }
	b.Run("sqlite", func(b *testing.B) {
		benchIngest(b, database.Config{Type: "sqlite3-fk-wal", URI: "file:" + filepath.Join(b.TempDir(), "bench.db") + "?_txlock=immediate"}, size)
	})
	b.Run("postgres", func(b *testing.B) {
		benchIngest(b, database.Config{Type: "postgres", URI: harness.PostgresURI(b), MaxOpenConns: 10}, size)
	})
}

// benchIngest pushes b.N transactions of size(i) events each and reports
// events/s, the p50/p99 time to the 200, and the CPU time of this process
// (handler and client; not PostgreSQL's) per transaction.
func benchIngest(b *testing.B, dbCfg database.Config, size func(txn int) int) {
	benchIngestIDs(b, dbCfg, size, false)
}

// benchIngestIDs is benchIngest with Synapse-shaped event IDs if hashed.
func benchIngestIDs(b *testing.B, dbCfg database.Config, size func(txn int) int, hashed bool) {
	db, err := database.Open(dbCfg, zerolog.Nop())
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if err := db.Upgrade(context.Background()); err != nil {
		b.Fatal(err)
	}
	s, err := NewServer(testConfig(), "bench.local", db, zerolog.Nop(), nil)
	if err != nil {
		b.Fatal(err)
	}
	r := mux.NewRouter()
	s.Register(r)
	srv := httptest.NewServer(r)
	defer srv.Close()
	client := srv.Client()

	bodies := make([][]byte, b.N)
	events := 0
	for i := range bodies {
		bodies[i] = benchTxnIDs(i, size(i), hashed)
		events += size(i)
	}
	latencies := make([]time.Duration, 0, b.N)
	b.SetBytes(int64(len(bodies[0])))
	b.ResetTimer()
	cpu0 := cpuTime()
	start := time.Now()
	for i := range b.N {
		req, _ := http.NewRequest(http.MethodPut, fmt.Sprintf("%s/_matrix/app/v1/transactions/%d", srv.URL, i), bytes.NewReader(bodies[i]))
		req.Header.Set("Authorization", "Bearer "+testHSToken)
		t0 := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		latencies = append(latencies, time.Since(t0))
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("transaction %d: HTTP %d", i, resp.StatusCode)
		}
	}
	elapsed := time.Since(start)
	cpu := cpuTime() - cpu0
	b.StopTimer()
	slices.Sort(latencies)
	b.ReportMetric(float64(events)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(latencies[len(latencies)/2].Microseconds())/1000, "p50_ms")
	b.ReportMetric(float64(latencies[len(latencies)*99/100].Microseconds())/1000, "p99_ms")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu_µs/txn")
	if n, _ := db.EventLog.Count(context.Background()); n != int64(events) {
		b.Fatalf("log holds %d events, want %d", n, events)
	}
}

// cpuTime is the user and system CPU time of this process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

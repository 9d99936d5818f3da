// Command soak pushes a long run of random appservice transactions -- many
// rooms, many senders, valid and invalid events, typing notices and
// receipts, retries and broken bodies -- into a real bridge (its own HTTP
// listener, event log, stream hub and bot, on SQLite; the homeserver is an
// address nobody listens on) and reports the live heap after a forced GC at
// intervals. A bridge that keeps something of every transaction shows it as
// a heap that grows with the number of transactions instead of staying flat.
//
//	go run ./bench/soak -duration 5m
//
// Run it from the repository root (it reads example-config.yaml). Every run
// is bounded by -duration and -txns.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/id"

	"github.com/openmeet-team/openmeet-bridge/appservice"
	"github.com/openmeet-team/openmeet-bridge/bridge"
	"github.com/openmeet-team/openmeet-bridge/database"
)

const domain = "soak.local"

type options struct {
	duration, interval time.Duration
	txns               int
	rate               float64
	rooms, senders     int
	portals            int
	invalid            int
	seed               uint64
	example            string
	logLevel           string
	memProfile         string
}

func main() {
	var o options
	flag.DurationVar(&o.duration, "duration", 2*time.Minute, "how long to push (at most 30m)")
	flag.IntVar(&o.txns, "txns", 1_000_000, "at most this many transactions")
	flag.Float64Var(&o.rate, "rate", 0, "transactions per second (0: one after another, as fast as the bridge answers)")
	flag.DurationVar(&o.interval, "interval", 15*time.Second, "how often to force a GC and report the live heap")
	flag.IntVar(&o.rooms, "rooms", 20000, "distinct rooms")
	flag.IntVar(&o.senders, "senders", 50000, "distinct senders")
	flag.IntVar(&o.portals, "portals", 2000, "rooms that are portals (so streams would name them)")
	flag.IntVar(&o.invalid, "invalid", 5, "percent of events that are invalid (skipped by the bridge)")
	flag.Uint64Var(&o.seed, "seed", 1, "random seed")
	flag.StringVar(&o.logLevel, "log", "disabled", "the bridge's log level, to stderr (its portal queues log every failed retry to the absent homeserver)")
	flag.StringVar(&o.memProfile, "memprofile", "", "write a heap profile here at the end")
	flag.StringVar(&o.example, "example", "example-config.yaml", "the example config (the defaults)")
	flag.Parse()
	if o.duration > 30*time.Minute {
		o.duration = 30 * time.Minute
	}
	// Whatever goes wrong, the process ends.
	time.AfterFunc(o.duration+2*time.Minute, func() {
		fmt.Fprintln(os.Stderr, "soak: gave up")
		os.Exit(2)
	})
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
}

// freePort finds a loopback port nobody listens on (for the bridge, and as
// the address of a homeserver that is not there).
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func startBridge(o options, dir string) (*bridge.Bridge, *bridge.Config, error) {
	example, err := os.ReadFile(o.example)
	if err != nil {
		return nil, nil, err
	}
	cfg, err := bridge.ParseConfig(example, nil)
	if err != nil {
		return nil, nil, err
	}
	asPort, err := freePort()
	if err != nil {
		return nil, nil, err
	}
	hsPort, err := freePort()
	if err != nil {
		return nil, nil, err
	}
	cfg.Homeserver.Address, cfg.Homeserver.Domain = "http://127.0.0.1:"+strconv.Itoa(hsPort), domain
	cfg.Appservice.Address = "http://127.0.0.1:" + strconv.Itoa(asPort)
	cfg.Appservice.Hostname, cfg.Appservice.Port = "127.0.0.1", asPort
	cfg.Appservice.ID = "soak"
	cfg.Appservice.ASToken, cfg.Appservice.HSToken = appservice.NewToken(), appservice.NewToken()
	cfg.Appservice.MaxBodyBytes = 8 << 20
	cfg.Database.URI = dbURI(dir)
	cfg.Provisioning.SharedSecret = appservice.NewToken()
	cfg.ClientAPI.Enabled = true
	cfg.ClientAPI.JWT.Secrets = []string{appservice.NewToken()}
	cfg.Logging.Level = "error"
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	level, err := zerolog.ParseLevel(o.logLevel)
	if err != nil {
		return nil, nil, err
	}
	log := zerolog.New(os.Stderr).Level(level).With().Timestamp().Logger()
	b := bridge.New(cfg, log)
	if err := b.Start(context.Background()); err != nil {
		return nil, nil, err
	}
	return b, cfg, nil
}

// makePortals makes the first -portals rooms portals, already in sync (so
// the bridge does not try to create them on the absent homeserver): events
// of those rooms are named after their portal on the stream.
func makePortals(o options, dir string) error {
	ctx := context.Background()
	db, err := database.Open(database.Config{Type: "sqlite3-fk-wal", URI: dbURI(dir)}, zerolog.Nop())
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.Upgrade(ctx); err != nil {
		return err
	}
	for n := range o.portals {
		slug := "p" + strconv.Itoa(n)
		key := database.PortalKey{Tenant: "soak", Kind: "event", Slug: slug}
		if _, err := db.Portals.Put(ctx, &database.Portal{Tenant: "soak", Kind: "event", Slug: slug, Alias: id.RoomAlias("#openmeet_soak_event_" + slug + ":" + domain), Name: "Soak " + slug, Visibility: "public"}); err != nil {
			return err
		}
		if err := db.Portals.SetRoomID(ctx, key, id.RoomID(roomID(n))); err != nil {
			return err
		}
		p, err := db.Portals.Get(ctx, key)
		if err != nil {
			return err
		}
		if err := db.Portals.MarkSynced(ctx, key, p.DesiredVersion); err != nil {
			return err
		}
	}
	return nil
}

func dbURI(dir string) string {
	return "file:" + filepath.Join(dir, "bridge.db") + "?_txlock=immediate"
}

func run(o options) error {
	dir, err := os.MkdirTemp("", "soak-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := makePortals(o, dir); err != nil {
		return err
	}
	b, cfg, err := startBridge(o, dir)
	if err != nil {
		return err
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = b.Stop(ctx)
	}()

	g := &generator{o: o, rng: rand.New(rand.NewPCG(o.seed, o.seed^0x9e3779b97f4a7c15))}
	client := &http.Client{Timeout: time.Minute}
	base := cfg.Appservice.Address + "/_matrix/app/v1/transactions/"
	var tick <-chan time.Time
	if o.rate > 0 {
		t := time.NewTicker(time.Duration(float64(time.Second) / o.rate))
		defer t.Stop()
		tick = t.C
	}
	fmt.Printf("soak: %d rooms (%d portals), %d senders, for %s or %d transactions; GOMAXPROCS=%d, %s\n",
		o.rooms, o.portals, o.senders, o.duration, o.txns, runtime.GOMAXPROCS(0), runtime.Version())
	fmt.Printf("%8s %8s %9s %9s %7s %10s %10s %8s\n", "elapsed", "txns", "events", "ephemeral", "bodyMB", "liveheapMB", "heapsysMB", "rssMB")
	start := time.Now()
	nextReport := start
	var reports []float64
	report := func() {
		live, sys := liveHeap()
		reports = append(reports, live)
		fmt.Printf("%8s %8d %9d %9d %7.0f %10.1f %10.1f %8.1f\n", time.Since(start).Round(time.Second), g.txns, g.events, g.ephemeral,
			float64(g.bytes)/(1<<20), live, sys, rssMB())
	}
	type sent struct {
		txnID string
		body  []byte
	}
	var recent []sent // a few applied transactions, to retry
	for g.txns < o.txns && time.Since(start) < o.duration {
		if !time.Now().Before(nextReport) {
			report()
			nextReport = nextReport.Add(o.interval)
		}
		if tick != nil {
			<-tick
		}
		txn := sent{txnID: strconv.Itoa(g.txns)}
		want := http.StatusOK
		switch r := g.rng.IntN(100); {
		case r < 2 && len(recent) > 0:
			// A retry, as Synapse sends after an answer it did not get:
			// same id, same body; a no-op.
			txn = recent[g.rng.IntN(len(recent))]
		case r < 4:
			txn.body, want = g.brokenBody(), http.StatusBadRequest
		default:
			txn.body = g.transaction()
			if len(recent) < 16 {
				recent = append(recent, txn)
			} else {
				recent[g.rng.IntN(len(recent))] = txn
			}
		}
		if err := push(client, base+txn.txnID, cfg.Appservice.HSToken, txn.body, want); err != nil {
			return fmt.Errorf("transaction %d: %w", g.txns, err)
		}
		g.txns++
		g.bytes += int64(len(txn.body))
	}
	report()
	if o.memProfile != "" {
		f, err := os.Create(o.memProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.WriteHeapProfile(f); err != nil {
			return err
		}
	}
	fmt.Printf("live heap after forced GC: first %.1f MB, last %.1f MB, max %.1f MB over %d reports\n",
		reports[0], reports[len(reports)-1], maxOf(reports), len(reports))
	return nil
}

func push(client *http.Client, url, token string, body []byte, want int) error {
	req, err := http.NewRequest(http.MethodPut, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	_ = resp.Body.Close()
	if resp.StatusCode != want {
		return fmt.Errorf("HTTP %d, want %d: %s", resp.StatusCode, want, answer)
	}
	return nil
}

// liveHeap forces a full collection and returns the live heap and the heap
// memory obtained from the OS, in MB.
func liveHeap() (live, sys float64) {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return float64(ms.HeapAlloc) / (1 << 20), float64(ms.HeapSys-ms.HeapReleased) / (1 << 20)
}

// rssMB is the resident set of the process, from /proc (0 elsewhere).
func rssMB() float64 {
	data, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	fields := strings.Fields(string(data))
	if len(fields) < 2 {
		return 0
	}
	pages, _ := strconv.ParseFloat(fields[1], 64)
	return pages * float64(os.Getpagesize()) / (1 << 20)
}

func maxOf(xs []float64) float64 {
	m := xs[0]
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}

func roomID(n int) string { return "!soakroom" + strconv.Itoa(n) + ":" + domain }

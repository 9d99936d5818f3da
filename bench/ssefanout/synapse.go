package main

// The many-synapse scenario: 8,000 users, each in a room of their own,
// 1,000 messages a second, pushed the way Synapse pushes them. Synapse
// keeps one transaction in flight per appservice; what arrives meanwhile
// queues and leaves in the next transaction, so at this rate transactions
// carry one or two events, not the ten of the many scenario.
//
// Each server runs in this process and nothing else does while it is
// measured: Synapse is a child process (-synapse) and the browsers another
// (-client), so the CPU read with getrusage here is the server's alone.
// First the whole bridge (bridge.New with the client API, bot, metrics,
// event log on SQLite; the homeserver is an address nobody listens on),
// then, in the same run, with the same clients, the same messages at the
// same rate, a plain net/http SSE server: one goroutine per stream, the
// transaction decoded with encoding/json, each frame written and flushed.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/id"

	"github.com/openmeet-team/openmeet-bridge/api"
	"github.com/openmeet-team/openmeet-bridge/appservice"
	"github.com/openmeet-team/openmeet-bridge/bridge"
	"github.com/openmeet-team/openmeet-bridge/database"
	"github.com/openmeet-team/openmeet-bridge/internal/histogram"
)

const loadDomain = "load.local"

// tokens are the clients' bearer tokens, one per stream; without them the
// clients ask for /events?user=… (the reference server and the hub-only
// scenarios).
var tokens []string

func loadTokens(path string) error {
	if path == "" {
		return nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	tokens = strings.Fields(string(data))
	return nil
}

func streamRequest(u int) string {
	if u < len(tokens) {
		return "GET " + api.ClientPrefix + "/events HTTP/1.1\r\nHost: load\r\nAuthorization: Bearer " + tokens[u] + "\r\n\r\n"
	}
	return "GET /events?user=" + userID(u) + " HTTP/1.1\r\nHost: load\r\n\r\n"
}

// phase is what one server did with the messages.
type phase struct {
	cpu      float64 // seconds of this process's CPU
	elapsed  time.Duration
	load     string // the Synapse child's summary
	latency  string // the clients' report
	messages int
	p50, p99 time.Duration // parsed from latency
	// share is the bridge's own histogram of its share of the latency
	// (openmeet_stream_delivery_seconds) over the message phase.
	share string
}

func runSynapseLike(name string, sc scenario) error {
	dir, err := os.MkdirTemp("", "ssefanout-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	fmt.Printf("%s: %d users, each in their own room, %.0f msg/s for %s, Synapse-like transactions\n", name, sc.users, sc.rate, sc.duration)
	b, err := bridgePhase(sc, dir)
	if err != nil {
		return fmt.Errorf("bridge: %w", err)
	}
	report("bridge", b)
	ref, err := referencePhase(sc)
	if err != nil {
		return fmt.Errorf("net/http: %w", err)
	}
	report("net/http", ref)
	fmt.Printf("  bridge / net/http: CPU per message %.2f×, p50 %.2f×, p99 %.2f×\n", b.cpu/float64(b.messages)/(ref.cpu/float64(ref.messages)),
		float64(b.p50)/float64(ref.p50), float64(b.p99)/float64(ref.p99))
	return nil
}

func report(server string, p phase) {
	fmt.Printf("  %-8s CPU %.2fs over %s = %.1f µs per message; %s", server, p.cpu, p.elapsed.Round(time.Millisecond), p.cpu*1e6/float64(p.messages), p.load)
	fmt.Printf("  %-8s latency (queued at Synapse → event read): %s", server, p.latency)
	if p.share != "" {
		fmt.Printf("  %-8s its share (push arrived → frame written), openmeet_stream_delivery_seconds: %s\n", server, p.share)
	}
}

// bridgePhase starts the whole bridge with sc.users ghosts and portals,
// joins each ghost to its portal, opens the streams and pushes the
// messages.
func bridgePhase(sc scenario, dir string) (phase, error) {
	dbURI := "file:" + filepath.Join(dir, "bridge.db") + "?_txlock=immediate"
	if err := makeGhostsAndPortals(sc, dbURI); err != nil {
		return phase{}, err
	}
	secret := appservice.NewToken()
	b, err := startWholeBridge(dbURI, secret)
	if err != nil {
		return phase{}, err
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = b.Stop(ctx)
	}()
	base := b.Config.Appservice.Address
	token := b.Config.Appservice.HSToken
	if err := pushJoinsTo(base, token, sc); err != nil {
		return phase{}, err
	}
	tokenFile := filepath.Join(dir, "tokens")
	if err := writeTokens(tokenFile, secret, b.Config.ClientAPI.JWT.Audience, sc.users); err != nil {
		return phase{}, err
	}
	metricsURL := "http://" + b.Addr().String() + "/metrics"
	before, err := histogram.Scrape(metricsURL, deliveryMetric)
	if err != nil {
		return phase{}, err
	}
	txnBefore, err := histogram.Scrape(metricsURL, txnMetric)
	if err != nil {
		return phase{}, err
	}
	p, err := measure(sc, b.Addr().String(), base, token, tokenFile, b.Hub.Connections, cpuProfile)
	if err != nil {
		return p, err
	}
	after, err := histogram.Scrape(metricsURL, deliveryMetric)
	if err != nil {
		return phase{}, err
	}
	txnAfter, err := histogram.Scrape(metricsURL, txnMetric)
	if err != nil {
		return phase{}, err
	}
	txns := txnAfter.Sub(txnBefore)
	p.share = fmt.Sprintf("%s; of which storing and answering the %.0f transactions (%s): p50 %v, p99 %v", after.Sub(before), txns.Count(), txnMetric,
		txns.Quantile(0.5).Round(time.Microsecond), txns.Quantile(0.99).Round(time.Microsecond))
	return p, nil
}

const (
	deliveryMetric = "openmeet_stream_delivery_seconds"
	txnMetric      = "openmeet_appservice_transaction_seconds"
)

// makeGhostsAndPortals writes, before the bridge starts, a ghost per user
// and a portal per room, both already in sync with the homeserver (so the
// bridge does not try to register or create them on the absent one).
func makeGhostsAndPortals(sc scenario, dbURI string) error {
	ctx := context.Background()
	db, err := database.Open(database.Config{Type: "sqlite3-fk-wal", URI: dbURI}, zerolog.Nop())
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.Upgrade(ctx); err != nil {
		return err
	}
	empty := ""
	for u := range sc.users {
		g := &database.Ghost{Tenant: "load", Slug: "user" + strconv.Itoa(u), UserID: id.UserID(userID(u)), Displayname: "User " + strconv.Itoa(u)}
		if _, err := db.Ghosts.Put(ctx, g); err != nil {
			return err
		}
		if err := db.Ghosts.MarkRegistered(ctx, g.UserID); err != nil {
			return err
		}
		if err := db.Ghosts.SetApplied(ctx, g, g.Displayname, empty); err != nil {
			return err
		}
	}
	for room := range sc.rooms {
		key := database.PortalKey{Tenant: "load", Kind: "event", Slug: strconv.Itoa(room)}
		if _, err := db.Portals.Put(ctx, &database.Portal{Tenant: "load", Kind: "event", Slug: key.Slug, Alias: id.RoomAlias("#openmeet_load_event_" + key.Slug + ":" + loadDomain), Name: "Load " + key.Slug, Visibility: "public"}); err != nil {
			return err
		}
		if err := db.Portals.SetRoomID(ctx, key, roomID(room)); err != nil {
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

func startWholeBridge(dbURI, secret string) (*bridge.Bridge, error) {
	example, err := os.ReadFile("example-config.yaml")
	if err != nil {
		return nil, fmt.Errorf("%w (run from the repository root)", err)
	}
	cfg, err := bridge.ParseConfig(example, nil)
	if err != nil {
		return nil, err
	}
	asPort, err := freePort()
	if err != nil {
		return nil, err
	}
	hsPort, err := freePort()
	if err != nil {
		return nil, err
	}
	cfg.Homeserver.Address, cfg.Homeserver.Domain = "http://127.0.0.1:"+strconv.Itoa(hsPort), loadDomain
	cfg.Appservice.Address = "http://127.0.0.1:" + strconv.Itoa(asPort)
	cfg.Appservice.Hostname, cfg.Appservice.Port = "127.0.0.1", asPort
	cfg.Appservice.ID = "load"
	cfg.Appservice.ASToken, cfg.Appservice.HSToken = appservice.NewToken(), appservice.NewToken()
	cfg.Database.URI = dbURI
	cfg.Provisioning.SharedSecret = appservice.NewToken()
	cfg.ClientAPI.Enabled = true
	cfg.ClientAPI.JWT.Secrets = []string{secret}
	// 8,000 streams from one address, opened at once.
	s := &cfg.ClientAPI.Stream
	s.ConnectRate, s.ConnectBurst = 1e6, 1e6
	s.ConnectRatePerAddress, s.ConnectRatePerUser = 0, 0
	s.Writers = writers
	cfg.Logging.Level = "error"
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	b := bridge.New(cfg, zerolog.Nop())
	if err := b.Start(context.Background()); err != nil {
		return nil, err
	}
	return b, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func writeTokens(path, secret, audience string, users int) error {
	var sb strings.Builder
	exp := time.Now().Add(time.Hour).Unix()
	for u := range users {
		t, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "user" + strconv.Itoa(u), "tenant": "load", "aud": audience, "exp": exp}).SignedString([]byte(secret))
		if err != nil {
			return err
		}
		sb.WriteString(t + "\n")
	}
	return os.WriteFile(path, []byte(sb.String()), 0o600)
}

// pushJoinsTo joins every user to their room, in transactions of 100.
func pushJoinsTo(base, token string, sc scenario) error {
	p := newPusher(base)
	p.token = token
	var joins []string
	for u := range sc.users {
		joins = append(joins, memberEvent(u, u%sc.rooms))
		if len(joins) == 100 || u == sc.users-1 {
			if err := p.send(joins); err != nil {
				return err
			}
			joins = nil
		}
	}
	return nil
}

// measure opens the streams (a child process), waits until the server
// holds all of them, then has a Synapse child push the messages and reads
// this process's CPU from the first transaction to 2 s after the last.
func measure(sc scenario, addr, base, token, tokenFile string, open func() int, profile string) (phase, error) {
	clients := exec.Command(os.Args[0], "-client", addr, "-users", strconv.Itoa(sc.users), "-tokens", tokenFile, "-goclient="+strconv.FormatBool(goClient))
	clients.Stderr = os.Stderr
	out, _ := clients.StdoutPipe()
	if err := clients.Start(); err != nil {
		return phase{}, err
	}
	defer func() { _ = clients.Process.Kill(); _ = clients.Wait() }()
	lines := bufio.NewReader(out)
	if line, err := readLine(lines); err != nil || !strings.HasPrefix(line, "ready") {
		return phase{}, fmt.Errorf("clients failed: %q %v", line, err)
	}
	for deadline := time.Now().Add(time.Minute); open() < sc.users; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			return phase{}, fmt.Errorf("only %d of %d streams", open(), sc.users)
		}
	}
	time.Sleep(time.Second) // let the connection phase settle
	_ = clients.Process.Signal(syscall.SIGUSR1)
	if _, err := readLine(lines); err != nil { // forget the connection phase
		return phase{}, err
	}

	load := exec.Command(os.Args[0], "-synapse", base, "-hstoken", token, "-rooms", strconv.Itoa(sc.rooms),
		"-rate", strconv.FormatFloat(sc.rate, 'f', -1, 64), "-duration", sc.duration.String())
	load.Stderr = os.Stderr
	loadOut, _ := load.StdoutPipe()
	if cpuProfile != "" {
		f, err := os.Create(profile)
		if err != nil {
			return phase{}, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return phase{}, err
		}
		defer pprof.StopCPUProfile()
	}
	cpu0, start := cpuSeconds(), time.Now()
	if err := load.Start(); err != nil {
		return phase{}, err
	}
	defer func() { _ = load.Process.Kill(); _ = load.Wait() }()
	summary, err := bufio.NewReader(loadOut).ReadString('\n')
	if err != nil || !strings.HasPrefix(summary, "pushed") {
		return phase{}, fmt.Errorf("synapse child: %q %v", summary, err)
	}
	time.Sleep(2 * time.Second) // let the last deliveries land
	p := phase{cpu: cpuSeconds() - cpu0, elapsed: time.Since(start), load: summary, messages: int(sc.rate * sc.duration.Seconds())}
	if n := open(); n != sc.users {
		fmt.Printf("  %d of %d streams were cut off during the run\n", sc.users-n, sc.users)
	}
	_ = clients.Process.Signal(syscall.SIGUSR1)
	if p.latency, err = readLine(lines); err != nil {
		return phase{}, fmt.Errorf("no report from clients: %w", err)
	}
	p.p50, p.p99 = percentiles(p.latency)
	return p, nil
}

// percentiles reads p50 and p99 back from the clients' report.
func percentiles(line string) (p50, p99 time.Duration) {
	for _, f := range strings.Split(line, ", ") {
		if v, ok := strings.CutPrefix(f, "p50 "); ok {
			p50, _ = time.ParseDuration(v)
		} else if v, ok := strings.CutPrefix(f, "p99 "); ok {
			p99, _ = time.ParseDuration(strings.TrimSuffix(v, ","))
		}
	}
	return p50, p99
}

// synapseLoad is the Synapse child's job.
type synapseLoad struct {
	token    string
	rooms    int
	rate     float64
	duration time.Duration
}

// runSynapse queues messages at the rate, each stamped with the time it
// was queued, and pushes them as Synapse does: one transaction in flight,
// the next carrying everything that queued while it was.
func runSynapse(base string, o synapseLoad) error {
	total := int(o.rate * o.duration.Seconds())
	var (
		mu    sync.Mutex
		queue []string
	)
	wake := make(chan struct{}, 1)
	start := time.Now()
	go func() {
		for k := 0; k < total; time.Sleep(200 * time.Microsecond) {
			due := min(total, int(o.rate*time.Since(start).Seconds()))
			if due == k {
				continue
			}
			mu.Lock()
			for ; k < due; k++ {
				queue = append(queue, messageEvent(k, k%o.rooms, time.Now().UnixNano()))
			}
			mu.Unlock()
			select {
			case wake <- struct{}{}:
			default:
			}
		}
	}()
	p := newPusher(base)
	p.token, p.txn = o.token, 1<<20
	cpu0 := cpuSeconds()
	sent, txns, largest := 0, 0, 0
	giveUp := time.After(o.duration + time.Minute)
	for sent < total {
		select {
		case <-wake:
		case <-giveUp:
			return fmt.Errorf("%d of %d messages pushed in %s", sent, total, o.duration+time.Minute)
		}
		mu.Lock()
		batch := queue
		queue = nil
		mu.Unlock()
		if len(batch) == 0 {
			continue
		}
		if err := p.send(batch); err != nil {
			return err
		}
		sent += len(batch)
		txns++
		largest = max(largest, len(batch))
	}
	fmt.Printf("pushed %d messages in %d transactions (%.2f per transaction, largest %d) in %s; Synapse stand-in's CPU %.1f µs per message\n",
		sent, txns, float64(sent)/float64(txns), largest, time.Since(start).Round(time.Millisecond), (cpuSeconds()-cpu0)*1e6/float64(sent))
	return nil
}

// referencePhase measures the plain server with the same clients and load.
func referencePhase(sc scenario) (phase, error) {
	ref := newRefServer()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return phase{}, err
	}
	srv := &http.Server{Handler: ref.routes(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	defer srv.Close()
	base := "http://" + l.Addr().String()
	if err := pushJoinsTo(base, hsToken, sc); err != nil {
		return phase{}, err
	}
	return measure(sc, l.Addr().String(), base, hsToken, "", ref.open, cpuProfile+".nethttp")
}

// refServer is the plain net/http SSE server a Go programmer would write
// first: room members from the member events, a buffered channel and a
// goroutine per stream, each frame written and flushed on its own. It keeps
// nothing on disk and no history, so it cannot resume a stream.
type refServer struct {
	mu      sync.RWMutex
	members map[string][]string      // room → users
	streams map[string][]chan []byte // user → open streams
	seq     atomic.Int64
	dropped atomic.Int64
}

func newRefServer() *refServer {
	return &refServer{members: map[string][]string{}, streams: map[string][]chan []byte{}}
}

func (s *refServer) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /events", s.serveStream)
	mux.HandleFunc("PUT /_matrix/app/v1/transactions/{txnId}", s.putTransaction)
	return mux
}

func (s *refServer) open() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	n := 0
	for _, chans := range s.streams {
		n += len(chans)
	}
	return n
}

type refEvent struct {
	EventID  string          `json:"event_id"`
	RoomID   string          `json:"room_id"`
	Type     string          `json:"type"`
	Sender   string          `json:"sender"`
	StateKey *string         `json:"state_key,omitempty"`
	Content  json.RawMessage `json:"content"`
}

func (s *refServer) putTransaction(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+hsToken {
		http.Error(w, `{"errcode":"M_FORBIDDEN"}`, http.StatusForbidden)
		return
	}
	var txn struct {
		Events []refEvent `json:"events"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 32<<20)).Decode(&txn); err != nil {
		http.Error(w, `{"errcode":"M_NOT_JSON"}`, http.StatusBadRequest)
		return
	}
	for i := range txn.Events {
		evt := &txn.Events[i]
		if evt.Type == "m.room.member" && evt.StateKey != nil {
			s.mu.Lock()
			s.members[evt.RoomID] = append(s.members[evt.RoomID], *evt.StateKey)
			s.mu.Unlock()
		}
		data, err := json.Marshal(evt)
		if err != nil {
			continue
		}
		frame := fmt.Appendf(nil, "id: %d\nevent: %s\ndata: %s\n\n", s.seq.Add(1), evt.Type, data)
		s.mu.RLock()
		for _, user := range s.members[evt.RoomID] {
			for _, ch := range s.streams[user] {
				select {
				case ch <- frame:
				default:
					s.dropped.Add(1)
				}
			}
		}
		s.mu.RUnlock()
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte("{}"))
}

func (s *refServer) serveStream(w http.ResponseWriter, r *http.Request) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	user := r.URL.Query().Get("user")
	ch := make(chan []byte, 256)
	s.mu.Lock()
	s.streams[user] = append(s.streams[user], ch)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.streams[user] = removeChan(s.streams[user], ch)
		s.mu.Unlock()
	}()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	flusher.Flush()
	for {
		select {
		case <-r.Context().Done():
			return
		case frame := <-ch:
			if _, err := w.Write(frame); err != nil {
				return
			}
			flusher.Flush()
		}
	}
}

func removeChan(chans []chan []byte, ch chan []byte) []chan []byte {
	for i, c := range chans {
		if c == ch {
			return append(chans[:i], chans[i+1:]...)
		}
	}
	return chans
}

// Command ssefanout measures event delivery through the bridge: Synapse's
// side is played by pushing appservice transactions to the real handler;
// the browsers' side by a second process holding one stream per user and
// timing each event from the moment its transaction was sent to the moment
// the client read it. It reports latency percentiles, the server's CPU per
// delivery, and the floor: a plain loop writing the same bytes to the same
// number of loopback connections, measured in the same run.
//
//	go run ./bench/ssefanout -scenario room1k
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/mux"
	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/id"

	"github.com/openmeet-team/openmeet-bridge/appservice"
	"github.com/openmeet-team/openmeet-bridge/database"
	"github.com/openmeet-team/openmeet-bridge/sse"
)

// scenario is one load shape of the issue.
type scenario struct {
	users, rooms int     // users are spread evenly over rooms
	rate         float64 // messages per second, in total
	duration     time.Duration
	// perTxn is how many messages share a transaction (default: one
	// transaction every 10 ms).
	perTxn int
	// joins is how many new members join the rooms while the messages
	// flow, pushed back to back in transactions of 100.
	joins int
	// synapse: the messages are queued as they come and pushed as Synapse
	// pushes them (one transaction in flight, the next carrying whatever
	// queued meanwhile) to the whole bridge, and then, in the same run, to
	// a plain net/http SSE server (see synapse.go).
	synapse bool
}

var scenarios = map[string]scenario{
	"room1k":  {users: 1000, rooms: 1, rate: 10, duration: 20 * time.Second},
	"room10k": {users: 10000, rooms: 1, rate: 2, duration: 20 * time.Second},
	"many":    {users: 8000, rooms: 8000, rate: 1000, duration: 10 * time.Second},
	// Transactions of 10 messages: several frames wait for each stream and
	// leave in one write.
	"burst1k": {users: 1000, rooms: 1, rate: 100, duration: 20 * time.Second, perTxn: 10},
	// A mass join: 10,000 people join while 1,000 members' streams are
	// open and messages flow; no stream may be cut off, no message lost.
	"massjoin": {users: 1000, rooms: 1, rate: 10, duration: 20 * time.Second, joins: 10000},
	// many, with Synapse's transaction sizes, against a plain server.
	"many-synapse": {users: 8000, rooms: 8000, rate: 1000, duration: 10 * time.Second, synapse: true},
}

var (
	goClient   bool
	cpuProfile string
	writers    int
)

const hsToken = "load-hs-token-0123456789abcdef0123456789"

func main() {
	name := flag.String("scenario", "room1k", "room1k, room10k, many, burst1k, massjoin or many-synapse")
	client := flag.String("client", "", "internal: hold streams to this address")
	floor := flag.Bool("floor", false, "internal: with -client, hold raw connections for the floor")
	users := flag.Int("users", 0, "internal: number of streams")
	flag.BoolVar(&goClient, "goclient", false, "clients read with a goroutine per stream instead of epoll loops")
	profile := flag.String("cpuprofile", "", "write a CPU profile of the message phase to this file (many-synapse: the bridge's; the plain server's to this name + .nethttp)")
	flag.IntVar(&writers, "writers", 4, "stream writer goroutines (client_api.stream.writers)")
	tokens := flag.String("tokens", "", "internal: with -client, a file of one bearer token per stream")
	synapse := flag.String("synapse", "", "internal: push Synapse-like transactions to this base URL")
	var push synapseLoad
	flag.StringVar(&push.token, "hstoken", hsToken, "internal: with -synapse, the hs_token")
	flag.IntVar(&push.rooms, "rooms", 1, "internal: with -synapse, number of rooms")
	flag.Float64Var(&push.rate, "rate", 1000, "internal: with -synapse, messages per second")
	flag.DurationVar(&push.duration, "duration", 10*time.Second, "internal: with -synapse, how long")
	flag.Parse()
	cpuProfile = *profile
	// Every run is bounded in time, whatever goes wrong.
	time.AfterFunc(10*time.Minute, func() {
		fmt.Fprintln(os.Stderr, "ssefanout: gave up after 10 minutes")
		os.Exit(2)
	})
	var err error
	switch {
	case *synapse != "":
		err = runSynapse(*synapse, push)
	case *client != "":
		if err = loadTokens(*tokens); err == nil {
			err = runClients(*client, *users, *floor)
		}
	default:
		sc, ok := scenarios[*name]
		if !ok {
			err = fmt.Errorf("unknown scenario %q", *name)
			break
		}
		if sc.synapse {
			err = runSynapseLike(*name, sc)
		} else {
			err = run(*name, sc)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ssefanout:", err)
		os.Exit(1)
	}
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

type sink struct{ hub *sse.Hub }

func (s sink) EventsLogged(_ context.Context, events []*database.LoggedEvent) {
	s.hub.Logged(events, time.Time{})
}

func (s sink) EphemeralReceived(context.Context, []*appservice.Ephemeral) {}

func run(name string, sc scenario) error {
	dir, err := os.MkdirTemp("", "ssefanout-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	db, err := database.Open(database.Config{Type: "sqlite3-fk-wal", URI: "file:" + filepath.Join(dir, "db") + "?_txlock=immediate"}, zerolog.Nop())
	if err != nil {
		return err
	}
	defer db.Close()
	if err = db.Upgrade(ctx); err != nil {
		return err
	}
	asCfg := &appservice.Config{HSToken: hsToken, MaxBodyBytes: 32 << 20, Bot: appservice.BotConfig{Username: "bot"},
		GhostTemplate: "openmeet_{tenant}_{slug}", AliasTemplate: "openmeet_{tenant}_{kind}_{slug}"}
	as, err := appservice.NewServer(asCfg, "load.local", db, zerolog.Nop(), nil)
	if err != nil {
		return err
	}
	hub := sse.NewHub(db, sse.Config{Heartbeat: 25 * time.Second, Buffer: 256, MaxPerUser: 10, ConnectRate: 1e6, ConnectBurst: 1e6, Park: true, Writers: writers}, zerolog.Nop())
	as.Sink = sink{hub}
	go func() { _ = hub.Run(ctx) }()
	<-hub.Started() // streams are refused until the hub follows the log
	r := mux.NewRouter()
	as.Register(r)
	// The stream as the client API serves it, minus authentication.
	r.HandleFunc("/events", func(w http.ResponseWriter, r *http.Request) { hub.Serve(w, r, id.UserID(r.URL.Query().Get("user"))) })
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: r}
	go func() { _ = srv.Serve(l) }()
	defer srv.Close()
	base := "http://" + l.Addr().String()
	push := newPusher(base)

	// Portals for the rooms, so payloads carry them, and every user joined.
	for room := range sc.rooms {
		key := database.PortalKey{Tenant: "load", Kind: "event", Slug: strconv.Itoa(room)}
		if _, err := db.Portals.Put(ctx, &database.Portal{Tenant: "load", Kind: "event", Slug: key.Slug, Alias: id.RoomAlias("#" + key.Slug + ":load.local"), Name: "Load " + key.Slug, Visibility: "public"}); err != nil {
			return err
		}
		if err := db.Portals.SetRoomID(ctx, key, roomID(room)); err != nil {
			return err
		}
	}
	var joins []string
	for u := range sc.users {
		joins = append(joins, memberEvent(u, u%sc.rooms))
		if len(joins) == 100 || u == sc.users-1 {
			if err := push.send(joins); err != nil {
				return err
			}
			joins = nil
		}
	}
	time.Sleep(500 * time.Millisecond)

	clients := exec.Command(os.Args[0], "-client", l.Addr().String(), "-users", strconv.Itoa(sc.users), "-goclient="+strconv.FormatBool(goClient))
	clients.Stderr = os.Stderr
	out, _ := clients.StdoutPipe()
	if err = clients.Start(); err != nil {
		return err
	}
	defer func() { _ = clients.Process.Kill(); _ = clients.Wait() }()
	lines := bufio.NewReader(out)
	if line, err := readLine(lines); err != nil || !strings.HasPrefix(line, "ready") {
		return fmt.Errorf("clients failed: %q %v", line, err)
	}
	for deadline := time.Now().Add(time.Minute); hub.Connections() < sc.users; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d streams", hub.Connections(), sc.users)
		}
	}

	// Messages at the scenario's rate, a transaction at a time as Synapse
	// sends them; each carries its send time.
	perTxn := max(1, int(sc.rate/100))
	if sc.perTxn > 0 {
		perTxn = sc.perTxn
	}
	interval := time.Duration(float64(time.Second) * float64(perTxn) / sc.rate)
	total := int(sc.rate * sc.duration.Seconds())
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	cpu0, start := cpuSeconds(), time.Now()
	joined := make(chan error, 1)
	go func() { joined <- pushJoins(newPusher(base), sc) }()
	sent := 0
	for tick := time.NewTicker(interval); sent < total; <-tick.C {
		var msgs []string
		for range perTxn {
			msgs = append(msgs, messageEvent(sent, sent%sc.rooms, time.Now().UnixNano()))
			sent++
		}
		if err := push.send(msgs); err != nil {
			return err
		}
	}
	if err := <-joined; err != nil {
		return err
	}
	time.Sleep(2 * time.Second) // let the last deliveries land
	open := hub.Connections()
	if open != sc.users {
		fmt.Printf("  %d of %d streams were cut off during the run\n", sc.users-open, sc.users)
	}
	cpu := cpuSeconds() - cpu0
	elapsed := time.Since(start)
	deliveries := sent * (sc.users / sc.rooms)
	_ = clients.Process.Signal(syscall.SIGUSR1)
	report, err := readLine(lines)
	if err != nil {
		return fmt.Errorf("no report from clients: %w", err)
	}
	// The streams are done with: free their descriptors for the floor's.
	_ = clients.Process.Kill()
	for deadline := time.Now().Add(30 * time.Second); hub.Connections() > 0 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	floorPer, floorLatency, err := measureFloor(sc, deliveries)
	if err != nil {
		return err
	}
	fmt.Printf("%s: %d users in %d rooms, %d messages in %s → %d deliveries\n", name, sc.users, sc.rooms, sent, elapsed.Round(time.Millisecond), deliveries)
	if sc.joins > 0 {
		fmt.Printf("  %d new members joined during the messages; %d of %d streams cut off\n", sc.joins, sc.users-open, sc.users)
	}
	fmt.Printf("  latency (txn sent → event read): %s", report)
	fmt.Printf("  floor latency (plain writes, one loop per core, same clients): %s", floorLatency)
	fmt.Printf("  server CPU: %.2fs = %.2f µs per delivery; floor (plain writes of the same bytes): %.2f µs; ratio %.2f\n",
		cpu, cpu*1e6/float64(deliveries), floorPer, cpu*1e6/float64(deliveries)/floorPer)
	return nil
}

// readLine reads a line from the clients' process, giving up after a
// minute rather than waiting for ever on clients that went wrong.
func readLine(r *bufio.Reader) (string, error) {
	type result struct {
		line string
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		line, err := r.ReadString('\n')
		ch <- result{line, err}
	}()
	select {
	case res := <-ch:
		return res.line, res.err
	case <-time.After(time.Minute):
		return "", errors.New("no answer from the clients in a minute")
	}
}

func roomID(room int) id.RoomID { return id.RoomID(fmt.Sprintf("!room%d:load.local", room)) }

func userID(u int) string { return fmt.Sprintf("@openmeet_load_user%d:load.local", u) }

func memberEvent(u, room int) string {
	return fmt.Sprintf(`{"event_id":"$join%d","room_id":%q,"type":"m.room.member","state_key":%q,"sender":%q,"origin_server_ts":1,"content":{"membership":"join","displayname":"User %d"}}`,
		u, roomID(room), userID(u), userID(u), u)
}

func messageEvent(n, room int, ts int64) string {
	return fmt.Sprintf(`{"event_id":"$msg%d","room_id":%q,"type":"m.room.message","sender":%q,"origin_server_ts":1,"content":{"msgtype":"m.text","body":"load %d","ts":%d}}`,
		n, roomID(room), userID(room), n, ts)
}

// pushJoins pushes sc.joins member events of new users, spread over the
// rooms, in transactions of 100 (txn ids of their own).
func pushJoins(p *pusher, sc scenario) error {
	p.txn = 1 << 30
	var joins []string
	for j := range sc.joins {
		u := sc.users + j
		joins = append(joins, memberEvent(u, u%sc.rooms))
		if len(joins) == 100 || j == sc.joins-1 {
			if err := p.send(joins); err != nil {
				return err
			}
			joins = nil
		}
	}
	return nil
}

type pusher struct {
	base  string
	token string
	txn   int
	http  *http.Client
}

func newPusher(base string) *pusher {
	return &pusher{base: base, token: hsToken, http: &http.Client{Timeout: 30 * time.Second}}
}

func (p *pusher) send(events []string) error {
	p.txn++
	body := `{"events":[` + strings.Join(events, ",") + `]}`
	req, _ := http.NewRequest(http.MethodPut, fmt.Sprintf("%s/_matrix/app/v1/transactions/%d", p.base, p.txn), strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+p.token)
	resp, err := p.http.Do(req)
	if err != nil {
		return err
	}
	// Read to the end, or the client closes the connection and the next
	// transaction pays for a new one; Synapse keeps its connection.
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("transaction %d: HTTP %d", p.txn, resp.StatusCode)
	}
	return nil
}

// floorFrame is a frame of the size the bridge sends, carrying a send time
// like the scenario's messages (ts 0 for the CPU floor).
func floorFrame(ts int64) []byte {
	head := fmt.Sprintf("id: 123456\nevent: m.room.message\ndata: {\"ts\":%d,\"pad\":\"", ts)
	return []byte(head + strings.Repeat("x", max(0, 600-len(head)-4)) + "\"}\n\n")
}

// measureFloor holds the same number of connections to the same kind of
// clients and does what the bridge does with nothing of the bridge: first
// the scenario's messages at its rate, each written to its room's members
// by one plain loop per core (the latency floor), then a tight loop of as
// many writes as there were deliveries (capped), for the CPU per write.
func measureFloor(sc scenario, deliveries int) (float64, string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, "", err
	}
	defer l.Close()
	n := sc.users
	clients := exec.Command(os.Args[0], "-client", l.Addr().String(), "-users", strconv.Itoa(n), "-floor", "-goclient="+strconv.FormatBool(goClient))
	clients.Stderr = os.Stderr
	out, _ := clients.StdoutPipe()
	if err := clients.Start(); err != nil {
		return 0, "", err
	}
	defer func() { _ = clients.Process.Kill(); _ = clients.Wait() }()
	lines := bufio.NewReader(out)
	conns := make([]net.Conn, 0, n)
	for range n {
		c, err := l.Accept()
		if err != nil {
			return 0, "", err
		}
		conns = append(conns, c)
	}
	if line, err := readLine(lines); err != nil || !strings.HasPrefix(line, "ready") {
		return 0, "", fmt.Errorf("floor clients failed: %q %v", line, err)
	}
	_ = clients.Process.Signal(syscall.SIGUSR1) // forget the connection phase
	if _, err := readLine(lines); err != nil {
		return 0, "", err
	}

	members := make([][]net.Conn, sc.rooms)
	for u, c := range conns {
		members[u%sc.rooms] = append(members[u%sc.rooms], c)
	}
	loops := runtime.GOMAXPROCS(0)
	perTxn := max(1, int(sc.rate/100))
	if sc.perTxn > 0 {
		perTxn = sc.perTxn
	}
	total := int(sc.rate * sc.duration.Seconds())
	interval := time.Duration(float64(time.Second) * float64(perTxn) / sc.rate)
	var failed atomic.Bool
	var wg sync.WaitGroup
	tick := time.NewTicker(interval)
	for k := 0; k < total; <-tick.C {
		// The messages of a transaction, each written on its own.
		for range perTxn {
			frame := floorFrame(time.Now().UnixNano())
			room := members[k%sc.rooms]
			k++
			for w := range min(loops, len(room)) {
				wg.Go(func() {
					for i := w; i < len(room); i += loops {
						if _, err := room[i].Write(frame); err != nil {
							failed.Store(true)
						}
					}
				})
			}
		}
	}
	wg.Wait()
	tick.Stop()
	time.Sleep(2 * time.Second)
	if failed.Load() {
		return 0, "", errors.New("floor write failed")
	}
	_ = clients.Process.Signal(syscall.SIGUSR1)
	report, err := readLine(lines)
	if err != nil {
		return 0, "", err
	}

	frame := floorFrame(0)
	writes := min(deliveries, 2_000_000)
	cpu0 := cpuSeconds()
	for i := range writes {
		if _, err := conns[i%n].Write(frame); err != nil {
			return 0, "", err
		}
	}
	return (cpuSeconds() - cpu0) * 1e6 / float64(writes), report, nil
}

// runClients holds the streams (or raw connections, for the floor), and on
// each SIGUSR1 prints latency percentiles of the events read since the
// last, and the clients' own CPU per event.
func runClients(addr string, n int, floor bool) error {
	lat := make(chan time.Duration, 1<<22)
	if !goClient {
		if err := epollClients(addr, n, floor, lat); err != nil {
			return err
		}
	}
	for u := range n {
		if !goClient {
			break
		}
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			return err
		}
		if !floor {
			_, _ = conn.Write([]byte(streamRequest(u)))
		}
		go readStream(conn, lat)
	}
	sig := make(chan os.Signal, 1)
	signalNotify(sig)
	fmt.Println("ready")
	for {
		cpu0 := cpuSeconds()
		<-sig
		cpu := cpuSeconds() - cpu0
		var all []time.Duration
		for len(lat) > 0 {
			all = append(all, <-lat)
		}
		if len(all) == 0 {
			fmt.Println("no events read")
			continue
		}
		slices.Sort(all)
		pct := func(p float64) time.Duration { return all[min(len(all)-1, int(float64(len(all))*p))] }
		fmt.Printf("%d read, p50 %s, p99 %s, max %s; clients' CPU %.2f µs per event read\n", len(all), pct(0.5).Round(10*time.Microsecond), pct(0.99).Round(10*time.Microsecond), all[len(all)-1].Round(10*time.Microsecond), cpu*1e6/float64(len(all)))
	}
}

// readStream reads frames and times each message. It finds the send time
// with a byte search instead of decoding the JSON: the load generator
// shares the machine with the bridge and should cost as little as it can.
func readStream(conn net.Conn, lat chan<- time.Duration) {
	r := bufio.NewReaderSize(conn, 16<<10)
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return
		}
		if ts, ok := sendTime(line); ok {
			lat <- time.Duration(time.Now().UnixNano() - ts)
		}
	}
}

var tsMarker = []byte(`"ts":`)

// sendTime finds the send time in a data line with a byte search rather
// than a JSON decode; false for any other line.
func sendTime(line []byte) (int64, bool) {
	if !bytes.HasPrefix(line, []byte("data: ")) {
		return 0, false
	}
	i := bytes.Index(line, tsMarker)
	if i < 0 {
		return 0, false
	}
	rest := line[i+len(tsMarker):]
	end := bytes.IndexAny(rest, ",}")
	if end < 0 {
		return 0, false
	}
	ts, err := strconv.ParseInt(string(rest[:end]), 10, 64)
	return ts, err == nil && ts > 0
}

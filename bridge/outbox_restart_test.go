package bridge_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/openmeet-team/openmeet-bridge/bridge"
	"github.com/openmeet-team/openmeet-bridge/database"
	"github.com/openmeet-team/openmeet-bridge/internal/harness"
)

// hsProxy stands between the bridge and Synapse. It records the sends it
// passes on and can, per room, hold sends until released, refuse them with
// 502 (Synapse never sees them), or pass a send on to Synapse and then cut
// the connection instead of answering (Synapse has the message, the bridge
// never hears so).
type hsProxy struct {
	*httptest.Server
	rp *httputil.ReverseProxy

	mu      sync.Mutex
	modes   map[id.RoomID]string
	release chan struct{}
	held    int
	sends   []string // the txn ids of forwarded sends, in order
	// noHistory refuses reads of room history (the bridge's search for
	// an earlier send) with 502.
	noHistory bool
}

const (
	proxyHold    = "hold"
	proxyRefuse  = "refuse"
	proxySwallow = "swallow"
)

func newHSProxy(t *testing.T, target string) *hsProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &hsProxy{rp: httputil.NewSingleHostReverseProxy(u), modes: map[id.RoomID]string{}, release: make(chan struct{})}
	p.Server = httptest.NewServer(p)
	t.Cleanup(p.Close)
	return p
}

// set changes how sends to room are treated ("" passes them on).
func (p *hsProxy) set(room id.RoomID, mode string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.modes[room] = mode
	if mode != proxyHold {
		close(p.release)
		p.release = make(chan struct{})
	}
}

func (p *hsProxy) heldNow() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.held
}

// forwarded counts the forwarded sends of the outbox entry (by its
// homeserver txn id).
func (p *hsProxy) forwarded(entry *database.OutboxEntry) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, txn := range p.sends {
		if txn == entry.HSTxnID {
			n++
		}
	}
	return n
}

func (p *hsProxy) setNoHistory(on bool) {
	p.mu.Lock()
	p.noHistory = on
	p.mu.Unlock()
}

func (p *hsProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	noHistory := p.noHistory
	p.mu.Unlock()
	if noHistory && r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/messages") {
		http.Error(w, `{"errcode":"M_UNKNOWN","error":"bad gateway for the test"}`, http.StatusBadGateway)
		return
	}
	// PUT /_matrix/client/v3/rooms/{room}/send/{type}/{txn}, …/redact/{event}/{txn}
	parts := strings.Split(r.URL.Path, "/")
	if r.Method != http.MethodPut || len(parts) != 9 || parts[4] != "rooms" || (parts[6] != "send" && parts[6] != "redact") {
		p.rp.ServeHTTP(w, r)
		return
	}
	room := id.RoomID(parts[5])
	// Reading the body lets the server notice when the bridge gives up on
	// a held request (r.Context ends).
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	p.mu.Lock()
	mode, release := p.modes[room], p.release
	if mode == proxyHold {
		p.held++
	}
	p.mu.Unlock()
	if mode == proxyHold {
		select {
		case <-release:
		case <-r.Context().Done():
		}
		p.mu.Lock()
		p.held--
		p.mu.Unlock()
		if r.Context().Err() != nil {
			return // the bridge gave up; Synapse never sees it
		}
	}
	if mode == proxyRefuse {
		http.Error(w, `{"errcode":"M_UNKNOWN","error":"bad gateway for the test"}`, http.StatusBadGateway)
		return
	}
	p.mu.Lock()
	p.sends = append(p.sends, parts[8])
	p.mu.Unlock()
	if mode != proxySwallow {
		p.rp.ServeHTTP(w, r)
		return
	}
	p.rp.ServeHTTP(httptest.NewRecorder(), r)
	if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
		_ = conn.Close()
	}
}

// pushGate listens where Synapse pushes transactions and passes them on to
// the bridge, or refuses them while closed (pings still pass).
type pushGate struct {
	mu     sync.Mutex
	closed bool
}

func startPushGate(t *testing.T, listenPort, bridgePort int) *pushGate {
	t.Helper()
	g := &pushGate{}
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", bridgePort)})
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", listenPort))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		closed := g.closed
		g.mu.Unlock()
		if closed && strings.Contains(r.URL.Path, "/_matrix/app/v1/transactions/") {
			http.Error(w, `{"errcode":"M_UNKNOWN","error":"closed for the test"}`, http.StatusServiceUnavailable)
			return
		}
		rp.ServeHTTP(w, r)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return g
}

func (g *pushGate) setClosed(closed bool) {
	g.mu.Lock()
	g.closed = closed
	g.mu.Unlock()
}

// whoami is the Matrix user ID behind a client API token.
func whoami(t *testing.T, b *bridge.Bridge, token string) id.UserID {
	t.Helper()
	var who struct {
		UserID id.UserID `json:"user_id"`
	}
	if code := call(t, b, token, "GET", "/whoami", nil, &who); code != 200 || who.UserID == "" {
		t.Fatalf("whoami: %d %+v", code, who)
	}
	return who.UserID
}

func portalRoom(t *testing.T, b *bridge.Bridge, tenant, slug string) id.RoomID {
	t.Helper()
	p, err := b.DB.Portals.Get(context.Background(), database.PortalKey{Tenant: tenant, Kind: "event", Slug: slug})
	if err != nil || p == nil || p.RoomID == "" {
		t.Fatalf("portal %s: %+v %v", slug, p, err)
	}
	return p.RoomID
}

// entryOf reads the outbox entry of a user's txn id.
func entryOf(t *testing.T, db *database.Database, user id.UserID, txn string) *database.OutboxEntry {
	t.Helper()
	e, err := db.Outbox.ByTxn(context.Background(), user, txn)
	if err != nil || e == nil {
		t.Fatalf("outbox entry %s: %+v %v", txn, e, err)
	}
	return e
}

// timeline reads, from Synapse as user, the messages user sent in room,
// oldest first.
func timeline(t *testing.T, b *bridge.Bridge, user id.UserID, room id.RoomID) []*event.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := b.HS.Intent(user).Client
	filter := &mautrix.FilterPart{Senders: []id.UserID{user}, Types: []event.Type{event.EventMessage}}
	var out []*event.Event
	from := ""
	for range 20 {
		resp, err := client.Messages(ctx, room, from, "", mautrix.DirectionBackward, filter, 100)
		if err != nil {
			t.Fatalf("read the room's timeline: %v", err)
		}
		out = append(out, resp.Chunk...)
		if resp.End == "" || len(resp.Chunk) == 0 {
			slices.Reverse(out)
			return out
		}
		from = resp.End
	}
	t.Fatal("timeline too long")
	return nil
}

func bodies(events []*event.Event) []string {
	out := make([]string, len(events))
	for i, evt := range events {
		out[i], _ = evt.Content.Raw["body"].(string)
	}
	return out
}

// send is a client API send that must be accepted (sent or pending).
func send(t *testing.T, b *bridge.Bridge, token, slug, txn string) {
	t.Helper()
	var out struct{ State string }
	if code := call(t, b, token, "PUT", "/rooms/events/"+slug+"/send/"+txn, map[string]string{"body": txn}, &out); (code != 200 && code != 202) || out.State == "failed" {
		t.Fatalf("send %s: %d %+v", txn, code, out)
	}
}

// TestOutboxOrderAcrossSynapseRestart: 20 messages of one user to one room
// are accepted by two replicas on PostgreSQL while Synapse is stopped;
// deliveries fail and back off, one replica restarts, Synapse starts again.
// The room gets the 20 in the order they were accepted, each once.
func TestOutboxOrderAcrossSynapseRestart(t *testing.T) {
	hs := harness.OwnSynapse(t, harness.SynapseOptions{})
	cfgA := clientConfig(t, hs)
	cfgA.Database.Type, cfgA.Database.URI = "postgres", harness.PostgresURI(t)
	cfgA.ClientAPI.SendWait = 200 * time.Millisecond
	a := startBridge(t, cfgA)
	cfgB := *cfgA
	var err error
	if cfgB.Appservice.Port, err = harness.FreePort(); err != nil {
		t.Fatal(err)
	}
	b := startBridge(t, &cfgB)
	eventually(t, 60*time.Second, "both replicas to be ready", func() bool { return a.HS.Ready() && b.HS.Ready() })
	tenant, _, bob := meetupWithAdaAndBob(t, a, b)
	bobID, room := whoami(t, a, bob), portalRoom(t, a, tenant, "meetup")

	if err := hs.Pause(); err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := range 20 {
		txn := fmt.Sprintf("k%02d", i)
		send(t, []*bridge.Bridge{a, b}[i%2], bob, "meetup", txn)
		want = append(want, txn)
	}
	// Deliveries fail while Synapse is down, and back off.
	eventually(t, 2*time.Minute, "a failed delivery of the first message", func() bool {
		return entryOf(t, b.DB, bobID, "k00").Attempts >= 1
	})
	stopBridge(t, a)
	if err := hs.Resume(); err != nil {
		t.Fatal(err)
	}
	a = startBridge(t, cfgA)
	eventually(t, 3*time.Minute, "every message to be sent", func() bool {
		return entryOf(t, a.DB, bobID, "k19").State == database.OutboxSent
	})
	got := timeline(t, a, bobID, room)
	if fmt.Sprint(bodies(got)) != fmt.Sprint(want) {
		t.Fatalf("the room got\n %v\nwant\n %v", bodies(got), want)
	}
	for i, evt := range got {
		if e := entryOf(t, a.DB, bobID, want[i]); e.State != database.OutboxSent || e.EventID != evt.ID {
			t.Fatalf("entry %s: %+v, the room has %s", want[i], e, evt.ID)
		}
	}
}

// twoRooms provisions a second portal "other" with ada and bob, next to
// the "meetup" of meetupWithAdaAndBob.
func twoRooms(t *testing.T, b *bridge.Bridge) (tenant, bob string) {
	t.Helper()
	tenant, _, bob = meetupWithAdaAndBob(t, b, b)
	base := "/tenants/" + tenant + "/events/other"
	provision(t, b, "PUT", base, map[string]any{"name": "Other", "visibility": "public"}, nil)
	provision(t, b, "POST", base+"/members:batch", map[string]any{"set": []map[string]string{{"user_slug": "ada", "role": "host"}, {"user_slug": "bob", "role": "attendee"}}}, nil)
	eventually(t, 30*time.Second, "bob in the other room", func() bool {
		return call(t, b, bob, "GET", "/rooms/events/other/messages?limit=1", nil, nil) == 200
	})
	return tenant, bob
}

// TestOutboxSlowRoomHoldsUpNoOther: while a send to one room hangs, and
// later while that room backs off, another room's messages go at once;
// the hanging room's next message waits for the one before it.
func TestOutboxSlowRoomHoldsUpNoOther(t *testing.T) {
	hs := harness.SharedSynapse(t)
	proxy := newHSProxy(t, hs.URL)
	cfg := clientConfig(t, hs)
	cfg.Homeserver.Address = proxy.URL
	cfg.ClientAPI.SendWait = 200 * time.Millisecond
	b := startBridge(t, cfg)
	eventually(t, 60*time.Second, "the bridge to be ready", func() bool { return b.HS.Ready() })
	tenant, bob := twoRooms(t, b)
	bobID, slowRoom := whoami(t, b, bob), portalRoom(t, b, tenant, "meetup")

	proxy.set(slowRoom, proxyHold)
	send(t, b, bob, "meetup", "slow-1")
	eventually(t, 30*time.Second, "the send to the slow room to hang", func() bool { return proxy.heldNow() == 1 })
	send(t, b, bob, "meetup", "slow-2")
	send(t, b, bob, "other", "fast-1")
	eventually(t, 30*time.Second, "the other room's message", func() bool {
		return entryOf(t, b.DB, bobID, "fast-1").State == database.OutboxSent
	})
	slow1, slow2 := entryOf(t, b.DB, bobID, "slow-1"), entryOf(t, b.DB, bobID, "slow-2")
	if slow1.State != database.OutboxPending || slow2.State != database.OutboxPending || slow2.MaybeSent || proxy.forwarded(slow2) != 0 {
		t.Fatalf("slow room: %+v %+v, slow-2 forwarded %d times", slow1, slow2, proxy.forwarded(slow2))
	}
	proxy.set(slowRoom, "")
	eventually(t, 30*time.Second, "the slow room's messages", func() bool {
		return entryOf(t, b.DB, bobID, "slow-2").State == database.OutboxSent
	})
	if got := bodies(timeline(t, b, bobID, slowRoom)); fmt.Sprint(got) != "[slow-1 slow-2]" {
		t.Fatalf("slow room got %v", got)
	}

	// Now the room backs off: its sends fail, and its head waits an hour
	// before the next try.
	proxy.set(slowRoom, proxyRefuse)
	send(t, b, bob, "meetup", "back-1")
	eventually(t, 2*time.Minute, "the failed delivery", func() bool {
		return entryOf(t, b.DB, bobID, "back-1").Attempts >= 1
	})
	back1 := entryOf(t, b.DB, bobID, "back-1")
	if _, err := b.DB.Exec(context.Background(), `UPDATE outbox SET next_attempt_at = $1 WHERE id = $2`, time.Now().Add(time.Hour).UnixMilli(), back1.ID); err != nil {
		t.Fatal(err)
	}
	proxy.set(slowRoom, "")
	tries := proxy.forwarded(back1)
	send(t, b, bob, "meetup", "back-2")
	send(t, b, bob, "other", "fast-2")
	eventually(t, 30*time.Second, "the other room's message while the first backs off", func() bool {
		return entryOf(t, b.DB, bobID, "fast-2").State == database.OutboxSent
	})
	back2 := entryOf(t, b.DB, bobID, "back-2")
	if back2.State != database.OutboxPending || back2.MaybeSent || proxy.forwarded(back2) != 0 || proxy.forwarded(back1) != tries {
		t.Fatalf("the backing-off room sent: back-2 %+v (forwarded %d), back-1 forwarded %d times, %d before", back2, proxy.forwarded(back2), proxy.forwarded(back1), tries)
	}
	if got := bodies(timeline(t, b, bobID, portalRoom(t, b, tenant, "other"))); fmt.Sprint(got) != "[fast-1 fast-2]" {
		t.Fatalf("other room got %v", got)
	}
}

// TestOutboxEchoSettlesLostAnswer: Synapse stores a message but its answer
// never reaches the bridge, nor can the bridge read the room's history;
// the echo pushed back settles the entry with the event's ID, and the room
// has the message once.
func TestOutboxEchoSettlesLostAnswer(t *testing.T) {
	hs := harness.SharedSynapse(t)
	proxy := newHSProxy(t, hs.URL)
	cfg := clientConfig(t, hs)
	cfg.Homeserver.Address = proxy.URL
	cfg.ClientAPI.SendWait = 200 * time.Millisecond
	b := startBridge(t, cfg)
	eventually(t, 60*time.Second, "the bridge to be ready", func() bool { return b.HS.Ready() })
	tenant, _, bob := meetupWithAdaAndBob(t, b, b)
	bobID, room := whoami(t, b, bob), portalRoom(t, b, tenant, "meetup")

	proxy.set(room, proxySwallow)
	proxy.setNoHistory(true)
	send(t, b, bob, "meetup", "echo-1")
	eventually(t, 60*time.Second, "the echo to settle the entry", func() bool {
		return entryOf(t, b.DB, bobID, "echo-1").State == database.OutboxSent
	})
	proxy.setNoHistory(false)
	entry := entryOf(t, b.DB, bobID, "echo-1")
	got := timeline(t, b, bobID, room)
	if len(got) != 1 || bodies(got)[0] != "echo-1" || got[0].ID != entry.EventID || proxy.forwarded(entry) == 0 {
		t.Fatalf("room has %v (%v), entry %+v, forwarded %d", bodies(got), got, entry, proxy.forwarded(entry))
	}
	// The queue moves on.
	proxy.set(room, "")
	send(t, b, bob, "meetup", "echo-2")
	eventually(t, 30*time.Second, "the next message", func() bool {
		return entryOf(t, b.DB, bobID, "echo-2").State == database.OutboxSent
	})
	if got := bodies(timeline(t, b, bobID, room)); fmt.Sprint(got) != "[echo-1 echo-2]" {
		t.Fatalf("room got %v", got)
	}

	// A redaction is recognised by its echo too.
	proxy.set(room, proxySwallow)
	proxy.setNoHistory(true)
	var out struct{ State string }
	if code := call(t, b, bob, "PUT", "/rooms/events/meetup/redact/red-1", map[string]string{"event_id": entry.EventID.String(), "reason": "twice"}, &out); code != 200 && code != 202 {
		t.Fatalf("redact: %d %+v", code, out)
	}
	eventually(t, 60*time.Second, "the redaction's echo to settle it", func() bool {
		return entryOf(t, b.DB, bobID, "red-1").State == database.OutboxSent
	})
	redaction := entryOf(t, b.DB, bobID, "red-1")
	if logged, err := b.DB.EventLog.Get(context.Background(), redaction.EventID); err != nil || logged == nil || logged.Type != event.EventRedaction.Type {
		t.Fatalf("entry %+v settled by %+v %v", redaction, logged, err)
	}
}

// TestOutboxFindsSendWhoseAnswerWasLost: Synapse stores a message, its
// answer is lost, Synapse restarts (forgetting its txn ids) before the
// echo reaches the bridge. The bridge finds the message in the room
// instead of sending it again.
func TestOutboxFindsSendWhoseAnswerWasLost(t *testing.T) {
	hs := harness.OwnSynapse(t, harness.SynapseOptions{})
	proxy := newHSProxy(t, hs.URL)
	cfg := clientConfig(t, hs)
	cfg.Homeserver.Address = proxy.URL
	cfg.ClientAPI.SendWait = 200 * time.Millisecond
	// Synapse pushes to the gate, which passes pushes on while open.
	var err error
	if cfg.Appservice.Port, err = harness.FreePort(); err != nil {
		t.Fatal(err)
	}
	gate := startPushGate(t, hs.AS.Port, cfg.Appservice.Port)
	b := startBridge(t, cfg)
	eventually(t, 60*time.Second, "the bridge to be ready", func() bool { return b.HS.Ready() })
	tenant, ada, bob := meetupWithAdaAndBob(t, b, b)
	bobID, room := whoami(t, b, bob), portalRoom(t, b, tenant, "meetup")

	gate.setClosed(true)
	proxy.set(room, proxySwallow)
	send(t, b, bob, "meetup", "lost-1")
	eventually(t, 2*time.Minute, "the delivery to fail", func() bool {
		e := entryOf(t, b.DB, bobID, "lost-1")
		return e.Attempts >= 1 && e.MaybeSent
	})
	stored := timeline(t, b, bobID, room)
	if fmt.Sprint(bodies(stored)) != "[lost-1]" {
		t.Fatalf("Synapse has %v", bodies(stored))
	}
	entry := entryOf(t, b.DB, bobID, "lost-1")
	if err := hs.Pause(); err != nil {
		t.Fatal(err)
	}
	proxy.set(room, "")
	tries := proxy.forwarded(entry)
	if err := hs.Resume(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Minute, "the entry to be settled", func() bool {
		return entryOf(t, b.DB, bobID, "lost-1").State != database.OutboxPending
	})
	entry = entryOf(t, b.DB, bobID, "lost-1")
	got := timeline(t, b, bobID, room)
	if len(got) != 1 || entry.State != database.OutboxSent || entry.EventID != stored[0].ID || proxy.forwarded(entry) != tries {
		t.Fatalf("room has %v, entry %+v (Synapse stored %s), sent again %d times", bodies(got), entry, stored[0].ID, proxy.forwarded(entry)-tries)
	}
	// The echo arrives at last: logged once, the entry unchanged. (A
	// restarted Synapse retries its stored pushes only once a new event
	// starts its appservice scheduler.)
	gate.setClosed(false)
	send(t, b, ada, "meetup", "wake-up")
	eventually(t, 2*time.Minute, "the echo", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = b.HS.Ping(ctx)
		return countBodies(t, b)["lost-1"] == 1
	})
	if after := entryOf(t, b.DB, bobID, "lost-1"); after.State != database.OutboxSent || after.EventID != entry.EventID {
		t.Fatalf("after the echo: %+v", after)
	}
}

// TestOutboxRecordsResultsWhileStopping: a send that completes while the
// bridge stops is recorded as sent; one the stop cuts off is recorded as
// possibly sent and due, and the next start delivers it once.
func TestOutboxRecordsResultsWhileStopping(t *testing.T) {
	hs := harness.SharedSynapse(t)
	proxy := newHSProxy(t, hs.URL)
	cfg := clientConfig(t, hs)
	cfg.Homeserver.Address = proxy.URL
	cfg.ClientAPI.SendWait = 200 * time.Millisecond
	b := startBridge(t, cfg)
	eventually(t, 60*time.Second, "the bridge to be ready", func() bool { return b.HS.Ready() })
	tenant, _, bob := meetupWithAdaAndBob(t, b, b)
	bobID, room := whoami(t, b, bob), portalRoom(t, b, tenant, "meetup")

	proxy.set(room, proxyHold)
	send(t, b, bob, "meetup", "stop-1")
	eventually(t, 30*time.Second, "the send to hang", func() bool { return proxy.heldNow() == 1 })
	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		stopped <- b.Stop(ctx)
	}()
	eventually(t, 30*time.Second, "the bridge to stop listening", func() bool {
		conn, err := net.DialTimeout("tcp", b.Addr().String(), time.Second)
		if err == nil {
			_ = conn.Close()
		}
		return err != nil
	})
	proxy.set(room, "") // the send completes during the shutdown
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	db := reopen(t, cfg)
	first := entryOf(t, db, bobID, "stop-1")
	if first.State != database.OutboxSent || first.EventID == "" {
		t.Fatalf("a send completed during shutdown was recorded as %+v", first)
	}
	_ = db.Close()

	// This time the send still hangs when the stop's deadline comes.
	b = startBridge(t, cfg)
	proxy.set(room, proxyHold)
	send(t, b, bob, "meetup", "stop-2")
	eventually(t, 30*time.Second, "the send to hang", func() bool { return proxy.heldNow() == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := b.Stop(ctx); err != nil {
		t.Logf("stop: %v", err)
	}
	db = reopen(t, cfg)
	second := entryOf(t, db, bobID, "stop-2")
	var claimedUntil int64
	if err := db.QueryRow(context.Background(), `SELECT claimed_until FROM outbox WHERE id = $1`, second.ID).Scan(&claimedUntil); err != nil {
		t.Fatal(err)
	}
	if second.State != database.OutboxPending || !second.MaybeSent || second.Attempts != 1 || claimedUntil != 0 || second.NextAttemptAt > time.Now().UnixMilli() {
		t.Fatalf("a send cut off by shutdown was recorded as %+v, claimed until %d", second, claimedUntil)
	}
	_ = db.Close()

	proxy.set(room, "")
	b = startBridge(t, cfg)
	eventually(t, 60*time.Second, "the cut-off message to be sent", func() bool {
		return entryOf(t, b.DB, bobID, "stop-2").State == database.OutboxSent
	})
	if got := bodies(timeline(t, b, bobID, room)); fmt.Sprint(got) != "[stop-1 stop-2]" {
		t.Fatalf("room got %v", got)
	}
}

// reopen opens the database of a stopped bridge.
func reopen(t *testing.T, cfg *bridge.Config) *database.Database {
	t.Helper()
	db, err := database.Open(cfg.Database, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

package sse

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/openmeet-team/openmeet-bridge/database"
	"github.com/openmeet-team/openmeet-bridge/internal/harness"
)

type hubFixture struct {
	db  *database.Database
	hub *Hub
	srv *httptest.Server
}

func newHubFixture(t *testing.T, cfg Config, setup ...func(*Hub, *httptest.Server)) *hubFixture {
	t.Helper()
	db, _ := openTestDB(t, "sqlite", "")
	return startHub(t, db, cfg, setup...)
}

// openTestDB opens a fresh database of the engine, or, given uri, another
// handle on an existing one (what a second replica has).
func openTestDB(t *testing.T, engine, uri string) (*database.Database, string) {
	t.Helper()
	cfg := database.Config{Type: "sqlite3-fk-wal", URI: uri}
	if engine == "postgres" {
		cfg.Type = "postgres"
		if uri == "" {
			cfg.URI = harness.PostgresURI(t)
		}
	} else if uri == "" {
		cfg.URI = "file:" + filepath.Join(t.TempDir(), "hub.db") + "?_txlock=immediate"
	}
	db, err := database.Open(cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if err := db.Upgrade(context.Background()); err != nil {
		t.Fatal(err)
	}
	return db, cfg.URI
}

// startHub runs a hub on db behind a test server; setup sees both before
// they start.
func startHub(t *testing.T, db *database.Database, cfg Config, setup ...func(*Hub, *httptest.Server)) *hubFixture {
	t.Helper()
	hub := NewHub(db, cfg, zerolog.Nop())
	// The test server trusts a user ID in the query: authentication is the
	// client API's job, not the hub's.
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hub.Serve(w, r, id.UserID(r.URL.Query().Get("user")))
	}))
	for _, fn := range setup {
		fn(hub, srv)
	}
	srv.Start()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = hub.Run(ctx) }()
	t.Cleanup(func() { srv.Close(); cancel(); <-done })
	<-hub.Started()
	return &hubFixture{db: db, hub: hub, srv: srv}
}

func testCfg() Config {
	return Config{Heartbeat: time.Second, Buffer: 64, MaxPerUser: 3, ConnectRate: 1000, ConnectBurst: 1000, Park: true, Writers: 2}
}

// bothModes runs a test with parked streams (HTTP/1.1 taken over) and with
// a goroutine per stream (what HTTP/2 gets).
func bothModes(t *testing.T, fn func(t *testing.T, cfg Config)) {
	for _, park := range []bool{true, false} {
		t.Run(fmt.Sprintf("park=%v", park), func(t *testing.T) {
			t.Parallel()
			cfg := testCfg()
			cfg.Park = park
			fn(t, cfg)
		})
	}
}

// push logs events as a Synapse transaction would, and wakes the hub.
func (f *hubFixture) push(t *testing.T, events ...*database.LoggedEvent) []*database.LoggedEvent {
	t.Helper()
	written, err := f.pushErr(events...)
	if err != nil {
		t.Fatal(err)
	}
	return written
}

// pushErr is push for goroutines other than the test's.
func (f *hubFixture) pushErr(events ...*database.LoggedEvent) ([]*database.LoggedEvent, error) {
	written, err := f.log(events...)
	if err != nil {
		return nil, err
	}
	f.hub.Wake()
	// Wait until the hub has handed the events out, so a stream opened
	// next starts after them.
	return written, f.waitHub(written[len(written)-1].Position)
}

// log writes events to the log without waking the hub.
func (f *hubFixture) log(events ...*database.LoggedEvent) ([]*database.LoggedEvent, error) {
	txn := fmt.Sprint(txnSeq.Add(1))
	return f.db.EventLog.AppendTransaction(context.Background(), txn, database.TxnDigest(events, nil), events)
}

var txnSeq atomic.Int64

// waitHub waits until the hub has handed out position pos.
func (f *hubFixture) waitHub(pos int64) error {
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(time.Millisecond) {
		f.hub.mu.Lock()
		at := f.hub.position
		f.hub.mu.Unlock()
		if at >= pos {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("hub stuck at %d, want %d", at, pos)
		}
	}
}

var seq atomic.Int64

func message(room, body string) *database.LoggedEvent {
	evtID := fmt.Sprintf("$m%d", seq.Add(1))
	return &database.LoggedEvent{EventID: id.EventID(evtID), RoomID: id.RoomID(room), Type: "m.room.message", Sender: "@x:test",
		Raw: []byte(fmt.Sprintf(`{"event_id":%q,"room_id":%q,"type":"m.room.message","sender":"@x:test","content":{"body":%q}}`, evtID, room, body))}
}

func membership(room, user string, m event.Membership) *database.LoggedEvent {
	evtID := fmt.Sprintf("$j%d", seq.Add(1))
	return &database.LoggedEvent{EventID: id.EventID(evtID), RoomID: id.RoomID(room), Type: "m.room.member", Sender: id.UserID(user),
		StateKey: &user, Membership: m,
		Raw: []byte(fmt.Sprintf(`{"event_id":%q,"room_id":%q,"type":"m.room.member","sender":%q,"state_key":%q,"content":{"membership":%q}}`, evtID, room, user, user, m))}
}

type frame struct{ id, event, data string }

// open opens a stream and hands on its frames, except the position frames
// of its opening (positions_test.go reads those with openAll).
func (f *hubFixture) open(t *testing.T, user, lastID string) (chan frame, *http.Response) {
	t.Helper()
	return f.openStream(t, user, lastID, false)
}

// openAll opens a stream and hands on every frame.
func (f *hubFixture) openAll(t *testing.T, user, lastID string) (chan frame, *http.Response) {
	t.Helper()
	return f.openStream(t, user, lastID, true)
}

func (f *hubFixture) openStream(t *testing.T, user, lastID string, positions bool) (chan frame, *http.Response) {
	t.Helper()
	req, _ := http.NewRequest("GET", f.srv.URL+"?user="+user, nil)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	frames := make(chan frame, 1000)
	if resp.StatusCode != 200 {
		_ = resp.Body.Close()
		close(frames)
		return frames, resp
	}
	go func() {
		defer close(frames)
		sc := bufio.NewScanner(resp.Body)
		var cur frame
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "" && cur.event != "":
				if positions || cur.event != EventPosition {
					frames <- cur
				}
				cur = frame{}
			case strings.HasPrefix(line, "id: "):
				cur.id = line[4:]
			case strings.HasPrefix(line, "event: "):
				cur.event = line[7:]
			case strings.HasPrefix(line, "data: "):
				cur.data = line[6:]
			}
		}
	}()
	t.Cleanup(func() { _ = resp.Body.Close() })
	return frames, resp
}

func next(t *testing.T, frames chan frame) frame {
	t.Helper()
	select {
	case f, ok := <-frames:
		if !ok {
			t.Fatal("stream ended")
		}
		return f
	case <-time.After(5 * time.Second):
		t.Fatal("no frame within 5 s")
	}
	return frame{}
}

func expectNone(t *testing.T, frames chan frame) {
	t.Helper()
	select {
	case f := <-frames:
		t.Fatalf("unexpected frame %+v", f)
	case <-time.After(300 * time.Millisecond):
	}
}

func TestStreamFollowsMembership(t *testing.T) {
	bothModes(t, func(t *testing.T, cfg Config) {
		f := newHubFixture(t, cfg)
		f.push(t, membership("!a", "@u:test", event.MembershipJoin))
		frames, _ := f.open(t, "@u:test", "")
		f.push(t, message("!a", "in a"), message("!b", "in b"))
		if got := next(t, frames); got.event != "m.room.message" || !strings.Contains(got.data, "in a") {
			t.Fatalf("got %+v", got)
		}
		expectNone(t, frames)
		// Joining !b: the join itself arrives, then !b's messages.
		f.push(t, membership("!b", "@u:test", event.MembershipJoin), message("!b", "b after join"))
		if got := next(t, frames); got.event != "m.room.member" {
			t.Fatalf("got %+v", got)
		}
		if got := next(t, frames); !strings.Contains(got.data, "b after join") {
			t.Fatalf("got %+v", got)
		}
		// Leaving !a: the leave arrives, then nothing more from !a.
		f.push(t, membership("!a", "@u:test", event.MembershipLeave), message("!a", "a after leave"), message("!b", "b still"))
		if got := next(t, frames); got.event != "m.room.member" || !strings.Contains(got.data, "leave") {
			t.Fatalf("got %+v", got)
		}
		if got := next(t, frames); !strings.Contains(got.data, "b still") {
			t.Fatalf("got %+v (a left room's message leaked?)", got)
		}
		expectNone(t, frames)
	})
}

func TestStreamResumesExactly(t *testing.T) {
	bothModes(t, func(t *testing.T, cfg Config) {
		f := newHubFixture(t, cfg)
		f.push(t, membership("!a", "@u:test", event.MembershipJoin))
		frames, resp := f.open(t, "@u:test", "")
		f.push(t, message("!a", "one"))
		last := next(t, frames).id
		_ = resp.Body.Close()
		f.push(t, message("!a", "two"), message("!x", "not mine"), message("!a", "three"))
		frames, _ = f.open(t, "@u:test", last)
		for _, want := range []string{"two", "three"} {
			if got := next(t, frames); !strings.Contains(got.data, want) {
				t.Fatalf("resume gave %+v, want %q", got, want)
			}
		}
		f.push(t, message("!a", "four"))
		if got := next(t, frames); !strings.Contains(got.data, "four") {
			t.Fatalf("live after resume gave %+v", got)
		}
		expectNone(t, frames)
	})
}

func TestStreamResetsOutsideRetention(t *testing.T) {
	bothModes(t, func(t *testing.T, cfg Config) {
		f := newHubFixture(t, cfg)
		f.push(t, membership("!a", "@u:test", event.MembershipJoin), message("!a", "old"), message("!a", "newer"))
		// A position from the future (another database) and one that was pruned.
		frames, _ := f.open(t, "@u:test", "999")
		if got := next(t, frames); got.event != "reset" {
			t.Fatalf("future position: %+v", got)
		}
		if _, err := f.db.EventLog.Prune(context.Background(), time.Now().Add(time.Hour), 2); err != nil {
			t.Fatal(err)
		}
		frames, _ = f.open(t, "@u:test", "0")
		if got := next(t, frames); got.event != "reset" {
			t.Fatalf("pruned position: %+v", got)
		}
	})
}

func TestSlowSubscriberIsCutOff(t *testing.T) {
	t.Parallel()
	cfg := testCfg()
	cfg.Buffer = 4
	f := newHubFixture(t, cfg)
	f.push(t, membership("!a", "@u:test", event.MembershipJoin))
	time.Sleep(100 * time.Millisecond)
	// A subscriber that never reads: its buffer fills and it is dropped,
	// while a reading stream of the same room is unaffected.
	slow, _, _, err := f.hub.subscribe(context.Background(), "@u:test", nil)
	if err != nil {
		t.Fatal(err)
	}
	frames, _ := f.open(t, "@u:test", "")
	for i := range 10 {
		f.push(t, message("!a", fmt.Sprint("msg ", i)))
		if got := next(t, frames); !strings.Contains(got.data, fmt.Sprint("msg ", i)) {
			t.Fatalf("reader got %+v", got)
		}
	}
	select {
	case <-slow.done:
	case <-time.After(5 * time.Second):
		t.Fatal("slow subscriber not cut off")
	}
	if f.hub.Connections() != 1 {
		t.Fatalf("%d connections left, want the reader only", f.hub.Connections())
	}
}

func TestStreamLimits(t *testing.T) {
	bothModes(t, func(t *testing.T, cfg Config) {
		cfg.MaxPerUser = 2
		f := newHubFixture(t, cfg)
		for range 2 {
			if _, resp := f.open(t, "@u:test", ""); resp.StatusCode != 200 {
				t.Fatalf("stream within the limit: %d", resp.StatusCode)
			}
		}
		_, resp := f.open(t, "@u:test", "")
		if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("stream over the per-user limit: %d %v", resp.StatusCode, resp.Header)
		}
		if _, resp := f.open(t, "@u:test", "abc"); resp.StatusCode != 400 {
			t.Fatalf("bad Last-Event-ID: %d", resp.StatusCode)
		}

		cfg.ConnectRate, cfg.ConnectBurst = 0.001, 1
		g := newHubFixture(t, cfg)
		g.open(t, "@v:test", "")
		if _, resp := g.open(t, "@w:test", ""); resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("stream over the connection rate: %d", resp.StatusCode)
		}
	})
}

func TestParkedStreamNoticesClosedPeer(t *testing.T) {
	t.Parallel()
	cfg := testCfg()
	cfg.Heartbeat = 100 * time.Millisecond
	f := newHubFixture(t, cfg)
	frames, resp := f.open(t, "@u:test", "")
	// Heartbeats are comments, which the reader skips; the stream stays up.
	time.Sleep(300 * time.Millisecond)
	if f.hub.Connections() != 1 {
		t.Fatalf("%d connections, want 1", f.hub.Connections())
	}
	_ = resp.Body.Close()
	for deadline := time.Now().Add(5 * time.Second); f.hub.Connections() != 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("closed peer not noticed")
		}
	}
	_ = frames
}

// TestParkedStreamOutlivesHandshakeDeadline: the deadline that bounds the
// handler's own writes must not fail the parked stream's later writes.
// Not parallel: it shortens a package-wide timeout.
func TestParkedStreamOutlivesHandshakeDeadline(t *testing.T) {
	saved := writeTimeout.Load()
	writeTimeout.Store(int64(50 * time.Millisecond))
	defer writeTimeout.Store(saved)
	f := newHubFixture(t, testCfg())
	f.push(t, membership("!a", "@u:test", event.MembershipJoin))
	frames, _ := f.open(t, "@u:test", "")
	time.Sleep(200 * time.Millisecond)
	f.push(t, message("!a", "after the deadline"))
	if got := next(t, frames); !strings.Contains(got.data, "after the deadline") {
		t.Fatalf("got %+v", got)
	}
}

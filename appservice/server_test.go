package appservice

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/gorilla/mux"
	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/id"

	"github.com/openmeet-team/openmeet-bridge/database"
)

const testHSToken = "hs_token_0123456789abcdef0123456789abcdef"

type recordingSink struct {
	mu        sync.Mutex
	logged    []*database.LoggedEvent
	ephemeral []*Ephemeral
}

func (s *recordingSink) EventsLogged(_ context.Context, events []*database.LoggedEvent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.logged = append(s.logged, events...)
}

func (s *recordingSink) EphemeralReceived(_ context.Context, events []*Ephemeral) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ephemeral = append(s.ephemeral, events...)
}

type recordingRegistrar struct {
	mu    sync.Mutex
	users []id.UserID
}

func (r *recordingRegistrar) EnsureRegistered(_ context.Context, userID id.UserID) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.users = append(r.users, userID)
	return nil
}

func testConfig() *Config {
	return &Config{
		Address: "http://127.0.0.1:1", Hostname: "127.0.0.1", Port: 1, ID: "openmeet",
		ASToken: "as_token_0123456789abcdef0123456789abcdef", HSToken: testHSToken,
		Bot:           BotConfig{Username: "openmeetbot", Displayname: "Bot"},
		GhostTemplate: "openmeet_{tenant}_{slug}", AliasTemplate: "openmeet_{tenant}_{kind}_{slug}",
		MaxBodyBytes: 1 << 20,
	}
}

type testServer struct {
	*httptest.Server
	db    *database.Database
	sink  *recordingSink
	users *recordingRegistrar
}

func newTestServer(t testing.TB) *testServer {
	t.Helper()
	db, err := database.Open(database.Config{Type: "sqlite3-fk-wal", URI: "file:" + filepath.Join(t.TempDir(), "as.db") + "?_txlock=immediate"}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Upgrade(context.Background()); err != nil {
		t.Fatal(err)
	}
	s, err := NewServer(testConfig(), "test.local", db, zerolog.Nop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{db: db, sink: &recordingSink{}, users: &recordingRegistrar{}}
	s.Sink, s.Users = ts.sink, ts.users
	// As in the bridge: the router matches escaped paths.
	r := mux.NewRouter().UseEncodedPath()
	s.Register(r)
	ts.Server = httptest.NewServer(r)
	t.Cleanup(func() { ts.Close(); _ = db.Close() })
	return ts
}

func (ts *testServer) do(t testing.TB, method, path, token, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s %s: response is not a JSON object: %q", method, path, raw)
	}
	return resp.StatusCode, out
}

func (ts *testServer) logCount(t testing.TB) int64 {
	n, err := ts.db.EventLog.Count(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func textEvent(n int) string {
	return fmt.Sprintf(`{"event_id":"$e%d","room_id":"!room:test.local","type":"m.room.message","sender":"@alice:test.local","origin_server_ts":%d,"content":{"msgtype":"m.text","body":"hi %d"}}`, n, 1000+n, n)
}

func txnBody(events ...string) string {
	return `{"events":[` + strings.Join(events, ",") + `]}`
}

func TestAuthentication(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	for _, path := range []string{"/_matrix/app/v1/transactions/1", "/_matrix/app/v1/users/@openmeet_a_b:test.local", "/_matrix/app/v1/ping", "/_matrix/app/v1/nope"} {
		method := map[string]string{"/_matrix/app/v1/transactions/1": "PUT", "/_matrix/app/v1/ping": "POST"}[path]
		if method == "" {
			method = "GET"
		}
		if code, body := ts.do(t, method, path, "", txnBody(textEvent(1))); code != 401 || body["errcode"] != "M_MISSING_TOKEN" {
			t.Errorf("%s without token: %d %v", path, code, body)
		}
		if code, body := ts.do(t, method, path, "wrong", txnBody(textEvent(1))); code != 403 || body["errcode"] != "M_FORBIDDEN" {
			t.Errorf("%s with wrong token: %d %v", path, code, body)
		}
	}
	if n := ts.logCount(t); n != 0 {
		t.Fatalf("rejected requests wrote %d events", n)
	}
	// The legacy query parameter still works.
	if code, _ := ts.do(t, "PUT", "/_matrix/app/v1/transactions/q?access_token="+testHSToken, "", txnBody()); code != 200 {
		t.Fatalf("access_token query parameter: %d", code)
	}
}

func TestTransactionIsLoggedOnce(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	body := txnBody(textEvent(1), textEvent(2), textEvent(1))
	if code, resp := ts.do(t, "PUT", "/_matrix/app/v1/transactions/7", testHSToken, body); code != 200 || len(resp) != 0 {
		t.Fatalf("first delivery: %d %v", code, resp)
	}
	if code, _ := ts.do(t, "PUT", "/_matrix/app/v1/transactions/7", testHSToken, body); code != 200 {
		t.Fatalf("retried delivery: %d", code)
	}
	// A new txn id repeating an event logs only what is new.
	if code, _ := ts.do(t, "PUT", "/_matrix/app/v1/transactions/8", testHSToken, txnBody(textEvent(2), textEvent(3))); code != 200 {
		t.Fatalf("third delivery: %d", code)
	}
	// Synapse on SQLite reuses txn ids after it restarts: an old id with
	// new events is a new transaction.
	if code, _ := ts.do(t, "PUT", "/_matrix/app/v1/transactions/7", testHSToken, txnBody(textEvent(4))); code != 200 {
		t.Fatalf("reused txn id: %d", code)
	}
	if n := ts.logCount(t); n != 4 {
		t.Fatalf("log holds %d events, want 4", n)
	}
	if len(ts.sink.logged) != 4 {
		t.Fatalf("sink got %d events, want 4", len(ts.sink.logged))
	}
}

func TestEphemeralEventsReachTheSink(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	typing := `{"type":"m.typing","room_id":"!room:test.local","content":{"user_ids":["@alice:test.local"]}}`
	for i, key := range []string{"ephemeral", "de.sorunome.msc2409.ephemeral"} {
		body := fmt.Sprintf(`{"events":[],"%s":[%s]}`, key, typing)
		if code, _ := ts.do(t, "PUT", fmt.Sprintf("/_matrix/app/v1/transactions/e%d", i), testHSToken, body); code != 200 {
			t.Fatalf("%s: %d", key, code)
		}
	}
	// Both keys at once carry the same list; it must be handed on once.
	both := fmt.Sprintf(`{"events":[],"ephemeral":[%s],"de.sorunome.msc2409.ephemeral":[%s]}`, typing, typing)
	if code, _ := ts.do(t, "PUT", "/_matrix/app/v1/transactions/e2", testHSToken, both); code != 200 {
		t.Fatal(code)
	}
	if len(ts.sink.ephemeral) != 3 || ts.sink.ephemeral[0].Type != "m.typing" {
		t.Fatalf("sink got %+v", ts.sink.ephemeral)
	}
	if n := ts.logCount(t); n != 0 {
		t.Fatalf("ephemeral events were logged: %d", n)
	}
}

func TestBadTransactionsChangeNothing(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	noTS := `{"event_id":"$x","room_id":"!r:t","type":"m.room.message","sender":"@a:t","content":{}}`
	tests := []struct {
		name, body string
		code       int
		errcode    string
	}{
		{"not json", `{"events":[`, 400, "M_NOT_JSON"},
		{"empty body", ``, 400, "M_NOT_JSON"},
		{"array body", `[]`, 400, "M_BAD_JSON"},
		{"events not a list", `{"events":{}}`, 400, "M_BAD_JSON"},
		{"event not an object", `{"events":[1]}`, 400, "M_BAD_JSON"},
		{"missing event_id", txnBody(strings.Replace(textEvent(1), `"event_id":"$e1",`, "", 1)), 400, "M_BAD_JSON"},
		{"bad room_id", txnBody(strings.Replace(textEvent(1), `"!room:test.local"`, `"room"`, 1)), 400, "M_BAD_JSON"},
		{"bad sender", txnBody(strings.Replace(textEvent(1), `"@alice:test.local"`, `"alice"`, 1)), 400, "M_BAD_JSON"},
		{"content not an object", txnBody(strings.Replace(textEvent(1), `{"msgtype":"m.text","body":"hi 1"}`, `"x"`, 1)), 400, "M_BAD_JSON"},
		{"missing origin_server_ts", txnBody(noTS), 400, "M_BAD_JSON"},
		{"member without membership", txnBody(`{"event_id":"$m","room_id":"!r:t","type":"m.room.member","state_key":"@a:t","sender":"@a:t","origin_server_ts":1,"content":{}}`), 400, "M_BAD_JSON"},
		{"events missing", `{}`, 400, "M_BAD_JSON"},
		{"state_key not a string", txnBody(strings.Replace(textEvent(1), `"type"`, `"state_key":5,"type"`, 1)), 400, "M_BAD_JSON"},
		{"origin_server_ts not a number", txnBody(strings.Replace(textEvent(1), `"origin_server_ts":1001`, `"origin_server_ts":"1001"`, 1)), 400, "M_BAD_JSON"},
		{"type not a string", txnBody(strings.Replace(textEvent(1), `"type":"m.room.message"`, `"type":["m.room.message"]`, 1)), 400, "M_BAD_JSON"},
		{"invalid UTF-8", txnBody(strings.Replace(textEvent(1), "hi 1", "hi \xff", 1)), 400, "M_NOT_JSON"},
		{"ephemeral not a list", `{"events":[],"ephemeral":{}}`, 400, "M_BAD_JSON"},
		{"bad ephemeral room", `{"events":[],"ephemeral":[{"type":"m.typing","room_id":"x","content":{}}]}`, 400, "M_BAD_JSON"},
		{"bad ephemeral", `{"events":[],"ephemeral":[{"content":{}}]}`, 400, "M_BAD_JSON"},
		// One bad event spoils the whole transaction: the good one before it
		// must not be logged either.
		{"good then bad", txnBody(textEvent(1), noTS), 400, "M_BAD_JSON"},
		{"too large", txnBody(textEvent(1), `{"pad":"`+strings.Repeat("x", 1<<20)+`"}`), 413, "M_TOO_LARGE"},
	}
	goodThenBad := -1
	for i, tt := range tests {
		if tt.name == "good then bad" {
			goodThenBad = i
		}
		code, body := ts.do(t, "PUT", fmt.Sprintf("/_matrix/app/v1/transactions/bad%d", i), testHSToken, tt.body)
		if code != tt.code || body["errcode"] != tt.errcode {
			t.Errorf("%s: got %d %v, want %d %s", tt.name, code, body, tt.code, tt.errcode)
		}
	}
	if n := ts.logCount(t); n != 0 {
		t.Fatalf("bad transactions wrote %d events", n)
	}
	// The txn ids of rejected bodies are not burnt: a corrected retry works.
	if code, _ := ts.do(t, "PUT", fmt.Sprintf("/_matrix/app/v1/transactions/bad%d", goodThenBad), testHSToken, txnBody(textEvent(1))); code != 200 || ts.logCount(t) != 1 {
		t.Fatalf("corrected retry: %d, %d events", code, ts.logCount(t))
	}
}

func TestQueries(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	tests := []struct {
		method, path string
		code         int
		errcode      string
	}{
		{"GET", "/_matrix/app/v1/users/@openmeet_acme_bob:test.local", 200, ""},
		{"GET", "/_matrix/app/v1/users/@openmeetbot:test.local", 200, ""},
		// Synapse escapes the ID (urllib.parse.quote).
		{"GET", "/_matrix/app/v1/users/%40openmeet_acme_carol%3Atest.local", 200, ""},
		{"GET", "/_matrix/app/v1/users/@someone:test.local", 404, "M_NOT_FOUND"},
		{"GET", "/_matrix/app/v1/users/@openmeet_acme_bob:other.server", 404, "M_NOT_FOUND"},
		{"GET", "/_matrix/app/v1/rooms/%23openmeet_acme_event_party:test.local", 404, "M_NOT_FOUND"},
		{"POST", "/_matrix/app/v1/ping", 200, ""},
		{"GET", "/_matrix/app/v1/thirdparty/protocol/x", 404, "M_UNRECOGNIZED"},
		{"GET", "/_matrix/app/v1/transactions/1", 404, "M_UNRECOGNIZED"},
	}
	for _, tt := range tests {
		body := ""
		if tt.method == "POST" {
			body = `{"transaction_id":"p1"}`
		}
		code, resp := ts.do(t, tt.method, tt.path, testHSToken, body)
		if code != tt.code || (tt.errcode != "" && resp["errcode"] != tt.errcode) {
			t.Errorf("%s %s: %d %v, want %d %s", tt.method, tt.path, code, resp, tt.code, tt.errcode)
		}
	}
	if fmt.Sprint(ts.users.users) != "[@openmeet_acme_bob:test.local @openmeetbot:test.local @openmeet_acme_carol:test.local]" {
		t.Fatalf("registered %v", ts.users.users)
	}
	if code, resp := ts.do(t, "POST", "/_matrix/app/v1/ping", testHSToken, "{"); code != 400 || resp["errcode"] != "M_NOT_JSON" {
		t.Fatalf("bad ping body: %d %v", code, resp)
	}
}

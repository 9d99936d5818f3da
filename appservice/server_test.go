package appservice

import (
	"bytes"
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
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/id"

	"github.com/openmeet-team/openmeet-bridge/database"
	"github.com/openmeet-team/openmeet-bridge/internal/harness"
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
	reg   *prometheus.Registry
	logs  *syncBuffer
}

// syncBuffer is a log destination that tests can read while the server
// writes to it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func sqliteConfig(t testing.TB) database.Config {
	return database.Config{Type: "sqlite3-fk-wal", URI: "file:" + filepath.Join(t.TempDir(), "as.db") + "?_txlock=immediate"}
}

func newTestServer(t testing.TB) *testServer {
	t.Helper()
	return newTestServerOn(t, sqliteConfig(t))
}

func newTestServerOn(t testing.TB, dbCfg database.Config) *testServer {
	t.Helper()
	return newTestServerWith(t, dbCfg, testConfig())
}

func newTestServerWith(t testing.TB, dbCfg database.Config, cfg *Config) *testServer {
	t.Helper()
	db, err := database.Open(dbCfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Upgrade(context.Background()); err != nil {
		t.Fatal(err)
	}
	ts := &testServer{db: db, sink: &recordingSink{}, users: &recordingRegistrar{}, reg: prometheus.NewRegistry(), logs: &syncBuffer{}}
	s, err := NewServer(cfg, "test.local", db, zerolog.New(ts.logs), ts.reg)
	if err != nil {
		t.Fatal(err)
	}
	s.Sink, s.Users = ts.sink, ts.users
	// As in the bridge: the router matches escaped paths.
	r := mux.NewRouter().UseEncodedPath()
	s.Register(r)
	ts.Server = httptest.NewServer(r)
	t.Cleanup(func() { ts.Close(); _ = db.Close() })
	return ts
}

// counter reads one series of a counter vector; 0 when it does not exist.
func (ts *testServer) counter(t testing.TB, name, label, value string) float64 {
	t.Helper()
	families, err := ts.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, fam := range families {
		if fam.GetName() != name {
			continue
		}
		for _, m := range fam.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// rejectedCounts reads openmeet_appservice_events_rejected_total by reason.
func (ts *testServer) rejectedCounts(t testing.TB) map[string]float64 {
	t.Helper()
	out := make(map[string]float64)
	for _, reason := range rejectReasons {
		out[reason] = ts.counter(t, "openmeet_appservice_events_rejected_total", "reason", reason)
	}
	return out
}

func (ts *testServer) sinkCounts() (logged, ephemeral int) {
	ts.sink.mu.Lock()
	defer ts.sink.mu.Unlock()
	return len(ts.sink.logged), len(ts.sink.ephemeral)
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
}

// TestTokenInQuery: the hs_token in ?access_token= (where proxies log it) is
// refused unless appservice.hs_token_in_query allows it, with an answer and
// a log line that say to use the header, and without logging the token.
func TestTokenInQuery(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	for _, token := range []string{testHSToken, "wrong"} {
		code, body := ts.do(t, "PUT", "/_matrix/app/v1/transactions/q?access_token="+token, "", txnBody(textEvent(1)))
		if msg, _ := body["error"].(string); code != 401 || body["errcode"] != "M_MISSING_TOKEN" || !strings.Contains(msg, "Authorization header") {
			t.Errorf("query token %q: %d %v", token, code, body)
		}
	}
	logs := ts.logs.String()
	if !strings.Contains(logs, "hs_token in the query string") || strings.Contains(logs, testHSToken) {
		t.Errorf("log does not say why, or holds the token:\n%s", logs)
	}
	// The header still works, and wins over a query parameter.
	if code, _ := ts.do(t, "PUT", "/_matrix/app/v1/transactions/h?access_token=wrong", testHSToken, txnBody(textEvent(2))); code != 200 {
		t.Errorf("header with a stray query parameter: %d", code)
	}
	if n := ts.logCount(t); n != 1 {
		t.Fatalf("log holds %d events, want 1 (from the header's request)", n)
	}

	// With the legacy option, the query parameter is checked like the header.
	cfg := testConfig()
	cfg.HSTokenInQuery = true
	legacy := newTestServerWith(t, sqliteConfig(t), cfg)
	if code, _ := legacy.do(t, "PUT", "/_matrix/app/v1/transactions/q?access_token="+testHSToken, "", txnBody(textEvent(1))); code != 200 {
		t.Errorf("query token with hs_token_in_query: %d", code)
	}
	if code, body := legacy.do(t, "PUT", "/_matrix/app/v1/transactions/w?access_token=wrong", "", txnBody(textEvent(2))); code != 403 || body["errcode"] != "M_FORBIDDEN" {
		t.Errorf("wrong query token with hs_token_in_query: %d %v", code, body)
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

// A body that is not a transaction at all is refused as a whole, and so is
// a txn id Synapse would never send.
func TestBadTransactionsChangeNothing(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	tests := []struct {
		name, txnID, body string
		code              int
		errcode           string
	}{
		{"not json", "", `{"events":[`, 400, "M_NOT_JSON"},
		{"empty body", "", ``, 400, "M_NOT_JSON"},
		{"array body", "", `[]`, 400, "M_BAD_JSON"},
		{"events not a list", "", `{"events":{}}`, 400, "M_BAD_JSON"},
		{"events missing", "", `{}`, 400, "M_BAD_JSON"},
		{"invalid UTF-8", "", txnBody(strings.Replace(textEvent(1), "hi 1", "hi \xff", 1)), 400, "M_NOT_JSON"},
		{"ephemeral not a list", "", `{"events":[],"ephemeral":{}}`, 400, "M_BAD_JSON"},
		{"too large", "", txnBody(textEvent(1), `{"pad":"`+strings.Repeat("x", 1<<20)+`"}`), 413, "M_TOO_LARGE"},
		{"txn id of 256 bytes", strings.Repeat("7", 256), txnBody(textEvent(1)), 400, "M_INVALID_PARAM"},
		{"txn id of 10 KB", strings.Repeat("7", 10240), txnBody(textEvent(1)), 400, "M_INVALID_PARAM"},
		{"txn id with NUL", "7%00", txnBody(textEvent(1)), 400, "M_INVALID_PARAM"},
		{"txn id with a newline", "7%0A", txnBody(textEvent(1)), 400, "M_INVALID_PARAM"},
		{"txn id not UTF-8", "7%FF", txnBody(textEvent(1)), 400, "M_INVALID_PARAM"},
	}
	for i, tt := range tests {
		txnID := tt.txnID
		if txnID == "" {
			txnID = fmt.Sprintf("bad%d", i)
		}
		code, body := ts.do(t, "PUT", "/_matrix/app/v1/transactions/"+txnID, testHSToken, tt.body)
		if code != tt.code || body["errcode"] != tt.errcode {
			t.Errorf("%s: got %d %v, want %d %s", tt.name, code, body, tt.code, tt.errcode)
		}
	}
	if n := ts.logCount(t); n != 0 {
		t.Fatalf("bad transactions wrote %d events", n)
	}
	if n := ts.counter(t, "openmeet_appservice_transactions_total", "result", "bad_txn_id"); n != 5 {
		t.Errorf("transactions_total{result=bad_txn_id} = %v, want 5", n)
	}
	// The txn ids of rejected bodies are not burnt: a corrected retry
	// works. A txn id of 255 bytes is fine.
	for _, txnID := range []string{"bad0", strings.Repeat("7", 255)} {
		before := ts.logCount(t)
		if code, _ := ts.do(t, "PUT", "/_matrix/app/v1/transactions/"+txnID, testHSToken, txnBody(textEvent(len(txnID)))); code != 200 || ts.logCount(t) != before+1 {
			t.Fatalf("txn id %.10s…: %d, %d events", txnID, code, ts.logCount(t)-before)
		}
	}
}

// malformedEvents are events a hostile or broken server might push, each
// with the reason it is skipped for. %d is replaced by a number unique to
// the case, so that no two cases share an event ID.
var malformedEvents = []struct {
	name, event, reason string
}{
	{"not an object", `1`, rejectNotObject},
	{"a list", `[{"event_id":"$x%d"}]`, rejectNotObject},
	{"missing event_id", `{"room_id":"!r:t","type":"m.room.message","sender":"@a:t","origin_server_ts":1,"content":{}}`, rejectMissingField},
	{"missing room_id", `{"event_id":"$x%d","type":"m.room.message","sender":"@a:t","origin_server_ts":1,"content":{}}`, rejectMissingField},
	{"missing sender", `{"event_id":"$x%d","room_id":"!r:t","type":"m.room.message","origin_server_ts":1,"content":{}}`, rejectMissingField},
	{"missing type", `{"event_id":"$x%d","room_id":"!r:t","sender":"@a:t","origin_server_ts":1,"content":{}}`, rejectMissingField},
	{"empty type", `{"event_id":"$x%d","room_id":"!r:t","type":"","sender":"@a:t","origin_server_ts":1,"content":{}}`, rejectMissingField},
	{"missing origin_server_ts", `{"event_id":"$x%d","room_id":"!r:t","type":"m.room.message","sender":"@a:t","content":{}}`, rejectMissingField},
	{"missing content", `{"event_id":"$x%d","room_id":"!r:t","type":"m.room.message","sender":"@a:t","origin_server_ts":1}`, rejectMissingField},
	{"event_id not a string", `{"event_id":5,"room_id":"!r:t","type":"m.room.message","sender":"@a:t","origin_server_ts":1,"content":{}}`, rejectWrongType},
	{"type a list", `{"event_id":"$x%d","room_id":"!r:t","type":["m.room.message"],"sender":"@a:t","origin_server_ts":1,"content":{}}`, rejectWrongType},
	{"state_key not a string", `{"event_id":"$x%d","room_id":"!r:t","type":"m.room.topic","state_key":5,"sender":"@a:t","origin_server_ts":1,"content":{}}`, rejectWrongType},
	{"origin_server_ts a string", `{"event_id":"$x%d","room_id":"!r:t","type":"m.room.message","sender":"@a:t","origin_server_ts":"1","content":{}}`, rejectWrongType},
	{"content a string", `{"event_id":"$x%d","room_id":"!r:t","type":"m.room.message","sender":"@a:t","origin_server_ts":1,"content":"x"}`, rejectWrongType},
	{"event_id without sigil", `{"event_id":"x%d","room_id":"!r:t","type":"m.room.message","sender":"@a:t","origin_server_ts":1,"content":{}}`, rejectBadID},
	{"event_id only a sigil", `{"event_id":"$","room_id":"!r:t","type":"m.room.message","sender":"@a:t","origin_server_ts":1,"content":{}}`, rejectBadID},
	{"event_id with a space", `{"event_id":"$x %d","room_id":"!r:t","type":"m.room.message","sender":"@a:t","origin_server_ts":1,"content":{}}`, rejectBadID},
	{"event_id with a newline", `{"event_id":"$x\n%d","room_id":"!r:t","type":"m.room.message","sender":"@a:t","origin_server_ts":1,"content":{}}`, rejectBadID},
	{"room_id without sigil", `{"event_id":"$x%d","room_id":"room","type":"m.room.message","sender":"@a:t","origin_server_ts":1,"content":{}}`, rejectBadID},
	{"sender without sigil", `{"event_id":"$x%d","room_id":"!r:t","type":"m.room.message","sender":"alice","origin_server_ts":1,"content":{}}`, rejectBadID},
	{"sender without server", `{"event_id":"$x%d","room_id":"!r:t","type":"m.room.message","sender":"@alice","origin_server_ts":1,"content":{}}`, rejectBadID},
	{"member state_key not a user", `{"event_id":"$x%d","room_id":"!r:t","type":"m.room.member","state_key":"bob","sender":"@a:t","origin_server_ts":1,"content":{"membership":"join"}}`, rejectBadID},
	{"member without membership", `{"event_id":"$x%d","room_id":"!r:t","type":"m.room.member","state_key":"@a:t","sender":"@a:t","origin_server_ts":1,"content":{}}`, rejectBadMembership},
	{"membership not a string", `{"event_id":"$x%d","room_id":"!r:t","type":"m.room.member","state_key":"@a:t","sender":"@a:t","origin_server_ts":1,"content":{"membership":1}}`, rejectBadMembership},
	// NUL: SQLite cut the ID at it (another event's ID), PostgreSQL
	// refused the whole transaction.
	{"NUL in event_id", `{"event_id":"$x%d\u0000tail","room_id":"!r:t","type":"m.room.message","sender":"@a:t","origin_server_ts":1,"content":{}}`, rejectNUL},
	{"NUL in room_id", `{"event_id":"$x%d","room_id":"!r\u0000:t","type":"m.room.message","sender":"@a:t","origin_server_ts":1,"content":{}}`, rejectNUL},
	{"NUL in sender", `{"event_id":"$x%d","room_id":"!r:t","type":"m.room.message","sender":"@a\u0000:t","origin_server_ts":1,"content":{}}`, rejectNUL},
	{"NUL in type", `{"event_id":"$x%d","room_id":"!r:t","type":"m.room.message\u0000","sender":"@a:t","origin_server_ts":1,"content":{}}`, rejectNUL},
	{"NUL in state_key", `{"event_id":"$x%d","room_id":"!r:t","type":"m.room.topic","state_key":"\u0000","sender":"@a:t","origin_server_ts":1,"content":{}}`, rejectNUL},
	{"NUL in membership", `{"event_id":"$x%d","room_id":"!r:t","type":"m.room.member","state_key":"@a:t","sender":"@a:t","origin_server_ts":1,"content":{"membership":"join\u0000"}}`, rejectNUL},
	{"event_id of 256 bytes", `{"event_id":"$x%d` + strings.Repeat("e", 256) + `","room_id":"!r:t","type":"m.room.message","sender":"@a:t","origin_server_ts":1,"content":{}}`, rejectTooLong},
	{"room_id of 256 bytes", `{"event_id":"$x%d","room_id":"!` + strings.Repeat("r", 253) + `:t","type":"m.room.message","sender":"@a:t","origin_server_ts":1,"content":{}}`, rejectTooLong},
	{"sender of 256 bytes", `{"event_id":"$x%d","room_id":"!r:t","type":"m.room.message","sender":"@` + strings.Repeat("a", 253) + `:t","origin_server_ts":1,"content":{}}`, rejectTooLong},
	{"type of 256 bytes", `{"event_id":"$x%d","room_id":"!r:t","type":"` + strings.Repeat("t", 256) + `","sender":"@a:t","origin_server_ts":1,"content":{}}`, rejectTooLong},
	{"state_key of 256 bytes", `{"event_id":"$x%d","room_id":"!r:t","type":"m.room.topic","state_key":"` + strings.Repeat("k", 256) + `","sender":"@a:t","origin_server_ts":1,"content":{}}`, rejectTooLong},
	// Readers of the log would disagree on which value counts.
	{"event_id twice", `{"event_id":"$x%d","room_id":"!r:t","type":"m.room.message","sender":"@a:t","origin_server_ts":1,"content":{},"event_id":"$y%d"}`, rejectDuplicateKey},
	{"room_id twice, once escaped", `{"event_id":"$x%d","room_id":"!r:t","type":"m.room.message","sender":"@a:t","origin_server_ts":1,"content":{},"room\u005fid":"!s:t"}`, rejectDuplicateKey},
}

// malformedEphemeral are ephemeral events that are skipped, with why.
var malformedEphemeral = []struct {
	name, event, reason string
}{
	{"not an object", `"typing"`, rejectNotObject},
	{"missing type", `{"room_id":"!r:t","content":{}}`, rejectMissingField},
	{"missing content", `{"type":"m.typing","room_id":"!r:t"}`, rejectMissingField},
	{"content a list", `{"type":"m.typing","room_id":"!r:t","content":[]}`, rejectWrongType},
	{"room_id without sigil", `{"type":"m.typing","room_id":"x","content":{}}`, rejectBadID},
	{"room_id a number", `{"type":"m.typing","room_id":1,"content":{}}`, rejectWrongType},
	{"NUL in room_id", `{"type":"m.typing","room_id":"!r\u0000:t","content":{}}`, rejectNUL},
	{"NUL in type", `{"type":"m.typing\u0000","room_id":"!r:t","content":{}}`, rejectNUL},
	{"type of 256 bytes", `{"type":"` + strings.Repeat("t", 256) + `","room_id":"!r:t","content":{}}`, rejectTooLong},
}

// One malformed event must not hold up the rest: the transaction is
// answered 200, the good events are logged and handed on, the bad one is
// skipped with a log line and counted by reason, and a retry of the same
// transaction changes nothing. On PostgreSQL, which refuses NUL in text,
// a NUL that got through would fail the whole transaction.
func TestMalformedEventsAreSkipped(t *testing.T) {
	t.Parallel()
	engines := map[string]func(testing.TB) database.Config{
		"sqlite": sqliteConfig,
		"postgres": func(tb testing.TB) database.Config {
			return database.Config{Type: "postgres", URI: harness.PostgresURI(tb)}
		},
	}
	for name, dbCfg := range engines {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ts := newTestServerOn(t, dbCfg(t))
			typing := `{"type":"m.typing","room_id":"!room:test.local","content":{"user_ids":["@alice:test.local"]}}`
			type bodyCase struct {
				name, body, reason string
				logged, ephemeral  int
			}
			var cases []bodyCase
			for i, tt := range malformedEvents {
				bad := strings.ReplaceAll(tt.event, "%d", fmt.Sprint(i))
				cases = append(cases, bodyCase{"events: " + tt.name, txnBody(textEvent(1000+2*i), bad, textEvent(1001+2*i)), tt.reason, 2, 0})
			}
			for _, tt := range malformedEphemeral {
				body := fmt.Sprintf(`{"events":[],"ephemeral":[%s,%s,%s]}`, typing, tt.event, typing)
				cases = append(cases, bodyCase{"ephemeral: " + tt.name, body, tt.reason, 0, 2})
			}
			for i, tc := range cases {
				path := fmt.Sprintf("/_matrix/app/v1/transactions/skip%d", i)
				logBefore, rejBefore := ts.logCount(t), ts.rejectedCounts(t)
				sinkLogged, sinkEph := ts.sinkCounts()
				if code, resp := ts.do(t, "PUT", path, testHSToken, tc.body); code != 200 {
					t.Errorf("%s: %d %v, want 200", tc.name, code, resp)
					continue
				}
				if n := ts.logCount(t) - logBefore; n != int64(tc.logged) {
					t.Errorf("%s: %d events logged, want %d", tc.name, n, tc.logged)
				}
				if l, e := ts.sinkCounts(); l-sinkLogged != tc.logged || e-sinkEph != tc.ephemeral {
					t.Errorf("%s: the sink got %d logged and %d ephemeral events, want %d and %d", tc.name, l-sinkLogged, e-sinkEph, tc.logged, tc.ephemeral)
				}
				rejAfter := ts.rejectedCounts(t)
				for _, reason := range rejectReasons {
					want := rejBefore[reason]
					if reason == tc.reason {
						want++
					}
					if rejAfter[reason] != want {
						t.Errorf("%s: events_rejected_total{reason=%q} went from %v to %v, want %v", tc.name, reason, rejBefore[reason], rejAfter[reason], want)
					}
				}
				// Synapse retries when it missed the answer: a no-op, and
				// the skipped event is not counted again.
				if code, _ := ts.do(t, "PUT", path, testHSToken, tc.body); code != 200 {
					t.Errorf("%s: retry answered %d", tc.name, code)
				}
				if n := ts.logCount(t) - logBefore; n != int64(tc.logged) {
					t.Errorf("%s: after the retry %d events logged, want %d", tc.name, n, tc.logged)
				}
				if l, e := ts.sinkCounts(); l-sinkLogged != tc.logged || e-sinkEph != tc.ephemeral {
					t.Errorf("%s: the retry reached the sink", tc.name)
				}
				if after := ts.rejectedCounts(t); fmt.Sprint(after) != fmt.Sprint(rejAfter) {
					t.Errorf("%s: the retry changed the rejected counts: %v → %v", tc.name, rejAfter, after)
				}
			}
			logs := ts.logs.String()
			for _, reason := range rejectReasons {
				if !strings.Contains(logs, `"reason":"`+reason+`"`) {
					t.Errorf("no log line with reason %s", reason)
				}
			}
			if n := strings.Count(logs, "Skipped malformed event"); n != len(cases) {
				t.Errorf("%d log lines about skipped events, want %d (one each, none for retries)", n, len(cases))
			}
		})
	}
}

// Limits are inclusive, and what is dropped from a member event is only
// its unusable display name.
func TestEdgeEventsAreLogged(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	longID := "$" + strings.Repeat("e", 254)
	longRoom := "!" + strings.Repeat("r", 252) + ":t"
	long := fmt.Sprintf(`{"event_id":%q,"room_id":%q,"type":%q,"state_key":%q,"sender":"@a:t","origin_server_ts":1,"content":{}}`,
		longID, longRoom, strings.Repeat("t", 255), strings.Repeat("k", 255))
	emptyKey := `{"event_id":"$empty","room_id":"!r:t","type":"m.room.topic","state_key":"","sender":"@a:t","origin_server_ts":1,"content":{"topic":"x"}}`
	member := func(evtID, user, displayname string) string {
		return fmt.Sprintf(`{"event_id":%q,"room_id":"!r:t","type":"m.room.member","state_key":%q,"sender":%q,"origin_server_ts":1,"content":{"membership":"join","displayname":%s}}`, evtID, user, user, displayname)
	}
	body := txnBody(long, emptyKey,
		member("$m1", "@nul:t", `"Mallory\u0000Admin"`),
		member("$m2", "@long:t", `"`+strings.Repeat("n", 257)+`"`),
		member("$m3", "@number:t", `42`),
		member("$m4", "@ok:t", `"`+strings.Repeat("ü", 256)+`"`))
	if code, resp := ts.do(t, "PUT", "/_matrix/app/v1/transactions/edge", testHSToken, body); code != 200 {
		t.Fatalf("%d %v", code, resp)
	}
	if n := ts.logCount(t); n != 6 {
		t.Fatalf("%d events logged, want 6", n)
	}
	ctx := context.Background()
	if evt, err := ts.db.EventLog.Get(ctx, id.EventID(longID)); err != nil || evt == nil || string(evt.RoomID) != longRoom || len(*evt.StateKey) != 255 {
		t.Fatalf("the event of 255-byte fields came back as %+v, %v", evt, err)
	}
	for user, want := range map[id.UserID]string{"@nul:t": "", "@long:t": "", "@number:t": "", "@ok:t": strings.Repeat("ü", 256)} {
		membership, err := ts.db.Members.Membership(ctx, "!r:t", user)
		if err != nil || membership != "join" {
			t.Errorf("%s: membership %q, %v; want join", user, membership, err)
		}
		if name, err := ts.db.Members.Displayname(ctx, "!r:t", user); err != nil || name != want {
			t.Errorf("%s: display name %.12q, %v; want %.12q", user, name, err, want)
		}
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

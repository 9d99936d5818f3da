package sse_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/id"

	"github.com/openmeet-team/openmeet-bridge/api"
	"github.com/openmeet-team/openmeet-bridge/database"
	"github.com/openmeet-team/openmeet-bridge/internal/openapicheck"
	"github.com/openmeet-team/openmeet-bridge/sse"
)

// The stream's refusals are as the description says: 429 with
// retry_after_ms for one user over its limit, 503 with retry_after_ms
// bridge-wide and for too many open streams of one user, 400 for a bad
// Last-Event-ID.
func TestStreamRefusalsMatchTheDescription(t *testing.T) {
	t.Parallel()
	spec, err := openapicheck.Load(api.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	srv := startTestHub(t, sse.Config{Heartbeat: time.Second, Buffer: 16, MaxPerUser: 10, ConnectRate: 0.001, ConnectBurst: 3,
		ConnectRatePerUser: 0.001, ConnectBurstPerUser: 1})
	get := func(user, lastID string) int {
		resp := request(t, srv.URL, user, lastID)
		defer resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return resp.StatusCode
		}
		checkRefusal(t, spec, resp)
		return resp.StatusCode
	}
	for _, step := range []struct {
		user, lastID string
		want         int
	}{
		{"@a:test", "nope", http.StatusBadRequest},
		{"@a:test", "", http.StatusOK},
		{"@a:test", "", http.StatusTooManyRequests},
		{"@b:test", "", http.StatusOK},
		{"@c:test", "", http.StatusOK},
		{"@d:test", "", http.StatusServiceUnavailable},
	} {
		if got := get(step.user, step.lastID); got != step.want {
			t.Fatalf("%s: %d, want %d", step.user, got, step.want)
		}
	}

	// One user's open streams are bounded: 503 while the first is open.
	srv = startTestHub(t, sse.Config{Heartbeat: time.Second, Buffer: 16, MaxPerUser: 1, ConnectRate: 1000, ConnectBurst: 1000})
	first := request(t, srv.URL, "@a:test", "")
	defer first.Body.Close()
	if first.StatusCode != http.StatusOK {
		t.Fatalf("first stream: %d", first.StatusCode)
	}
	second := request(t, srv.URL, "@a:test", "")
	defer second.Body.Close()
	if second.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("second stream of one user: %d, want 503", second.StatusCode)
	}
	checkRefusal(t, spec, second)
}

func request(t *testing.T, url, user, lastID string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("GET", url+"?user="+user, nil)
	req.Header.Set("Last-Event-ID", lastID)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// checkRefusal checks a refused stream's answer against the description;
// a 429 or 503 must also say when to retry in Retry-After, as whole
// seconds no earlier than retry_after_ms.
func checkRefusal(t *testing.T, spec *openapicheck.Spec, resp *http.Response) {
	t.Helper()
	body, _ := io.ReadAll(resp.Body)
	if err := spec.Check("GET", api.ClientPrefix+"/events", resp.StatusCode, body); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusServiceUnavailable {
		return
	}
	var refusal struct {
		RetryAfterMS int64 `json:"retry_after_ms"`
	}
	_ = json.Unmarshal(body, &refusal)
	secs, err := strconv.ParseInt(resp.Header.Get("Retry-After"), 10, 64)
	if err != nil || refusal.RetryAfterMS < 1 || secs*1000 < refusal.RetryAfterMS {
		t.Fatalf("%d: Retry-After %q and retry_after_ms %d disagree", resp.StatusCode, resp.Header.Get("Retry-After"), refusal.RetryAfterMS)
	}
}

func startTestHub(t *testing.T, cfg sse.Config) *httptest.Server {
	t.Helper()
	db, err := database.Open(database.Config{Type: "sqlite3-fk-wal", URI: "file:" + filepath.Join(t.TempDir(), "hub.db") + "?_txlock=immediate"}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if err := db.Upgrade(context.Background()); err != nil {
		t.Fatal(err)
	}
	hub := sse.NewHub(db, cfg, zerolog.Nop())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = hub.Run(ctx) }()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hub.Serve(w, r, id.UserID(r.URL.Query().Get("user")))
	}))
	t.Cleanup(func() { srv.Close(); cancel(); <-done })
	<-hub.Started()
	return srv
}

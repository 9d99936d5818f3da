package sse_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
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
// retry_after_ms for one user over its limit, 503 bridge-wide, 400 for a
// bad Last-Event-ID.
func TestStreamRefusalsMatchTheDescription(t *testing.T) {
	t.Parallel()
	spec, err := openapicheck.Load(api.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	db, err := database.Open(database.Config{Type: "sqlite3-fk-wal", URI: "file:" + filepath.Join(t.TempDir(), "hub.db") + "?_txlock=immediate"}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if err := db.Upgrade(context.Background()); err != nil {
		t.Fatal(err)
	}
	hub := sse.NewHub(db, sse.Config{Heartbeat: time.Second, Buffer: 16, MaxPerUser: 10, ConnectRate: 0.001, ConnectBurst: 3,
		ConnectRatePerUser: 0.001, ConnectBurstPerUser: 1}, zerolog.Nop())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = hub.Run(ctx) }()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hub.Serve(w, r, id.UserID(r.URL.Query().Get("user")))
	}))
	t.Cleanup(func() { srv.Close(); cancel(); <-done })
	<-hub.Started()
	get := func(user, lastID string) int {
		req, _ := http.NewRequest("GET", srv.URL+"?user="+user, nil)
		req.Header.Set("Last-Event-ID", lastID)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return resp.StatusCode
		}
		body, _ := io.ReadAll(resp.Body)
		if err := spec.Check("GET", api.ClientPrefix+"/events", resp.StatusCode, body); err != nil {
			t.Fatal(err)
		}
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
}

package sse

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// TestHubRecoversFromAFailedStart: the hub's first read of where the log
// ends fails (the table it reads is missing, as when the database is
// down). The hub is not running, says so, and refuses new streams with 503
// and when to retry; it tries again, and once the database answers it
// follows the log and delivers.
func TestHubRecoversFromAFailedStart(t *testing.T) {
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			db, _ := openTestDB(t, engine, "")
			ctx := context.Background()
			if _, err := db.Exec(ctx, "ALTER TABLE stream_position RENAME TO stream_position_away"); err != nil {
				t.Fatal(err)
			}
			hub := NewHub(db, testCfg(), zerolog.Nop())
			hub.retryBase, hub.retryMax = time.Millisecond, 20*time.Millisecond
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				hub.Serve(w, r, id.UserID(r.URL.Query().Get("user")))
			}))
			runCtx, cancel := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- hub.Run(runCtx) }()
			t.Cleanup(func() { srv.Close(); cancel(); <-done })
			f := &hubFixture{db: db, hub: hub, srv: srv}

			waitUntil(t, "the hub to have failed twice", func() bool { return hub.Stats().Restarts >= 2 })
			if hub.Running() {
				t.Fatal("the hub says it runs without knowing where the log ends")
			}
			if _, resp := f.open(t, "@u:test", ""); resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
				t.Fatalf("a stream while the hub is down: %d (Retry-After %q), want 503 with when to retry", resp.StatusCode, resp.Header.Get("Retry-After"))
			}

			if _, err := db.Exec(ctx, "ALTER TABLE stream_position_away RENAME TO stream_position"); err != nil {
				t.Fatal(err)
			}
			select {
			case <-hub.Started():
			case <-time.After(60 * time.Second):
				t.Fatal("the hub did not start once the database answered")
			}
			if !hub.Running() {
				t.Fatal("the hub started but does not say it runs")
			}
			f.push(t, membership("!r", "@u:test", event.MembershipJoin))
			frames, resp := f.open(t, "@u:test", "")
			if resp.StatusCode != 200 {
				t.Fatalf("a stream once the hub runs: %d", resp.StatusCode)
			}
			f.push(t, message("!r", "after the recovery"))
			if got := next(t, frames); got.event != "m.room.message" || !strings.Contains(got.data, "after the recovery") {
				t.Fatalf("got %+v, want the message", got)
			}
			cancel()
			if err := <-done; err != nil {
				t.Fatalf("Run: %v", err)
			}
			done <- nil // for the cleanup
			if hub.Running() {
				t.Fatal("the hub says it runs after it stopped")
			}
		})
	}
}

// waitUntil polls cond until it holds, failing after a generous deadline.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal(fmt.Sprintf("timed out waiting for %s", what))
		}
	}
}

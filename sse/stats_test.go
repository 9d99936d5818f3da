package sse

import (
	"context"
	"net/http"
	"testing"
	"time"

	"maunium.net/go/mautrix/event"
)

// TestStatsCountRefusalsAndCutOffs: each limit that refuses a stream, and
// each stream cut off for being slow, is counted under its own name.
func TestStatsCountRefusalsAndCutOffs(t *testing.T) {
	t.Parallel()
	refuse := func(t *testing.T, f *hubFixture, user string, want int) {
		t.Helper()
		if status, _, body := f.refusedStream(t, user, ""); status != want {
			t.Fatalf("%s: %d %v, want %d", user, status, body, want)
		}
	}
	t.Run("rates", func(t *testing.T) {
		t.Parallel()
		cfg := testCfg()
		cfg.ConnectRatePerUser, cfg.ConnectBurstPerUser = 0.001, 1
		f := newHubFixture(t, cfg)
		refuse(t, f, "@a:test", http.StatusOK)
		refuse(t, f, "@a:test", http.StatusTooManyRequests)
		refuse(t, f, "@a:test", http.StatusTooManyRequests)
		if got := f.hub.Stats(); got != (Stats{UserRate: 2}) {
			t.Fatalf("after the user limit: %+v", got)
		}

		cfg = testCfg()
		cfg.ConnectRatePerAddress, cfg.ConnectBurstPerAddress = 0.001, 1
		g := newHubFixture(t, cfg)
		refuse(t, g, "@a:test", http.StatusOK)
		refuse(t, g, "@b:test", http.StatusTooManyRequests)
		if got := g.hub.Stats(); got != (Stats{AddressRate: 1}) {
			t.Fatalf("after the address limit: %+v", got)
		}

		cfg = testCfg()
		cfg.ConnectRate, cfg.ConnectBurst = 0.001, 1
		h := newHubFixture(t, cfg)
		refuse(t, h, "@a:test", http.StatusOK)
		refuse(t, h, "@b:test", http.StatusServiceUnavailable)
		if got := h.hub.Stats(); got != (Stats{BridgeRate: 1}) {
			t.Fatalf("after the bridge-wide limit: %+v", got)
		}

		cfg = testCfg()
		cfg.MaxPerUser = 1
		k := newHubFixture(t, cfg)
		if _, resp := k.open(t, "@a:test", ""); resp.StatusCode != http.StatusOK {
			t.Fatalf("first stream: %d", resp.StatusCode)
		}
		k.waitConnections(t, 1)
		refuse(t, k, "@a:test", http.StatusServiceUnavailable)
		if got := k.hub.Stats(); got != (Stats{UserStreams: 1}) {
			t.Fatalf("after max_per_user: %+v", got)
		}
	})
	t.Run("slow", func(t *testing.T) {
		t.Parallel()
		cfg := testCfg()
		cfg.Buffer = 2
		f := newHubFixture(t, cfg)
		f.push(t, membership("!a", "@u:test", event.MembershipJoin))
		slow, _, _, err := f.hub.subscribe(context.Background(), "@u:test", nil)
		if err != nil {
			t.Fatal(err)
		}
		for range 5 {
			f.push(t, message("!a", "x"))
		}
		select {
		case <-slow.done:
		case <-time.After(10 * time.Second):
			t.Fatal("slow subscriber not cut off")
		}
		if got := f.hub.Stats(); got != (Stats{CutOffSlow: 1}) {
			t.Fatalf("after a cut-off: %+v", got)
		}
		// A stream that ends for another reason is not counted.
		other, _, _, err := f.hub.subscribe(context.Background(), "@u:test", nil)
		if err != nil {
			t.Fatal(err)
		}
		f.hub.drop(other, "closed")
		if got := f.hub.Stats(); got.CutOffSlow != 1 {
			t.Fatalf("a closed stream counted as cut off: %+v", got)
		}
	})
}

// waitConnections waits until the hub has n open streams.
func (f *hubFixture) waitConnections(t *testing.T, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); f.hub.Connections() != n; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections, want %d", f.hub.Connections(), n)
		}
	}
}

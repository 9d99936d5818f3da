package bridge_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/openmeet-team/openmeet-bridge/bridge"
	"github.com/openmeet-team/openmeet-bridge/internal/harness"
)

// deadHomeserverConfig is a valid config whose homeserver does not answer.
func deadHomeserverConfig(t *testing.T) *bridge.Config {
	t.Helper()
	port, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	deadHS := "http://" + closed.Addr().String()
	_ = closed.Close()
	as := harness.AppserviceInfo{
		ID: "openmeet", ASToken: strings.Repeat("a", 40), HSToken: strings.Repeat("h", 40),
		BotLocalpart: "openmeetbot", Port: port, URL: fmt.Sprintf("http://127.0.0.1:%d", port),
	}
	return testConfig(t, t.TempDir(), deadHS, "openmeet.test", as)
}

func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

// readyBody decodes a readiness answer, failing unless it holds exactly
// the four booleans: no error text reaches whoever asks.
func readyBody(t *testing.T, raw []byte) map[string]bool {
	t.Helper()
	var body map[string]any
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatalf("ready: %q: %v", raw, err)
	}
	out := map[string]bool{}
	for key, v := range body {
		b, ok := v.(bool)
		if !ok || (key != "ready" && key != "homeserver" && key != "database" && key != "streams") {
			t.Fatalf("ready answers %s=%v: %s", key, v, raw)
		}
		out[key] = b
	}
	if len(out) != 4 {
		t.Fatalf("ready: %s", raw)
	}
	return out
}

// With metrics.listen, /metrics and readiness are served only there; the
// liveness probe on both.
func TestMetricsListener(t *testing.T) {
	t.Parallel()
	cfg := deadHomeserverConfig(t)
	cfg.Metrics.Listen = "127.0.0.1:0"
	b := startBridge(t, cfg)
	main, ops := "http://"+b.Addr().String(), "http://"+b.OpsAddr().String()
	for _, c := range []struct {
		url  string
		want int
	}{
		{main + "/_matrix/mau/live", 200}, {main + "/metrics", 404}, {main + "/_matrix/mau/ready", 404},
		{ops + "/_matrix/mau/live", 200}, {ops + "/metrics", 200}, {ops + "/_matrix/mau/ready", 503},
		{ops + "/_matrix/app/v1/ping", 404}, {ops + "/_openmeet/openapi.yaml", 404},
	} {
		if code, body := get(t, c.url); code != c.want {
			t.Errorf("%s: %d %s, want %d", c.url, code, body, c.want)
		}
	}
	_, raw := get(t, ops+"/_matrix/mau/ready")
	if got := readyBody(t, raw); got["ready"] || got["homeserver"] || !got["database"] {
		t.Fatalf("ready with the homeserver down: %v", got)
	}
	_, metrics := get(t, ops+"/metrics")
	for _, want := range []string{
		"openmeet_homeserver_reachable 0", "openmeet_database_up 1", `openmeet_portals{state="error"} 0`,
		"openmeet_outbox_pending 0", "openmeet_outbox_oldest_pending_seconds 0", "openmeet_outbox_delivery_seconds_count 0",
		`openmeet_sse_refused_total{reason="bridge_rate"} 0`, "openmeet_sse_cut_off_total 0",
		`openmeet_appservice_transactions_total{result="db_error"} 0`, "openmeet_appservice_last_transaction_timestamp_seconds 0",
		`openmeet_homeserver_requests_total{endpoint="rooms/send/m.room.message",method="PUT"} 0`,
		`openmeet_build_info{go_version="`,
	} {
		if !bytes.Contains(metrics, []byte(want)) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if cfg.Metrics.Listen = b.Addr().String(); cfg.Validate() == nil {
		t.Error("metrics.listen on the appservice listener's address accepted")
	}
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// When the database fails, readiness says so without its error, the error
// is logged once, and /metrics still answers, with openmeet_database_up 0.
func TestReadinessWhenTheDatabaseFails(t *testing.T) {
	t.Parallel()
	var logs lockedBuffer
	b := bridge.New(deadHomeserverConfig(t), zerolog.New(&logs))
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		_ = b.Stop(ctx) // closing the closed database fails
	})
	base := "http://" + b.Addr().String()
	if code, raw := get(t, base+"/_matrix/mau/ready"); code != 503 || !readyBody(t, raw)["database"] {
		t.Fatalf("ready before: %d %s", code, raw)
	}
	if err := b.DB.RawDB.Close(); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		code, raw := get(t, base+"/_matrix/mau/ready")
		if got := readyBody(t, raw); code != 503 || got["database"] || got["ready"] {
			t.Fatalf("ready with the database closed: %d %s", code, raw)
		}
	}
	if n := strings.Count(logs.String(), "Readiness: database ping failed"); n != 1 {
		t.Fatalf("logged the failure %d times, want once:\n%s", n, logs.String())
	}
	code, metrics := get(t, base+"/metrics")
	if code != 200 || !bytes.Contains(metrics, []byte("openmeet_database_up 0")) || !bytes.Contains(metrics, []byte("go_goroutines")) ||
		bytes.Contains(metrics, []byte("openmeet_portals{")) {
		t.Fatalf("/metrics with the database closed: %d\n%s", code, metrics)
	}
}

// metricValue reads one sample of a /metrics text by its exact series.
func metricValue(t *testing.T, text, series string) float64 {
	t.Helper()
	for _, line := range strings.Split(text, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			var v float64
			if _, err := fmt.Sscan(rest, &v); err != nil {
				t.Fatalf("%s: %q", series, line)
			}
			return v
		}
	}
	t.Fatalf("/metrics has no %s:\n%s", series, grepLines(text, strings.SplitN(series, "{", 2)[0]))
	return 0
}

// On real Synapse, a message sent through the client API shows in the
// metrics the alerts and the dashboard use: Synapse reachable, the send
// counted, its delivery time observed, and its echo moving the
// last-transaction time.
func TestMetricsFollowARealSend(t *testing.T) {
	hs := harness.SharedSynapse(t)
	b := startBridge(t, clientConfig(t, hs))
	eventually(t, 60*time.Second, "the bridge to be ready", func() bool { return b.HS.Ready() })
	_, _, bob := meetupWithAdaAndBob(t, b, b)
	before := scrape(t, b)
	if v := metricValue(t, before, "openmeet_homeserver_reachable"); v != 1 {
		t.Fatalf("openmeet_homeserver_reachable %v with Synapse up", v)
	}
	const sendSeries = `openmeet_homeserver_requests_total{endpoint="rooms/send/m.room.message",method="PUT"}`
	sends, delivered := metricValue(t, before, sendSeries), metricValue(t, before, "openmeet_outbox_delivery_seconds_count")
	sentAt := float64(time.Now().UnixMilli()) / 1000
	var sent struct {
		State string `json:"state"`
	}
	if code := call(t, b, bob, "PUT", "/rooms/events/meetup/send/metrics-1", map[string]string{"body": "counted"}, &sent); code != 200 || sent.State != "sent" {
		t.Fatalf("send: %d %+v", code, sent)
	}
	eventually(t, 30*time.Second, "the send and its echo in the metrics", func() bool {
		after := scrape(t, b)
		return metricValue(t, after, sendSeries) > sends &&
			metricValue(t, after, "openmeet_outbox_delivery_seconds_count") == delivered+1 &&
			metricValue(t, after, "openmeet_appservice_last_transaction_timestamp_seconds") >= sentAt &&
			metricValue(t, after, "openmeet_outbox_pending") == 0
	})
}

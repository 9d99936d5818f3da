package bridge_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openmeet-team/openmeet-bridge/internal/harness"
)

// TestServesWhileHomeserverIsDown checks that a bridge whose homeserver is
// unreachable keeps serving the appservice endpoints and reports not-ready.
func TestServesWhileHomeserverIsDown(t *testing.T) {
	t.Parallel()
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
	b := startBridge(t, testConfig(t, t.TempDir(), deadHS, "openmeet.test", as))
	base := as.URL
	if code, _ := getJSON(t, base+"/_matrix/mau/live"); code != 200 {
		t.Fatalf("live: %d", code)
	}
	code, body := getJSON(t, base+"/_matrix/mau/ready")
	if code != 503 || body["ready"] != false || body["database"] != true {
		t.Fatalf("ready while homeserver is down: %d %v", code, body)
	}
	req, _ := http.NewRequest(http.MethodPut, base+"/_matrix/app/v1/transactions/1", strings.NewReader(
		`{"events":[{"event_id":"$1","room_id":"!r:openmeet.test","type":"m.room.message","sender":"@a:openmeet.test","origin_server_ts":1,"content":{}}]}`))
	req.Header.Set("Authorization", "Bearer "+as.HSToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("transaction while homeserver is down: %v %v", resp, err)
	}
	_ = resp.Body.Close()
	if n, _ := b.DB.EventLog.Count(context.Background()); n != 1 {
		t.Fatalf("log holds %d events", n)
	}
	mresp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(mresp.Body)
	_ = mresp.Body.Close()
	for _, name := range []string{"openmeet_appservice_events_logged_total 1", "openmeet_sse_connections 0", "openmeet_outbox_pending 0", "go_goroutines"} {
		if !strings.Contains(string(metrics), name) {
			t.Errorf("/metrics lacks %q", name)
		}
	}
	resp, err = http.Get(base + "/_openmeet/openapi.yaml")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("openapi.yaml: %v %v", resp, err)
	}
	spec, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if !strings.Contains(string(spec), "openapi: 3.1.0") {
		t.Fatal("openapi.yaml is not the description")
	}
	// Stop is bounded and may be called twice.
	start := time.Now()
	stopBridge(t, b)
	stopBridge(t, b)
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("stop took %s", took)
	}
	if _, err := http.Get(base + "/_matrix/mau/live"); err == nil {
		t.Fatal("still serving after Stop")
	}
}

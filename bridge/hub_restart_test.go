package bridge_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/openmeet-team/openmeet-bridge/database"
	"github.com/openmeet-team/openmeet-bridge/internal/harness"
)

// TestReadinessFollowsTheStreamHub, on real Synapse: the stream hub cannot
// start (the table it reads where the log ends from is missing); the bridge
// is not ready, says the streams are why, counts the hub's restarts and
// refuses streams with 503. Once the table is back the hub starts on its
// own, the bridge is ready and a stream works.
func TestReadinessFollowsTheStreamHub(t *testing.T) {
	hs := harness.SharedSynapse(t)
	cfg := clientConfig(t, hs)
	ctx := context.Background()
	db, err := database.Open(cfg.Database, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Upgrade(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(ctx, "ALTER TABLE stream_position RENAME TO stream_position_away"); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	b := startBridge(t, cfg)
	base := "http://" + b.Addr().String()
	eventually(t, 60*time.Second, "the homeserver to answer and the hub to have failed", func() bool {
		_, metrics := get(t, base+"/metrics")
		return b.HS.Ready() && !strings.Contains(string(metrics), "openmeet_sse_hub_restarts_total 0")
	})
	code, raw := get(t, base+"/_matrix/mau/ready")
	if got := readyBody(t, raw); code != 503 || got["ready"] || got["streams"] || !got["homeserver"] || !got["database"] {
		t.Fatalf("ready with the hub down: %d %s", code, raw)
	}
	_, metrics := get(t, base+"/metrics")
	if v := metricValue(t, string(metrics), "openmeet_sse_hub_running"); v != 0 {
		t.Fatalf("openmeet_sse_hub_running %v with the hub down", v)
	}
	tenant := harness.UniqueName("tenant-")
	provisionUser(t, b, tenant, "ada", "Ada")
	ada := mintJWT(t, jwtSecret, tenant, "ada", time.Hour)
	if _, code := openStream(t, b, ada, "", ""); code != 503 {
		t.Fatalf("a stream with the hub down: %d, want 503", code)
	}

	if _, err := b.DB.Exec(ctx, "ALTER TABLE stream_position_away RENAME TO stream_position"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 90*time.Second, "the bridge to be ready", func() bool {
		code, raw := get(t, base+"/_matrix/mau/ready")
		got := readyBody(t, raw)
		return code == 200 && got["ready"] && got["streams"]
	})
	stream, code := openStream(t, b, ada, "", "")
	if code != 200 {
		t.Fatalf("a stream once the hub runs: %d", code)
	}
	positionFrame(t, nextEvent(t, stream))
	stream.close()
}

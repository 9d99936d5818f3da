package bridge_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/openmeet-team/openmeet-bridge/appservice"
	"github.com/openmeet-team/openmeet-bridge/bridge"
	"github.com/openmeet-team/openmeet-bridge/internal/harness"
)

func TestMain(m *testing.M) { os.Exit(harness.Main(m)) }

func example(t testing.TB) []byte {
	t.Helper()
	data, err := os.ReadFile("../example-config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// testConfig is a valid config for a bridge on an SQLite file in dir, with
// the homeserver and appservice addresses given.
func testConfig(t testing.TB, dir, hsURL, domain string, as harness.AppserviceInfo) *bridge.Config {
	t.Helper()
	cfg, err := bridge.ParseConfig(example(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Homeserver.Address, cfg.Homeserver.Domain = hsURL, domain
	cfg.Appservice.Address, cfg.Appservice.Hostname, cfg.Appservice.Port = as.URL, "127.0.0.1", as.Port
	cfg.Appservice.ID, cfg.Appservice.ASToken, cfg.Appservice.HSToken = as.ID, as.ASToken, as.HSToken
	cfg.Appservice.Bot.Username = as.BotLocalpart
	cfg.Database.URI = "file:" + filepath.Join(dir, "bridge.db") + "?_txlock=immediate"
	cfg.Provisioning.SharedSecret = appservice.NewToken()
	cfg.Logging.Level = "debug"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// startBridge starts a bridge and stops it when the test ends.
func startBridge(t testing.TB, cfg *bridge.Config) *bridge.Bridge {
	t.Helper()
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel).With().Timestamp().Logger()
	b := bridge.New(cfg, log)
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopBridge(t, b) })
	return b
}

func stopBridge(t testing.TB, b *bridge.Bridge) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := b.Stop(ctx); err != nil {
		t.Errorf("stop: %v", err)
	}
}

// eventually polls cond until it holds or the timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func getJSON(t testing.TB, url string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

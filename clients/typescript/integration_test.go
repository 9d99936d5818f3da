package typescript_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/rs/zerolog"

	"github.com/openmeet-team/openmeet-bridge/appservice"
	"github.com/openmeet-team/openmeet-bridge/bridge"
	"github.com/openmeet-team/openmeet-bridge/internal/harness"
)

func TestMain(m *testing.M) { os.Exit(harness.Main(m)) }

const jwtSecret = "typescript-client-test-secret-0123456789"

// npmTools finds npm and the package's installed dependencies (npm ci).
func npmTools(t *testing.T) string {
	t.Helper()
	missing := func(what string) {
		if harness.Required() {
			t.Fatalf("the TypeScript client's integration test needs %s", what)
		}
		t.Skipf("the TypeScript client's integration test needs %s", what)
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		missing("npm")
	}
	if _, err := os.Stat("node_modules/typescript"); err != nil {
		missing("its dependencies (npm ci in clients/typescript, which scripts/check-clients.sh runs)")
	}
	return npm
}

// TestClientsAgainstTheBridge runs the package's integration tests (`npm
// run test:integration`: ProvisioningClient and ChatClient) against a real
// bridge and Synapse. They skip themselves without BRIDGE_URL,
// PROVISIONING_SECRET and JWT; here they must run, and pass.
func TestClientsAgainstTheBridge(t *testing.T) {
	npm := npmTools(t)
	hs := harness.SharedSynapse(t)
	example, err := os.ReadFile("../../example-config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := bridge.ParseConfig(example, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Homeserver.Address, cfg.Homeserver.Domain = hs.URL, hs.ServerName
	cfg.Appservice.Address, cfg.Appservice.Port = hs.AS.URL, hs.AS.Port
	cfg.Appservice.ASToken, cfg.Appservice.HSToken = hs.AS.ASToken, hs.AS.HSToken
	cfg.Database.URI = "file:" + filepath.Join(t.TempDir(), "bridge.db") + "?_txlock=immediate"
	cfg.Provisioning.SharedSecret = appservice.NewToken()
	cfg.ClientAPI.Enabled, cfg.ClientAPI.JWT.Secrets = true, []string{jwtSecret}
	// The client's test asserts what calls do, not how fast a loaded
	// machine creates rooms: a sync slower than the wait would answer 202.
	cfg.Portals.SyncWait = 2 * time.Minute
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	b := bridge.New(cfg, zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel))
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer b.Stop(context.Background())
	for deadline := time.Now().Add(60 * time.Second); !b.HS.Ready(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("bridge not ready")
		}
	}
	base := "http://" + b.Addr().String()
	// The JWT's user must exist for the client API to accept it; the
	// client's test then provisions everything else itself.
	tenant := harness.UniqueName("ts-")
	body, _ := json.Marshal(map[string]string{"displayname": "TypeScript Tester"})
	req, _ := http.NewRequest("PUT", base+"/_openmeet/provision/v1/tenants/"+tenant+"/users/tester", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+cfg.Provisioning.SharedSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("provisioning the test user: %d", resp.StatusCode)
	}
	token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "tester", "tenant": tenant, "aud": cfg.ClientAPI.JWT.Audience, "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString([]byte(jwtSecret))
	if err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(npm, "run", "--silent", "test:integration")
	cmd.Env = append(os.Environ(), "BRIDGE_URL="+base, "PROVISIONING_SECRET="+cfg.Provisioning.SharedSecret, "JWT="+token,
		"no_proxy=127.0.0.1,localhost", "NO_PROXY=127.0.0.1,localhost")
	out, err := cmd.CombinedOutput()
	t.Logf("npm run test:integration:\n%s", out)
	if err != nil {
		t.Fatalf("integration tests failed: %v", err)
	}
	// node --test's summary: something ran, nothing was skipped.
	pass := regexp.MustCompile(`(?m)^# pass (\d+)$`).FindSubmatch(out)
	if pass == nil || string(pass[1]) == "0" || !regexp.MustCompile(`(?m)^# skipped 0$`).Match(out) {
		t.Fatal("the integration tests did not run (skipped, or no summary)")
	}
}

package bridge_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/id"

	"github.com/openmeet-team/openmeet-bridge/api"
	"github.com/openmeet-team/openmeet-bridge/appservice"
	"github.com/openmeet-team/openmeet-bridge/bridge"
	"github.com/openmeet-team/openmeet-bridge/internal/harness"
	"github.com/openmeet-team/openmeet-bridge/internal/openapicheck"
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
	cfg.ClientAPI.JWT.Audience = jwtAudience
	cfg.Logging.Level = "debug"
	// Tests assert what a sync does, not how fast a loaded machine does
	// it: a sync slower than the default wait would answer 202.
	cfg.Portals.SyncWait = 2 * time.Minute
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

// apiRequest sends a request to one of the bridge's own APIs, checks the
// answer against the OpenAPI description and returns its status and body.
// body may be a string (sent as it is) or a value (sent as JSON).
func apiRequest(t testing.TB, b *bridge.Bridge, method, path, token string, body any) (int, []byte) {
	t.Helper()
	var reader io.Reader
	switch v := body.(type) {
	case nil:
	case string:
		reader = strings.NewReader(v)
	default:
		data, _ := json.Marshal(v)
		reader = bytes.NewReader(data)
	}
	req, _ := http.NewRequest(method, "http://"+b.Addr().String()+path, reader)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	checkAgainstOpenAPI(t, req, resp.StatusCode, raw)
	return resp.StatusCode, raw
}

// decodeInto decodes an API answer into out (if not nil).
func decodeInto(t testing.TB, what string, status int, raw []byte, out any) {
	t.Helper()
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s: %d %q is not JSON", what, status, raw)
		}
	}
}

// provision calls the provisioning API of b and decodes the answer into out
// (if not nil); it returns the status.
func provision(t testing.TB, b *bridge.Bridge, method, path string, body any, out any) int {
	t.Helper()
	status, raw := apiRequest(t, b, method, "/_openmeet/provision/v1"+path, b.Config.Provisioning.SharedSecret, body)
	decodeInto(t, method+" "+path, status, raw, out)
	return status
}

var (
	specOnce sync.Once
	spec     *openapicheck.Spec
	specErr  error
)

// checkAgainstOpenAPI fails the test when a response of our own APIs does
// not match api/openapi.yaml: every test that calls them checks it.
func checkAgainstOpenAPI(t testing.TB, req *http.Request, status int, body []byte) {
	t.Helper()
	specOnce.Do(func() { spec, specErr = openapicheck.Load(api.OpenAPI) })
	if specErr != nil {
		t.Fatal(specErr)
	}
	if err := spec.Check(req.Method, req.URL.EscapedPath(), status, body); err != nil {
		t.Errorf("response does not match the OpenAPI description: %v\n%s", err, body)
	}
}

// provisionUser creates a ghost through the API and fails unless Synapse
// has it.
func provisionUser(t testing.TB, b *bridge.Bridge, tenant, slug, name string) id.UserID {
	t.Helper()
	var out struct {
		UserID string `json:"user_id"`
		State  string `json:"state"`
	}
	if code := provision(t, b, "PUT", "/tenants/"+tenant+"/users/"+slug, map[string]string{"displayname": name}, &out); code != 200 || out.State != "synced" {
		t.Fatalf("PUT user %s: %d %+v", slug, code, out)
	}
	return id.UserID(out.UserID)
}

func asHTTPError(err error, target **harness.HTTPError) bool { return errors.As(err, target) }

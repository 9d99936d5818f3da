package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/rs/zerolog"

	"github.com/openmeet-team/openmeet-bridge/appservice"
	"github.com/openmeet-team/openmeet-bridge/bridge"
	"github.com/openmeet-team/openmeet-bridge/internal/harness"
)

func TestMain(m *testing.M) { os.Exit(harness.Main(m)) }

const secret = "browser-test-secret-0123456789abcdefghij"

// browserTools finds node, the installed playwright-core and Chromium.
func browserTools(t *testing.T) (node, chromium string) {
	t.Helper()
	missing := func(what string) {
		if harness.Required() {
			t.Fatalf("browser test needs %s", what)
		}
		t.Skipf("browser test needs %s", what)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing("node")
	}
	if _, err := os.Stat("e2e/node_modules/playwright-core"); err != nil {
		missing("playwright-core (npm ci in web/e2e)")
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return node, p
		}
	}
	missing("Chromium (Debian package chromium)")
	return "", ""
}

func provision(t *testing.T, b *bridge.Bridge, method, path string, body any, out any) {
	t.Helper()
	data, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, "http://"+b.Addr().String()+"/_openmeet/provision/v1"+path, bytes.NewReader(data))
	req.Header.Set("Authorization", "Bearer "+b.Config.Provisioning.SharedSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, raw)
	}
	if out != nil {
		_ = json.Unmarshal(raw, out)
	}
}

func token(t *testing.T, audience, tenant, slug string) string {
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": slug, "tenant": tenant, "aud": audience, "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestDemoPageInChromium runs web/e2e/chat.test.mjs against a real bridge
// and Synapse: two users in two browser contexts, one cut off (right after
// the page opened, and while sending), and an ordinary Matrix user in the
// same room who reacts and takes the reaction back.
func TestDemoPageInChromium(t *testing.T) {
	node, chromium := browserTools(t)
	hs := harness.SharedSynapse(t)
	example, err := os.ReadFile("../example-config.yaml")
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
	cfg.ClientAPI.Enabled, cfg.ClientAPI.JWT.Secrets, cfg.Web.Enabled = true, []string{secret}, true
	// A slow shared machine must not turn a sync into a 202: the test is
	// about the page, not about how fast Synapse creates rooms.
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
	tenant := harness.UniqueName("web-")
	provision(t, b, "PUT", "/tenants/"+tenant+"/users/ada", map[string]string{"displayname": "Ada Lovelace"}, nil)
	provision(t, b, "PUT", "/tenants/"+tenant+"/users/bob", map[string]string{"displayname": "Bob"}, nil)
	provision(t, b, "PUT", "/tenants/"+tenant+"/events/launch", map[string]any{"name": "Launch party", "visibility": "public"}, nil)
	var batch struct {
		Portal struct {
			Alias  string `json:"alias"`
			RoomID string `json:"room_id"`
		} `json:"portal"`
	}
	provision(t, b, "POST", "/tenants/"+tenant+"/events/launch/members:batch", map[string]any{"set": []map[string]string{
		{"user_slug": "ada", "role": "host"}, {"user_slug": "bob", "role": "attendee"}}}, &batch)
	// A second room for unread badges and the topic, and an empty one.
	provision(t, b, "PUT", "/tenants/"+tenant+"/events/afterparty", map[string]any{"name": "After party", "topic": "Drinks after the launch", "visibility": "public"}, nil)
	provision(t, b, "POST", "/tenants/"+tenant+"/events/afterparty/members:batch", map[string]any{"set": []map[string]string{
		{"user_slug": "ada", "role": "host"}, {"user_slug": "bob", "role": "attendee"}}}, nil)
	provision(t, b, "PUT", "/tenants/"+tenant+"/groups/quiet", map[string]any{"name": "Quiet corner", "visibility": "private"}, nil)
	provision(t, b, "PUT", "/tenants/"+tenant+"/groups/quiet/members/ada", map[string]any{"role": "owner"}, nil)
	alice := hs.NewUser(t, "alice")
	ctx := context.Background()
	if err := alice.Do(ctx, "PUT", "/_matrix/client/v3/profile/"+url.PathEscape(alice.UserID)+"/displayname", map[string]string{"displayname": "Alice on Element"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Join(ctx, batch.Portal.Alias); err != nil {
		t.Fatal(err)
	}

	proxy := startCuttableProxy(t, b.Addr().String())
	cmd := exec.Command(node, "--test", "--test-reporter=spec", "chat.test.mjs")
	cmd.Dir = "e2e"
	cmd.Env = append(os.Environ(),
		"BRIDGE_URL=http://"+b.Addr().String(), "CHROMIUM="+chromium,
		"PROXY_URL=http://"+proxy.addr, "CUT_URL=http://"+proxy.control+"/cut",
		"TOKEN_ADA="+token(t, cfg.ClientAPI.JWT.Audience, tenant, "ada"), "TOKEN_BOB="+token(t, cfg.ClientAPI.JWT.Audience, tenant, "bob"),
		"SYNAPSE_URL="+hs.URL, "ALICE_TOKEN="+alice.AccessToken, "ALICE_NAME=Alice on Element",
		"ROOM_ID="+batch.Portal.RoomID, "SCREENSHOT="+filepath.Join(os.TempDir(), "openmeet-demo-page.png"),
		"no_proxy=127.0.0.1,localhost", "NO_PROXY=127.0.0.1,localhost")
	out, err := cmd.CombinedOutput()
	t.Logf("browser test output:\n%s", out)
	if err != nil {
		t.Fatalf("browser test failed: %v", err)
	}
}

// cuttableProxy forwards TCP connections to the bridge and can cut all of
// them at once: what a dropped network does to a browser's open stream.
type cuttableProxy struct {
	addr, control string
	mu            sync.Mutex
	conns         []net.Conn
}

func startCuttableProxy(t *testing.T, target string) *cuttableProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cuttableProxy{addr: l.Addr().String()}
	go func() {
		for {
			client, err := l.Accept()
			if err != nil {
				return
			}
			server, err := net.Dial("tcp", target)
			if err != nil {
				_ = client.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, client, server)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(server, client); _ = server.Close() }()
			go func() { _, _ = io.Copy(client, server); _ = client.Close() }()
		}
	}()
	control := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		for _, c := range p.conns {
			_ = c.Close()
		}
		p.conns = nil
		p.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	p.control = strings.TrimPrefix(control.URL, "http://")
	t.Cleanup(func() { _ = l.Close(); control.Close() })
	return p
}

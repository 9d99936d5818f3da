// Command devstack brings up a local Synapse with the bridge registered and
// running, for trying the bridge by hand: scripts/dev.sh runs it.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/openmeet-team/openmeet-bridge/appservice"
	"github.com/openmeet-team/openmeet-bridge/bridge"
	"github.com/openmeet-team/openmeet-bridge/internal/harness"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "devstack:", err)
		os.Exit(1)
	}
}

func run() error {
	hsPort := flag.Int("synapse-port", 8008, "Synapse's client port on 127.0.0.1")
	bridgePort := flag.Int("bridge-port", 29340, "the bridge's port on 127.0.0.1 (appservice, APIs, demo page, metrics)")
	flag.Parse()
	example, err := os.ReadFile("example-config.yaml")
	if err != nil {
		return fmt.Errorf("run from the repository root: %w", err)
	}
	// Both ports are checked before anything starts, so that one in use is
	// one line naming the flag, not a Synapse traceback.
	if err := portFree(*hsPort, "-synapse-port"); err != nil {
		return err
	}
	if err := portFree(*bridgePort, "-bridge-port"); err != nil {
		return err
	}
	// Signals are caught from the start: SIGINT or SIGTERM to this process
	// (not only a terminal's Ctrl-C to the whole process group) stops
	// everything it started, also while Synapse is still starting.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		fmt.Println("Stopping… (once more to quit at once)")
		stop() // a second signal ends the process
	}()
	// Synapse starts empty every time, so the bridge's database must too.
	dataDir, err := os.MkdirTemp("", "openmeet-devstack-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dataDir)
	fmt.Printf("Starting Synapse %s…\n", harness.SynapseVersion())
	hs, err := startSynapse(ctx, harness.SynapseOptions{Port: *hsPort, ASPort: *bridgePort})
	if ctx.Err() != nil {
		return nil // stopped by a signal (a terminal's Ctrl-C also stops Synapse)
	} else if err != nil {
		return err
	}
	defer hs.Stop()

	cfg, err := bridge.ParseConfig(example, nil)
	if err != nil {
		return err
	}
	cfg.Homeserver.Address, cfg.Homeserver.Domain = hs.URL, hs.ServerName
	cfg.Appservice.Address, cfg.Appservice.Port = hs.AS.URL, hs.AS.Port
	cfg.Appservice.ASToken, cfg.Appservice.HSToken = hs.AS.ASToken, hs.AS.HSToken
	cfg.Database.URI = "file:" + filepath.Join(dataDir, "bridge.db") + "?_txlock=immediate"
	cfg.Provisioning.SharedSecret = appservice.NewToken()
	cfg.Logging.Format = "pretty"
	jwtSecret := appservice.NewToken()
	cfg.ClientAPI.Enabled, cfg.ClientAPI.JWT.Secrets, cfg.Web.Enabled = true, []string{jwtSecret}, true
	if err := cfg.Validate(); err != nil {
		return err
	}
	b := bridge.New(cfg, bridge.NewLogger(cfg.Logging, os.Stderr))
	if err := b.Start(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("port %d on 127.0.0.1 was taken meanwhile; choose another with -bridge-port", *bridgePort)
		}
		return err
	}
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = b.Stop(stopCtx)
	}()
	password := "openmeet-dev"
	userID, _, err := hs.RegisterUser(ctx, "alice", password, true)
	if ctx.Err() != nil {
		return nil
	} else if err != nil {
		return err
	}
	links, err := provisionDemo(ctx, hs.AS.URL, cfg.Provisioning.SharedSecret, jwtSecret, cfg.ClientAPI.JWT.Audience)
	if ctx.Err() != nil {
		return nil
	} else if err != nil {
		return err
	}
	fmt.Printf(`
Synapse %s:    %s  (server name %q)
Bridge:             %s  (ready: %s/_matrix/mau/ready, metrics: %s/metrics)
Matrix test user:   %s  password %q (log in with any Matrix client;
                    join #openmeet_demo_event_welcome:%s)
Provisioning API:   %s/_openmeet/provision/v1/  Authorization: Bearer %s
Client API tokens:  HS256 with secret %s, claims sub, tenant, exp and aud %q
Demo page, signed in as Ada:  %s
Demo page, signed in as Bob:  %s
Ctrl-C (or SIGTERM to process %d) stops everything.
`, hs.Version, hs.URL, hs.ServerName, hs.AS.URL, hs.AS.URL, hs.AS.URL, userID, password, hs.ServerName, hs.AS.URL,
		cfg.Provisioning.SharedSecret, jwtSecret, cfg.ClientAPI.JWT.Audience, links[0], links[1], os.Getpid())
	<-ctx.Done()
	return nil
}

// portFree fails, naming flag, when port is taken on 127.0.0.1.
func portFree(port int, flag string) error {
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return fmt.Errorf("port %d on 127.0.0.1 is in use; choose another with %s (./scripts/dev.sh %s %d)", port, flag, flag, port+10)
	}
	return l.Close()
}

// startSynapse starts Synapse, or, when ctx ends first, waits for the
// start to finish and stops it again: a signal while it starts leaves
// nothing running.
func startSynapse(ctx context.Context, opts harness.SynapseOptions) (*harness.Synapse, error) {
	type started struct {
		hs  *harness.Synapse
		err error
	}
	done := make(chan started, 1)
	go func() {
		hs, err := harness.StartSynapse(opts)
		done <- started{hs, err}
	}()
	select {
	case s := <-done:
		return s.hs, s.err
	case <-ctx.Done():
		s := <-done
		if s.err == nil {
			_ = s.hs.Stop()
		}
		return nil, ctx.Err()
	}
}

// provisionDemo creates tenant "demo" with Ada and Bob in a public event,
// and returns a sign-in link to the demo page for each (valid 12 hours).
func provisionDemo(ctx context.Context, base, secret, jwtSecret, audience string) ([]string, error) {
	calls := []struct {
		method, path string
		body         any
	}{
		{"PUT", "/tenants/demo/users/ada", map[string]string{"displayname": "Ada Lovelace"}},
		{"PUT", "/tenants/demo/users/bob", map[string]string{"displayname": "Bob Builder"}},
		{"PUT", "/tenants/demo/events/welcome", map[string]any{"name": "Welcome meetup", "topic": "Say hello", "visibility": "public"}},
		{"POST", "/tenants/demo/events/welcome/members:batch", map[string]any{"set": []map[string]string{
			{"user_slug": "ada", "role": "host"}, {"user_slug": "bob", "role": "attendee"}}}},
	}
	for _, c := range calls {
		data, _ := json.Marshal(c.body)
		req, _ := http.NewRequestWithContext(ctx, c.method, base+"/_openmeet/provision/v1"+c.path, bytes.NewReader(data))
		req.Header.Set("Authorization", "Bearer "+secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, err
		}
		_ = resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return nil, fmt.Errorf("%s %s: HTTP %d", c.method, c.path, resp.StatusCode)
		}
	}
	var links []string
	for _, slug := range []string{"ada", "bob"} {
		token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
			"sub": slug, "tenant": "demo", "aud": audience, "exp": time.Now().Add(12 * time.Hour).Unix(),
		}).SignedString([]byte(jwtSecret))
		if err != nil {
			return nil, err
		}
		links = append(links, base+"/_openmeet/web/#token="+token)
	}
	return links, nil
}

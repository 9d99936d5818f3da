// Command devstack brings up a local Synapse with the bridge registered and
// running, for trying the bridge by hand: scripts/dev.sh runs it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

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
	flag.Parse()
	example, err := os.ReadFile("example-config.yaml")
	if err != nil {
		return fmt.Errorf("run from the repository root: %w", err)
	}
	// Synapse starts empty every time, so the bridge's database must too.
	dataDir, err := os.MkdirTemp("", "openmeet-devstack-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dataDir)
	fmt.Println("Starting Synapse…")
	hs, err := harness.StartSynapse(harness.SynapseOptions{Port: *hsPort})
	if err != nil {
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
	if err := cfg.Validate(); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	b := bridge.New(cfg, bridge.NewLogger(cfg.Logging, os.Stderr))
	if err := b.Start(ctx); err != nil {
		return err
	}
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = b.Stop(stopCtx)
	}()
	password := "openmeet-dev"
	userID, _, err := hs.RegisterUser(ctx, "alice", password, true)
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	fmt.Printf(`
Synapse:            %s  (server name %q)
Bridge:             %s  (ready: %s/_matrix/mau/ready)
Matrix test user:   %s  password %q (log in with any Matrix client)
Provisioning API:   %s/_openmeet/provision/v1/  Authorization: Bearer %s
Ctrl-C stops everything.
`, hs.URL, hs.ServerName, hs.AS.URL, hs.AS.URL, userID, password, hs.AS.URL, cfg.Provisioning.SharedSecret)
	<-ctx.Done()
	fmt.Println("Stopping…")
	return nil
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/openmeet-team/openmeet-bridge/bridge"
	"github.com/openmeet-team/openmeet-bridge/migrate"
)

// secretEnv overrides provisioning.shared_secret for migrate, so the
// secret need not be on the command line.
const secretEnv = "OPENMEET_PROVISIONING_SECRET"

// runMigrate is `openmeet-bridge migrate`: it applies an export of an
// existing OpenMeet deployment through a running bridge.
func runMigrate(args []string, example []byte, stdout, stderr io.Writer) error {
	flags := flag.NewFlagSet("openmeet-bridge migrate", flag.ContinueOnError)
	flags.SetOutput(io.Discard)
	input := flags.String("input", "", "the JSON Lines export to apply (required; format: docs/migrate-export.schema.json)")
	configPath := flags.String("c", "config.yaml", "the bridge's config file, for its address and provisioning secret")
	bridgeURL := flags.String("bridge", "", "the bridge's base URL (default: from appservice.hostname and appservice.port of -c)")
	rateLimit := flags.Float64("rate", 20, "most write requests per second to the bridge (each is a few Synapse requests); 0 for no limit")
	concurrency := flags.Int("concurrency", 4, "records applied at once")
	dryRun := flags.Bool("dry-run", false, "print what would change, change nothing")
	checkpoint := flags.String("checkpoint", "", "checkpoint file (default: the input's path + .checkpoint)")
	failed := flags.String("failed", "", "where the failed lines go (default: the input's path + .failed)")
	restart := flags.Bool("restart", false, "ignore an existing checkpoint and start from the first line")
	progress := flags.String("progress", "auto", "auto (a bar on a terminal, lines otherwise), bar, lines or none")
	every := flags.Duration("progress-interval", 10*time.Second, "how often a progress line is written")
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, "Usage: openmeet-bridge migrate --input FILE [flags]\n\n"+
				"Applies an export of an existing OpenMeet deployment through the running\n"+
				"bridge's provisioning API; the provisioning secret comes from -c or "+secretEnv+".\nSee docs/cutover.md.\n\nFlags:\n")
			flags.SetOutput(stdout)
			flags.PrintDefaults()
			return nil
		}
		return fmt.Errorf("migrate: %w (-h lists the flags)", err)
	}
	if *input == "" {
		return errors.New("migrate: --input is required (-h lists the flags)")
	}
	if flags.NArg() > 0 {
		return fmt.Errorf("migrate: unexpected argument %q", flags.Arg(0))
	}
	opts := migrate.Options{
		Input: *input, BridgeURL: *bridgeURL, Secret: os.Getenv(secretEnv), Rate: *rateLimit, Concurrency: *concurrency,
		DryRun: *dryRun, Checkpoint: *checkpoint, Failed: *failed, Restart: *restart,
		Progress: stderr, ProgressEvery: *every, Out: stdout,
	}
	if opts.BridgeURL == "" || opts.Secret == "" {
		cfg, err := bridge.LoadConfig(example, *configPath)
		if err != nil {
			return fmt.Errorf("migrate: %w (or pass --bridge and set %s)", err, secretEnv)
		}
		if opts.Secret == "" {
			opts.Secret = cfg.Provisioning.SharedSecret
		}
		if opts.BridgeURL == "" {
			host := cfg.Appservice.Hostname
			if host == "0.0.0.0" || host == "::" || host == "" {
				host = "127.0.0.1"
			}
			opts.BridgeURL = "http://" + net.JoinHostPort(host, strconv.Itoa(cfg.Appservice.Port))
		}
	}
	switch *progress {
	case "auto":
		opts.Bar = isTerminal(stderr)
	case "bar":
		opts.Bar = true
	case "lines":
	case "none":
		opts.Progress = io.Discard
	default:
		return fmt.Errorf("migrate: --progress must be auto, bar, lines or none, not %q", *progress)
	}
	if *concurrency < 1 || *concurrency > 64 {
		return errors.New("migrate: --concurrency must be 1 to 64")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	report, err := migrate.Run(ctx, opts)
	if report != nil {
		report.Print(stdout)
	}
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if report.Failed > 0 && !opts.DryRun {
		return fmt.Errorf("migrate: %d lines failed (listed above and in %s)", report.Failed, report.FailedPath)
	}
	return nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}

// Command openmeet-bridge is a Matrix application service that bridges
// OpenMeet events and groups to a Synapse homeserver.
package main

import (
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"github.com/openmeet-team/openmeet-bridge/bridge"
)

//go:embed example-config.yaml
var exampleConfig []byte

// version is set when building with -ldflags "-X main.version=…", as the
// Dockerfile does: the image is built without .git, so the build
// information holds no revision. Empty means: read the build information.
var version string

// shutdownTimeout bounds a clean stop after SIGINT/SIGTERM.
const shutdownTimeout = 30 * time.Second

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "openmeet-bridge:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "migrate" {
		return runMigrate(args[1:], exampleConfig, stdout, stderr)
	}
	flags := flag.NewFlagSet("openmeet-bridge", flag.ContinueOnError)
	// Parse's own messages are discarded: a requested -h prints the usage
	// on stdout and exits 0; a mistake is one line on stderr, via main.
	flags.SetOutput(io.Discard)
	configPath := flags.String("c", "config.yaml", "path to the config file")
	regPath := flags.String("r", "registration.yaml", "path to the appservice registration file")
	generate := flags.Bool("g", false, "generate the registration (and the config, if missing) with fresh tokens, then exit")
	printExample := flags.Bool("e", false, "print the example config (the defaults) and exit")
	defaultsPath := flags.String("defaults", "", "a config file whose values replace the built-in defaults: for keys -c leaves out, and in what -g writes and -e prints (the container image sets it)")
	printVersion := flags.Bool("version", false, "print the version and exit")
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(flags, stdout)
			return nil
		}
		return fmt.Errorf("%w (-h lists the flags)", err)
	}
	if flags.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (-h lists the flags)", flags.Arg(0))
	}
	setVersion.Do(func() { bridge.Version = buildVersion() })
	example := exampleConfig
	if *defaultsPath != "" {
		overlay, err := os.ReadFile(*defaultsPath)
		if err != nil {
			return fmt.Errorf("failed to read -defaults: %w", err)
		}
		if example, err = bridge.OverlayExample(exampleConfig, overlay); err != nil {
			return fmt.Errorf("-defaults %s:\n%w", *defaultsPath, err)
		}
	}
	switch {
	case *printVersion:
		fmt.Fprintln(stdout, "openmeet-bridge", bridge.Version)
		return nil
	case *printExample:
		_, err := stdout.Write(example)
		return err
	case *generate:
		warnings, err := bridge.GenerateRegistration(example, *configPath, *regPath)
		for _, w := range warnings {
			fmt.Fprintln(stderr, "warning:", w)
		}
		if err == nil {
			fmt.Fprintf(stdout, "Wrote %s and the tokens into %s. Add the registration's absolute path to Synapse's app_service_config_files and restart Synapse.\n", *regPath, *configPath)
		}
		return err
	}
	return serve(example, *configPath, *regPath, stderr)
}

func usage(flags *flag.FlagSet, w io.Writer) {
	fmt.Fprint(w, `Usage: openmeet-bridge [flags]

Bridges OpenMeet events and groups to Matrix rooms on a Synapse homeserver,
as a Matrix application service. Start with -g to write a config and a
registration; see README.md. "openmeet-bridge migrate -h" describes the
migration of an existing deployment.

Flags:
`)
	flags.SetOutput(w)
	flags.PrintDefaults()
	flags.SetOutput(io.Discard)
}

func serve(example []byte, configPath, regPath string, logOut io.Writer) error {
	cfg, err := bridge.LoadConfig(example, configPath)
	if err != nil {
		return err
	}
	if _, err := bridge.LoadRegistration(regPath, cfg); err != nil {
		return err
	}
	log := bridge.NewLogger(cfg.Logging, logOut)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	b := bridge.New(cfg, log)
	if err := b.Start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	log.Info().Msg("Shutting down")
	stopCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	return b.Stop(stopCtx)
}

func buildVersion() string {
	if version != "" {
		return version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := info.Main.Version
	var revision, modified string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			revision = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if v == "" || v == "(devel)" {
		v = "dev"
	}
	if len(revision) >= 12 {
		v += "+" + revision[:12]
		if modified == "true" {
			v += "-dirty"
		}
	}
	return v
}

// setVersion sets bridge.Version once per process: run may be called more
// than once (the tests call it side by side).
var setVersion sync.Once

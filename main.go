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
	"syscall"
	"time"

	"github.com/openmeet-team/openmeet-bridge/bridge"
)

//go:embed example-config.yaml
var exampleConfig []byte

// shutdownTimeout bounds a clean stop after SIGINT/SIGTERM.
const shutdownTimeout = 30 * time.Second

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "openmeet-bridge:", err)
		}
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	flags := flag.NewFlagSet("openmeet-bridge", flag.ContinueOnError)
	flags.SetOutput(stderr)
	configPath := flags.String("c", "config.yaml", "path to the config file")
	regPath := flags.String("r", "registration.yaml", "path to the appservice registration file")
	generate := flags.Bool("g", false, "generate the registration (and the config, if missing) with fresh tokens, then exit")
	printExample := flags.Bool("e", false, "print the example config and exit")
	version := flags.Bool("version", false, "print the version and exit")
	if err := flags.Parse(args); err != nil {
		return err
	}
	bridge.Version = buildVersion()
	switch {
	case *version:
		fmt.Fprintln(stdout, "openmeet-bridge", bridge.Version)
		return nil
	case *printExample:
		_, err := stdout.Write(exampleConfig)
		return err
	case *generate:
		warnings, err := bridge.GenerateRegistration(exampleConfig, *configPath, *regPath)
		for _, w := range warnings {
			fmt.Fprintln(stderr, "warning:", w)
		}
		if err == nil {
			fmt.Fprintf(stdout, "Wrote %s and the tokens into %s. Add the registration's absolute path to Synapse's app_service_config_files and restart Synapse.\n", *regPath, *configPath)
		}
		return err
	}
	return serve(*configPath, *regPath, stderr)
}

func serve(configPath, regPath string, logOut io.Writer) error {
	cfg, err := bridge.LoadConfig(exampleConfig, configPath)
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
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	version := info.Main.Version
	var revision, modified string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			revision = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if version == "" || version == "(devel)" {
		version = "dev"
	}
	if len(revision) >= 12 {
		version += "+" + revision[:12]
		if modified == "true" {
			version += "-dirty"
		}
	}
	return version
}

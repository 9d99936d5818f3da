package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/openmeet-team/openmeet-bridge/bridge"
)

// The test binary doubles as the bridge binary: with this variable set it
// runs main instead of the tests, so signals can be tested on a real process.
const runMainEnv = "OPENMEET_BRIDGE_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

func runCLI(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err = run(args, &out, &errOut)
	return out.String(), errOut.String(), err
}

func TestVersionAndExample(t *testing.T) {
	out, _, err := runCLI(t, "--version")
	if err != nil || !strings.HasPrefix(out, "openmeet-bridge ") {
		t.Fatalf("--version: %q %v", out, err)
	}
	out, _, err = runCLI(t, "-e")
	if err != nil || out != string(exampleConfig) {
		t.Fatalf("-e printed something else: %v", err)
	}
	if _, _, err := runCLI(t, "-nonsense"); err == nil || !strings.Contains(err.Error(), "-h lists the flags") {
		t.Fatalf("unknown flag: %v", err)
	}
	if _, _, err := runCLI(t, "-c", "x.yaml", "stray"); err == nil || !strings.Contains(err.Error(), `unexpected argument "stray"`) {
		t.Fatalf("stray argument: %v", err)
	}
}

// -h (and --help) print the usage on stdout and exit 0, as a process.
func TestHelpExitsZero(t *testing.T) {
	t.Parallel()
	for _, arg := range []string{"-h", "--help"} {
		cmd := exec.Command(os.Args[0], arg)
		cmd.Env = append(os.Environ(), runMainEnv+"=1")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("%s: %v\n%s", arg, err, stderr.String())
		}
		if !strings.HasPrefix(stdout.String(), "Usage: openmeet-bridge") || !strings.Contains(stdout.String(), "-defaults") || stderr.Len() != 0 {
			t.Fatalf("%s printed stdout %q, stderr %q", arg, stdout.String(), stderr.String())
		}
	}
	cmd := exec.Command(os.Args[0], "-nonsense")
	cmd.Env = append(os.Environ(), runMainEnv+"=1")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("-nonsense: %v", err)
	}
	if want := "openmeet-bridge: flag provided but not defined: -nonsense (-h lists the flags)\n"; string(out) != want {
		t.Fatalf("-nonsense printed %q, want %q", out, want)
	}
}

// writeConfig runs -g in dir and sets the domain and listen port.
func writeConfig(t *testing.T, dir string, port int) (configPath, regPath string) {
	t.Helper()
	configPath, regPath = filepath.Join(dir, "config.yaml"), filepath.Join(dir, "registration.yaml")
	if _, _, err := runCLI(t, "-g", "-c", configPath, "-r", regPath); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(configPath)
	s := strings.Replace(string(data), "domain: example.com", "domain: openmeet.test", 1)
	s = strings.Replace(s, "port: 29340", fmt.Sprintf("port: %d", port), 1)
	s = strings.Replace(s, "file:openmeet-bridge.db", "file:"+filepath.Join(dir, "bridge.db"), 1)
	// An unreachable homeserver: the bridge must still run.
	s = strings.Replace(s, "address: http://127.0.0.1:8008", "address: http://127.0.0.1:1", 1)
	if err := os.WriteFile(configPath, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	// -g again so the registration uses the real domain.
	if _, _, err := runCLI(t, "-g", "-c", configPath, "-r", regPath); err != nil {
		t.Fatal(err)
	}
	return configPath, regPath
}

// -g warns on stderr when it writes tokens into a file git tracks, as the
// example registration.yaml at the top of the repository is, and not when
// it writes into an ignored data/ directory as the README says.
func TestGenerateWarnsAboutTrackedRegistration(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	dir := t.TempDir()
	for _, args := range [][]string{
		{"init", "--quiet"},
		{"add", "--", "registration.yaml", ".gitignore"},
	} {
		if args[0] == "add" {
			_ = os.WriteFile(filepath.Join(dir, "registration.yaml"), []byte("# example\n"), 0o644)
			_ = os.WriteFile(filepath.Join(dir, ".gitignore"), []byte("/data/\n"), 0o644)
		}
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	config := filepath.Join(dir, "data", "config.yaml")
	tracked := filepath.Join(dir, "registration.yaml")
	_, stderr, err := runCLI(t, "-g", "-c", config, "-r", tracked)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stderr, "warning: "+tracked+" is tracked by git") {
		t.Fatalf("no warning about the tracked registration:\n%s", stderr)
	}
	_, stderr, err = runCLI(t, "-g", "-c", config, "-r", filepath.Join(dir, "data", "registration.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(stderr, "tracked by git") {
		t.Fatalf("warned about files in data/:\n%s", stderr)
	}
}

func TestBadConfigStopsStartup(t *testing.T) {
	dir := t.TempDir()
	configPath, regPath := writeConfig(t, dir, 29399)
	data, _ := os.ReadFile(configPath)
	bad := strings.Replace(string(data), "type: sqlite3-fk-wal", "type: mongodb", 1)
	_ = os.WriteFile(configPath, []byte(bad), 0o600)
	_, _, err := runCLI(t, "-c", configPath, "-r", regPath)
	if err == nil || !strings.Contains(err.Error(), "database.type") {
		t.Fatalf("want an error naming database.type, got %v", err)
	}
	_ = os.WriteFile(configPath, data, 0o600)
	_, _, err = runCLI(t, "-c", configPath, "-r", filepath.Join(dir, "missing.yaml"))
	if err == nil || !strings.Contains(err.Error(), "registration") {
		t.Fatalf("want an error about the registration, got %v", err)
	}
}

func TestSIGTERMStopsCleanly(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	dir := t.TempDir()
	configPath, regPath := writeConfig(t, dir, port)
	cmd := exec.Command(os.Args[0], "-c", configPath, "-r", regPath)
	cmd.Env = append(os.Environ(), runMainEnv+"=1")
	var logs bytes.Buffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	live := fmt.Sprintf("http://127.0.0.1:%d/_matrix/mau/live", port)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(live)
		if err == nil {
			_ = resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatalf("bridge never came up:\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, logs.String())
		}
	case <-time.After(40 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("still running 40 s after SIGTERM:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "Bridge stopped") {
		t.Fatalf("no clean stop in the log:\n%s", logs.String())
	}
}

// -defaults puts its values into the built-in example: -e prints the
// result, comments kept, -g writes a missing config from it, and keys a
// config leaves out take its values.
func TestDefaultsFlag(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	defaults := filepath.Join(dir, "defaults.yaml")
	if err := os.WriteFile(defaults, []byte("appservice:\n    hostname: 0.0.0.0\nlogging:\n    level: debug\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _, err := runCLI(t, "-defaults", defaults, "-e")
	if err != nil || !strings.Contains(out, "hostname: 0.0.0.0") || strings.Contains(out, "hostname: 127.0.0.1") ||
		!strings.Contains(out, "# Where Synapse reaches the bridge") || !strings.Contains(out, "port: 29340") {
		t.Fatalf("-e with -defaults: %v\n%s", err, out)
	}
	configPath, regPath := filepath.Join(dir, "config.yaml"), filepath.Join(dir, "registration.yaml")
	if _, _, err := runCLI(t, "-defaults", defaults, "-g", "-c", configPath, "-r", regPath); err != nil {
		t.Fatal(err)
	}
	written, _ := os.ReadFile(configPath)
	if !strings.Contains(string(written), "hostname: 0.0.0.0") || !strings.Contains(string(written), "level: debug") {
		t.Fatal("-g did not start from the -defaults values")
	}
	merged, err := bridge.OverlayExample(exampleConfig, []byte("appservice:\n    hostname: 0.0.0.0\n"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := bridge.ParseConfig(merged, []byte("homeserver:\n    domain: openmeet.test\n"))
	if err != nil || cfg.Appservice.Hostname != "0.0.0.0" || cfg.Appservice.Port != 29340 {
		t.Fatalf("%v %+v", err, cfg)
	}
	// The -defaults file is checked like a config.
	if err := os.WriteFile(defaults, []byte("appservice:\n    hostnme: 0.0.0.0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runCLI(t, "-defaults", defaults, "-e"); err == nil || !strings.Contains(err.Error(), "appservice.hostnme: unknown key") {
		t.Fatalf("bad -defaults file: %v", err)
	}
	if _, _, err := runCLI(t, "-defaults", filepath.Join(dir, "missing.yaml"), "-e"); err == nil || !strings.Contains(err.Error(), "-defaults") {
		t.Fatalf("missing -defaults file: %v", err)
	}
}

package harness

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// AppserviceInfo is the registration the harness gives Synapse, and so what
// the bridge under test must use.
type AppserviceInfo struct {
	ID, ASToken, HSToken, BotLocalpart string
	UserRegex, AliasRegex              string
	// Port is where the bridge must listen on 127.0.0.1; URL is its address.
	Port int
	URL  string
}

// SynapseOptions changes what the harness generates.
type SynapseOptions struct {
	ServerName   string // default "localhost"
	BotLocalpart string // default "openmeetbot"
	UserRegex    string // default ^@openmeet_.*:<server>$
	AliasRegex   string // default ^#openmeet_.*:<server>$
	// LegacyUserRegex, when set, is a non-exclusive user namespace (the
	// accounts of a deployment the bridge adopts).
	LegacyUserRegex string
	// Port is the client listener's port; 0 picks a free one.
	Port int
	// ASPort is the port the bridge must listen on, which the
	// registration's url names; 0 picks a free one.
	ASPort int
}

// Synapse is a running homeserver.
type Synapse struct {
	URL        string
	ServerName string
	// Version is the release that answered, as Synapse reports it.
	Version          string
	AS               AppserviceInfo
	RegistrationPath string
	Dir              string

	sharedSecret string
	python       string
	cmd          *exec.Cmd
	exited       chan struct{}
	client       *http.Client
}

// StartSynapse generates a config and an appservice registration in a
// temporary directory, starts SynapseVersion() and waits until it is
// healthy. It fails when the release that answers is not the one asked for.
func StartSynapse(opts SynapseOptions) (*Synapse, error) {
	version := SynapseVersion()
	python, err := checkSynapseVenv(version)
	if err != nil {
		return nil, err
	}
	if opts.ServerName == "" {
		opts.ServerName = "localhost"
	}
	if opts.BotLocalpart == "" {
		opts.BotLocalpart = "openmeetbot"
	}
	escaped := strings.ReplaceAll(opts.ServerName, ".", `\.`)
	if opts.UserRegex == "" {
		opts.UserRegex = `^@openmeet_.*:` + escaped + `$`
	}
	if opts.AliasRegex == "" {
		opts.AliasRegex = `^#openmeet_.*:` + escaped + `$`
	}
	dir, err := os.MkdirTemp("", "openmeet-synapse-")
	if err != nil {
		return nil, err
	}
	s := &Synapse{Dir: dir, ServerName: opts.ServerName, sharedSecret: randomHex(32), python: python,
		client: &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{Proxy: nil}}}
	if err := s.writeFiles(python, opts); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	if err := s.start(python); err != nil {
		_ = s.Stop()
		return nil, err
	}
	if err := s.checkVersion(version); err != nil {
		_ = s.Stop()
		return nil, err
	}
	return s, nil
}

// checkVersion asks the running server for its release, so that a test
// run can never silently use another Synapse than the one it names.
func (s *Synapse) checkVersion(want string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var v struct {
		ServerVersion string `json:"server_version"`
	}
	if err := s.do(ctx, http.MethodGet, "/_synapse/admin/v1/server_version", "", nil, &v); err != nil {
		return fmt.Errorf("failed to ask Synapse for its version: %w", err)
	}
	if v.ServerVersion != want {
		return fmt.Errorf("synapse reports version %q, want %s", v.ServerVersion, want)
	}
	s.Version = v.ServerVersion
	return nil
}

func (s *Synapse) writeFiles(python string, opts SynapseOptions) error {
	asPort, err := opts.ASPort, error(nil)
	if asPort == 0 {
		if asPort, err = FreePort(); err != nil {
			return err
		}
	}
	s.AS = AppserviceInfo{
		ID: "openmeet", ASToken: randomHex(32), HSToken: randomHex(32), BotLocalpart: opts.BotLocalpart,
		UserRegex: opts.UserRegex, AliasRegex: opts.AliasRegex,
		Port: asPort, URL: fmt.Sprintf("http://127.0.0.1:%d", asPort),
	}
	users := []map[string]any{{"regex": s.AS.UserRegex, "exclusive": true}}
	if opts.LegacyUserRegex != "" {
		users = append(users, map[string]any{"regex": opts.LegacyUserRegex, "exclusive": false})
	}
	reg := map[string]any{
		"id": s.AS.ID, "url": s.AS.URL, "as_token": s.AS.ASToken, "hs_token": s.AS.HSToken,
		"sender_localpart": s.AS.BotLocalpart, "rate_limited": false,
		"receive_ephemeral": true, "de.sorunome.msc2409.push_ephemeral": true,
		"namespaces": map[string]any{
			"users":   users,
			"aliases": []map[string]any{{"regex": s.AS.AliasRegex, "exclusive": true}},
		},
	}
	s.RegistrationPath = filepath.Join(s.Dir, "registration.yaml")
	if err := writeYAML(s.RegistrationPath, reg); err != nil {
		return err
	}
	gen := exec.Command(python, "-m", "synapse.app.homeserver", "--server-name", opts.ServerName,
		"--config-path", filepath.Join(s.Dir, "homeserver.yaml"), "--data-directory", s.Dir,
		"--generate-config", "--report-stats=no")
	gen.Dir = s.Dir
	if out, err := gen.CombinedOutput(); err != nil {
		return fmt.Errorf("failed to generate Synapse config: %w\n%s", err, out)
	}
	port := opts.Port
	if port == 0 {
		if port, err = FreePort(); err != nil {
			return err
		}
	}
	s.URL = fmt.Sprintf("http://127.0.0.1:%d", port)
	logConfig := filepath.Join(s.Dir, "log.config")
	if err := os.WriteFile(logConfig, []byte(fmt.Sprintf(synapseLogConfig, filepath.Join(s.Dir, "homeserver.log"))), 0o600); err != nil {
		return err
	}
	return writeYAML(filepath.Join(s.Dir, "overrides.yaml"), s.overrides(port, logConfig))
}

// synapseLogConfig keeps Synapse's log to warnings, in a file.
const synapseLogConfig = `version: 1
formatters:
  precise:
    format: '%%(asctime)s - %%(name)s - %%(lineno)d - %%(levelname)s - %%(message)s'
handlers:
  file:
    class: logging.FileHandler
    formatter: precise
    filename: %s
root:
  level: WARNING
  handlers: [file]
disable_existing_loggers: false
`

func (s *Synapse) overrides(port int, logConfig string) map[string]any {
	unlimited := map[string]any{"per_second": 100000, "burst_count": 1000000}
	cfg := map[string]any{
		"listeners": []map[string]any{{
			"port": port, "bind_addresses": []string{"127.0.0.1"}, "type": "http", "tls": false,
			"x_forwarded": false, "resources": []map[string]any{{"names": []string{"client"}, "compress": false}},
		}},
		"database":                    map[string]any{"name": "sqlite3", "args": map[string]any{"database": filepath.Join(s.Dir, "homeserver.db")}},
		"log_config":                  logConfig,
		"media_store_path":            filepath.Join(s.Dir, "media"),
		"enable_registration":         false,
		"registration_shared_secret":  s.sharedSecret,
		"bcrypt_rounds":               4,
		"trusted_key_servers":         []any{},
		"federation_domain_whitelist": []any{},
		"report_stats":                false,
		"suppress_key_server_warning": true,
		"app_service_config_files":    []string{s.RegistrationPath},
		"rc_login": map[string]any{
			"address": unlimited, "account": unlimited, "failed_attempts": unlimited,
		},
		"rc_joins":              map[string]any{"local": unlimited, "remote": unlimited},
		"rc_invites":            map[string]any{"per_room": unlimited, "per_user": unlimited, "per_issuer": unlimited},
		"rc_presence":           map[string]any{"per_user": unlimited},
		"rc_delayed_event_mgmt": unlimited,
	}
	for _, key := range []string{"rc_message", "rc_registration", "rc_joins_per_room", "rc_3pid_validation",
		"rc_admin_redaction", "rc_room_creation", "rc_reports", "rc_media_create", "rc_user_directory",
		"rc_third_party_invite"} {
		cfg[key] = unlimited
	}
	return cfg
}

func (s *Synapse) start(python string) error {
	s.cmd = exec.Command(python, "-m", "synapse.app.homeserver",
		"-c", filepath.Join(s.Dir, "homeserver.yaml"), "-c", filepath.Join(s.Dir, "overrides.yaml"))
	s.cmd.Dir = s.Dir
	s.cmd.Env = append(os.Environ(), "no_proxy=127.0.0.1,localhost", "NO_PROXY=127.0.0.1,localhost")
	stderr, err := os.Create(filepath.Join(s.Dir, "stderr.log"))
	if err != nil {
		return err
	}
	s.cmd.Stdout, s.cmd.Stderr = stderr, stderr
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("failed to start Synapse: %w", err)
	}
	s.exited = make(chan struct{})
	go func() { _ = s.cmd.Wait(); _ = stderr.Close(); close(s.exited) }()
	deadline := time.Now().Add(180 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			return fmt.Errorf("synapse exited during start-up:\n%s", s.Log())
		default:
		}
		resp, err := s.client.Get(s.URL + "/health")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("synapse was not healthy within 180 s:\n%s", s.Log())
}

// Stop stops Synapse (SIGTERM, then SIGKILL after 20 s) and removes its
// directory.
func (s *Synapse) Stop() error {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(20 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.exited
		}
	}
	return os.RemoveAll(s.Dir)
}

// Log returns the tail of Synapse's log and its stderr, for failing tests.
func (s *Synapse) Log() string {
	var b strings.Builder
	for _, name := range []string{"homeserver.log", "stderr.log"} {
		data, _ := os.ReadFile(filepath.Join(s.Dir, name))
		if len(data) > 8000 {
			data = data[len(data)-8000:]
		}
		fmt.Fprintf(&b, "--- %s ---\n%s\n", name, data)
	}
	return b.String()
}

func writeYAML(path string, v any) error {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	if err := enc.Encode(v); err != nil {
		return err
	}
	_ = enc.Close()
	return os.WriteFile(path, buf.Bytes(), 0o600)
}

var (
	sharedHSOnce sync.Once
	sharedHS     *Synapse
	sharedHSErr  error
)

// SharedSynapse returns the package's Synapse, starting it on first use.
func SharedSynapse(tb testing.TB) *Synapse {
	tb.Helper()
	sharedHSOnce.Do(func() {
		sharedHS, sharedHSErr = StartSynapse(SynapseOptions{})
		if sharedHSErr == nil {
			atStop(sharedHS.Stop)
			tb.Logf("Synapse %s at %s", sharedHS.Version, sharedHS.URL)
		}
	})
	if sharedHSErr != nil {
		unavailable(tb, "Synapse is not available: %v", sharedHSErr)
	}
	return sharedHS
}

// OwnSynapse starts a Synapse for one test or benchmark alone (one that
// stops or restarts it, or needs options of its own); it is stopped when
// the test ends, after what the test started later (cleanups run last
// first). Unavailable: the test fails under CI, else it is skipped.
func OwnSynapse(tb testing.TB, opts SynapseOptions) *Synapse {
	tb.Helper()
	hs, err := StartSynapse(opts)
	if err != nil {
		unavailable(tb, "Synapse is not available: %v", err)
	}
	tb.Cleanup(func() { _ = hs.Stop() })
	return hs
}

// PID is the Synapse process's ID (for measuring its CPU time).
func (s *Synapse) PID() int { return s.cmd.Process.Pid }

// Pause stops the Synapse process but keeps its data, so Resume can start
// it again as it was: an outage, for tests.
func (s *Synapse) Pause() error {
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case <-s.exited:
	case <-time.After(20 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	return nil
}

// Resume starts a paused Synapse again on the same port and data.
func (s *Synapse) Resume() error {
	return s.start(s.python)
}

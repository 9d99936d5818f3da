package bridge

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	mxas "maunium.net/go/mautrix/appservice"

	"github.com/openmeet-team/openmeet-bridge/appservice"
)

func exampleConfig(t testing.TB) []byte {
	t.Helper()
	data, err := os.ReadFile("../example-config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return data
}

const validConfig = `
homeserver:
    address: http://127.0.0.1:8008
    domain: openmeet.test
appservice:
    as_token: "as_0123456789abcdef0123456789abcdef"
    hs_token: "hs_0123456789abcdef0123456789abcdef"
provisioning:
    shared_secret: "ps_0123456789abcdef0123456789abcdef"
permissions:
    "@admin:openmeet.test": admin
    openmeet.test: user
`

func TestValidConfigKeepsDefaults(t *testing.T) {
	t.Parallel()
	cfg, err := ParseConfig(exampleConfig(t), []byte(validConfig))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.Appservice.Port != 29340 || cfg.Database.Type != "sqlite3-fk-wal" || cfg.Appservice.Bot.Username != "openmeetbot" {
		t.Fatalf("defaults lost: %+v", cfg)
	}
	if len(cfg.Permissions) != 2 || cfg.Permissions["@admin:openmeet.test"] != "admin" {
		t.Fatalf("permissions %v", cfg.Permissions)
	}
}

func TestBadConfigNamesTheKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, change, wantKey string
	}{
		{"unknown database type", "database:\n    type: mysql\n", "database.type"},
		{"missing homeserver address", "homeserver:\n    address: \"\"\n", "homeserver.address"},
		{"placeholder domain", "homeserver:\n    domain: example.com\n", "homeserver.domain"},
		{"bad domain", "homeserver:\n    domain: \"not a domain\"\n", "homeserver.domain"},
		{"short token", "appservice:\n    as_token: short\n", "appservice.as_token"},
		{"placeholder token", "appservice:\n    hs_token: generate\n", "appservice.hs_token"},
		{"same tokens", "appservice:\n    hs_token: \"as_0123456789abcdef0123456789abcdef\"\n", "appservice.hs_token"},
		{"bad port", "appservice:\n    port: 70000\n", "appservice.port"},
		{"bad template", "appservice:\n    ghost_template: \"{tenant}{slug}\"\n", "ghost_template"},
		{"bot in ghost namespace", "appservice:\n    bot:\n        username: openmeet_bot_x\n", "appservice.bot.username"},
		{"bad permission level", "permissions:\n    \"@x:openmeet.test\": root\n", "permissions.@x:openmeet.test"},
		{"ghost with permissions", "permissions:\n    \"@openmeet_acme_ada:openmeet.test\": admin\n", "permissions.@openmeet_acme_ada:openmeet.test"},
		{"client api without audience", "client_api:\n    enabled: true\n    jwt:\n        secrets: [\"0123456789abcdef0123456789abcdef\"]\n        audience: \"\"\n", "client_api.jwt.audience"},
		{"bad duration", "database:\n    conn_max_lifetime: forever\n", "database.conn_max_lifetime"},
		{"bad lease duration", "database:\n    lease_duration: long\n", "database.lease_duration"},
		{"short lease duration", "database:\n    lease_duration: 100ms\n", "database.lease_duration"},
		{"bad postgres uri", "database:\n    type: postgres\n    uri: \"postgres://x:y@host:notaport/db\"\n", "database.uri"},
		{"placeholder secret", "provisioning:\n    shared_secret: generate\n", "provisioning.shared_secret"},
		{"bad log level", "logging:\n    level: loud\n", "logging.level"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := ParseConfig(exampleConfig(t), []byte(validConfig))
			if err != nil {
				t.Fatal(err)
			}
			cfg, err = reparse(t, cfg, tt.change)
			if err != nil {
				t.Fatal(err)
			}
			err = cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.wantKey) {
				t.Fatalf("want an error naming %s, got %v", tt.wantKey, err)
			}
		})
	}
}

// reparse decodes change over an already parsed config.
func reparse(t *testing.T, cfg *Config, change string) (*Config, error) {
	t.Helper()
	return cfg, decodeStrict([]byte(change), cfg)
}

func TestUnknownKeyIsAnError(t *testing.T) {
	t.Parallel()
	_, err := ParseConfig(exampleConfig(t), []byte(validConfig+"database:\n    adress: http://x\n"))
	if err == nil || !strings.Contains(err.Error(), "adress") {
		t.Fatalf("typo accepted: %v", err)
	}
}

// Mistakes the YAML decoder finds are reported by key path, not by Go
// type, with the line and, for a typo, the key it probably meant.
func TestParseErrorsNameTheKeyPath(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, change string
		want         []string
	}{
		{"typo", "appservice:\n    adress: http://x\n",
			[]string{"appservice.adress: unknown key (line 2); did you mean address?"}},
		{"unknown section", "matrix:\n    x: 1\n", []string{"matrix: unknown key (line 1)"}},
		{"nested typo", "client_api:\n    stream:\n        hartbeat: 1s\n",
			[]string{"client_api.stream.hartbeat: unknown key (line 3); did you mean heartbeat?"}},
		{"bad duration", "client_api:\n    stream:\n        heartbeat: forever\n",
			[]string{`client_api.stream.heartbeat: "forever" is not a duration such as 30s, 5m or 2h (line 3)`}},
		{"duration without unit", "portals:\n    sync_wait: 20\n",
			[]string{`portals.sync_wait: "20" is not a duration`}},
		{"bad number", "appservice:\n    port: eighty\n", []string{`appservice.port: "eighty" is not a whole number (line 2)`}},
		{"bad bool", "web:\n    enabled: sometimes\n", []string{`web.enabled: "sometimes" is not true or false`}},
		{"list for a value", "homeserver:\n    domain: [a, b]\n", []string{"homeserver.domain: must be a single value, not a list (line 2)"}},
		{"value for a section", "logging: loud\n", []string{`logging: must be a mapping of keys, not "loud" (line 1)`}},
		{"bad list item", "client_api:\n    jwt:\n        secrets: [[x]]\n", []string{"client_api.jwt.secrets[0]: must be a single value, not a list"}},
		{"bad power level", "portals:\n    power_levels:\n        event:\n            host: high\n",
			[]string{`portals.power_levels.event.host: "high" is not a whole number`}},
		{"all at once", "appservice:\n    adress: x\n    port: x\ndatabase:\n    tpye: x\n",
			[]string{"appservice.adress: unknown key", "appservice.port:", "database.tpye: unknown key (line 5); did you mean type?"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseConfig(exampleConfig(t), []byte(tt.change))
			if err == nil {
				t.Fatal("accepted")
			}
			for _, want := range tt.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error lacks %q:\n%v", want, err)
				}
			}
			if strings.Contains(err.Error(), "time.Duration") || strings.Contains(err.Error(), "Config") {
				t.Errorf("error names a Go type:\n%v", err)
			}
		})
	}
	// The line numbers count in the user's file.
	_, err := ParseConfig(exampleConfig(t), []byte("appservice:\n    adress: x\n"))
	if err == nil || !strings.Contains(err.Error(), "appservice.adress: unknown key (line 2)") {
		t.Fatalf("got %v", err)
	}
	// Empty keys and anchors are fine.
	cfg, err := ParseConfig(exampleConfig(t), []byte(validConfig+"web:\nlogging: &l\n    level: debug\n"))
	if err != nil || cfg.Logging.Level != "debug" {
		t.Fatalf("%v %+v", err, cfg)
	}
}

func TestLoadConfigErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, err := LoadConfig(exampleConfig(t), filepath.Join(dir, "missing.yaml")); err == nil {
		t.Fatal("missing file accepted")
	}
	bad := filepath.Join(dir, "bad.yaml")
	_ = os.WriteFile(bad, []byte("homeserver: [\n"), 0o600)
	if _, err := LoadConfig(exampleConfig(t), bad); err == nil {
		t.Fatal("broken YAML accepted")
	}
}

func TestGenerateRegistration(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	configPath, regPath := filepath.Join(dir, "config.yaml"), filepath.Join(dir, "registration.yaml")
	warnings, err := GenerateRegistration(exampleConfig(t), configPath, regPath)
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 2 {
		t.Fatalf("want warnings about the new config and the placeholder domain, got %v", warnings)
	}
	for _, p := range []string{configPath, regPath} {
		st, err := os.Stat(p)
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: mode %v, %v", p, st.Mode(), err)
		}
	}
	reg, err := mxas.LoadRegistration(regPath)
	if err != nil {
		t.Fatal(err)
	}
	if len(reg.AppToken) < 32 || len(reg.ServerToken) < 32 || reg.AppToken == reg.ServerToken {
		t.Fatalf("weak tokens %q %q", reg.AppToken, reg.ServerToken)
	}
	if reg.RateLimited == nil || *reg.RateLimited || !reg.EphemeralEvents || !reg.SoruEphemeralEvents {
		t.Fatalf("registration flags %+v", reg)
	}
	if reg.SenderLocalpart != "openmeetbot" || reg.URL != "http://127.0.0.1:29340" || reg.ID != "openmeet" {
		t.Fatalf("registration %+v", reg)
	}
	for _, ns := range append(reg.Namespaces.UserIDs, reg.Namespaces.RoomAliases...) {
		if !ns.Exclusive || !strings.HasPrefix(ns.Regex, "^") || !strings.HasSuffix(ns.Regex, "$") {
			t.Fatalf("namespace %+v is not exclusive and anchored", ns)
		}
	}
	// The config now holds the same tokens and a provisioning secret, and
	// its comments survived.
	data, _ := os.ReadFile(configPath)
	cfg, err := ParseConfig(exampleConfig(t), data)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Appservice.ASToken != reg.AppToken || cfg.Appservice.HSToken != reg.ServerToken {
		t.Fatal("config tokens differ from the registration")
	}
	if len(cfg.Provisioning.SharedSecret) < 32 || cfg.Provisioning.SharedSecret == appservice.Placeholder {
		t.Fatalf("provisioning secret %q", cfg.Provisioning.SharedSecret)
	}
	if !strings.Contains(string(data), "# Where Synapse reaches the bridge") {
		t.Fatal("comments were lost")
	}
	// The placeholder domain still stops a real start, and -g again after
	// fixing it gives a registration the config agrees with.
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "homeserver.domain") {
		t.Fatalf("placeholder domain passed: %v", err)
	}
	fixed, _ := setYAMLValues(data, map[string]string{"homeserver.domain": "openmeet.test"})
	_ = os.WriteFile(configPath, fixed, 0o600)
	secret := cfg.Provisioning.SharedSecret
	if warnings, err = GenerateRegistration(exampleConfig(t), configPath, regPath); err != nil || len(warnings) != 0 {
		t.Fatalf("second -g: %v %v", warnings, err)
	}
	cfg, err = LoadConfig(exampleConfig(t), configPath)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Provisioning.SharedSecret != secret {
		t.Fatal("-g replaced an existing provisioning secret")
	}
	if _, err := LoadRegistration(regPath, cfg); err != nil {
		t.Fatal(err)
	}
	// A registration whose tokens differ from the config is refused.
	cfg.Appservice.HSToken = "hs_other_0123456789abcdef0123456789abcdef"
	if _, err := LoadRegistration(regPath, cfg); err == nil || !strings.Contains(err.Error(), "hs_token") {
		t.Fatalf("mismatched registration accepted: %v", err)
	}
	if _, err := LoadRegistration(filepath.Join(dir, "nope.yaml"), cfg); err == nil {
		t.Fatal("missing registration accepted")
	}
}

// OverlayExample merges sections key by key, replaces maps whole (as a
// config's own map replaces the default) and keeps the example's comments.
func TestOverlayExample(t *testing.T) {
	t.Parallel()
	merged, err := OverlayExample(exampleConfig(t), []byte(`
appservice:
    hostname: 0.0.0.0
    bot:
        displayname: Bridge
portals:
    power_levels:
        event:
            host: 90
permissions:
    "@admin:openmeet.test": admin
`))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ParseConfig(merged, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Appservice.Hostname != "0.0.0.0" || cfg.Appservice.Port != 29340 || cfg.Appservice.Bot.Displayname != "Bridge" ||
		cfg.Appservice.Bot.Username != "openmeetbot" || cfg.Permissions["@admin:openmeet.test"] != "admin" {
		t.Fatalf("merged: %+v", cfg.Appservice)
	}
	if levels := cfg.Portals.PowerLevels; len(levels) != 1 || len(levels["event"]) != 1 || levels["event"]["host"] != 90 {
		t.Fatalf("power_levels not replaced whole: %v", levels)
	}
	if !strings.Contains(string(merged), "# Where Synapse reaches the bridge") {
		t.Fatal("comments lost")
	}
	if _, err := OverlayExample(exampleConfig(t), []byte("web:\n    enable: true\n")); err == nil || !strings.Contains(err.Error(), "web.enable: unknown key") {
		t.Fatalf("typo in the overlay: %v", err)
	}
	if same, err := OverlayExample(exampleConfig(t), nil); err != nil || string(same) != string(exampleConfig(t)) {
		t.Fatalf("empty overlay changed the example: %v", err)
	}
}

// TestClientLimitsConfig: client_api.limits keeps its defaults for what a
// file leaves out, and refuses what would amount to no limit or none at
// all, naming the key.
func TestClientLimitsConfig(t *testing.T) {
	t.Parallel()
	const enabled = "client_api:\n    enabled: true\n    jwt:\n        secrets: [\"jwt_0123456789abcdef0123456789abcdef\"]\n"
	parse := func(t *testing.T, limits string) (*Config, error) {
		t.Helper()
		cfg, err := ParseConfig(exampleConfig(t), []byte(validConfig+enabled+limits))
		if err != nil {
			t.Fatal(err)
		}
		return cfg, cfg.Validate()
	}
	cfg, err := parse(t, "    limits:\n        send: {rate: 10}\n")
	if err != nil {
		t.Fatal(err)
	}
	l := cfg.ClientAPI.Limits
	if l.Send.Rate != 10 || l.Send.Burst != 60 || l.Typing.Rate != 1 || l.Typing.Burst != 10 || l.MaxPendingOutbox != 100 {
		t.Fatalf("a partial limits section lost defaults: %+v", l)
	}
	for _, tt := range []struct{ name, limits, wantKey string }{
		{"zero rate", "        send: {rate: 0}\n", "client_api.limits.send.rate"},
		{"negative rate", "        upload: {rate: -1}\n", "client_api.limits.upload.rate"},
		{"infinite rate", "        typing: {rate: .inf}\n", "client_api.limits.typing.rate"},
		{"not a number", "        receipt: {rate: .nan}\n", "client_api.limits.receipt.rate"},
		{"zero burst", "        ticket: {burst: 0}\n", "client_api.limits.ticket.burst"},
		{"huge burst", "        react: {burst: 1000000}\n", "client_api.limits.react.burst"},
		{"zero outbox cap", "        max_pending_outbox: 0\n", "client_api.limits.max_pending_outbox"},
		{"negative outbox cap", "        max_pending_outbox: -5\n", "client_api.limits.max_pending_outbox"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := parse(t, "    limits:\n"+tt.limits)
			if err == nil || !strings.Contains(err.Error(), tt.wantKey) {
				t.Fatalf("want an error naming %s, got %v", tt.wantKey, err)
			}
		})
	}
}

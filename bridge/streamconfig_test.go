package bridge

import (
	"strings"
	"testing"
)

const streamEnabled = "client_api:\n    enabled: true\n    jwt:\n        secrets: [\"0123456789abcdef0123456789abcdef\"]\n"

// The stream's connect limits per user and per address: defaults as the
// example config documents them, and bad values refused naming the key.
func TestStreamConnectLimitKeys(t *testing.T) {
	t.Parallel()
	cfg, err := ParseConfig(exampleConfig(t), []byte(validConfig+streamEnabled))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	s := cfg.ClientAPI.Stream
	if s.ConnectRatePerUser != 1 || s.ConnectBurstPerUser != 10 || s.ConnectRatePerAddress != 20 || s.ConnectBurstPerAddress != 100 || len(s.TrustedProxies) != 0 {
		t.Fatalf("defaults: %+v", s)
	}
	for _, tt := range []struct{ change, wantKey string }{
		{"connect_rate_per_user: -1", "client_api.stream.connect_rate_per_user"},
		{"connect_burst_per_user: 0", "client_api.stream.connect_rate_per_user"},
		{"connect_rate_per_address: -0.5", "client_api.stream.connect_rate_per_address"},
		{"connect_burst_per_address: 0", "client_api.stream.connect_rate_per_address"},
		{"trusted_proxies: [\"10.0.0.0/33\"]", "client_api.stream.trusted_proxies"},
		{"trusted_proxies: [\"proxy.internal\"]", "client_api.stream.trusted_proxies"},
	} {
		cfg, err := ParseConfig(exampleConfig(t), []byte(validConfig+streamEnabled+"    stream:\n        "+tt.change+"\n"))
		if err != nil {
			t.Fatal(err)
		}
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), tt.wantKey) {
			t.Fatalf("%s: want an error naming %s, got %v", tt.change, tt.wantKey, err)
		}
	}
	for _, ok := range []string{"connect_rate_per_user: 0\n        connect_burst_per_user: 0", "trusted_proxies: [\"10.0.0.0/8\", \"::1\", \"192.0.2.7\"]"} {
		cfg, err := ParseConfig(exampleConfig(t), []byte(validConfig+streamEnabled+"    stream:\n        "+ok+"\n"))
		if err != nil {
			t.Fatal(err)
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("%s: %v", ok, err)
		}
	}
}

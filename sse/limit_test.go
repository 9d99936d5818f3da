package sse

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"
)

// refusedStream opens a stream that must be refused and returns its
// status, Retry-After and Matrix error.
func (f *hubFixture) refusedStream(t *testing.T, user, forwardedFor string) (int, string, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("GET", f.srv.URL+"?user="+user, nil)
	if forwardedFor != "" {
		req.Header.Set("X-Forwarded-For", forwardedFor)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if resp.StatusCode != http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatalf("%d with a body that is not JSON: %v", resp.StatusCode, err)
		}
	}
	return resp.StatusCode, resp.Header.Get("Retry-After"), body
}

// streamFrom opens a stream through a trusted proxy for address, failing
// unless it is accepted.
func (f *hubFixture) streamFrom(t *testing.T, user, address string) {
	t.Helper()
	req, _ := http.NewRequest("GET", f.srv.URL+"?user="+user, nil)
	req.Header.Set("X-Forwarded-For", address)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s from %s: %d", user, address, resp.StatusCode)
	}
}

func checkLimitExceeded(t *testing.T, status int, retryAfter string, body map[string]any) {
	t.Helper()
	ms, _ := body["retry_after_ms"].(float64)
	secs, err := strconv.Atoi(retryAfter)
	if status != http.StatusTooManyRequests || body["errcode"] != "M_LIMIT_EXCEEDED" || ms < 1 || err != nil || secs < 1 {
		t.Fatalf("got %d, Retry-After %q, %v; want 429 M_LIMIT_EXCEEDED with retry_after_ms", status, retryAfter, body)
	}
}

// TestOneUserReconnectingInALoopBlocksOnlyItself: a user over its own
// connect rate gets 429 with when to retry; its attempts do not use up the
// bridge-wide budget, so other users still connect.
func TestOneUserReconnectingInALoopBlocksOnlyItself(t *testing.T) {
	bothModes(t, func(t *testing.T, cfg Config) {
		cfg.MaxPerUser = 100
		cfg.ConnectRate, cfg.ConnectBurst = 0.001, 5
		cfg.ConnectRatePerUser, cfg.ConnectBurstPerUser = 0.001, 2
		f := newHubFixture(t, cfg)
		for i := range 10 {
			status, retryAfter, body := f.refusedStream(t, "@loop:test", "")
			if i < 2 {
				if status != http.StatusOK {
					t.Fatalf("stream %d within the user's burst: %d", i, status)
				}
				continue
			}
			checkLimitExceeded(t, status, retryAfter, body)
		}
		for _, user := range []string{"@a:test", "@b:test", "@c:test"} {
			if status, _, body := f.refusedStream(t, user, ""); status != http.StatusOK {
				t.Fatalf("%s after another user's loop: %d %v", user, status, body)
			}
		}
		// The bridge-wide limit still holds, with its own answer.
		if status, retryAfter, body := f.refusedStream(t, "@d:test", ""); status != http.StatusServiceUnavailable || retryAfter == "" || body["errcode"] != "M_LIMIT_EXCEEDED" {
			t.Fatalf("over the bridge-wide limit: %d %q %v", status, retryAfter, body)
		}
	})
}

// TestOneAddressIsLimitedOnItsOwn: many users from one client address (as
// a trusted proxy names it) hit that address's limit; other addresses are
// not affected. IPv6 addresses count by their /64.
func TestOneAddressIsLimitedOnItsOwn(t *testing.T) {
	t.Parallel()
	cfg := testCfg()
	cfg.ConnectRatePerAddress, cfg.ConnectBurstPerAddress = 0.001, 2
	cfg.TrustedProxies = []string{"127.0.0.0/8"}
	f := newHubFixture(t, cfg)
	f.streamFrom(t, "@u1:test", "203.0.113.7")
	f.streamFrom(t, "@u2:test", "198.51.100.1, 203.0.113.7")
	status, retryAfter, body := f.refusedStream(t, "@u3:test", "203.0.113.7")
	checkLimitExceeded(t, status, retryAfter, body)
	f.streamFrom(t, "@u3:test", "203.0.113.8")
	f.streamFrom(t, "@u4:test", "2001:db8:1:2::1")
	f.streamFrom(t, "@u5:test", "2001:db8:1:2::ffff")
	status, retryAfter, body = f.refusedStream(t, "@u6:test", "2001:db8:1:2:aaaa::1")
	checkLimitExceeded(t, status, retryAfter, body)
	f.streamFrom(t, "@u6:test", "2001:db8:1:3::1")
}

func TestClientAddress(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, remote, forwarded string
		trusted                 []string
		want                    string
	}{
		{"peer", "192.0.2.1:5000", "", nil, "192.0.2.1"},
		{"untrusted peer's header is ignored", "192.0.2.1:5000", "203.0.113.7", nil, "192.0.2.1"},
		{"trusted proxy", "10.0.0.2:5000", "203.0.113.7", []string{"10.0.0.0/8"}, "203.0.113.7"},
		{"a chain: the nearest untrusted hop", "10.0.0.2:5000", "6.6.6.6, 203.0.113.7, 10.0.0.9", []string{"10.0.0.0/8"}, "203.0.113.7"},
		{"a forged hop behind a real client", "10.0.0.2:5000", "10.0.0.5, 203.0.113.7", []string{"10.0.0.0/8"}, "203.0.113.7"},
		{"garbage stops at the last good hop", "10.0.0.2:5000", "203.0.113.7, nonsense", []string{"10.0.0.2"}, "10.0.0.2"},
		{"IPv6 by its /64", "[2001:db8:1:2:3:4:5:6]:5000", "", nil, "2001:db8:1:2::/64"},
		{"IPv4-mapped IPv6", "[::ffff:192.0.2.1]:5000", "", nil, "192.0.2.1"},
		{"not an address", "@", "", nil, "@"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newConnectLimits(Config{ConnectRate: 1, ConnectBurst: 1, TrustedProxies: tc.trusted})
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tc.remote
			if tc.forwarded != "" {
				r.Header.Set("X-Forwarded-For", tc.forwarded)
			}
			if got := l.clientAddress(r); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// A key's bucket is forgotten once it would be full again, and a refused
// attempt takes nothing from the other limits.
func TestKeyedLimiter(t *testing.T) {
	t.Parallel()
	l := newConnectLimits(Config{ConnectRate: 1000, ConnectBurst: 3, ConnectRatePerUser: 1, ConnectBurstPerUser: 1})
	now := time.Now()
	if r, _ := l.admit("@a:test", "x", now); r != admitted {
		t.Fatal("first stream refused")
	}
	for range 5 {
		if r, wait := l.admit("@a:test", "x", now); r != overKeyLimit || wait <= 0 || wait > time.Second {
			t.Fatalf("over the user limit: %v %v", r, wait)
		}
	}
	// Only the admitted stream took from the bridge-wide bucket.
	if got := l.global.TokensAt(now); got < 1.99 {
		t.Fatalf("bridge-wide tokens %v, want 2 left", got)
	}
	if r, _ := l.admit("@a:test", "x", now.Add(time.Second)); r != admitted {
		t.Fatal("refused after the bucket refilled")
	}
	if newKeyedLimiter(0, 10) != nil {
		t.Fatal("a zero rate should mean no limit")
	}
}

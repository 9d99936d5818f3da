// Package harness starts real dependencies for tests: a throwaway
// PostgreSQL cluster and a Synapse homeserver, both on loopback, shared by
// the tests of one package and stopped when they end.
//
// When a dependency is missing, its tests are skipped on a developer's
// machine and fail under CI=true, so CI can never pass by skipping them.
package harness

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// Required reports whether missing dependencies must fail the tests.
func Required() bool { return os.Getenv("CI") == "true" }

// unavailable fails the test under CI and skips it otherwise.
func unavailable(tb testing.TB, format string, args ...any) {
	tb.Helper()
	if Required() {
		tb.Fatalf(format, args...)
	}
	tb.Skipf(format, args...)
}

var (
	stopMu    sync.Mutex
	stopFuncs []func() error
)

// atStop registers fn to run when Main finishes.
func atStop(fn func() error) {
	stopMu.Lock()
	defer stopMu.Unlock()
	stopFuncs = append(stopFuncs, fn)
}

// Main runs the tests, then stops every shared dependency they started. Use
// it as: func TestMain(m *testing.M) { os.Exit(harness.Main(m)) }
func Main(m *testing.M) int {
	code := m.Run()
	stopMu.Lock()
	defer stopMu.Unlock()
	for i := len(stopFuncs) - 1; i >= 0; i-- {
		if err := stopFuncs[i](); err != nil {
			fmt.Fprintln(os.Stderr, "harness: stop:", err)
		}
	}
	stopFuncs = nil
	return code
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("failed to find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

var uniqueCounter atomic.Int64

// UniqueName returns prefix with a suffix unique to this process and run,
// in lower case so it is valid in Matrix localparts and database names.
func UniqueName(prefix string) string {
	return fmt.Sprintf("%s%d%s", strings.ToLower(prefix), uniqueCounter.Add(1), randomHex(4))
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

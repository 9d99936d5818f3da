package harness

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

func TestPostgresGivesFreshDatabases(t *testing.T) {
	ctx := context.Background()
	a, b := PostgresURI(t), PostgresURI(t)
	if a == b {
		t.Fatal("two tests got the same database")
	}
	conn, err := pgx.Connect(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE TABLE t (x INT)"); err != nil {
		t.Fatal(err)
	}
}

func TestSynapseServesUsers(t *testing.T) {
	hs := SharedSynapse(t)
	resp, err := http.Get(hs.URL + "/health")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("health: %v %v", resp, err)
	}
	_ = resp.Body.Close()
	alice := hs.NewUser(t, "alice")
	ctx := context.Background()
	room, err := alice.CreateRoom(ctx, map[string]any{"name": "harness"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SendText(ctx, room, "hello"); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Join(ctx, "#nope:"+hs.ServerName); err == nil {
		t.Fatal("joined an alias that does not exist")
	}
}

func TestSynapsePins(t *testing.T) {
	newest, oldest, err := parseSynapsePins(synapseVersionsFile)
	if err != nil {
		t.Fatal(err)
	}
	if newest != SynapseNewest || oldest != SynapseOldest || newest == oldest {
		t.Fatalf("pins: newest %q oldest %q", newest, oldest)
	}
	for _, bad := range []string{
		"SYNAPSE_NEWEST=1.163.2\n",                        // oldest missing
		"SYNAPSE_NEWEST=1.163.2\nSYNAPSE_OLDEST=latest\n", // not a release
		"SYNAPSE_NEWEST=1.163.2\nSYNAPSE_NEWEST=1.163.3\nSYNAPSE_OLDEST=1.157.0\n",
		"SYNAPSE_NEWEST=1.163.2\nSYNAPSE_OLDEST=1.157.0\nSYNAPSE_OTHER=1.0.0\n",
		"export SYNAPSE_NEWEST=1.163.2\nSYNAPSE_OLDEST=1.157.0\n",
	} {
		if _, _, err := parseSynapsePins(bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func TestSynapseVersionFromEnvironment(t *testing.T) {
	cache := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", cache)
	t.Setenv("SYNAPSE_VERSION", "")
	if got := SynapseVersion(); got != SynapseNewest {
		t.Fatalf("default version %q, want the newest pin %q", got, SynapseNewest)
	}
	t.Setenv("SYNAPSE_VERSION", SynapseOldest)
	if got := SynapseVersion(); got != SynapseOldest {
		t.Fatalf("version %q, want %q", got, SynapseOldest)
	}
	if want := filepath.Join(cache, "openmeet-bridge", "synapse-"+SynapseOldest); SynapseVenv() != want {
		t.Fatalf("venv %q, want %q", SynapseVenv(), want)
	}
	// A venv holding another release is refused, naming both.
	fakeVenv(t, SynapseVenv(), "1.2.3")
	_, err := checkSynapseVenv(SynapseOldest)
	if err == nil || !strings.Contains(err.Error(), "1.2.3") || !strings.Contains(err.Error(), SynapseOldest) {
		t.Fatalf("venv with another release: %v", err)
	}
	fakeVenv(t, SynapseVenvFor("1.2.3"), "1.2.3")
	if _, err := checkSynapseVenv("1.2.3"); err != nil {
		t.Fatal(err)
	}
	if _, err := checkSynapseVenv("9.9.9"); err == nil || !strings.Contains(err.Error(), "SYNAPSE_VERSION=9.9.9") {
		t.Fatalf("missing venv: %v", err)
	}
}

// fakeVenv makes dir look like a virtualenv holding matrix-synapse version.
func fakeVenv(t *testing.T, dir, version string) {
	t.Helper()
	for _, p := range []string{
		filepath.Join(dir, "bin"),
		filepath.Join(dir, "lib", "python3.11", "site-packages", "matrix_synapse-"+version+".dist-info"),
	} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "bin", "python"), nil, 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestSynapseRunsTheSelectedVersion(t *testing.T) {
	hs := SharedSynapse(t)
	if hs.Version != SynapseVersion() {
		t.Fatalf("Synapse %q is running, want %q", hs.Version, SynapseVersion())
	}
}

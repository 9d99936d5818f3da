package a

import "testing"

// Stand-ins for the skips of the real harness, with its messages.
func TestPasses(t *testing.T) { t.Log("noise that is not shown") }

func TestNeedsPostgres(t *testing.T) {
	t.Skip("PostgreSQL is not available: no initdb in PATH or /usr/lib/postgresql/*/bin")
}

func TestNeedsSynapse(t *testing.T) {
	t.Run("sub", func(t *testing.T) {
		t.Skipf("Synapse is not available: no Synapse 1.157.0 virtualenv at /x/synapse-1.157.0 (run SYNAPSE_VERSION=1.157.0 scripts/install-synapse.sh): stat /x: no such file or directory")
	})
	t.Run("other", func(t *testing.T) {})
}

package harness

import (
	_ "embed"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// synapseVersionsFile holds the pinned Synapse releases; the shell scripts
// source the same file, so the pins are written down once.
//
//go:embed synapse-versions
var synapseVersionsFile string

// SynapseNewest and SynapseOldest are the pinned Synapse releases: the
// newest one the bridge is tested against and the oldest one it supports.
var SynapseNewest, SynapseOldest = mustParseSynapsePins(synapseVersionsFile)

// synapseVersionEnv selects the Synapse release the harness runs.
const synapseVersionEnv = "SYNAPSE_VERSION"

var pinLine = regexp.MustCompile(`^(SYNAPSE_NEWEST|SYNAPSE_OLDEST)=([0-9]+\.[0-9]+\.[0-9]+(?:rc[0-9]+)?)$`)

// parseSynapsePins reads the KEY=VALUE lines of the pins file, which must
// set both pins exactly once and nothing else.
func parseSynapsePins(file string) (newest, oldest string, err error) {
	pins := map[string]string{}
	for i, line := range strings.Split(file, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		m := pinLine.FindStringSubmatch(line)
		if m == nil {
			return "", "", fmt.Errorf("synapse-versions line %d: want SYNAPSE_NEWEST=x.y.z or SYNAPSE_OLDEST=x.y.z, got %q", i+1, line)
		}
		if _, dup := pins[m[1]]; dup {
			return "", "", fmt.Errorf("synapse-versions line %d: %s set twice", i+1, m[1])
		}
		pins[m[1]] = m[2]
	}
	newest, oldest = pins["SYNAPSE_NEWEST"], pins["SYNAPSE_OLDEST"]
	if newest == "" || oldest == "" {
		return "", "", fmt.Errorf("synapse-versions must set SYNAPSE_NEWEST and SYNAPSE_OLDEST")
	}
	return newest, oldest, nil
}

func mustParseSynapsePins(file string) (newest, oldest string) {
	newest, oldest, err := parseSynapsePins(file)
	if err != nil {
		panic(err)
	}
	return newest, oldest
}

// SynapseVersion is the Synapse release the harness runs: $SYNAPSE_VERSION,
// or SynapseNewest.
func SynapseVersion() string {
	if v := strings.TrimSpace(os.Getenv(synapseVersionEnv)); v != "" {
		return v
	}
	return SynapseNewest
}

// SynapseVenv is the virtualenv holding SynapseVersion.
func SynapseVenv() string { return SynapseVenvFor(SynapseVersion()) }

// SynapseVenvFor is the virtualenv scripts/install-synapse.sh installs a
// Synapse release into: a directory per release under the user's cache.
func SynapseVenvFor(version string) string {
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache")
	}
	return filepath.Join(cache, "openmeet-bridge", "synapse-"+version)
}

// installedSynapseVersion reads which matrix-synapse release a virtualenv
// holds from its package metadata, without starting Python.
func installedSynapseVersion(venv string) (string, error) {
	infos, _ := filepath.Glob(filepath.Join(venv, "lib", "python3*", "site-packages", "matrix_synapse-*.dist-info"))
	if len(infos) != 1 {
		return "", fmt.Errorf("no single matrix-synapse installation in %s (found %d)", venv, len(infos))
	}
	name := strings.TrimSuffix(filepath.Base(infos[0]), ".dist-info")
	return strings.TrimPrefix(name, "matrix_synapse-"), nil
}

// checkSynapseVenv returns the venv's python for version, or an error that
// says how to install it.
func checkSynapseVenv(version string) (python string, err error) {
	venv := SynapseVenvFor(version)
	install := fmt.Sprintf("run %s=%s scripts/install-synapse.sh", synapseVersionEnv, version)
	python = filepath.Join(venv, "bin", "python")
	if _, err := os.Stat(python); err != nil {
		return "", fmt.Errorf("no Synapse %s virtualenv at %s (%s): %w", version, venv, install, err)
	}
	got, err := installedSynapseVersion(venv)
	if err != nil {
		return "", fmt.Errorf("%w (%s)", err, install)
	}
	if got != version {
		return "", fmt.Errorf("the virtualenv %s holds Synapse %s, not %s (%s)", venv, got, version, install)
	}
	return python, nil
}

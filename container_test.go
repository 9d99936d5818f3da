package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/openmeet-team/openmeet-bridge/bridge"
)

// No Docker engine is needed for these tests: they read the Dockerfile
// and check what can be checked without building the image.

// dockerfile returns the Dockerfile's instructions, continuation lines
// joined, comments left out.
func dockerfile(t *testing.T) []string {
	t.Helper()
	f, err := os.Open("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	var cur strings.Builder
	lines := bufio.NewScanner(f)
	for lines.Scan() {
		line := strings.TrimSpace(lines.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasSuffix(line, "\\") {
			cur.WriteString(strings.TrimSuffix(line, "\\") + " ")
			continue
		}
		cur.WriteString(line)
		out = append(out, cur.String())
		cur.Reset()
	}
	return out
}

func instruction(t *testing.T, lines []string, prefix string) []string {
	t.Helper()
	var found []string
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			found = append(found, l)
		}
	}
	if len(found) == 0 {
		t.Fatalf("Dockerfile has no %q", prefix)
	}
	return found
}

// The image embeds the version given as a build argument: building with
// the Dockerfile's own -ldflags makes --version say it.
func TestDockerfileEmbedsTheVersion(t *testing.T) {
	t.Parallel()
	lines := dockerfile(t)
	var build string
	for _, l := range instruction(t, lines, "RUN ") {
		if strings.Contains(l, "go build") {
			build = l
		}
	}
	m := regexp.MustCompile(`-ldflags "([^"]*)"`).FindStringSubmatch(build)
	if m == nil || !strings.Contains(m[1], "${VERSION}") {
		t.Fatalf("the go build line sets no version: %q", build)
	}
	if !slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, "ARG VERSION") }) {
		t.Fatal("Dockerfile declares no ARG VERSION")
	}
	const version = "1.2.3-container-test"
	bin := filepath.Join(t.TempDir(), "openmeet-bridge")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", strings.ReplaceAll(m[1], "${VERSION}", version), "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "--version").Output()
	if err != nil || string(out) != "openmeet-bridge "+version+"\n" {
		t.Fatalf("--version: %q %v", out, err)
	}
}

// The image starts the bridge with the container defaults, and a config
// -g writes from them listens where another container reaches it, keeps
// its database in the volume and serves metrics on the exposed port.
func TestContainerDefaults(t *testing.T) {
	t.Parallel()
	lines := dockerfile(t)
	entry := instruction(t, lines, "ENTRYPOINT ")[0]
	copyLine := `COPY deploy/container/config.yaml /etc/openmeet-bridge/defaults.yaml`
	if !slices.Contains(lines, copyLine) || !strings.Contains(entry, `"-defaults", "/etc/openmeet-bridge/defaults.yaml"`) {
		t.Fatalf("the image does not start with the container defaults: %q", entry)
	}
	if !slices.Contains(lines, "EXPOSE 29340 29341") || !slices.Contains(lines, "VOLUME /data") || !slices.Contains(lines, "WORKDIR /data") {
		t.Fatal("Dockerfile: ports, volume or working directory changed; check the defaults and the README")
	}
	dir := t.TempDir()
	configPath, regPath := filepath.Join(dir, "config.yaml"), filepath.Join(dir, "registration.yaml")
	defaults := []string{"-defaults", "deploy/container/config.yaml"}
	if _, _, err := runCLI(t, append(defaults, "-g", "-c", configPath, "-r", regPath)...); err != nil {
		t.Fatal(err)
	}
	// The README's recipe: set the domain, run -g again.
	data, _ := os.ReadFile(configPath)
	edited := strings.Replace(string(data), "domain: example.com", "domain: openmeet.test", 1)
	if edited == string(data) {
		t.Fatal("the written config has no placeholder domain to edit")
	}
	if err := os.WriteFile(configPath, []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runCLI(t, append(defaults, "-g", "-c", configPath, "-r", regPath)...); err != nil {
		t.Fatal(err)
	}
	example, err := bridge.OverlayExample(exampleConfig, mustRead(t, "deploy/container/config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := bridge.LoadConfig(example, configPath)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := bridge.LoadRegistration(regPath, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Appservice.ListenAddress() != "0.0.0.0:29340" || cfg.Metrics.Listen != "0.0.0.0:29341" ||
		cfg.Homeserver.Address != "http://synapse:8008" || reg.URL != "http://openmeet-bridge:29340" ||
		cfg.Database.URI != "file:/data/openmeet-bridge.db?_txlock=immediate" {
		t.Fatalf("container config: listen %s, metrics %s, homeserver %s, registration url %s, database %s",
			cfg.Appservice.ListenAddress(), cfg.Metrics.Listen, cfg.Homeserver.Address, reg.URL, cfg.Database.URI)
	}
	// A config of one's own that leaves these keys out gets them too.
	own := filepath.Join(dir, "own.yaml")
	ownData := "homeserver:\n    domain: openmeet.test\nappservice:\n    as_token: " + cfg.Appservice.ASToken +
		"\n    hs_token: " + cfg.Appservice.HSToken + "\nprovisioning:\n    shared_secret: " + cfg.Provisioning.SharedSecret + "\n"
	if err := os.WriteFile(own, []byte(ownData), 0o600); err != nil {
		t.Fatal(err)
	}
	if cfg, err = bridge.LoadConfig(example, own); err != nil || cfg.Appservice.Hostname != "0.0.0.0" {
		t.Fatalf("own config over the container defaults: %v", err)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// dockerignored reports whether Docker leaves path out of the build
// context under patterns: each pattern is relative to the context's root
// ("/" in front changes nothing), "**" spans directories, and a pattern
// that matches a directory leaves out everything in it.
func dockerignored(patterns []string, path string) bool {
	excluded := false
	for _, p := range patterns {
		negate := strings.HasPrefix(p, "!")
		p = strings.TrimPrefix(strings.TrimPrefix(p, "!"), "/")
		var re strings.Builder
		for i := 0; i < len(p); i++ {
			switch {
			case strings.HasPrefix(p[i:], "**/"):
				re.WriteString(`(.*/)?`)
				i += 2
			case strings.HasPrefix(p[i:], "**"):
				re.WriteString(`.*`)
				i++
			case p[i] == '*':
				re.WriteString(`[^/]*`)
			case p[i] == '?':
				re.WriteString(`[^/]`)
			default:
				re.WriteString(regexp.QuoteMeta(p[i : i+1]))
			}
		}
		if regexp.MustCompile(`^` + re.String() + `(/.*)?$`).MatchString(path) {
			excluded = !negate
		}
	}
	return excluded
}

func TestDockerignoreKeepsWhatTheBuildNeeds(t *testing.T) {
	t.Parallel()
	var patterns []string
	for _, line := range strings.Split(string(mustRead(t, ".dockerignore")), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			patterns = append(patterns, line)
		}
	}
	out, err := exec.Command("go", "list", "-f", `{{$d := .Dir}}{{range .GoFiles}}{{$d}}/{{.}}{{"\n"}}{{end}}{{range .CgoFiles}}{{$d}}/{{.}}{{"\n"}}{{end}}{{range .EmbedFiles}}{{$d}}/{{.}}{{"\n"}}{{end}}`, "-deps", ".").Output()
	if err != nil {
		t.Fatal(err)
	}
	root, _ := os.Getwd()
	needed := []string{"go.mod", "go.sum", "deploy/container/config.yaml"}
	for _, f := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if rel, err := filepath.Rel(root, f); err == nil && !strings.HasPrefix(rel, "..") {
			needed = append(needed, filepath.ToSlash(rel))
		}
	}
	if !slices.Contains(needed, "example-config.yaml") || !slices.Contains(needed, "api/openapi.yaml") {
		t.Fatalf("go list found too little: %v", needed)
	}
	for _, f := range needed {
		if dockerignored(patterns, f) {
			t.Errorf(".dockerignore leaves out %s, which the image's build needs", f)
		}
	}
	for _, f := range []string{".git/config", "data/config.yaml", "config.yaml", "bridge/x.db-wal", "web/e2e/node_modules/x/y.js", "openmeet-bridge"} {
		if !dockerignored(patterns, f) {
			t.Errorf(".dockerignore lets %s into the build context", f)
		}
	}
}

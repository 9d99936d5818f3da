package bridge

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// gitRepo makes dir a git work tree and stages files in it.
func gitRepo(t *testing.T, dir string, tracked ...string) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	git := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	git("init", "--quiet")
	for _, name := range tracked {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("# example\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		git("add", "--", name)
	}
}

// trackedWarnings runs -g and returns its warnings about tracked files.
func trackedWarnings(t *testing.T, configPath, regPath string) []string {
	t.Helper()
	warnings, err := GenerateRegistration(exampleConfig(t), configPath, regPath)
	if err != nil {
		t.Fatal(err)
	}
	var tracked []string
	for _, w := range warnings {
		if strings.Contains(w, "tracked by git") {
			tracked = append(tracked, w)
		}
	}
	return tracked
}

func TestGenerateWarnsAboutTrackedFiles(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		repo    bool
		tracked []string
		// config and registration paths, relative to the test's directory
		config, reg string
		want        []string // paths the warnings must name
	}{
		{name: "not a repository", config: "config.yaml", reg: "registration.yaml"},
		{name: "tracked registration", repo: true, tracked: []string{"registration.yaml"},
			config: "data/config.yaml", reg: "registration.yaml", want: []string{"registration.yaml"}},
		{name: "tracked config and registration", repo: true, tracked: []string{"config.yaml", "registration.yaml"},
			config: "config.yaml", reg: "registration.yaml", want: []string{"config.yaml", "registration.yaml"}},
		{name: "untracked files in a repository", repo: true, tracked: []string{"registration.yaml"},
			config: "data/config.yaml", reg: "data/registration.yaml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			if tc.repo {
				gitRepo(t, dir, tc.tracked...)
			}
			warnings := trackedWarnings(t, filepath.Join(dir, tc.config), filepath.Join(dir, tc.reg))
			if len(warnings) != len(tc.want) {
				t.Fatalf("want warnings naming %v, got %q", tc.want, warnings)
			}
			for i, name := range tc.want {
				if !strings.HasPrefix(warnings[i], filepath.Join(dir, name)+" is tracked by git") {
					t.Errorf("warning %q does not name %s", warnings[i], name)
				}
			}
			// The files were written all the same, into a new directory
			// where needed, readable only by the owner.
			for _, p := range []string{tc.config, tc.reg} {
				if st, err := os.Stat(filepath.Join(dir, p)); err != nil || st.Mode().Perm() != 0o600 {
					t.Fatalf("%s: %v %v", p, st, err)
				}
			}
			if st, err := os.Stat(filepath.Join(dir, "data")); err == nil && st.Mode().Perm() != 0o700 {
				t.Fatalf("data/ has mode %v", st.Mode().Perm())
			}
		})
	}
}

// Without git on PATH, -g works and warns about nothing tracked, even in a
// work tree where the files are tracked.
func TestGenerateWithoutGit(t *testing.T) {
	dir := t.TempDir()
	gitRepo(t, dir, "registration.yaml")
	t.Setenv("PATH", t.TempDir())
	if warnings := trackedWarnings(t, filepath.Join(dir, "config.yaml"), filepath.Join(dir, "registration.yaml")); len(warnings) != 0 {
		t.Fatalf("warnings without git: %q", warnings)
	}
}

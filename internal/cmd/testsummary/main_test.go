package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// sampleRun runs the real `go test -json` over testdata/sample, a module
// whose tests pass, fail and skip the way this repository's do.
func sampleRun(t *testing.T) []byte {
	t.Helper()
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS("testdata/sample")); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "test", "-json", "-count=1", "./...")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=", "GOWORK=off")
	out, err := cmd.Output()
	if _, failed := err.(*exec.ExitError); err != nil && !failed {
		t.Fatal(err)
	}
	if !bytes.Contains(out, []byte(`"Action":"skip"`)) {
		t.Fatalf("go test -json gave no skips:\n%s", out)
	}
	return out
}

func TestSummary(t *testing.T) {
	t.Parallel()
	stream := sampleRun(t)

	var out bytes.Buffer
	var r Results
	// A line that is not JSON, as go test prints for a package that does
	// not build, comes through as it is.
	if err := r.Read(bytes.NewReader(append([]byte("# example.test/broken\n"), stream...)), &out, false); err != nil {
		t.Fatal(err)
	}
	shown := out.String()
	for _, want := range []string{
		"# example.test/broken\n",
		"ok  \texample.test/sample/a\t", "\t(2 skipped)\n", // a skipped test is no longer invisible
		"ok  \texample.test/sample/c\t",
		"what went wrong, shown", "--- FAIL: TestFails", "FAIL\texample.test/sample/b",
	} {
		if !strings.Contains(shown, want) {
			t.Errorf("output lacks %q:\n%s", want, shown)
		}
	}
	if strings.Contains(shown, "noise that is not shown") || strings.Contains(shown, "(0 skipped)") {
		t.Errorf("output shows what it should not:\n%s", shown)
	}
	if r.Passed != 6 || r.Failed != 1 || r.Skipped != 4 {
		t.Fatalf("counted %d passed, %d failed, %d skipped", r.Passed, r.Failed, r.Skipped)
	}

	var report bytes.Buffer
	r.Report(&report)
	lines := strings.Split(strings.TrimSpace(report.String()), "\n")
	last := lines[len(lines)-1]
	want := "=== 11 tests ran: 6 passed, 1 failed, 4 skipped (1 need Chromium, 1 need PostgreSQL, 1 need Synapse 1.157.0, 1: only on Tuesdays); " +
		"./scripts/install-deps.sh installs what they need; failed packages: example.test/sample/b"
	if last != want {
		t.Fatalf("summary line\n%s\nwant\n%s", last, want)
	}
	for _, reason := range []string{
		"PostgreSQL is not available: no initdb in PATH", "browser test needs Chromium", "only on Tuesdays\n",
		"(example.test/sample/a TestNeedsSynapse/sub)",
	} {
		if !strings.Contains(report.String(), reason) {
			t.Errorf("report lacks %q:\n%s", reason, report.String())
		}
	}

	// -v shows every test's output; a second stream adds to the counts.
	var verbose bytes.Buffer
	if err := r.Read(bytes.NewReader(stream), &verbose, true); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(verbose.String(), "noise that is not shown") {
		t.Error("-v hid a passing test's output")
	}
	if r.Passed != 12 || r.Skipped != 8 {
		t.Fatalf("after two streams: %d passed, %d skipped", r.Passed, r.Skipped)
	}
}

// Without skips the line says so plainly and names no command.
func TestSummaryWithoutSkips(t *testing.T) {
	t.Parallel()
	var r Results
	stream := `{"Action":"run","Package":"p","Test":"TestA"}
{"Action":"pass","Package":"p","Test":"TestA"}
{"Action":"output","Package":"p","Output":"ok  \tp\t0.1s\n"}
{"Action":"pass","Package":"p"}
`
	var out, report bytes.Buffer
	if err := r.Read(strings.NewReader(stream), &out, false); err != nil {
		t.Fatal(err)
	}
	r.Report(&report)
	if out.String() != "ok  \tp\t0.1s\n" || report.String() != "=== 1 test ran: 1 passed, 0 failed, 0 skipped\n" {
		t.Fatalf("output %q, report %q", out.String(), report.String())
	}
	if err := (&Results{}).Read(strings.NewReader(""), &out, false); err == nil {
		t.Fatal("an empty stream passed as a test run")
	}
}

// The file -save writes is what -report reads.
func TestSaveAndReport(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "testsummary")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	saved := filepath.Join(t.TempDir(), "pass.json")
	cmd := exec.Command(bin, "-save", saved)
	cmd.Stdin = bytes.NewReader(sampleRun(t))
	out, err := cmd.Output()
	if exit, ok := err.(*exec.ExitError); !ok || exit.ExitCode() != 1 {
		t.Fatalf("a run with a failed test: %v", err)
	}
	if !bytes.Contains(out, []byte("(2 skipped)")) {
		t.Fatalf("output:\n%s", out)
	}
	report, err := exec.Command(bin, "-report", saved, saved).Output()
	if err != nil || !bytes.Contains(report, []byte("=== 22 tests ran: 12 passed, 2 failed, 8 skipped")) {
		t.Fatalf("report: %v\n%s", err, report)
	}
}

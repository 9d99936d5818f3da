package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMigrateCommandLine: the subcommand's help, its refusals of bad
// flags, and a dry run of an export that needs no request.
func TestMigrateCommandLine(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := run([]string{"migrate", "-h"}, &out, &errOut); err != nil || !strings.Contains(out.String(), "--input") && !strings.Contains(out.String(), "-input") {
		t.Fatalf("help: %v %q", err, out.String())
	}
	for _, c := range []struct {
		args []string
		says string
	}{
		{[]string{"migrate"}, "--input is required"},
		{[]string{"migrate", "--input", "x", "--bogus"}, "flag provided but not defined"},
		{[]string{"migrate", "--input", "x", "--bridge", "http://127.0.0.1:1", "--progress", "loud"}, "--progress must be"},
		{[]string{"migrate", "--input", "x", "extra"}, "unexpected argument"},
	} {
		t.Setenv(secretEnv, "s")
		err := run(c.args, &out, &errOut)
		if err == nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%v: %v, want %q", c.args, err, c.says)
		}
	}
	input := filepath.Join(t.TempDir(), "export.jsonl")
	if err := os.WriteFile(input, []byte(`{"kind":"tenant","id":"t1"}`+"\n"+`{"kind":"nope"}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	t.Setenv(secretEnv, "s")
	err := run([]string{"migrate", "--input", input, "--bridge", "http://127.0.0.1:1", "--dry-run", "--progress", "none"}, &out, &errOut)
	if err != nil || !strings.Contains(out.String(), "line 2: would fail") || !strings.Contains(out.String(), "dry run") {
		t.Fatalf("dry run: %v %q", err, out.String())
	}
	// A real run reports the bad line, writes it out and exits non-zero.
	out.Reset()
	err = run([]string{"migrate", "--input", input, "--bridge", "http://127.0.0.1:1", "--progress", "lines"}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "1 lines failed") {
		t.Fatalf("run: %v %q", err, out.String())
	}
	failed, _ := os.ReadFile(input + ".failed")
	if string(failed) != `{"kind":"tenant","id":"t1"}`+"\n"+`{"kind":"nope"}`+"\n" {
		t.Fatalf("failed file %q", failed)
	}
}

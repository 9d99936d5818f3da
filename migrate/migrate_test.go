package migrate

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseLine(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		line string
		err  string
	}{
		{`{"kind":"tenant","id":"t1"}`, ""},
		{`{"kind":"user","tenant":"t1","slug":"a","displayname":"A","matrix_user_id":"@a_t1:x"}`, ""},
		{`{"kind":"event","tenant":"t1","slug":"e","name":"E","room":"#event-e-t1:x","visibility":"public"}`, ""},
		{`{"kind":"membership","tenant":"t1","portal_kind":"group","portal_slug":"g","user_slug":"a","role":"owner"}`, ""},
		{`{"kind":"user","tenant":"t1","slug":"a"}`, "needs displayname"},
		{`{"kind":"user","tenant":"t1","slug":"a","displayname":"A","room":"!r"}`, `no field "room"`},
		{`{"kind":"user","tenant":"t1","slug":"a","displayname":"A","extra":1}`, "unknown field"},
		{`{"kind":"meetup"}`, "is not one of"},
		{`{"kind":"event","tenant":"t1","slug":"e","name":"E","visibility":"secret"}`, "visibility"},
		{`{"kind":"membership","tenant":"t1","portal_kind":"meetup","portal_slug":"g","user_slug":"a","role":"x"}`, "portal_kind"},
		{`{"kind":"tenant","id":"t1"} {"kind":"tenant","id":"t2"}`, "more than one"},
		{`{"kind":"tenant","id":"t1"`, "invalid export line"},
		{`[]`, "invalid export line"},
		{``, "invalid export line"},
	} {
		_, err := ParseLine([]byte(c.line))
		if c.err == "" && err != nil || c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err) || !errors.Is(err, ErrBadLine)) {
			t.Errorf("%s: %v, want %q", c.line, err, c.err)
		}
	}
}

// TestCheckpointOfAnotherExport: a checkpoint left by a different input is
// refused before anything is sent, rather than skipping lines of this one.
func TestCheckpointOfAnotherExport(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	input := filepath.Join(dir, "export.jsonl")
	if err := os.WriteFile(input, []byte(`{"kind":"tenant","id":"t1"}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(input+".checkpoint", []byte(`{"input_sha256":"00","done_line":1,"report":{"kinds":{}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Run(context.Background(), Options{Input: input, BridgeURL: "http://127.0.0.1:1"})
	if err == nil || !strings.Contains(err.Error(), "belongs to another export") {
		t.Fatalf("got %v", err)
	}
	if err := os.WriteFile(input+".checkpoint", []byte(`{`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err = Run(context.Background(), Options{Input: input, BridgeURL: "http://127.0.0.1:1"}); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("got %v", err)
	}
	// --restart ignores it; a tenant line needs no request. Progress lines
	// (not a terminal) and the bar both show done/total, rate and ETA.
	var lines, bar strings.Builder
	report, err := Run(context.Background(), Options{Input: input, BridgeURL: "http://127.0.0.1:1", Restart: true, Progress: &lines})
	if err != nil || report.Done != 1 || report.Kinds[KindTenant].Unchanged != 1 {
		t.Fatalf("restart: %v %+v", err, report)
	}
	if !strings.Contains(lines.String(), "progress: 1/1 lines (100.0%), ") || !strings.Contains(lines.String(), "lines/s, ETA ") {
		t.Fatalf("progress lines %q", lines.String())
	}
	if _, err := Run(context.Background(), Options{Input: input, BridgeURL: "http://127.0.0.1:1", Progress: &bar, Bar: true}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(bar.String(), "\r[##############################] 1/1 lines (100.0%)") || !strings.HasSuffix(bar.String(), "\n") {
		t.Fatalf("progress bar %q", bar.String())
	}
	var printed strings.Builder
	report.Print(&printed)
	if !strings.Contains(printed.String(), "applied 1 of 1 lines") || !strings.Contains(printed.String(), "tenant") {
		t.Fatalf("report %q", printed.String())
	}
}

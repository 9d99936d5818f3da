package bridge_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/openmeet-team/openmeet-bridge/bridge"
	"github.com/openmeet-team/openmeet-bridge/migrate"
)

// cancelAfterWrites cancels a migration once it has sent n writes: an
// operator's Ctrl-C in the middle of a run.
type cancelAfterWrites struct {
	n      int64
	seen   atomic.Int64
	cancel context.CancelFunc
}

func (c *cancelAfterWrites) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodGet && c.seen.Add(1) == c.n {
		c.cancel()
	}
	return http.DefaultTransport.RoundTrip(req)
}

func exportLines(t *testing.T, lines ...any) []byte {
	t.Helper()
	var b strings.Builder
	for _, l := range lines {
		if s, ok := l.(string); ok {
			b.WriteString(s)
		} else {
			raw, err := json.Marshal(l)
			if err != nil {
				t.Fatal(err)
			}
			b.Write(raw)
		}
		b.WriteByte('\n')
	}
	return []byte(b.String())
}

type rec = map[string]string

// TestMigrateExistingDeployment runs `migrate` on an export of a deployment
// set up as OpenMeet's is, with no Synapse admin token for the bridge: a dry run changes nothing, an interrupted run
// resumes from its checkpoint, bad lines are reported, skipped and written
// to the failed file without anything half-applied, the result is what an
// operator needs, and a re-run sends no change.
func TestMigrateExistingDeployment(t *testing.T) {
	// No admin token: alice, the host and a room admin, lets the bot into
	// the private event room; the bot joins the public group by itself.
	d := startLegacyDeployment(t, true)
	d.noAdminToken = true
	b := d.adoptingBridge(t)
	bad := []string{
		`{"kind":"user","tenant":"tnt1","slug":"dave","displayname":"Dave","matrix_user_id":"@dave_other:localhost"}`,
		`{"kind":"user","tenant":"tnt1","slug":"eve"`,
		`{"kind":"user","tenant":"tnt1","slug":"eve","displayname":"Eve","shoe_size":42}`,
		`{"kind":"user","tenant":"nowhere","slug":"eve","displayname":"Eve"}`,
		`{"kind":"event","tenant":"tnt1","slug":"gone","name":"Gone","room":"#event-gone-tnt1:localhost"}`,
		`{"kind":"membership","tenant":"tnt1","portal_kind":"event","portal_slug":"summer-party","user_slug":"dave","role":"attendee"}`,
		`{"kind":"membership","tenant":"tnt1","portal_kind":"group","portal_slug":"hikers","user_slug":"carol","role":"wizard"}`,
		`{"kind":"membership","tenant":"tnt1","portal_kind":"event","portal_slug":"gone","user_slug":"bob","role":"attendee"}`,
	}
	export := exportLines(t,
		rec{"kind": "tenant", "id": legacyTenant},
		rec{"kind": "user", "tenant": legacyTenant, "slug": "alice", "displayname": "Alice", "matrix_user_id": d.alice.UserID},
		rec{"kind": "user", "tenant": legacyTenant, "slug": "bob", "displayname": "Bob", "matrix_user_id": d.bob.UserID},
		rec{"kind": "user", "tenant": legacyTenant, "slug": "carol", "displayname": "Carol", "matrix_user_id": d.carol.UserID},
		bad[0], bad[1], bad[2], bad[3],
		rec{"kind": "event", "tenant": legacyTenant, "slug": "summer-party", "name": "Summer party", "room": "#event-summer-party-" + legacyTenant + ":localhost"},
		rec{"kind": "group", "tenant": legacyTenant, "slug": "hikers", "name": "Hikers", "visibility": "public", "room": d.groupRoom},
		bad[4],
		rec{"kind": "membership", "tenant": legacyTenant, "portal_kind": "event", "portal_slug": "summer-party", "user_slug": "alice", "role": "host"},
		rec{"kind": "membership", "tenant": legacyTenant, "portal_kind": "event", "portal_slug": "summer-party", "user_slug": "bob", "role": "attendee"},
		rec{"kind": "membership", "tenant": legacyTenant, "portal_kind": "event", "portal_slug": "summer-party", "user_slug": "carol", "role": "attendee"},
		bad[5],
		rec{"kind": "membership", "tenant": legacyTenant, "portal_kind": "group", "portal_slug": "hikers", "user_slug": "alice", "role": "owner"},
		bad[6],
		rec{"kind": "membership", "tenant": legacyTenant, "portal_kind": "group", "portal_slug": "hikers", "user_slug": "bob", "role": "member"},
		bad[7],
	)
	dir := t.TempDir()
	input := filepath.Join(dir, "export.jsonl")
	if err := os.WriteFile(input, export, 0o600); err != nil {
		t.Fatal(err)
	}
	base := "http://" + b.Addr().String()
	opts := func() migrate.Options {
		return migrate.Options{Input: input, BridgeURL: base, Secret: b.Config.Provisioning.SharedSecret, Concurrency: 2}
	}

	// Dry run: reports, writes nothing. It checks each line but cannot know
	// what the bridge will refuse (an account outside the legacy namespace).
	dry := opts()
	dry.DryRun = true
	var out strings.Builder
	dry.Out = &out
	report, err := migrate.Run(context.Background(), dry)
	if err != nil {
		t.Fatal(err)
	}
	if report.Writes != 0 || report.Kinds["user"].Changed != 4 || report.Kinds["membership"].Changed != 8 || report.Kinds["invalid"].Failed != 2 ||
		!strings.Contains(out.String(), "would create user tnt1/alice adopting "+d.alice.UserID) {
		t.Fatalf("dry run: %d writes, %+v\n%s", report.Writes, report.Kinds, out.String())
	}
	if code := provision(t, b, "GET", "/tenants/"+legacyTenant+"/users/alice", nil, nil); code != 404 {
		t.Fatalf("the dry run created alice: %d", code)
	}
	if _, err := os.Stat(input + ".checkpoint"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the dry run wrote a checkpoint: %v", err)
	}

	// Interrupted after a few writes: the window in flight finishes, the
	// checkpoint says how far.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first := opts()
	first.HTTPClient = &http.Client{Transport: &cancelAfterWrites{n: 2, cancel: cancel}}
	report, err = migrate.Run(ctx, first)
	if !errors.Is(err, migrate.ErrInterrupted) || report.Done == 0 || report.Done >= report.Lines {
		t.Fatalf("interrupted run: %v, done %d of %d", err, report.Done, report.Lines)
	}
	interruptedAt := report.Done
	if _, err := os.Stat(input + ".checkpoint"); err != nil {
		t.Fatalf("no checkpoint after the interruption: %v", err)
	}

	// Resumed: starts after the checkpoint and finishes.
	report, err = migrate.Run(context.Background(), opts())
	if err != nil {
		t.Fatal(err)
	}
	var printed strings.Builder
	report.Print(&printed)
	t.Logf("report:\n%s", printed.String())
	if report.Resumed != interruptedAt || report.Done != report.Lines {
		t.Fatalf("resume: started after %d (checkpoint %d), done %d of %d", report.Resumed, interruptedAt, report.Done, report.Lines)
	}
	if report.Failed != len(bad) || report.Kinds["user"].Failed != 2 || report.Kinds["invalid"].Failed != 2 ||
		report.Kinds["event"].Failed != 1 || report.Kinds["membership"].Failed != 3 {
		t.Fatalf("failures %+v %+v", report.Kinds, report.Failures)
	}
	for _, f := range report.Failures {
		if f.Reason == "" || f.Line == 0 {
			t.Fatalf("failure without line or reason: %+v", f)
		}
	}
	failedLines, err := os.ReadFile(input + ".failed")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.TrimSpace(string(failedLines)), `{"id":"tnt1","kind":"tenant"}`+"\n"+strings.Join(bad, "\n"); got != want {
		t.Fatalf("failed file:\n%s\nwant:\n%s", got, want)
	}
	// Nothing of a bad line was applied.
	for _, path := range []string{"/tenants/" + legacyTenant + "/users/dave", "/tenants/" + legacyTenant + "/users/eve",
		"/tenants/nowhere/users/eve", "/tenants/" + legacyTenant + "/events/gone"} {
		if code := provision(t, b, "GET", path, nil, nil); code != 404 {
			t.Errorf("%s exists after its line failed: %d", path, code)
		}
	}
	var members struct {
		Members []struct {
			UserSlug string `json:"user_slug"`
			Role     string `json:"role"`
		} `json:"members"`
	}
	provision(t, b, "GET", "/tenants/"+legacyTenant+"/groups/hikers/members", nil, &members)
	for _, m := range members.Members {
		if m.UserSlug == "bob" && m.Role != "member" {
			t.Fatalf("bob's role in hikers is %q", m.Role)
		}
	}

	d.checkAdopted(t, b)

	// A re-run of the whole export changes nothing that is right: no write
	// but the bad lines' attempts.
	again := opts()
	report, err = migrate.Run(context.Background(), again)
	if err != nil {
		t.Fatal(err)
	}
	for kind, c := range report.Kinds {
		if c.Changed != 0 {
			t.Errorf("re-run changed %d %s lines", c.Changed, kind)
		}
	}
	if report.Failed != len(bad) || report.Kinds["user"].Unchanged != 3 || report.Kinds["membership"].Unchanged != 5 {
		t.Fatalf("re-run: %+v", report.Kinds)
	}
	// The failed file is an export of its own: fed back, the same lines fail.
	feed := opts()
	feed.Input = input + ".failed"
	report, err = migrate.Run(context.Background(), feed)
	if err != nil || report.Failed != len(bad) {
		t.Fatalf("feeding back the failed lines: %v, %d failed", err, report.Failed)
	}
}

var _ = bridge.Version

package appservice

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/rs/zerolog"
	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/id"

	"github.com/openmeet-team/openmeet-bridge/database"
)

// FuzzParseTransaction feeds arbitrary bodies to the transaction parser
// and, for what it accepts, the event log. Properties: it never panics; a
// refused body is one of the two body errors; every accepted event and
// ephemeral event satisfies the checks (written here a second time,
// independently of the parser); every event is either accepted or
// rejected with a known reason; nothing accepted shares memory with the
// body; reading the stored event back (with gjson, as the stream and the
// bot do, and from the database) gives the same fields.
//
// The seed corpus is in testdata/fuzz/FuzzParseTransaction; scripts/fuzz.sh
// runs the fuzzer for a bounded time.
func FuzzParseTransaction(f *testing.F) {
	f.Add([]byte(txnBody(textEvent(1), textEvent(2))))
	// Repeated, escaped and alternative top-level keys: the first counts.
	f.Add([]byte(`{"events":[],"events":[` + textEvent(1) + `]}`))
	f.Add([]byte(`{"\u0065vents":[` + textEvent(1) + `],"ephemeral":{}}`))
	f.Add([]byte(`{"events":[],"de.sorunome.msc2409.ephemeral":[{"type":"m.typing","room_id":"!r:x","content":{}}],"ephemeral":[]}`))
	f.Add([]byte(`{"events":[],"de.sorunome.msc2409.ephemeral":[{"type":"m.typing","room_id":"!r:x","content":{}}]}`))
	db, err := database.Open(database.Config{Type: "sqlite3-fk-wal", URI: "file:" + filepath.Join(f.TempDir(), "fuzz.db") + "?_txlock=immediate"}, zerolog.Nop())
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = db.Close() })
	if err := db.Upgrade(context.Background()); err != nil {
		f.Fatal(err)
	}
	var txnSeq atomic.Int64
	f.Fuzz(func(t *testing.T, body []byte) {
		txn, err := parseTransaction(body)
		if err != nil {
			if txn != nil || !(errors.Is(err, errNotJSON) || errors.Is(err, errBadJSON)) {
				t.Fatalf("refused with %v and %v", txn, err)
			}
			return
		}
		root := gjson.ParseBytes(body)
		checkCounts(t, root, txn)
		seen := make(map[id.EventID]bool)
		for _, evt := range txn.events {
			if seen[evt.EventID] {
				t.Fatalf("event %q accepted twice", evt.EventID)
			}
			seen[evt.EventID] = true
			checkLoggedEvent(t, evt)
			checkStoredRaw(t, evt)
		}
		for _, eph := range txn.ephemeral {
			checkEphemeral(t, eph)
		}
		for _, rej := range txn.rejected {
			if !contains(rejectReasons, rej.err.reason) || rej.err.msg == "" || len(rej.err.msg) > 400 {
				t.Fatalf("rejection %+v: unknown reason or unusable message", rej.err)
			}
		}
		// A second parse of a body gjson copied: nothing points into it.
		again, err := parseRoot(root)
		if err != nil {
			t.Fatal(err)
		}
		if aliased := aliasedFields(again, root.Raw); len(aliased) > 0 {
			t.Fatalf("fields point into the body: %v", aliased)
		}
		// The database gives back what was stored.
		txnID := fmt.Sprintf("fuzz%d", txnSeq.Add(1))
		written, err := db.EventLog.AppendTransaction(context.Background(), txnID, database.TxnDigest(txn.events, nil), txn.events)
		if err != nil {
			t.Fatalf("storing accepted events: %v", err)
		}
		for _, evt := range written {
			got, err := db.EventLog.Get(context.Background(), evt.EventID)
			if err != nil || got == nil {
				t.Fatalf("%q was written but not read back: %v", evt.EventID, err)
			}
			if diff := diffEvents(got, evt); diff != "" {
				t.Fatalf("%q came back from the database with %s", evt.EventID, diff)
			}
		}
	})
}

// checkCounts: every element of the lists is accepted or rejected.
func checkCounts(t *testing.T, root gjson.Result, txn *transaction) {
	t.Helper()
	timeline := root.Get("events").Array()
	ephemeral := root.Get("ephemeral")
	if !ephemeral.Exists() {
		ephemeral = root.Get(`de\.sorunome\.msc2409\.ephemeral`)
	}
	rejected := map[string]int{}
	for _, rej := range txn.rejected {
		rejected[rej.list]++
	}
	accepted, distinct := 0, map[id.EventID]bool{}
	for _, raw := range timeline {
		if evt, err := parseTimelineEvent(raw); err == nil {
			accepted++
			distinct[evt.EventID] = true
		}
	}
	if accepted+rejected["events"] != len(timeline) || len(txn.events) != len(distinct) {
		t.Fatalf("%d timeline events: %d accepted (%d distinct), %d rejected, %d logged", len(timeline), accepted, len(distinct), rejected["events"], len(txn.events))
	}
	if n := len(ephemeral.Array()); len(txn.ephemeral)+rejected["ephemeral"] != n {
		t.Fatalf("%d ephemeral events: %d accepted, %d rejected", n, len(txn.ephemeral), rejected["ephemeral"])
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// isID is the rule for identifiers, written independently of the parser.
func isID(s string, sigil byte) bool {
	if len(s) < 2 || len(s) > 255 || s[0] != sigil || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r == 0 || unicode.IsControl(r) || unicode.IsSpace(r) {
			return false
		}
	}
	return true
}

// isText is the rule for event types and state keys.
func isText(s string) bool {
	return len(s) <= 255 && utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}

func checkLoggedEvent(t *testing.T, evt *database.LoggedEvent) {
	t.Helper()
	switch {
	case !isID(string(evt.EventID), '$'):
		t.Fatalf("accepted event_id %q", evt.EventID)
	case !isID(string(evt.RoomID), '!'):
		t.Fatalf("accepted room_id %q", evt.RoomID)
	case !isID(string(evt.Sender), '@') || !strings.Contains(string(evt.Sender), ":"):
		t.Fatalf("accepted sender %q", evt.Sender)
	case evt.Type == "" || !isText(evt.Type):
		t.Fatalf("accepted type %q", evt.Type)
	case evt.StateKey != nil && !isText(*evt.StateKey):
		t.Fatalf("accepted state_key %q", *evt.StateKey)
	case strings.ContainsRune(evt.MemberDisplayname, 0) || utf8.RuneCountInString(evt.MemberDisplayname) > 256:
		t.Fatalf("accepted display name %q", evt.MemberDisplayname)
	}
	if evt.Type == "m.room.member" && evt.StateKey != nil {
		if !isID(*evt.StateKey, '@') || evt.Membership == "" || !isText(string(evt.Membership)) {
			t.Fatalf("accepted member event for %q with membership %q", *evt.StateKey, evt.Membership)
		}
	} else if evt.Membership != "" || evt.MemberDisplayname != "" {
		t.Fatalf("%s event has membership %q", evt.Type, evt.Membership)
	}
}

// checkStoredRaw: the stored bytes are a JSON object whose fields, read as
// every reader of the log reads them, are the ones that were checked.
func checkStoredRaw(t *testing.T, evt *database.LoggedEvent) {
	t.Helper()
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(evt.Raw, &obj); err != nil {
		t.Fatalf("stored event is not a JSON object: %v: %q", err, evt.Raw)
	}
	raw := gjson.ParseBytes(evt.Raw)
	for field, want := range map[string]string{"event_id": string(evt.EventID), "room_id": string(evt.RoomID), "sender": string(evt.Sender), "type": evt.Type} {
		if got := raw.Get(field); got.Type != gjson.String || got.Str != want {
			t.Fatalf("stored event's %s reads as %q, was checked as %q", field, got.Str, want)
		}
	}
	if sk := raw.Get("state_key"); sk.Exists() != (evt.StateKey != nil) || (evt.StateKey != nil && sk.Str != *evt.StateKey) {
		t.Fatalf("stored event's state_key reads as %s", sk.Raw)
	}
	if raw.Get("origin_server_ts").Int() != evt.OriginTS {
		t.Fatalf("stored event's origin_server_ts reads as %s, not %d", raw.Get("origin_server_ts").Raw, evt.OriginTS)
	}
	if evt.Membership != "" && raw.Get("content.membership").Str != string(evt.Membership) {
		t.Fatalf("stored membership reads as %q, not %q", raw.Get("content.membership").Str, evt.Membership)
	}
	// Parsing the stored event again gives the same event.
	again, err := parseTimelineEvent(raw)
	if err != nil {
		t.Fatalf("the stored event is refused when parsed again: %v", err)
	}
	if diff := diffEvents(again, evt); diff != "" {
		t.Fatalf("parsed again, the stored event has %s", diff)
	}
	if again.Membership != evt.Membership || again.MemberDisplayname != evt.MemberDisplayname {
		t.Fatalf("parsed again, the stored event has membership %q (%q), not %q (%q)", again.Membership, again.MemberDisplayname, evt.Membership, evt.MemberDisplayname)
	}
}

func checkEphemeral(t *testing.T, eph *Ephemeral) {
	t.Helper()
	if eph.Type == "" || !isText(eph.Type) || (eph.RoomID != "" && !isID(string(eph.RoomID), '!')) {
		t.Fatalf("accepted ephemeral event of type %q in %q", eph.Type, eph.RoomID)
	}
	if content := gjson.ParseBytes(eph.Content); !json.Valid(eph.Content) || !content.IsObject() {
		t.Fatalf("accepted ephemeral content %q", eph.Content)
	}
	// The sink hands it on marshalled: that must work.
	if _, err := json.Marshal(eph); err != nil {
		t.Fatalf("ephemeral event does not marshal: %v", err)
	}
}

// diffEvents names the first stored field in which got differs from want.
func diffEvents(got, want *database.LoggedEvent) string {
	switch {
	case got.EventID != want.EventID:
		return fmt.Sprintf("event_id %q, not %q", got.EventID, want.EventID)
	case got.RoomID != want.RoomID:
		return fmt.Sprintf("room_id %q, not %q", got.RoomID, want.RoomID)
	case got.Sender != want.Sender:
		return fmt.Sprintf("sender %q, not %q", got.Sender, want.Sender)
	case got.Type != want.Type:
		return fmt.Sprintf("type %q, not %q", got.Type, want.Type)
	case (got.StateKey == nil) != (want.StateKey == nil) || (got.StateKey != nil && *got.StateKey != *want.StateKey):
		return "another state_key"
	case got.OriginTS != want.OriginTS:
		return fmt.Sprintf("origin_server_ts %d, not %d", got.OriginTS, want.OriginTS)
	case string(got.Raw) != string(want.Raw):
		return "other bytes"
	case got.Position != want.Position:
		return fmt.Sprintf("position %d, not %d", got.Position, want.Position)
	}
	return ""
}

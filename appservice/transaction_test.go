package appservice

import (
	"strings"
	"testing"
	"unsafe"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/id"

	"github.com/openmeet-team/openmeet-bridge/database"
)

// pointsInto reports whether the n bytes at p overlap the bytes of whole.
func pointsInto(p *byte, n int, whole string) bool {
	if n == 0 || len(whole) == 0 {
		return false
	}
	start, q := uintptr(unsafe.Pointer(unsafe.StringData(whole))), uintptr(unsafe.Pointer(p))
	return q < start+uintptr(len(whole)) && q+uintptr(n) > start
}

// aliasedFields names the fields of a parsed transaction that share memory
// with the parsed body. Any of them, kept by a cache keyed by room or
// sender, keeps the whole body alive: live memory then grows with every
// transaction.
func aliasedFields(txn *transaction, body string) []string {
	var out []string
	check := func(name string, p *byte, n int) {
		if pointsInto(p, n, body) {
			out = append(out, name)
		}
	}
	str := func(name, s string) { check(name, unsafe.StringData(s), len(s)) }
	for _, evt := range txn.events {
		str("event_id", string(evt.EventID))
		str("room_id", string(evt.RoomID))
		str("sender", string(evt.Sender))
		str("type", evt.Type)
		if evt.StateKey != nil {
			str("state_key", *evt.StateKey)
		}
		str("membership", string(evt.Membership))
		str("displayname", evt.MemberDisplayname)
		check("raw", unsafe.SliceData(evt.Raw), len(evt.Raw))
	}
	for _, eph := range txn.ephemeral {
		str("ephemeral type", eph.Type)
		str("ephemeral room_id", string(eph.RoomID))
		check("ephemeral content", unsafe.SliceData(eph.Content), len(eph.Content))
	}
	return out
}

func TestParsedTransactionSharesNoMemoryWithBody(t *testing.T) {
	t.Parallel()
	// No escapes anywhere: gjson returns unescaped strings as slices of
	// the body, escaped ones as copies.
	body := []byte(`{"events":[` +
		`{"event_id":"$join","room_id":"!room:test.local","type":"m.room.member","state_key":"@bob:test.local","sender":"@bob:test.local","origin_server_ts":1,"content":{"membership":"join","displayname":"Bob"}},` +
		`{"event_id":"$topic","room_id":"!room:test.local","type":"m.room.topic","state_key":"","sender":"@bob:test.local","origin_server_ts":2,"content":{"topic":"Party"}},` +
		textEvent(1) +
		`],"ephemeral":[` +
		`{"type":"m.typing","room_id":"!room:test.local","content":{"user_ids":["@bob:test.local"]}},` +
		`{"type":"m.receipt","room_id":"!room:test.local","content":{"$e1":{"m.read":{"@bob:test.local":{"ts":1}}}}}` +
		`]}`)
	root := gjson.ParseBytes(body)
	txn, err := parseRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(txn.events) != 3 || len(txn.ephemeral) != 2 || len(txn.rejected) != 0 || txn.events[0].MemberDisplayname != "Bob" {
		t.Fatalf("parsed %d events, %d ephemeral, %d rejected: %+v", len(txn.events), len(txn.ephemeral), len(txn.rejected), txn.events)
	}
	if aliased := aliasedFields(txn, root.Raw); len(aliased) > 0 {
		t.Fatalf("these fields point into the transaction body: %v", aliased)
	}
	// The check itself sees a slice of the body.
	if aliased := aliasedFields(&transaction{events: []*database.LoggedEvent{{EventID: "$x", RoomID: "!r:t", Type: root.Get("events.0.type").Str}}}, root.Raw); len(aliased) != 1 {
		t.Fatalf("a slice of the body was not noticed: %v", aliased)
	}
}

// BenchmarkParseTransaction measures the parser alone on a 100-event
// transaction like BenchmarkTransactionIngest's.
func BenchmarkParseTransaction(b *testing.B) {
	body := benchTxn(0, 100)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseTransaction(body); err != nil {
			b.Fatal(err)
		}
	}
}

// validUserID answers as id.UserID.ParseAndValidateRelaxed, the first time
// (checked) and the second (remembered) alike, and keeps no part of the
// body it was cut from.
func TestValidUserIDMatchesMautrix(t *testing.T) {
	cases := []string{
		"@alice:example.org", "@alice:example.org:8448", "@a:1.2.3.4", "@a:[::1]", "@a:[::1]:80",
		"@historical!:example.org", "@a:", "@a", "alice:example.org", "@:example.org",
		"@a:bad_server", "@a:exa mple.org", "@a:example.org:", "@a:example.org:99999999", "@a:[::1",
		"@a:example.org/x", "@a:-", "@a:" + strings.Repeat("x", 260),
	}
	for _, userID := range cases {
		_, _, err := id.UserID(userID).ParseAndValidateRelaxed()
		for round := range 2 {
			if got := validUserID(userID); got != (err == nil) {
				t.Errorf("%q, round %d: validUserID %v, mautrix says %v", userID, round, got, err)
			}
		}
	}
	body := `{"sender":"@bob:remembered.example"}`
	sender := gjson.Get(body, "sender").Str
	if !validUserID(sender) {
		t.Fatal("a valid sender was refused")
	}
	for _, server := range validServerNames.Keys() {
		if pointsInto(unsafe.StringData(server), len(server), body) {
			t.Fatalf("the remembered server name %q is a slice of the body", server)
		}
	}
}

package bridge_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/openmeet-team/openmeet-bridge/bridge"
	"github.com/openmeet-team/openmeet-bridge/database"
	"github.com/openmeet-team/openmeet-bridge/internal/harness"
)

// TestOutboxDroppedEntryTxnIDNotReused: an admin drops the newest entry
// while its send hangs; the send reaches Synapse after all. On SQLite the
// next entry gets the dropped one's row id. Its message reaches the room
// with an event of its own: Synapse does not answer it from its txn cache
// with the dropped message's event.
func TestOutboxDroppedEntryTxnIDNotReused(t *testing.T) {
	hs := harness.SharedSynapse(t)
	proxy := newHSProxy(t, hs.URL)
	alice := hs.NewUser(t, "alice")
	cfg := clientConfig(t, hs)
	cfg.Homeserver.Address = proxy.URL
	cfg.ClientAPI.SendWait = 200 * time.Millisecond
	cfg.Permissions = map[string]string{alice.UserID: "admin"}
	b := startBridge(t, cfg)
	eventually(t, 60*time.Second, "the bridge to be ready", func() bool { return b.HS.Ready() })
	tenant, _, bob := meetupWithAdaAndBob(t, b, b)
	bobID, room := whoami(t, b, bob), portalRoom(t, b, tenant, "meetup")
	dm := openDM(t, alice, fmt.Sprintf("@%s:%s", hs.AS.BotLocalpart, hs.ServerName))

	proxy.set(room, proxyHold)
	send(t, b, bob, "meetup", "dropped")
	eventually(t, 30*time.Second, "the send to hang", func() bool { return proxy.heldNow() == 1 })
	dropped := entryOf(t, b.DB, bobID, "dropped")
	dm.run(fmt.Sprintf("outbox drop %d", dropped.ID), "Dropped message")
	// The hanging send goes on to Synapse, which keeps its txn id.
	proxy.set(room, "")
	eventually(t, 30*time.Second, "the dropped message to reach Synapse", func() bool {
		return fmt.Sprint(bodies(timeline(t, b, bobID, room))) == "[dropped]"
	})

	send(t, b, bob, "meetup", "next")
	eventually(t, 30*time.Second, "the next message to be sent", func() bool {
		return entryOf(t, b.DB, bobID, "next").State == database.OutboxSent
	})
	next := entryOf(t, b.DB, bobID, "next")
	if next.ID != dropped.ID {
		t.Fatalf("the next entry has id %d, not the dropped one's %d: the case is not reproduced", next.ID, dropped.ID)
	}
	got := timeline(t, b, bobID, room)
	if fmt.Sprint(bodies(got)) != "[dropped next]" || next.EventID != got[1].ID || next.HSTxnID == dropped.HSTxnID {
		t.Fatalf("the room has %v (%v); the next entry %+v, the dropped one %+v", bodies(got), got, next, dropped)
	}
}

// TestOutboxTxnIDsSurviveRestore: the outbox is put back as it was before
// a message was sent (a restored backup: its rows gone, the id sequence
// where it was). The next message gets the same row id, and still reaches
// the room with an event of its own.
func TestOutboxTxnIDsSurviveRestore(t *testing.T) {
	hs := harness.SharedSynapse(t)
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) {
			cfg := clientConfig(t, hs)
			if engine == "postgres" {
				cfg.Database.Type, cfg.Database.URI = "postgres", harness.PostgresURI(t)
			}
			b := startBridge(t, cfg)
			eventually(t, 60*time.Second, "the bridge to be ready", func() bool { return b.HS.Ready() })
			tenant, _, bob := meetupWithAdaAndBob(t, b, b)
			bobID, room := whoami(t, b, bob), portalRoom(t, b, tenant, "meetup")

			sendAndWait(t, b, bob, bobID, "before")
			before := entryOf(t, b.DB, bobID, "before")
			restoreOutbox(t, b, engine, before.ID)

			sendAndWait(t, b, bob, bobID, "after")
			after := entryOf(t, b.DB, bobID, "after")
			if after.ID != before.ID {
				t.Fatalf("the entry after the restore has id %d, not %d: the case is not reproduced", after.ID, before.ID)
			}
			got := timeline(t, b, bobID, room)
			if fmt.Sprint(bodies(got)) != "[before after]" || after.EventID != got[1].ID || after.HSTxnID == before.HSTxnID {
				t.Fatalf("the room has %v (%v); entries %+v and %+v", bodies(got), got, before, after)
			}
		})
	}
}

// sendAndWait sends a message through the client API (its body is txn)
// and waits until the outbox has delivered it.
func sendAndWait(t *testing.T, b *bridge.Bridge, token string, user id.UserID, txn string) {
	t.Helper()
	send(t, b, token, "meetup", txn)
	eventually(t, 60*time.Second, txn+" to be sent", func() bool {
		return entryOf(t, b.DB, user, txn).State == database.OutboxSent
	})
}

// restoreOutbox puts the outbox back as a backup taken before entry
// fromID was made would have it: that entry and later ones gone, the next
// id fromID.
func restoreOutbox(t *testing.T, b *bridge.Bridge, engine string, fromID int64) {
	t.Helper()
	ctx := context.Background()
	if _, err := b.DB.Exec(ctx, `DELETE FROM outbox WHERE id >= $1`, fromID); err != nil {
		t.Fatal(err)
	}
	if engine == "postgres" {
		if _, err := b.DB.Exec(ctx, fmt.Sprintf(`ALTER TABLE outbox ALTER COLUMN id RESTART WITH %d`, fromID)); err != nil {
			t.Fatal(err)
		}
	}
}

type txnAnswer struct {
	TxnID   string `json:"txn_id"`
	State   string `json:"state"`
	EventID string `json:"event_id"`
	ErrCode string `json:"errcode"`
	Error   string `json:"error"`
}

// TestClientTxnIDConflicts: a txn id used for one request and then for
// another (another action, body, room or file) is refused with 409, and
// nothing of the second request is done; an identical repeat answers as
// the first time did.
func TestClientTxnIDConflicts(t *testing.T) {
	hs := harness.SharedSynapse(t)
	b := startBridge(t, clientConfig(t, hs))
	eventually(t, 60*time.Second, "the bridge to be ready", func() bool { return b.HS.Ready() })
	tenant, bob := twoRooms(t, b)
	bobID, room := whoami(t, b, bob), portalRoom(t, b, tenant, "meetup")
	meetup := "/rooms/events/meetup"
	ctx := context.Background()

	var first txnAnswer
	if code := call(t, b, bob, "PUT", meetup+"/send/x", map[string]string{"body": "hello"}, &first); code != 200 || first.State != "sent" || first.EventID == "" {
		t.Fatalf("send: %d %+v", code, first)
	}
	refused := func(what string, code int, out txnAnswer) {
		t.Helper()
		if code != 409 || out.ErrCode != "NET.OPENMEET.TXN_CONFLICT" || out.Error == "" || out.EventID != "" {
			t.Fatalf("%s with the send's txn id: %d %+v", what, code, out)
		}
	}
	conflict := func(what, path string, body any) {
		t.Helper()
		var out txnAnswer
		refused(what, call(t, b, bob, "PUT", path, body, &out), out)
	}
	conflict("a redaction", meetup+"/redact/x", map[string]string{"event_id": first.EventID})
	conflict("a reaction", meetup+"/react/x", map[string]string{"event_id": first.EventID, "key": "👍"})
	conflict("an edit", meetup+"/edit/x", map[string]string{"event_id": first.EventID, "body": "changed"})
	conflict("another body", meetup+"/send/x", map[string]string{"body": "hello again"})
	conflict("a reply", meetup+"/send/x", map[string]string{"body": "hello", "reply_to": first.EventID})
	conflict("another room", "/rooms/events/other/send/x", map[string]string{"body": "hello"})
	var up txnAnswer
	refused("an upload", uploadFile(t, b, bob, meetup+"/upload/x?filename=a.png", "image/png", testPNG(t, 8, 8), &up), up)

	// The identical request, however its JSON is spelled, is the same.
	var again txnAnswer
	if code := call(t, b, bob, "PUT", meetup+"/send/x", `{ "formatted_body": "",  "body":"hello" }`, &again); code != 200 || again != first {
		t.Fatalf("repeated send: %d %+v, first %+v", code, again, first)
	}
	// Synapse has the message once, neither redacted, edited nor reacted to.
	got := timeline(t, b, bobID, room)
	if fmt.Sprint(bodies(got)) != "[hello]" || got[0].ID.String() != first.EventID || got[0].Unsigned.RedactedBecause != nil {
		t.Fatalf("the room has %v (%+v)", bodies(got), got)
	}
	var stored int
	if err := b.DB.QueryRow(ctx, `SELECT COUNT(*) FROM outbox WHERE user_id = $1`, bobID).Scan(&stored); err != nil || stored != 1 {
		t.Fatalf("%d outbox entries of bob, want 1 (%v)", stored, err)
	}

	// The other way round: a redaction's txn id, then a send.
	var msg, redaction txnAnswer
	call(t, b, bob, "PUT", meetup+"/send/y", map[string]string{"body": "to remove"}, &msg)
	if code := call(t, b, bob, "PUT", meetup+"/redact/r", map[string]string{"event_id": msg.EventID}, &redaction); code != 200 || redaction.EventID == "" {
		t.Fatalf("redact: %d %+v", code, redaction)
	}
	conflict("a send", meetup+"/send/r", map[string]string{"body": "sneaked in"})
	conflict("a redaction of another event", meetup+"/redact/r", map[string]string{"event_id": first.EventID})
	if code := call(t, b, bob, "PUT", meetup+"/redact/r", map[string]string{"event_id": msg.EventID}, &again); code != 200 || again != redaction {
		t.Fatalf("repeated redaction: %d %+v, first %+v", code, again, redaction)
	}

	// Uploads: a repeat sends the same file with the same name; another
	// name or size is another file.
	file := testPNG(t, 16, 16)
	var img, imgAgain uploaded
	if code := uploadFile(t, b, bob, meetup+"/upload/u?filename=a.png", "image/png", file, &img); code != 200 || img.EventID == "" {
		t.Fatalf("upload: %d %+v", code, img)
	}
	if code := uploadFile(t, b, bob, meetup+"/upload/u?filename=a.png", "image/png", file, &imgAgain); code != 200 || imgAgain != img {
		t.Fatalf("repeated upload: %d %+v, first %+v", code, imgAgain, img)
	}
	refused("an upload of another name", uploadFile(t, b, bob, meetup+"/upload/u?filename=b.png", "image/png", file, &up), up)
	other := testPNG(t, 40, 40)
	if len(other) == len(file) {
		t.Fatal("the two files have one size")
	}
	refused("an upload of another file", uploadFile(t, b, bob, meetup+"/upload/u?filename=a.png", "image/png", other, &up), up)
	conflict("a send", meetup+"/send/u", map[string]string{"body": "a.png"})

	// An entry stored before digests were recorded is answered as before.
	if _, err := b.DB.Exec(ctx, `UPDATE outbox SET request_digest = '' WHERE user_id = $1 AND txn_id = 'x'`, bobID); err != nil {
		t.Fatal(err)
	}
	if code := call(t, b, bob, "PUT", meetup+"/send/x", map[string]string{"body": "hello again"}, &again); code != 200 || again != first {
		t.Fatalf("a send with the txn id of an entry without digest: %d %+v, first %+v", code, again, first)
	}
}

package bridge_test

import (
	"testing"
	"time"

	"github.com/openmeet-team/openmeet-bridge/internal/harness"
)

// TestTwoReplicasOnPostgres runs two bridges on one PostgreSQL database.
// Synapse pushes to the first; a browser streams from the second, which
// learns of new rows through LISTEN/NOTIFY; a send accepted by the second
// arrives once; the bot answers each command once.
func TestTwoReplicasOnPostgres(t *testing.T) {
	hs := harness.SharedSynapse(t)
	uri := harness.PostgresURI(t)
	alice := hs.NewUser(t, "alice")

	cfgA := clientConfig(t, hs)
	cfgA.Database.Type, cfgA.Database.URI = "postgres", uri
	cfgA.Permissions = map[string]string{alice.UserID: "admin"}
	a := startBridge(t, cfgA)
	eventually(t, 60*time.Second, "replica A to be ready", func() bool { return a.HS.Ready() })

	cfgB := *cfgA
	port, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	cfgB.Appservice.Port = port
	b := startBridge(t, &cfgB)
	eventually(t, 60*time.Second, "replica B to be ready", func() bool { return b.HS.Ready() })

	// Provisioned through A; the memberships are seen through B.
	_, ada, bob := meetupWithAdaAndBob(t, a, b)

	streamB, _ := openStream(t, b, ada, "", "")
	call(t, a, bob, "PUT", "/rooms/events/meetup/send/r1", map[string]string{"body": "via replica A"}, nil)
	streamB.waitFor(t, "a message pushed to replica A", isMessage("via replica A"))
	call(t, b, bob, "PUT", "/rooms/events/meetup/send/r2", map[string]string{"body": "via replica B"}, nil)
	streamB.waitFor(t, "a message sent through replica B", isMessage("via replica B"))
	time.Sleep(time.Second)
	if got := countBodies(t, a); got["via replica A"] != 1 || got["via replica B"] != 1 {
		t.Fatalf("messages logged %v, want each once", got)
	}

	bot := "@" + hs.AS.BotLocalpart + ":" + hs.ServerName
	dm := openDM(t, alice, bot)
	cmd := dm.send("version")
	dm.replyTo(cmd)
	time.Sleep(2 * time.Second)
	replies := 0
	for _, evt := range dm.messages() {
		rel, _ := evt.Content["m.relates_to"].(map[string]any)
		reply, _ := rel["m.in_reply_to"].(map[string]any)
		if evt.Sender == bot && reply["event_id"] == cmd {
			replies++
		}
	}
	if replies != 1 {
		t.Fatalf("the bot answered %d times, want once", replies)
	}
}

package bridge_test

import (
	"context"
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

// TestBotLeaderSurvivesKilledSession kills every PostgreSQL session of the
// replica running the bot's commands (pg_terminate_backend, as a
// connection killer or a partition ending in a reset would). With a
// session advisory lock the other replica took the freed lock while the
// first, unaware, went on: both answered commands. With the lease the
// holder renews over a new connection, the lease never passes (its token
// stays), the other replica never leads, and a command is answered once.
func TestBotLeaderSurvivesKilledSession(t *testing.T) {
	hs := harness.SharedSynapse(t)
	uri := harness.PostgresURI(t)
	alice := hs.NewUser(t, "alice")
	const lease = 3 * time.Second

	cfgA := clientConfig(t, hs)
	cfgA.Database.Type, cfgA.Database.URI = "postgres", uri+"&application_name=replica_a"
	cfgA.Database.LeaseDuration = lease.String()
	cfgA.Permissions = map[string]string{alice.UserID: "admin"}
	a := startBridge(t, cfgA)
	eventually(t, 60*time.Second, "replica A to be ready", func() bool { return a.HS.Ready() })
	cfgB := *cfgA
	cfgB.Database.URI = uri + "&application_name=replica_b"
	port, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	cfgB.Appservice.Port = port
	b := startBridge(t, &cfgB)
	eventually(t, 60*time.Second, "replica B to be ready", func() bool { return b.HS.Ready() })

	eventually(t, 60*time.Second, "one replica to run commands", func() bool {
		return a.Commands.Leading() || b.Commands.Leading()
	})
	leader, other, leaderApp := a, b, "replica_a"
	if b.Commands.Leading() {
		leader, other, leaderApp = b, a, "replica_b"
	}
	ctx := context.Background()
	leaseRow := func() (token, expiresAt int64) {
		t.Helper()
		if err := other.DB.QueryRow(ctx, `SELECT token, expires_at FROM lease WHERE name = 'bot commands'`).Scan(&token, &expiresAt); err != nil {
			t.Fatal(err)
		}
		return
	}
	tokenBefore, _ := leaseRow()

	var killed int
	var killedAt int64
	err = other.DB.QueryRow(ctx, `
		SELECT COUNT(*), MAX((EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT)
		FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		      WHERE application_name = $1 AND datname = current_database()) k`, leaderApp).Scan(&killed, &killedAt)
	if err != nil {
		t.Fatal(err)
	}
	if killed == 0 {
		t.Fatal("the leader had no session to kill")
	}
	t.Logf("killed %d sessions of %s", killed, leaderApp)

	// Until the lease has been renewed past twice its length after the
	// kill (the other replica tried to take it every sixth of that), only
	// the leader may lead, and the lease must never change hands.
	eventually(t, 120*time.Second, "the leader's lease renewed well past the kill", func() bool {
		if other.Commands.Leading() {
			t.Fatal("the other replica runs commands too after the leader's sessions were killed")
		}
		token, expiresAt := leaseRow()
		if token != tokenBefore {
			t.Fatalf("the bot's lease changed hands (token %d, before %d)", token, tokenBefore)
		}
		return expiresAt > killedAt+2*lease.Milliseconds()
	})
	if !leader.Commands.Leading() {
		t.Fatal("the leader stopped running commands")
	}

	bot := "@" + hs.AS.BotLocalpart + ":" + hs.ServerName
	dm := openDM(t, alice, bot)
	first := dm.send("version")
	dm.replyTo(first)
	// The bot handles the log in order: once it answered a second command,
	// every replica that runs commands has had its turn at the first.
	dm.replyTo(dm.send("version"))
	if n := repliesTo(dm, first); n != 1 {
		t.Fatalf("the bot answered %d times, want once", n)
	}
}

package bridge_test

import (
	"context"
	"fmt"
	"net/url"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/openmeet-team/openmeet-bridge/bridge"
	"github.com/openmeet-team/openmeet-bridge/database"
	"github.com/openmeet-team/openmeet-bridge/internal/harness"
)

// The tests below share one Synapse, whose registration points at one port,
// so they do not run in parallel with each other.

func startOnSynapse(t testing.TB, hs *harness.Synapse, dir string) (*bridge.Bridge, *bridge.Config) {
	t.Helper()
	cfg := testConfig(t, dir, hs.URL, hs.ServerName, hs.AS)
	b := startBridge(t, cfg)
	eventually(t, 60*time.Second, "the bridge to be ready", func() bool { return b.HS.Ready() })
	return b, cfg
}

func TestBotAndGhostExistOnSynapse(t *testing.T) {
	hs := harness.SharedSynapse(t)
	b, _ := startOnSynapse(t, hs, t.TempDir())
	alice := hs.NewUser(t, "alice")
	ctx := context.Background()

	bot := fmt.Sprintf("@%s:%s", hs.AS.BotLocalpart, hs.ServerName)
	name, _, err := alice.Profile(ctx, bot)
	if err != nil || name != "OpenMeet bridge" {
		t.Fatalf("bot profile: %q, %v", name, err)
	}
	// A provisioned ghost the homeserver does not know yet: when an event
	// concerns it, Synapse asks the bridge (GET /_matrix/app/v1/users/…),
	// which registers it. A ghost ID nobody provisioned stays unknown.
	slug := harness.UniqueName("bob")
	ghost := fmt.Sprintf("@openmeet_acme_%s:%s", slug, hs.ServerName)
	stranger := fmt.Sprintf("@openmeet_acme_%s:%s", harness.UniqueName("eve"), hs.ServerName)
	if _, err := b.DB.Ghosts.Put(ctx, &database.Ghost{Tenant: "acme", Slug: slug, UserID: id.UserID(ghost), Displayname: "Bob"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := alice.Profile(ctx, ghost); err == nil {
		t.Fatal("ghost exists before anything asked for it")
	}
	roomID, err := alice.CreateRoom(ctx, map[string]any{"preset": "private_chat"})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{ghost, stranger} {
		if err := alice.Invite(ctx, roomID, u); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 30*time.Second, "the ghost to exist", func() bool {
		_, _, err := alice.Profile(ctx, ghost)
		return err == nil
	})
	if _, _, err := alice.Profile(ctx, stranger); err == nil {
		t.Fatal("an unprovisioned ghost was registered")
	}
	// Outside the namespace, nothing is created.
	if _, _, err := alice.Profile(ctx, "@nobody_"+harness.UniqueName("x")+":"+hs.ServerName); err == nil {
		t.Fatal("profile of an unknown user exists")
	}
}

// roomLog returns the ids of the logged events of a room, in log order.
func roomLog(t *testing.T, b *bridge.Bridge, roomID string) []id.EventID {
	t.Helper()
	events, err := b.DB.EventLog.After(context.Background(), 0, 100000)
	if err != nil {
		t.Fatal(err)
	}
	var ids []id.EventID
	for _, e := range events {
		if string(e.RoomID) == roomID {
			ids = append(ids, e.EventID)
		}
	}
	return ids
}

func waitForLog(t *testing.T, b *bridge.Bridge, roomID string, want []id.EventID) {
	t.Helper()
	var got []id.EventID
	eventually(t, 90*time.Second, "the events in the log", func() bool {
		got = roomLog(t, b, roomID)
		return len(got) >= len(want)
	})
	// Give a duplicate the chance to show up before comparing.
	time.Sleep(500 * time.Millisecond)
	got = roomLog(t, b, roomID)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("room log:\n got %v\nwant %v", got, want)
	}
}

func TestRoomEventsLoggedOnceAcrossOutage(t *testing.T) {
	hs := harness.SharedSynapse(t)
	dir := t.TempDir()
	b, cfg := startOnSynapse(t, hs, dir)
	alice := hs.NewUser(t, "alice")
	ctx := context.Background()

	ghost := provisionUser(t, b, "acme", harness.UniqueName("carol"), "Carol")
	roomID, err := alice.CreateRoom(ctx, map[string]any{"preset": "private_chat", "name": "outage test"})
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.Invite(ctx, roomID, string(ghost)); err != nil {
		t.Fatal(err)
	}
	// The ghost accepts through the bridge, as the bridge does for portals.
	join, err := b.HS.Intent(ghost).JoinRoomByID(ctx, id.RoomID(roomID))
	if err != nil {
		t.Fatal(err)
	}
	_ = join
	var want []id.EventID
	// The invite and the join come first; their ids are read from the log
	// (the invite's id is not returned by the invite API).
	eventually(t, 60*time.Second, "invite and join in the log", func() bool { return len(roomLog(t, b, roomID)) >= 2 })
	want = append(want, roomLog(t, b, roomID)[:2]...)
	for i := range 5 {
		evt, err := alice.SendText(ctx, roomID, fmt.Sprintf("before outage %d", i))
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, id.EventID(evt))
	}
	waitForLog(t, b, roomID, want)

	// Outage: the bridge is down while messages are sent; Synapse keeps them
	// and retries; the restarted bridge pings it so it retries at once.
	stopBridge(t, b)
	for i := range 5 {
		evt, err := alice.SendText(ctx, roomID, fmt.Sprintf("during outage %d", i))
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, id.EventID(evt))
	}
	time.Sleep(time.Second) // let Synapse fail at least one push
	b2 := startBridge(t, cfg)
	waitForLog(t, b2, roomID, want)

	// What Synapse has in the room since the invite is exactly the log.
	var page struct {
		Chunk []struct {
			EventID string `json:"event_id"`
		} `json:"chunk"`
	}
	path := fmt.Sprintf("/_matrix/client/v3/rooms/%s/messages?dir=b&limit=100", url.PathEscape(roomID))
	if err := alice.Do(ctx, "GET", path, nil, &page); err != nil {
		t.Fatal(err)
	}
	var fromSynapse []id.EventID
	for i := len(page.Chunk) - 1; i >= 0; i-- {
		fromSynapse = append(fromSynapse, id.EventID(page.Chunk[i].EventID))
	}
	if len(fromSynapse) < len(want) || fmt.Sprint(fromSynapse[len(fromSynapse)-len(want):]) != fmt.Sprint(want) {
		t.Fatalf("Synapse's timeline ends with\n%v\nthe log holds\n%v", fromSynapse, want)
	}
}

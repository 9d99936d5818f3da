package bridge_test

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/openmeet-team/openmeet-bridge/bridge"
	"github.com/openmeet-team/openmeet-bridge/internal/harness"
)

type botChat struct {
	t      *testing.T
	user   *harness.MatrixUser
	roomID string
	bot    string
}

type timelineEvent struct {
	EventID string         `json:"event_id"`
	Sender  string         `json:"sender"`
	Type    string         `json:"type"`
	Content map[string]any `json:"content"`
}

func (c *botChat) messages() []timelineEvent {
	var page struct {
		Chunk []timelineEvent `json:"chunk"`
	}
	path := fmt.Sprintf("/_matrix/client/v3/rooms/%s/messages?dir=b&limit=100", url.PathEscape(c.roomID))
	if err := c.user.Do(context.Background(), "GET", path, nil, &page); err != nil {
		c.t.Fatal(err)
	}
	return page.Chunk
}

// send sends text and returns its event ID.
func (c *botChat) send(text string) string {
	c.t.Helper()
	evtID, err := c.user.SendText(context.Background(), c.roomID, text)
	if err != nil {
		c.t.Fatal(err)
	}
	return evtID
}

// replyTo waits for the bot's notice replying to evtID.
func (c *botChat) replyTo(evtID string) string {
	c.t.Helper()
	var body string
	eventually(c.t, 60*time.Second, "the bot's reply to "+evtID, func() bool {
		for _, evt := range c.messages() {
			if evt.Sender != c.bot || evt.Type != "m.room.message" {
				continue
			}
			rel, _ := evt.Content["m.relates_to"].(map[string]any)
			reply, _ := rel["m.in_reply_to"].(map[string]any)
			if reply["event_id"] == evtID {
				body, _ = evt.Content["body"].(string)
				// Markdown is rendered to HTML whenever it has any.
				formatted := evt.Content["format"] == "org.matrix.custom.html"
				if evt.Content["msgtype"] != "m.notice" || (strings.ContainsAny(body, "`*") && !formatted) {
					c.t.Fatalf("reply is not a formatted notice: %v", evt.Content)
				}
				return true
			}
		}
		return false
	})
	return body
}

// run sends a command and returns the reply, failing unless it contains
// every one of want.
func (c *botChat) run(command string, want ...string) string {
	c.t.Helper()
	reply := c.replyTo(c.send(command))
	for _, w := range want {
		if !strings.Contains(reply, w) {
			c.t.Fatalf("%q: reply %q lacks %q", command, reply, w)
		}
	}
	return reply
}

// openDM creates a direct chat with the bot and waits for its greeting.
func openDM(t *testing.T, user *harness.MatrixUser, bot string) *botChat {
	t.Helper()
	roomID, err := user.CreateRoom(context.Background(), map[string]any{"preset": "trusted_private_chat", "is_direct": true, "invite": []string{bot}})
	if err != nil {
		t.Fatal(err)
	}
	c := &botChat{t: t, user: user, roomID: roomID, bot: bot}
	eventually(t, 15*time.Second, "the bot's greeting", func() bool {
		for _, evt := range c.messages() {
			if evt.Sender == bot && evt.Type == "m.room.message" {
				return true
			}
		}
		return false
	})
	return c
}

func startBotBridge(t *testing.T, hs *harness.Synapse, perms map[string]string) *bridge.Bridge {
	t.Helper()
	cfg := testConfig(t, t.TempDir(), hs.URL, hs.ServerName, hs.AS)
	cfg.Permissions = perms
	b := startBridge(t, cfg)
	eventually(t, 60*time.Second, "the bridge to be ready", func() bool { return b.HS.Ready() })
	return b
}

func TestBotCommandsForAdmin(t *testing.T) {
	hs := harness.SharedSynapse(t)
	alice := hs.NewUser(t, "alice")
	b := startBotBridge(t, hs, map[string]string{alice.UserID: "admin"})
	bot := fmt.Sprintf("@%s:%s", hs.AS.BotLocalpart, hs.ServerName)
	tenant := harness.UniqueName("tenant-")
	host := provisionUser(t, b, tenant, "hilda", "Hilda")
	att := provisionUser(t, b, tenant, "ada", "Ada")
	mod := provisionUser(t, b, tenant, "mo", "Mo")
	base := "/tenants/" + tenant + "/events/meetup"
	provision(t, b, "PUT", base, map[string]any{"name": "Meetup", "visibility": "public"}, nil)
	var br struct {
		Portal portalOut `json:"portal"`
	}
	provision(t, b, "POST", base+"/members:batch", map[string]any{"set": []map[string]string{{"user_slug": "hilda", "role": "host"}, {"user_slug": "ada", "role": "attendee"}, {"user_slug": "mo", "role": "moderator"}}}, &br)
	alias, roomID := br.Portal.Alias, id.RoomID(br.Portal.RoomID)
	ref := tenant + " event meetup"

	dm := openDM(t, alice, bot)
	dm.run("help", "reconcile", "sync-portal", "whois", "(admin)")
	dm.run("help reconcile", "Usage:", "--apply")
	dm.run("version", "openmeet-bridge")
	dm.run("ping", "Synapse", "database:")
	dm.run("status", "ghosts: 3", "portals: 1", "last transaction", "ready: yes")
	dm.run("whois "+host.String(), tenant, "hilda", "Hilda")
	dm.run("whois "+tenant+" ada", att.String())
	dm.run("whois @nobody:"+hs.ServerName, "not a ghost")
	dm.run("portals", "meetup", alias)
	dm.run("portals "+tenant+" 1", "meetup")
	dm.run("portal "+alias, "members (3)", "host, level 100", "moderator, level 50", "attendee, level 0", "join")
	dm.run("portal "+ref, "Meetup")
	dm.run("sync-portal "+alias, "Synced")
	dm.run("sync-ghost "+tenant+" ada", "Synced")
	dm.run("frobnicate", "Unknown command", "help")
	dm.run("whois", "Usage:")
	dm.run("portal #nope:"+hs.ServerName, "No portal")
	dm.run("set-pl @x:localhost 50", "portal room")
	dm.run("reconcile "+alias, "all match")
	dm.run("outbox", "empty")
	dm.run("outbox list", "empty")
	dm.run("outbox retry 999", "No undelivered message")
	dm.run("outbox drop 999", "No undelivered message")
	dm.run("outbox retry x", "Usage:")

	// Drift made by hand through Synapse's client API: a member kicked and
	// a level changed. Reconcile reports both, --apply repairs both.
	ctx := context.Background()
	botClient := b.HS.Bot().Client
	if _, err := botClient.KickUser(ctx, roomID, &mautrix.ReqKickUser{UserID: att, Reason: "drift"}); err != nil {
		t.Fatal(err)
	}
	var pl event.PowerLevelsEventContent
	if err := botClient.StateEvent(ctx, roomID, event.StatePowerLevels, "", &pl); err != nil {
		t.Fatal(err)
	}
	pl.SetUserLevel(mod, 10)
	if _, err := botClient.SendStateEvent(ctx, roomID, event.StatePowerLevels, "", &pl); err != nil {
		t.Fatal(err)
	}
	dm.run("reconcile "+alias, "differs", "join "+att.String()+" (now leave)", mod.String()+" 10→50", "--apply")
	dm.run("reconcile --all", "differs", "join "+att.String())
	dm.run("reconcile "+alias+" --apply", "Synced")
	dm.run("reconcile --all", "all match")

	// set-pl runs in the portal room, with the prefix.
	if _, err := alice.Join(ctx, alias); err != nil {
		t.Fatal(err)
	}
	if got := joinedMembers(t, alice, string(roomID)); got[att.String()] != "Ada" {
		t.Fatalf("attendee not back after --apply: %v", got)
	}
	if got := powerUsers(t, alice, string(roomID)); got[mod.String()] != 50 || got[host.String()] != 100 {
		t.Fatalf("levels not repaired: %v", got)
	}
	portalChat := &botChat{t: t, user: alice, roomID: string(roomID), bot: bot}
	portalChat.run("!om set-pl "+alice.UserID+" 50", "Set the power level")
	if got := powerUsers(t, alice, string(roomID)); got[alice.UserID] != 50 {
		t.Fatalf("set-pl did not set 50: %v", got)
	}
	portalChat.run("!om portal", "Meetup", "members (3)")
	dm.run("close-portal "+alias, "Closed")
	var p portalOut
	provision(t, b, "GET", base, nil, &p)
	if !p.Closed {
		t.Fatalf("portal not closed: %+v", p)
	}
}

func TestBotRefusesNonAdmins(t *testing.T) {
	hs := harness.SharedSynapse(t)
	bob, carol := hs.NewUser(t, "bob"), hs.NewUser(t, "carol")
	b := startBotBridge(t, hs, map[string]string{bob.UserID: "user"})
	bot := fmt.Sprintf("@%s:%s", hs.AS.BotLocalpart, hs.ServerName)
	tenant := harness.UniqueName("tenant-")
	provisionUser(t, b, tenant, "hilda", "Hilda")
	base := "/tenants/" + tenant + "/events/meetup"
	var p portalOut
	provision(t, b, "PUT", base, map[string]any{"name": "Meetup", "visibility": "public", "ensure_room": true}, &p)

	dm := openDM(t, bob, bot)
	dm.run("status", "ghosts: 1", "outbox: 0 waiting")
	dm.run("outbox", "empty")
	dm.run("reconcile "+p.Alias, "all match")
	for _, cmd := range []string{
		"sync-portal " + p.Alias, "reconcile " + p.Alias + " --apply", "reconcile --all --apply",
		"set-pl @x:localhost 50", "close-portal " + p.Alias, "sync-ghost " + tenant + " hilda",
		"outbox retry 1", "outbox drop 1",
	} {
		dm.run(cmd, "only bridge admins")
	}
	provision(t, b, "GET", base, nil, &p)
	if p.Closed {
		t.Fatal("a non-admin closed the portal")
	}

	// Someone without any permission: the invite is declined.
	roomID, err := carol.CreateRoom(context.Background(), map[string]any{"preset": "private_chat", "invite": []string{bot}})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the bot to decline", func() bool {
		m, _ := b.DB.Members.Membership(context.Background(), id.RoomID(roomID), id.UserID(bot))
		return m == event.MembershipLeave
	})
}

// TestBotAfterRestart: the bot keeps its management rooms in memory, loaded
// from the database when it starts, so a direct chat opened before a
// restart still takes commands without the prefix after it; and the cursor
// it stores when it stops (and after every command) means nothing it
// answered before is answered again.
func TestBotAfterRestart(t *testing.T) {
	hs := harness.SharedSynapse(t)
	alice := hs.NewUser(t, "alice")
	cfg := testConfig(t, t.TempDir(), hs.URL, hs.ServerName, hs.AS)
	cfg.Permissions = map[string]string{alice.UserID: "admin"}
	b := startBridge(t, cfg)
	eventually(t, 60*time.Second, "the bridge to be ready", func() bool { return b.HS.Ready() })
	bot := fmt.Sprintf("@%s:%s", hs.AS.BotLocalpart, hs.ServerName)
	dm := openDM(t, alice, bot)
	dm.run("version", "openmeet-bridge")
	stopBridge(t, b)

	b = startBridge(t, cfg)
	eventually(t, 60*time.Second, "the bridge to be ready", func() bool { return b.HS.Ready() })
	dm.run("ping", "Synapse")
	var replies []string
	for _, evt := range dm.messages() {
		if evt.Sender == bot && evt.Type == "m.room.message" {
			body, _ := evt.Content["body"].(string)
			replies = append(replies, body)
		}
	}
	if len(replies) != 3 { // the greeting, version, ping
		t.Fatalf("the bot sent %d messages, want 3 (greeting, version, ping): %q", len(replies), replies)
	}
}

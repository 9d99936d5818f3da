package bridge_test

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/openmeet-team/openmeet-bridge/bridge"
	"github.com/openmeet-team/openmeet-bridge/internal/harness"
)

// legacyTenant is the tenant of the deployment the adoption tests take over.
const legacyTenant = "tnt1"

// legacyDeployment is a Synapse set up as OpenMeet's deployment was before
// the bridge: accounts @{slug}_{tenant} made with the admin API, event and
// group rooms with the old aliases and messages in them, one user (alice)
// logged in with an ordinary Matrix client.
type legacyDeployment struct {
	hs *harness.Synapse
	// admin is the server admin that made the event room (OpenMeet's
	// backend account); its token is the bridge's homeserver.admin_token.
	admin                *harness.MatrixUser
	alice, bob, carol    *harness.MatrixUser
	eventRoom, groupRoom string
	// tenant is the legacy tenant; empty means legacyTenant.
	tenant string
	// noAdminToken leaves homeserver.admin_token empty: rooms are taken
	// over only through members the bridge may act as.
	noAdminToken bool
}

// With hostIsAdmin, the backend's admin account made alice (the event's
// host) an admin of the event room, as OpenMeet does for hosts.
func startLegacyDeployment(t *testing.T, hostIsAdmin bool) *legacyDeployment {
	t.Helper()
	hs := harness.OwnSynapse(t, harness.SynapseOptions{LegacyUserRegex: `^@[^:]+_(?:` + legacyTenant + `):localhost$`})
	ctx := context.Background()
	user := func(localpart string, admin bool) *harness.MatrixUser {
		userID, token, err := hs.RegisterUser(ctx, localpart, "pw-"+localpart, admin)
		if err != nil {
			t.Fatal(err)
		}
		return &harness.MatrixUser{UserID: userID, AccessToken: token, HS: hs}
	}
	d := &legacyDeployment{hs: hs, admin: user("openmeet-admin", true),
		alice: user("alice_"+legacyTenant, false), bob: user("bob_"+legacyTenant, false), carol: user("carol_"+legacyTenant, false)}
	// The event room: made by the backend's admin account, private; alice
	// and bob were invited and joined.
	var err error
	if d.eventRoom, err = d.admin.CreateRoom(ctx, map[string]any{"preset": "private_chat", "name": "Summer party",
		"room_alias_name": "event-summer-party-" + legacyTenant}); err != nil {
		t.Fatal(err)
	}
	for _, u := range []*harness.MatrixUser{d.alice, d.bob} {
		if err := d.admin.Invite(ctx, d.eventRoom, u.UserID); err != nil {
			t.Fatal(err)
		}
		if _, err := u.Join(ctx, d.eventRoom); err != nil {
			t.Fatal(err)
		}
	}
	if hostIsAdmin {
		var pl map[string]any
		if err := state(t, d.admin, d.eventRoom, "m.room.power_levels", &pl); err != nil {
			t.Fatal(err)
		}
		users, _ := pl["users"].(map[string]any)
		if users == nil {
			users = map[string]any{}
		}
		users[d.alice.UserID] = 100
		pl["users"] = users
		path := fmt.Sprintf("/_matrix/client/v3/rooms/%s/state/m.room.power_levels/", url.PathEscape(d.eventRoom))
		if err := d.admin.Do(ctx, "PUT", path, pl, nil); err != nil {
			t.Fatal(err)
		}
	}
	// The group room: made by alice herself, public; bob joined.
	if d.groupRoom, err = d.alice.CreateRoom(ctx, map[string]any{"preset": "public_chat", "name": "Hikers",
		"room_alias_name": "group-hikers-" + legacyTenant}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.bob.Join(ctx, d.groupRoom); err != nil {
		t.Fatal(err)
	}
	for _, msg := range []struct {
		u    *harness.MatrixUser
		room string
		text string
	}{{d.alice, d.eventRoom, "before: alice in the event"}, {d.bob, d.eventRoom, "before: bob in the event"},
		{d.alice, d.groupRoom, "before: alice in the group"}} {
		if _, err := msg.u.SendText(ctx, msg.room, msg.text); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

// adoptingBridge starts a bridge configured for the legacy tenant, with the
// admin's token for Synapse's admin API.
func (d *legacyDeployment) adoptingBridge(t testing.TB) *bridge.Bridge {
	t.Helper()
	cfg := clientConfig(t, d.hs)
	tenant := d.tenant
	if tenant == "" {
		tenant = legacyTenant
	}
	cfg.Appservice.LegacyUsers.Tenants = []string{tenant}
	if !d.noAdminToken {
		cfg.Homeserver.AdminToken = d.admin.AccessToken
	}
	cfg.Permissions = map[string]string{d.admin.UserID: "admin"}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	b := startBridge(t, cfg)
	eventually(t, 60*time.Second, "the bridge to be ready", func() bool { return b.HS.Ready() })
	return b
}

// historyBodies reads a portal's history through the client API.
func historyBodies(t *testing.T, b *bridge.Bridge, token, room string) []string {
	t.Helper()
	var history struct {
		Chunk []map[string]any `json:"chunk"`
	}
	if code := call(t, b, token, "GET", "/rooms/"+room+"/messages?limit=50", nil, &history); code != 200 {
		t.Fatalf("history of %s: %d", room, code)
	}
	var out []string
	for _, item := range history.Chunk {
		if body := bodyOf(streamEvent{Data: item}); body != "" {
			out = append(out, body)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// checkAdopted asserts what an operator expects after taking over the
// deployment: adopted users chat and stream through the client API with
// no token of theirs stored, the history from before is visible, alice's
// own Matrix session keeps working, and power levels follow roles.
func (d *legacyDeployment) checkAdopted(t *testing.T, b *bridge.Bridge) {
	t.Helper()
	ctx := context.Background()
	alice := mintJWT(t, jwtSecret, legacyTenant, "alice", time.Hour)
	bob := mintJWT(t, jwtSecret, legacyTenant, "bob", time.Hour)
	var whoami map[string]string
	if code := call(t, b, alice, "GET", "/whoami", nil, &whoami); code != 200 || whoami["user_id"] != d.alice.UserID {
		t.Fatalf("whoami: %d %v", code, whoami)
	}
	var rooms struct {
		Rooms []map[string]any `json:"rooms"`
	}
	eventually(t, 30*time.Second, "alice's two rooms", func() bool {
		call(t, b, alice, "GET", "/rooms", nil, &rooms)
		return len(rooms.Rooms) == 2
	})
	// History from before the take-over, read as the adopted account.
	if got := historyBodies(t, b, alice, "events/summer-party"); !contains(got, "before: alice in the event") || !contains(got, "before: bob in the event") {
		t.Fatalf("event history lacks the old messages: %q", got)
	}
	if got := historyBodies(t, b, bob, "groups/hikers"); !contains(got, "before: alice in the group") {
		t.Fatalf("group history lacks the old message: %q", got)
	}
	// Send and stream as adopted users.
	stream, code := openStream(t, b, alice, "", "")
	if code != 200 {
		t.Fatalf("stream: %d", code)
	}
	var sent struct {
		State   string `json:"state"`
		EventID string `json:"event_id"`
	}
	if code := call(t, b, bob, "PUT", "/rooms/events/summer-party/send/adopted-1", map[string]string{"body": "after: bob through the bridge"}, &sent); code != 200 || sent.State != "sent" {
		t.Fatalf("send as bob: %d %+v", code, sent)
	}
	evt := stream.waitFor(t, "bob's message on alice's stream", isMessage("after: bob through the bridge"))
	if sender, _ := evt.Data["sender"].(map[string]any); sender["user_id"] != d.bob.UserID || sender["slug"] != "bob" {
		t.Fatalf("stream sender %v", evt.Data["sender"])
	}
	// alice's Matrix client session is untouched: her token works, she
	// sees the bridged message, and what she sends there streams.
	var me struct {
		UserID string `json:"user_id"`
	}
	if err := d.alice.Do(ctx, "GET", "/_matrix/client/v3/account/whoami", nil, &me); err != nil || me.UserID != d.alice.UserID {
		t.Fatalf("alice's own session: %v %v", err, me)
	}
	var page struct {
		Chunk []timelineEvent `json:"chunk"`
	}
	if err := d.alice.Do(ctx, "GET", fmt.Sprintf("/_matrix/client/v3/rooms/%s/messages?dir=b&limit=20", url.PathEscape(d.eventRoom)), nil, &page); err != nil {
		t.Fatal(err)
	}
	seen := false
	for _, e := range page.Chunk {
		seen = seen || e.Sender == d.bob.UserID && e.Content["body"] == "after: bob through the bridge"
	}
	if !seen {
		t.Fatalf("alice's client does not see the bridged message: %+v", page.Chunk)
	}
	if _, err := d.alice.SendText(ctx, d.eventRoom, "after: alice from her client"); err != nil {
		t.Fatal(err)
	}
	stream.waitFor(t, "alice's client message on her stream", isMessage("after: alice from her client"))
	// Power levels follow roles: host 100, attendee 0; the bot 100.
	pl := powerUsers(t, d.admin, d.eventRoom)
	bot := "@" + d.hs.AS.BotLocalpart + ":" + d.hs.ServerName
	if pl[d.alice.UserID] != 100 || pl[d.bob.UserID] != 0 || pl[bot] != 100 {
		t.Fatalf("event room power levels %v", pl)
	}
	// Nobody who was in a room before was taken out on the way.
	for _, room := range []string{d.eventRoom, d.groupRoom} {
		var members struct {
			Chunk []timelineEvent `json:"chunk"`
		}
		filter := url.QueryEscape(`{"types":["m.room.member"]}`)
		if err := d.alice.Do(ctx, "GET", fmt.Sprintf("/_matrix/client/v3/rooms/%s/messages?dir=b&limit=200&filter=%s", url.PathEscape(room), filter), nil, &members); err != nil {
			t.Fatal(err)
		}
		for _, e := range members.Chunk {
			if e.Content["membership"] == "leave" {
				t.Errorf("%s left %s during the take-over", e.Sender, room)
			}
		}
	}
	// carol was not in the event room: the bridge brought her in as herself.
	if _, in := joinedMembers(t, d.admin, d.eventRoom)[d.carol.UserID]; !in {
		t.Fatal("carol was not joined to the event room")
	}
	// The bridge's alias sits next to the old one.
	var canonical struct {
		Alias      string   `json:"alias"`
		AltAliases []string `json:"alt_aliases"`
	}
	if err := state(t, d.admin, d.eventRoom, "m.room.canonical_alias", &canonical); err != nil {
		t.Fatal(err)
	}
	old := "#event-summer-party-" + legacyTenant + ":" + d.hs.ServerName
	if !strings.HasPrefix(canonical.Alias, "#openmeet_") || !contains(canonical.AltAliases, old) {
		t.Fatalf("canonical alias %+v", canonical)
	}
	if resolved, err := d.admin.Join(ctx, old); err != nil || resolved != d.eventRoom {
		t.Fatalf("old alias resolves to %s (%v)", resolved, err)
	}
}

// TestAdoptExistingDeployment takes over users and rooms through the
// provisioning API: accounts by matrix_user_id, the event room by its old
// alias through Synapse's admin API (none of its members may invite), the
// group room by ID through alice, its creator, whom the bridge acts as.
func TestAdoptExistingDeployment(t *testing.T) {
	d := startLegacyDeployment(t, false)
	b := d.adoptingBridge(t)
	users := "/tenants/" + legacyTenant + "/users/"
	// bob's profile already has his OpenMeet name: adopting him sets none.
	if err := d.bob.Do(context.Background(), "PUT", "/_matrix/client/v3/profile/"+url.PathEscape(d.bob.UserID)+"/displayname",
		map[string]string{"displayname": "Bob"}, nil); err != nil {
		t.Fatal(err)
	}
	before := b.HS.RequestCounts()["PUT profile/displayname"]
	for _, u := range []struct {
		slug string
		mx   *harness.MatrixUser
	}{{"alice", d.alice}, {"bob", d.bob}, {"carol", d.carol}} {
		var out struct {
			UserID string `json:"user_id"`
			State  string `json:"state"`
		}
		body := map[string]string{"displayname": strings.ToUpper(u.slug[:1]) + u.slug[1:], "matrix_user_id": u.mx.UserID}
		if code := provision(t, b, "PUT", users+u.slug, body, &out); code != 200 || out.UserID != u.mx.UserID || out.State != "synced" {
			t.Fatalf("adopt %s: %d %+v", u.slug, code, out)
		}
	}
	if n := b.HS.RequestCounts()["PUT profile/displayname"] - before; n != 2 {
		t.Fatalf("adopting alice, bob and carol set %d display names, want 2 (bob's was right)", n)
	}
	if name, _, err := d.alice.Profile(context.Background(), d.alice.UserID); err != nil || name != "Alice" {
		t.Fatalf("alice's profile: %q %v", name, err)
	}
	// bob's stream, open before his rooms are taken over. In a real
	// deployment he joined them before the bridge's registration named his
	// account, so Synapse never pushed his member events; here the harness's
	// registration had the legacy namespace from the start, so his rows are
	// removed to be as they would be. The bridge then learns of his rooms
	// from their state; his stream is ended and starts again (resuming)
	// with them.
	// First the member events of his display name change above must have
	// come through (Synapse pushes them when it likes), or they would
	// write his rows again after the removal.
	var joined struct {
		Rooms []string `json:"joined_rooms"`
	}
	if err := d.bob.Do(context.Background(), "GET", "/_matrix/client/v3/joined_rooms", nil, &joined); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "bob's display name change in each of his rooms to come through", func() bool {
		rows, err := b.DB.Query(context.Background(), "SELECT room_id, event FROM event_log WHERE event_type = 'm.room.member' AND state_key = $1", d.bob.UserID)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		renamed := map[string]bool{}
		for rows.Next() {
			var room, raw string
			if err := rows.Scan(&room, &raw); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(raw, `"displayname":"Bob"`) {
				renamed[room] = true
			}
		}
		for _, room := range joined.Rooms {
			if !renamed[room] {
				return false
			}
		}
		return true
	})
	if _, err := b.DB.Exec(context.Background(), "DELETE FROM room_member WHERE user_id = $1", d.bob.UserID); err != nil {
		t.Fatal(err)
	}
	early, code := openStream(t, b, mintJWT(t, jwtSecret, legacyTenant, "bob", time.Hour), "", "")
	if code != 200 {
		t.Fatalf("bob's early stream: %d", code)
	}
	defer early.close()
	// Refused, each with a clear error, and nothing stored.
	for _, bad := range []struct {
		slug, mxid string
		code       int
		says       string
	}{
		{"dave", "@dave_other:localhost", 400, "not a configured legacy tenant"},
		{"dave", "@dave_" + legacyTenant + ":elsewhere.org", 400, "not on this homeserver"},
		{"dave", "@nobody_" + legacyTenant + ":localhost", 400, "matrix_user_id"},
		{"dave", "not-an-id", 400, "not a Matrix user ID"},
		{"dave", "@openmeet_other_" + legacyTenant + ":localhost", 400, "ghost namespace"},
		{"dave", d.alice.UserID, 409, "already the account of user"},
		{"alice", d.bob.UserID, 409, "cannot change"},
	} {
		status, raw := apiRequest(t, b, "PUT", "/_openmeet/provision/v1"+users+bad.slug, b.Config.Provisioning.SharedSecret,
			map[string]string{"displayname": "X", "matrix_user_id": bad.mxid})
		if status != bad.code || !strings.Contains(string(raw), bad.says) {
			t.Errorf("adopt %s as %s: %d %s, want %d saying %q", bad.slug, bad.mxid, status, raw, bad.code, bad.says)
		}
	}
	if code := provision(t, b, "GET", users+"dave", nil, nil); code != 404 {
		t.Fatalf("a refused adoption left user dave behind: %d", code)
	}
	// Rooms: bad references change nothing either.
	for _, bad := range []struct{ room, says string }{
		{"#event-summer-party-othertenant:localhost", "not an alias of a event of tenant"},
		{"#group-hikers-" + legacyTenant + ":localhost", "not an alias of a event"},
		{"#event-nothing-" + legacyTenant + ":localhost", "points to no room"},
		{"summer-party", "not a room ID"},
	} {
		status, raw := apiRequest(t, b, "PUT", "/_openmeet/provision/v1/tenants/"+legacyTenant+"/events/summer-party",
			b.Config.Provisioning.SharedSecret, map[string]string{"name": "Summer party", "room": bad.room})
		if status < 400 || !strings.Contains(string(raw), bad.says) {
			t.Errorf("room %s: %d %s, want an error saying %q", bad.room, status, raw, bad.says)
		}
	}
	if code := provision(t, b, "GET", "/tenants/"+legacyTenant+"/events/summer-party", nil, nil); code != 404 {
		t.Fatalf("a refused room left the portal behind: %d", code)
	}

	var p portalOut
	base := "/tenants/" + legacyTenant
	// A room ID that names no room: stored, the take-over fails visibly,
	// and until the portal has synced once the room may be corrected.
	if code := provision(t, b, "PUT", base+"/events/summer-party", map[string]any{"name": "Summer party",
		"room": "!nosuchroom:localhost"}, &p); code != 202 || p.State != "error" || !strings.Contains(p.LastError, "cannot take charge") {
		t.Fatalf("adopting a room that does not exist: %d %+v", code, p)
	}
	if code := provision(t, b, "PUT", base+"/events/summer-party", map[string]any{"name": "Summer party",
		"room": "#event-summer-party-" + legacyTenant + ":localhost"}, &p); code != 200 || p.RoomID != d.eventRoom {
		t.Fatalf("adopt event room: %d %+v", code, p)
	}
	lastID := ""
	ended := time.After(30 * time.Second)
	for open := true; open; {
		select {
		case evt, ok := <-early.events:
			if !ok {
				open = false
			} else if evt.ID != "" {
				lastID = evt.ID
			}
		case <-ended:
			t.Fatal("bob's stream did not end when his event's room was taken over")
		}
	}
	set := []map[string]string{{"user_slug": "alice", "role": "host"}, {"user_slug": "bob", "role": "attendee"}, {"user_slug": "carol", "role": "attendee"}}
	var br struct {
		Portal portalOut `json:"portal"`
	}
	if code := provision(t, b, "POST", base+"/events/summer-party/members:batch", map[string]any{"set": set}, &br); code != 200 || br.Portal.State != "synced" {
		t.Fatalf("event members: %d %+v", code, br)
	}
	if code := provision(t, b, "PUT", base+"/groups/hikers", map[string]any{"name": "Hikers", "visibility": "public", "room": d.groupRoom}, &p); code != 200 || p.RoomID != d.groupRoom {
		t.Fatalf("adopt group room: %d %+v", code, p)
	}
	set = []map[string]string{{"user_slug": "alice", "role": "owner"}, {"user_slug": "bob", "role": "member"}}
	if code := provision(t, b, "POST", base+"/groups/hikers/members:batch", map[string]any{"set": set}, &br); code != 200 || br.Portal.State != "synced" {
		t.Fatalf("group members: %d %+v", code, br)
	}
	// A portal's room cannot be swapped, nor one room serve two portals.
	if status, raw := apiRequest(t, b, "PUT", "/_openmeet/provision/v1"+base+"/groups/hikers", b.Config.Provisioning.SharedSecret,
		map[string]string{"name": "Hikers", "room": d.eventRoom}); status != 409 {
		t.Fatalf("swapping the group's room: %d %s", status, raw)
	}
	// Resumed once the group's room (where bob's rows were removed too) is
	// taken over as well, which would end a stream of his again.
	resumed, code := openStream(t, b, mintJWT(t, jwtSecret, legacyTenant, "bob", time.Hour), "", lastID)
	if code != 200 {
		t.Fatalf("bob's resumed stream: %d", code)
	}
	defer resumed.close()
	d.checkAdopted(t, b)
	resumed.waitFor(t, "bob's message on his resumed stream", isMessage("after: bob through the bridge"))

	// whois knows adopted accounts both ways.
	dm := openDM(t, d.admin, "@"+d.hs.AS.BotLocalpart+":"+d.hs.ServerName)
	dm.run("whois "+d.alice.UserID, legacyTenant, "alice")
	dm.run("whois "+legacyTenant+" bob", d.bob.UserID)
}

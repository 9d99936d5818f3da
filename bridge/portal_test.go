package bridge_test

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/openmeet-team/openmeet-bridge/bridge"
	"github.com/openmeet-team/openmeet-bridge/internal/harness"
)

type portalOut struct {
	Alias     string `json:"alias"`
	RoomID    string `json:"room_id"`
	State     string `json:"state"`
	Closed    bool   `json:"closed"`
	LastError string `json:"last_error"`
}

// state reads a state event as an ordinary user.
func state(t *testing.T, u *harness.MatrixUser, roomID, evtType string, out any) error {
	t.Helper()
	path := fmt.Sprintf("/_matrix/client/v3/rooms/%s/state/%s/", url.PathEscape(roomID), evtType)
	return u.Do(context.Background(), "GET", path, nil, out)
}

func joinedMembers(t *testing.T, u *harness.MatrixUser, roomID string) map[string]string {
	t.Helper()
	var resp struct {
		Joined map[string]struct {
			DisplayName string `json:"display_name"`
		} `json:"joined"`
	}
	if err := u.Do(context.Background(), "GET", "/_matrix/client/v3/rooms/"+url.PathEscape(roomID)+"/joined_members", nil, &resp); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for userID, m := range resp.Joined {
		out[userID] = m.DisplayName
	}
	return out
}

func powerUsers(t *testing.T, u *harness.MatrixUser, roomID string) map[string]int {
	t.Helper()
	var pl struct {
		Users map[string]int `json:"users"`
	}
	if err := state(t, u, roomID, "m.room.power_levels", &pl); err != nil {
		t.Fatal(err)
	}
	return pl.Users
}

func sameMap[V comparable](a, b map[string]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// roomEventCount is how many events of a room the bridge has logged.
func roomEventCount(t *testing.T, b *bridge.Bridge, roomID string) int {
	return len(roomLog(t, b, roomID))
}

func TestPortalLifecycleOnSynapse(t *testing.T) {
	hs := harness.SharedSynapse(t)
	b, _ := startOnSynapse(t, hs, t.TempDir())
	alice := hs.NewUser(t, "alice")
	ctx := context.Background()
	tenant := harness.UniqueName("tenant-")
	bot := fmt.Sprintf("@%s:%s", hs.AS.BotLocalpart, hs.ServerName)

	host := provisionUser(t, b, tenant, "hilda", "Hilda Host")
	mod := provisionUser(t, b, tenant, "mo", "Mo Moderator")
	att := provisionUser(t, b, tenant, "ada", "Ada Attendee")

	var p portalOut
	base := "/tenants/" + tenant + "/events/go-meetup"
	if code := provision(t, b, "PUT", base, map[string]any{"name": "Go Meetup", "topic": "Monthly", "visibility": "public"}, &p); code != 200 || p.State != "synced" || p.RoomID != "" {
		t.Fatalf("PUT event: %d %+v (no member yet, so no room)", code, p)
	}
	batch := map[string]any{"set": []map[string]string{
		{"user_slug": "hilda", "role": "host"}, {"user_slug": "mo", "role": "moderator"}, {"user_slug": "ada", "role": "attendee"},
	}}
	var br struct {
		Portal portalOut `json:"portal"`
	}
	if code := provision(t, b, "POST", base+"/members:batch", batch, &br); code != 200 || br.Portal.RoomID == "" {
		t.Fatalf("batch: %d %+v", code, br)
	}
	roomID := br.Portal.RoomID

	// An ordinary Matrix user joins through the alias and sees it all.
	joined, err := alice.Join(ctx, br.Portal.Alias)
	if err != nil || joined != roomID {
		t.Fatalf("join by alias %s: %s %v", br.Portal.Alias, joined, err)
	}
	var name struct{ Name string }
	var topic struct{ Topic string }
	if err := state(t, alice, roomID, "m.room.name", &name); err != nil || name.Name != "Go Meetup" {
		t.Fatalf("name %q %v", name.Name, err)
	}
	if err := state(t, alice, roomID, "m.room.topic", &topic); err != nil || topic.Topic != "Monthly" {
		t.Fatalf("topic %q %v", topic.Topic, err)
	}
	want := map[string]string{bot: "OpenMeet bridge", host.String(): "Hilda Host", mod.String(): "Mo Moderator", att.String(): "Ada Attendee", alice.UserID: ""}
	if got := joinedMembers(t, alice, roomID); !sameMap(got, withName(want, alice.UserID, got[alice.UserID])) {
		t.Fatalf("members %v, want %v", got, want)
	}
	// The server's default room version: from v12 the bot, as the creator,
	// has unlimited power and is not listed.
	botLevels := botEntry(roomVersion(t, alice, roomID), bot)
	if got := powerUsers(t, alice, roomID); !sameMap(got, merged(botLevels, map[string]int{host.String(): 100, mod.String(): 50})) {
		t.Fatalf("power levels %v", got)
	}

	// Rename, change a role, remove a member: each shows in the room.
	provisionUser(t, b, tenant, "ada", "Ada Renamed")
	eventually(t, 30*time.Second, "the new name in the room", func() bool {
		return joinedMembers(t, alice, roomID)[att.String()] == "Ada Renamed"
	})
	if code := provision(t, b, "PUT", base+"/members/ada", map[string]string{"role": "speaker"}, nil); code != 200 {
		t.Fatalf("role change: %d", code)
	}
	if got := powerUsers(t, alice, roomID); got[att.String()] != 25 {
		t.Fatalf("speaker level %v", got)
	}
	if code := provision(t, b, "DELETE", base+"/members/mo", nil, nil); code != 200 {
		t.Fatalf("remove member: %d", code)
	}
	if _, in := joinedMembers(t, alice, roomID)[mod.String()]; in {
		t.Fatal("removed member still joined")
	}
	if got := powerUsers(t, alice, roomID); !sameMap(got, merged(botLevels, map[string]int{host.String(): 100, att.String(): 25})) {
		t.Fatalf("power levels after removal %v", got)
	}

	// Repeating every call changes nothing in the room.
	eventually(t, 10*time.Second, "the log to catch up", func() bool { return roomEventCount(t, b, roomID) > 0 })
	time.Sleep(500 * time.Millisecond)
	before := roomEventCount(t, b, roomID)
	for range 2 {
		provisionUser(t, b, tenant, "ada", "Ada Renamed")
		provision(t, b, "PUT", base, map[string]any{"name": "Go Meetup", "topic": "Monthly", "visibility": "public"}, nil)
		provision(t, b, "PUT", base+"/members/ada", map[string]string{"role": "speaker"}, nil)
		provision(t, b, "DELETE", base+"/members/mo", nil, nil)
		provision(t, b, "POST", base+"/members:batch", map[string]any{"set": []map[string]string{{"user_slug": "hilda", "role": "host"}}}, nil)
	}
	time.Sleep(time.Second)
	if after := roomEventCount(t, b, roomID); after != before {
		t.Fatalf("repeated calls added %d events to the room", after-before)
	}

	// Close: ghosts leave, the alias goes, the room is invite-only.
	if code := provision(t, b, "DELETE", base, nil, &p); code != 200 || !p.Closed {
		t.Fatalf("close: %d %+v", code, p)
	}
	for _, g := range []id.UserID{host, att} {
		if _, in := joinedMembers(t, alice, roomID)[g.String()]; in {
			t.Fatalf("%s still joined after close", g)
		}
	}
	if err := alice.Do(ctx, "GET", "/_matrix/client/v3/directory/room/"+url.PathEscape(p.Alias), nil, nil); err == nil {
		t.Fatal("alias still resolves after close")
	}
	var rules struct {
		JoinRule string `json:"join_rule"`
	}
	if err := state(t, alice, roomID, "m.room.join_rules", &rules); err != nil || rules.JoinRule != "invite" {
		t.Fatalf("join rule after close %q %v", rules.JoinRule, err)
	}
	if code := provision(t, b, "PUT", base+"/members/ada", map[string]string{"role": "host"}, nil); code != 409 {
		t.Fatalf("member change on a closed portal: %d", code)
	}
}

func withName(m map[string]string, key, name string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = v
	}
	out[key] = name
	return out
}

func TestPrivatePortalCannotBeJoined(t *testing.T) {
	hs := harness.SharedSynapse(t)
	b, _ := startOnSynapse(t, hs, t.TempDir())
	alice := hs.NewUser(t, "alice")
	tenant := harness.UniqueName("tenant-")
	provisionUser(t, b, tenant, "hilda", "Hilda")
	base := "/tenants/" + tenant + "/groups/secret-club"
	var p portalOut
	if code := provision(t, b, "PUT", base, map[string]any{"name": "Secret", "visibility": "private", "ensure_room": true}, &p); code != 200 || p.RoomID == "" {
		t.Fatalf("PUT group: %d %+v", code, p)
	}
	if code := provision(t, b, "PUT", base+"/members/hilda", map[string]string{"role": "owner"}, nil); code != 200 {
		t.Fatalf("member: %d", code)
	}
	_, err := alice.Join(context.Background(), p.Alias)
	var httpErr *harness.HTTPError
	if err == nil || !asHTTPError(err, &httpErr) || httpErr.Status != 403 {
		t.Fatalf("joining a private portal: %v", err)
	}
	// A non-member cannot even list the members.
	outsider := hs.NewUser(t, "x")
	if err := outsider.Do(context.Background(), "GET", "/_matrix/client/v3/rooms/"+url.PathEscape(p.RoomID)+"/joined_members", nil, nil); err == nil {
		t.Fatal("an outsider can list the members of a private portal")
	}
}

// TestParallelMembershipBursts sends two bursts of membership calls for one
// portal at the same time; the room must end with every member at the
// right level (no power level update may overwrite another).
func TestParallelMembershipBursts(t *testing.T) {
	hs := harness.SharedSynapse(t)
	b, _ := startOnSynapse(t, hs, t.TempDir())
	alice := hs.NewUser(t, "alice")
	tenant := harness.UniqueName("tenant-")
	const perBurst = 8
	users := make([]id.UserID, 2*perBurst)
	for i := range users {
		users[i] = provisionUser(t, b, tenant, fmt.Sprintf("u%d", i), fmt.Sprintf("User %d", i))
	}
	base := "/tenants/" + tenant + "/events/burst"
	var p portalOut
	if code := provision(t, b, "PUT", base, map[string]any{"name": "Burst", "visibility": "public", "ensure_room": true}, &p); code != 200 {
		t.Fatalf("PUT event: %d", code)
	}
	var wg sync.WaitGroup
	for burst, role := range []string{"attendee", "speaker"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var inner sync.WaitGroup
			for i := burst * perBurst; i < (burst+1)*perBurst; i++ {
				inner.Add(1)
				go func() {
					defer inner.Done()
					if code := provision(t, b, "PUT", fmt.Sprintf("%s/members/u%d", base, i), map[string]string{"role": role}, nil); code != 200 && code != 202 {
						t.Errorf("member u%d: %d", i, code)
					}
				}()
			}
			inner.Wait()
		}()
	}
	wg.Wait()
	eventually(t, 60*time.Second, "the portal to settle", func() bool {
		provision(t, b, "GET", base, nil, &p)
		return p.State == "synced"
	})
	if _, err := alice.Join(context.Background(), p.Alias); err != nil {
		t.Fatal(err)
	}
	members := joinedMembers(t, alice, p.RoomID)
	levels := powerUsers(t, alice, p.RoomID)
	for i, u := range users {
		if _, in := members[u.String()]; !in {
			t.Errorf("%s not joined", u)
		}
		wantLevel := 0
		if i >= perBurst {
			wantLevel = 25
		}
		if levels[u.String()] != wantLevel {
			t.Errorf("%s has level %d, want %d", u, levels[u.String()], wantLevel)
		}
	}
}

// TestPermanentErrorIsVisible bans a ghost from a portal room behind the
// bridge's back; making it a member then fails, and the API says why.
func TestPermanentErrorIsVisible(t *testing.T) {
	hs := harness.SharedSynapse(t)
	b, _ := startOnSynapse(t, hs, t.TempDir())
	tenant := harness.UniqueName("tenant-")
	ghost := provisionUser(t, b, tenant, "banned", "Banned")
	base := "/tenants/" + tenant + "/events/strict"
	var p portalOut
	if code := provision(t, b, "PUT", base, map[string]any{"name": "Strict", "visibility": "public", "ensure_room": true}, &p); code != 200 {
		t.Fatal(code)
	}
	if _, err := b.HS.Bot().Client.BanUser(context.Background(), id.RoomID(p.RoomID), &mautrix.ReqBanUser{UserID: ghost, Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	var out struct {
		Portal portalOut `json:"portal"`
	}
	code := provision(t, b, "PUT", base+"/members/banned", map[string]string{"role": "attendee"}, &out)
	if code != 202 || out.Portal.State != "error" || !strings.Contains(out.Portal.LastError, "banned") {
		t.Fatalf("member PUT for a banned ghost: %d %+v", code, out)
	}
	provision(t, b, "GET", base, nil, &p)
	if p.State != "error" || p.LastError == "" {
		t.Fatalf("GET does not show the error: %+v", p)
	}
}

// TestRoomCreatedWhenAliasIsResolved: a portal without members has no room
// until someone resolves its alias; Synapse asks the bridge, which creates
// the room before answering, and the join goes through.
func TestRoomCreatedWhenAliasIsResolved(t *testing.T) {
	hs := harness.SharedSynapse(t)
	b, _ := startOnSynapse(t, hs, t.TempDir())
	tenant := harness.UniqueName("tenant-")
	base := "/tenants/" + tenant + "/groups/hikers"
	var p portalOut
	if code := provision(t, b, "PUT", base, map[string]any{"name": "Hikers", "topic": "Up we go", "visibility": "public"}, &p); code != 200 || p.RoomID != "" {
		t.Fatalf("PUT group: %d %+v", code, p)
	}
	alice := hs.NewUser(t, "alice")
	roomID, err := alice.Join(context.Background(), p.Alias)
	if err != nil {
		t.Fatalf("joining %s: %v", p.Alias, err)
	}
	provision(t, b, "GET", base, nil, &p)
	if p.RoomID != roomID {
		t.Fatalf("portal room %q, joined %q", p.RoomID, roomID)
	}
	var topic struct{ Topic string }
	if err := state(t, alice, roomID, "m.room.topic", &topic); err != nil || topic.Topic != "Up we go" {
		t.Fatalf("topic %q %v", topic.Topic, err)
	}
	// An alias in the namespace that no portal has stays unknown, and a
	// closed portal's alias is gone.
	if _, err := alice.Join(context.Background(), "#openmeet_"+tenant+"_group_nothing:"+hs.ServerName); err == nil {
		t.Fatal("joined an alias of no portal")
	}
}

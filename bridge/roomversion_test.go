package bridge_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/openmeet-team/openmeet-bridge/bridge"
	"github.com/openmeet-team/openmeet-bridge/database"
	"github.com/openmeet-team/openmeet-bridge/internal/harness"
	"github.com/openmeet-team/openmeet-bridge/portal"
)

// roomVersion reads a room's version from its create event as u.
func roomVersion(t *testing.T, u *harness.MatrixUser, roomID string) string {
	t.Helper()
	var create struct {
		RoomVersion string `json:"room_version"`
	}
	if err := state(t, u, roomID, "m.room.create", &create); err != nil {
		t.Fatal(err)
	}
	if create.RoomVersion == "" {
		return "1"
	}
	return create.RoomVersion
}

// botEntry is what the bot's entry in a portal room's power levels should
// be: 100 up to v11; from v12 the creator has unlimited power and is never
// listed.
func botEntry(version, bot string) map[string]int {
	if version == "12" {
		return map[string]int{}
	}
	return map[string]int{bot: 100}
}

func merged(a, b map[string]int) map[string]int {
	out := map[string]int{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

// TestRoomVersions creates, reconciles, sets levels in and closes a portal
// in each supported room version, on the Synapse under test.
func TestRoomVersions(t *testing.T) {
	hs := harness.SharedSynapse(t)
	t.Logf("Synapse %s", harness.SynapseVersion())
	for _, version := range portal.SupportedRoomVersions {
		t.Run("v"+version, func(t *testing.T) { testRoomVersion(t, hs, version) })
	}
}

func testRoomVersion(t *testing.T, hs *harness.Synapse, version string) {
	ctx := context.Background()
	alice := hs.NewUser(t, "alice")
	cfg := testConfig(t, t.TempDir(), hs.URL, hs.ServerName, hs.AS)
	cfg.Portals.RoomVersion = version
	cfg.Permissions = map[string]string{alice.UserID: bridge.PermissionAdmin}
	b := startBridge(t, cfg)
	eventually(t, 60*time.Second, "the bridge to be ready", func() bool { return b.HS.Ready() })
	bot := fmt.Sprintf("@%s:%s", hs.AS.BotLocalpart, hs.ServerName)
	tenant := harness.UniqueName("tenant-")
	host := provisionUser(t, b, tenant, "hilda", "Hilda")
	att := provisionUser(t, b, tenant, "ada", "Ada")
	base := "/tenants/" + tenant + "/events/v" + version
	provision(t, b, "PUT", base, map[string]any{"name": "Versioned", "visibility": "public"}, nil)
	var br struct {
		Portal portalOut `json:"portal"`
	}
	batch := map[string]any{"set": []map[string]string{{"user_slug": "hilda", "role": "host"}, {"user_slug": "ada", "role": "speaker"}}}
	if code := provision(t, b, "POST", base+"/members:batch", batch, &br); code != 200 || br.Portal.State != "synced" {
		t.Fatalf("batch: %d %+v", code, br)
	}
	roomID := br.Portal.RoomID
	if _, err := alice.Join(ctx, br.Portal.Alias); err != nil {
		t.Fatal(err)
	}
	if got := roomVersion(t, alice, roomID); got != version {
		t.Fatalf("room version %s, want %s", got, version)
	}
	// v12 room IDs are the create event's hash, with no server part; they
	// work wherever the bridge stores, shows or looks up a room.
	if hasServer := strings.Contains(roomID, ":"); hasServer == (version == "12") {
		t.Fatalf("room ID %s in a v%s room", roomID, version)
	}
	if p, err := b.DB.Portals.GetByRoomID(ctx, id.RoomID(roomID)); err != nil || p == nil {
		t.Fatalf("portal by room ID: %v %v", p, err)
	}
	want := merged(botEntry(version, bot), map[string]int{host.String(): 100, att.String(): 25})
	if got := powerUsers(t, alice, roomID); !sameMap(got, want) {
		t.Fatalf("power levels %v, want %v", got, want)
	}

	// Reconcile sees no drift (the creator's absence from users is none).
	key := database.PortalKey{Tenant: tenant, Kind: "event", Slug: "v" + version}
	if diff, err := b.Portals.Diff(ctx, key); err != nil || len(diff) != 0 {
		t.Fatalf("reconcile of a fresh room: %v %v", diff, err)
	}
	// A role change and a removal are applied to the power levels.
	if code := provision(t, b, "PUT", base+"/members/ada", map[string]string{"role": "moderator"}, nil); code != 200 {
		t.Fatalf("role change: %d", code)
	}
	if code := provision(t, b, "DELETE", base+"/members/hilda", nil, nil); code != 200 {
		t.Fatalf("removal: %d", code)
	}
	want = merged(botEntry(version, bot), map[string]int{att.String(): 50})
	if got := powerUsers(t, alice, roomID); !sameMap(got, want) {
		t.Fatalf("power levels after changes %v, want %v", got, want)
	}

	// set-pl: anyone but a v12 creator; the bot says why not.
	chat := &botChat{t: t, user: alice, roomID: roomID, bot: bot}
	chat.run("!om set-pl "+alice.UserID+" 40", "Set the power level")
	if got := powerUsers(t, alice, roomID); got[alice.UserID] != 40 {
		t.Fatalf("set-pl: %v", got)
	}
	if version == "12" {
		chat.run("!om set-pl "+bot+" 50", "Cannot set the power level", "unlimited power")
		err := b.Portals.SetPowerLevel(ctx, key, id.UserID(bot), 50)
		if !errors.Is(err, portal.ErrCreator) {
			t.Fatalf("set-pl on the creator: %v", err)
		}
	} else {
		chat.run("!om set-pl "+bot+" 100", "Set the power level")
	}
	chat.run("!om portal "+roomID, "Versioned", "room: `"+roomID+"`", "in sync")

	// Closing works the same way in every version.
	var p portalOut
	if code := provision(t, b, "DELETE", base, nil, &p); code != 200 || !p.Closed {
		t.Fatalf("close: %d %+v", code, p)
	}
	var rules struct {
		JoinRule string `json:"join_rule"`
	}
	if err := state(t, alice, roomID, "m.room.join_rules", &rules); err != nil || rules.JoinRule != "invite" {
		t.Fatalf("join rule after close %q %v", rules.JoinRule, err)
	}
}

// TestUnsupportedRoomVersionIsRefused: a configured version the bridge
// does not support fails validation; one the homeserver does not offer
// stops the start with a message naming the key.
func TestUnsupportedRoomVersionIsRefused(t *testing.T) {
	hs := harness.SharedSynapse(t)
	cfg := testConfig(t, t.TempDir(), hs.URL, hs.ServerName, hs.AS)
	cfg.Portals.RoomVersion = "9"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "portals.room_version") {
		t.Fatalf("room version 9 validated: %v", err)
	}
	// The homeserver's answer is what counts: pretend it offers only 10.
	fake := httptestCapabilities(t, hs.URL, `{"capabilities":{"m.room_versions":{"default":"10","available":{"10":"stable"}}}}`)
	cfg.Portals.RoomVersion = "12"
	cfg.Homeserver.Address = fake
	b := bridge.New(cfg, zerolog.New(zerolog.NewTestWriter(t)))
	err := b.Start(context.Background())
	if err == nil {
		stopBridge(t, b)
		t.Fatal("the bridge started with a room version the homeserver does not offer")
	}
	if !errors.Is(err, portal.ErrRoomVersionUnsupported) || !strings.Contains(err.Error(), `portals.room_version is "12"`) {
		t.Fatalf("start error %v", err)
	}
}

// TestHalfMadeRoomIsCompleted reproduces what an older bridge met on room
// v12: createRoom refused for its power levels, yet Synapse left the room
// and the alias behind. The bridge inspects that room, adopts it (the bot
// created it, so it can finish it) and completes power levels and join
// rules; an ordinary user can then join by the alias.
func TestHalfMadeRoomIsCompleted(t *testing.T) {
	hs := harness.SharedSynapse(t)
	b, _ := startOnSynapse(t, hs, t.TempDir())
	ctx := context.Background()
	bot := b.HS.Bot().Client
	tenant := harness.UniqueName("tenant-")
	host := provisionUser(t, b, tenant, "hilda", "Hilda")
	alias := id.RoomAlias(fmt.Sprintf("#openmeet_%s_event_half:%s", tenant, hs.ServerName))

	// The request the old bridge sent: the creator listed in users.
	_, err := bot.CreateRoom(ctx, &mautrix.ReqCreateRoom{
		RoomAliasName: strings.TrimPrefix(strings.Split(alias.String(), ":")[0], "#"), Name: "Half", Preset: "public_chat",
		RoomVersion:        id.RoomV12,
		PowerLevelOverride: &event.PowerLevelsEventContent{Users: map[id.UserID]int{bot.UserID: 100}},
	})
	if err == nil {
		t.Fatal("Synapse accepted a v12 room listing its creator in users")
	}
	leftover, rerr := bot.ResolveAlias(ctx, alias)
	if rerr != nil {
		t.Fatalf("this Synapse left no room behind a refused createRoom (%v): the test needs another way to make a half-made room", err)
	}
	t.Logf("createRoom refused (%v), left %s behind", err, leftover.RoomID)

	base := "/tenants/" + tenant + "/events/half"
	provision(t, b, "PUT", base, map[string]any{"name": "Half", "visibility": "public"}, nil)
	var out struct {
		UserID     string `json:"user_id"`
		Membership string `json:"membership"`
	}
	if code := provision(t, b, "PUT", base+"/members/hilda", map[string]string{"role": "host"}, &out); code != 200 {
		var p portalOut
		provision(t, b, "GET", base, nil, &p)
		t.Fatalf("member of a half-made portal: %d, portal %+v", code, p)
	}
	var p portalOut
	provision(t, b, "GET", base, nil, &p)
	if p.RoomID != leftover.RoomID.String() || p.State != "synced" {
		t.Fatalf("portal %+v, leftover %s", p, leftover.RoomID)
	}
	alice := hs.NewUser(t, "alice")
	if joined, err := alice.Join(ctx, alias.String()); err != nil || joined != p.RoomID {
		t.Fatalf("joining the completed room: %s %v", joined, err)
	}
	if got := powerUsers(t, alice, p.RoomID); !sameMap(got, map[string]int{host.String(): 100}) {
		t.Fatalf("power levels of the completed room: %v", got)
	}
	var vis struct {
		HistoryVisibility string `json:"history_visibility"`
	}
	if err := state(t, alice, p.RoomID, "m.room.history_visibility", &vis); err != nil || vis.HistoryVisibility == "" {
		t.Fatalf("history visibility %q %v", vis.HistoryVisibility, err)
	}
}

// TestForeignRoomBehindAliasIsNotAdopted: the portal's alias points to a
// private room someone else made. The bridge does not adopt it, keeps no
// room ID, and says exactly why, with Synapse's own errcode, in the API,
// the bot's portal command and the openmeet_portals metric.
func TestForeignRoomBehindAliasIsNotAdopted(t *testing.T) {
	hs := harness.SharedSynapse(t)
	alice := hs.NewUser(t, "alice")
	b := startBotBridge(t, hs, map[string]string{alice.UserID: "admin"})
	ctx := context.Background()
	tenant := harness.UniqueName("tenant-")
	foreign, err := alice.CreateRoom(ctx, map[string]any{"preset": "private_chat", "name": "Not yours"})
	if err != nil {
		t.Fatal(err)
	}
	alias := id.RoomAlias(fmt.Sprintf("#openmeet_%s_group_taken:%s", tenant, hs.ServerName))
	if _, err := b.HS.Bot().Client.CreateAlias(ctx, alias, id.RoomID(foreign)); err != nil {
		t.Fatal(err)
	}
	base := "/tenants/" + tenant + "/groups/taken"
	var p portalOut
	code := provision(t, b, "PUT", base, map[string]any{"name": "Taken", "visibility": "public", "ensure_room": true}, &p)
	if code != 202 || p.State != "error" || p.RoomID != "" {
		t.Fatalf("portal behind a foreign alias: %d %+v", code, p)
	}
	for _, want := range []string{alias.String(), foreign, "cannot join", "M_FORBIDDEN"} {
		if !strings.Contains(p.LastError, want) {
			t.Errorf("last_error %q lacks %q", p.LastError, want)
		}
	}
	if m, _ := b.DB.Members.Membership(ctx, id.RoomID(foreign), b.HS.Bot().UserID); m == event.MembershipJoin {
		t.Error("the bot stayed in the foreign room")
	}
	bot := fmt.Sprintf("@%s:%s", hs.AS.BotLocalpart, hs.ServerName)
	dm := openDM(t, alice, bot)
	dm.run("portal "+alias.String(), "failing", "M_FORBIDDEN", "not created yet")
	metrics := scrape(t, b)
	if !strings.Contains(metrics, `openmeet_portals{state="error"} 1`) || !strings.Contains(metrics, `openmeet_portals{state="synced"} 0`) {
		t.Fatalf("portal states in /metrics:\n%s", grepLines(metrics, "openmeet_portals"))
	}
}

func scrape(t *testing.T, b *bridge.Bridge) string {
	t.Helper()
	resp, err := http.Get("http://" + b.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return string(data)
}

func grepLines(text, substr string) string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		if strings.Contains(line, substr) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// httptestCapabilities serves a fixed capabilities answer and passes every
// other request on to the real homeserver.
func httptestCapabilities(t *testing.T, upstream, capabilities string) string {
	t.Helper()
	target, _ := url.Parse(upstream)
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/_matrix/client/v3/capabilities" {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, capabilities)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

package bridge_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/openmeet-team/openmeet-bridge/bridge"
	"github.com/openmeet-team/openmeet-bridge/internal/harness"
)

// startOfflineBridge starts a bridge with the client API and the demo page
// whose homeserver is unreachable: enough for what is answered before any
// homeserver request.
func startOfflineBridge(t *testing.T) (*bridge.Bridge, harness.AppserviceInfo) {
	t.Helper()
	port, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadHS := "http://" + closed.Addr().String()
	_ = closed.Close()
	as := harness.AppserviceInfo{
		ID: "openmeet", ASToken: strings.Repeat("a", 40), HSToken: strings.Repeat("h", 40),
		BotLocalpart: "openmeetbot", Port: port, URL: fmt.Sprintf("http://127.0.0.1:%d", port),
	}
	cfg := testConfig(t, t.TempDir(), deadHS, "openmeet.test", as)
	cfg.ClientAPI.Enabled = true
	cfg.ClientAPI.JWT.Secrets = []string{jwtSecret}
	cfg.Web.Enabled = true
	// Calls that need the homeserver answer 202 (stored, not applied)
	// after this wait.
	cfg.Portals.SyncWait = 100 * time.Millisecond
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return startBridge(t, cfg), as
}

// noRedirects is a client that reports redirects instead of following them.
var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// TestNonCanonicalPathsGetMatrixErrors: a path with "//", "." or ".."
// (plain or percent-encoded) under any prefix is answered 404
// M_UNRECOGNIZED with a Matrix error body -- not a redirect to the cleaned
// path, and not routed as if "." or ".." were a tenant or slug.
func TestNonCanonicalPathsGetMatrixErrors(t *testing.T) {
	t.Parallel()
	b, as := startOfflineBridge(t)
	jwt := mintJWT(t, jwtSecret, "acme", "ada", time.Hour)
	// Homeserver down: the ghost is stored, and the call answers 202.
	if code := provision(t, b, "PUT", "/tenants/acme/users/ada", map[string]string{"displayname": "Ada"}, nil); code != 202 {
		t.Fatalf("PUT user: %d", code)
	}
	tokens := map[string]string{
		"/_openmeet/provision/": b.Config.Provisioning.SharedSecret,
		"/_openmeet/client/":    jwt,
		"/_matrix/app/":         as.HSToken,
	}
	paths := []string{
		"/_openmeet/provision/v1//tenants/acme/users/ada",
		"/_openmeet/provision/v1/tenants//users/ada",
		"/_openmeet/provision/v1/tenants/acme/users/../users/ada",
		"/_openmeet/provision/v1/tenants/acme/users/./ada",
		"/_openmeet/provision/v1/tenants/acme/users/ada/..",
		"/_openmeet/provision/v1/tenants/acme/users/ada/.",
		"/_openmeet/provision/v1/tenants/%2e%2e/users/ada",
		"/_openmeet/provision/v1/tenants/acme/users/%2E",
		"/_openmeet/provision/v1/tenants/acme/events/.%2e/members",
		"/_openmeet/provision//v1/tenants/acme/events",
		"/_openmeet/provision/v1/../v1/tenants/acme/events",
		"/_openmeet/client/v1//whoami",
		"/_openmeet/client/v1/rooms/../whoami",
		"/_openmeet/client/v1/./rooms",
		"/_openmeet/client/v1/rooms/events/%2e%2e/messages",
		"/_openmeet/client/v1/rooms/events/meetup/send/%2e",
		"/_openmeet/client//v1/events",
		"/_matrix/app/v1//transactions/1",
		"/_matrix/app/v1/users/../ping",
		"/_matrix/app/v1/./ping",
		"/_matrix/app//v1/ping",
		"/_matrix/app/v1/rooms/%2e%2e",
		"/_matrix/app/v1/transactions/..",
		"//_matrix/app/v1/ping",
		"/_matrix/mau//live",
		"/_matrix/mau/./ready",
		"/_openmeet/web/../openapi.yaml",
		"/metrics/.",
	}
	for _, path := range paths {
		for _, method := range []string{http.MethodGet, http.MethodPut, http.MethodPost, http.MethodDelete} {
			for _, withToken := range []bool{false, true} {
				req, err := http.NewRequest(method, as.URL+path, strings.NewReader(`{}`))
				if err != nil {
					t.Fatal(err)
				}
				if req.URL.EscapedPath() != path {
					t.Fatalf("the client changed %s into %s", path, req.URL.EscapedPath())
				}
				if withToken {
					for prefix, token := range tokens {
						if strings.Contains(path, strings.TrimSuffix(prefix, "/")) {
							req.Header.Set("Authorization", "Bearer "+token)
						}
					}
				}
				resp, err := noRedirects.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				raw, _ := io.ReadAll(resp.Body)
				_ = resp.Body.Close()
				var body struct{ Errcode, Error string }
				_ = json.Unmarshal(raw, &body)
				if resp.StatusCode != http.StatusNotFound || body.Errcode != "M_UNRECOGNIZED" || body.Error == "" ||
					resp.Header.Get("Location") != "" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
					t.Errorf("%s %s (token %v): %d %s %q, want 404 M_UNRECOGNIZED", method, path, withToken, resp.StatusCode, resp.Header.Get("Location"), raw)
				}
			}
		}
	}

	// Canonical paths are routed as before, trailing "/" and escaped "/"
	// included.
	for _, tc := range []struct {
		method, path, token string
		status              int
		errcode             string
	}{
		{"GET", "/_openmeet/provision/v1/tenants/acme/users/a%2Fb", b.Config.Provisioning.SharedSecret, 404, "M_NOT_FOUND"},
		{"GET", "/_openmeet/provision/v1/tenants/acme/users/a..b", b.Config.Provisioning.SharedSecret, 404, "M_NOT_FOUND"},
		{"GET", "/_openmeet/provision/v1/tenants/acme/users/ada/", b.Config.Provisioning.SharedSecret, 404, "M_UNRECOGNIZED"},
		{"GET", "/_openmeet/client/v1/whoami", jwt, 200, ""},
		{"POST", "/_matrix/app/v1/ping", as.HSToken, 200, ""},
		{"GET", "/_openmeet/web/", "", 200, ""},
		{"GET", "/_matrix/mau/live", "", 200, ""},
	} {
		req, _ := http.NewRequest(tc.method, as.URL+tc.path, strings.NewReader(`{}`))
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		resp, err := noRedirects.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		var body struct{ Errcode string }
		_ = json.Unmarshal(raw, &body)
		if resp.StatusCode != tc.status || body.Errcode != tc.errcode {
			t.Errorf("%s %s: %d %q, want %d %s", tc.method, tc.path, resp.StatusCode, raw, tc.status, tc.errcode)
		}
	}
}

// repliesTo counts the bot's replies to evtID in c's room.
func repliesTo(c *botChat, evtID string) int {
	n := 0
	for _, evt := range c.messages() {
		rel, _ := evt.Content["m.relates_to"].(map[string]any)
		reply, _ := rel["m.in_reply_to"].(map[string]any)
		if evt.Sender == c.bot && evt.Type == "m.room.message" && reply["event_id"] == evtID {
			n++
		}
	}
	return n
}

// TestBotTellsNonPermittedUsersOnce: a user without permission who sends
// the bot a command in a management room someone else opened is told once
// that they may not, and then not again; with the prefix in a portal room,
// where every member would read the answer, they are not answered at all;
// their other chat gets no answer; a declined invite says why.
func TestBotTellsNonPermittedUsersOnce(t *testing.T) {
	hs := harness.SharedSynapse(t)
	ctx := context.Background()
	bob, carol, dave := hs.NewUser(t, "bob"), hs.NewUser(t, "carol"), hs.NewUser(t, "dave")
	b := startBotBridge(t, hs, map[string]string{bob.UserID: "user"})
	bot := fmt.Sprintf("@%s:%s", hs.AS.BotLocalpart, hs.ServerName)

	// A management room opened by bob, which carol joins.
	dm := openDM(t, bob, bot)
	if err := bob.Invite(ctx, dm.roomID, carol.UserID); err != nil {
		t.Fatal(err)
	}
	if _, err := carol.Join(ctx, dm.roomID); err != nil {
		t.Fatal(err)
	}
	carolChat := &botChat{t: t, user: carol, roomID: dm.roomID, bot: bot}
	first := carolChat.send("status")
	if reply := carolChat.replyTo(first); !strings.Contains(reply, "may not use this bot") || !strings.Contains(reply, carol.UserID) {
		t.Fatalf("refusal: %q", reply)
	}
	again := []string{carolChat.send("status"), carolChat.send("help")}
	// The bot reads the room in order: once bob's command is answered,
	// carol's later ones have been read too.
	dm.run("version", "")
	for _, evtID := range again {
		if n := repliesTo(carolChat, evtID); n != 0 {
			t.Fatalf("the bot answered a repeated command from carol %d times", n)
		}
	}
	if n := repliesTo(carolChat, first); n != 1 {
		t.Fatalf("%d refusals to carol's first command", n)
	}

	// In a portal room only prefixed messages are commands.
	tenant := harness.UniqueName("tenant-")
	var p portalOut
	provision(t, b, "PUT", "/tenants/"+tenant+"/events/meetup", map[string]any{"name": "Meetup", "visibility": "public", "ensure_room": true}, &p)
	roomID, err := dave.Join(ctx, p.Alias)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Join(ctx, p.Alias); err != nil {
		t.Fatal(err)
	}
	daveChat := &botChat{t: t, user: dave, roomID: roomID, bot: bot}
	bobChat := &botChat{t: t, user: bob, roomID: roomID, bot: bot}
	chat := daveChat.send("hello everyone, status is fine")
	command := daveChat.send("!om status")
	repeated := daveChat.send("!om help")
	bobChat.run("!om version", "")
	for _, evtID := range []string{chat, command, repeated} {
		if n := repliesTo(daveChat, evtID); n != 0 {
			t.Fatalf("the bot answered dave's %s in the portal room", evtID)
		}
	}
	for _, evt := range daveChat.messages() {
		if body, _ := evt.Content["body"].(string); evt.Sender == bot && strings.Contains(body, "may not use this bot") {
			t.Fatalf("a refusal in the portal room: %q", body)
		}
	}

	// An invite from a user without permission is declined with a reason.
	dmRoom, err := carol.CreateRoom(ctx, map[string]any{"preset": "private_chat", "invite": []string{bot}})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the bot to decline", func() bool {
		m, _ := b.DB.Members.Membership(ctx, id.RoomID(dmRoom), id.UserID(bot))
		return m == event.MembershipLeave
	})
	var member struct {
		Membership string `json:"membership"`
		Reason     string `json:"reason"`
	}
	if err := carol.Do(ctx, "GET", "/_matrix/client/v3/rooms/"+url.PathEscape(dmRoom)+"/state/m.room.member/"+url.PathEscape(bot), nil, &member); err != nil {
		t.Fatal(err)
	}
	if member.Membership != "leave" || !strings.Contains(member.Reason, "Not allowed") {
		t.Fatalf("declined invite: %+v", member)
	}
}

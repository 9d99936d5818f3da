package bridge_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/id"

	"github.com/openmeet-team/openmeet-bridge/bridge"
	"github.com/openmeet-team/openmeet-bridge/internal/harness"
)

// The tests in this file are about a bridge open to the public: any
// OpenMeet user can reach the client API, any Matrix user a portal room.

// startLoggingBridge starts a bridge whose log, from debug up, the test
// reads; it is shown when the test fails.
func startLoggingBridge(t *testing.T, cfg *bridge.Config) (*bridge.Bridge, *lockedBuffer) {
	t.Helper()
	logs := &lockedBuffer{}
	b := bridge.New(cfg, zerolog.New(logs).Level(zerolog.DebugLevel).With().Timestamp().Logger())
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stopBridge(t, b)
		if t.Failed() {
			t.Logf("bridge log:\n%s", logs.String())
		}
	})
	eventually(t, 60*time.Second, "the bridge to be ready", func() bool { return b.HS.Ready() })
	return b, logs
}

// TestBotTakesNoCommandsFromOpenMeetUsers: with the server-wide admin entry
// most bridges document, an OpenMeet user sending "!om set-pl <own ghost>
// 100" (or close-portal, reconcile --apply, outbox drop) through the client
// API gets nothing: no level, no answer. Nor does the ghost when something
// other than the outbox sends as it, nor a message carrying the outbox's
// mark. The server's ordinary users keep their server-wide permission.
func TestBotTakesNoCommandsFromOpenMeetUsers(t *testing.T) {
	hs := harness.SharedSynapse(t)
	ctx := context.Background()
	alice := hs.NewUser(t, "alice")
	cfg := clientConfig(t, hs)
	cfg.Permissions = map[string]string{hs.ServerName: "admin"}
	// Each send is answered once Synapse has it, however loaded the machine.
	cfg.ClientAPI.SendWait = 2 * time.Minute
	b := startBridge(t, cfg)
	eventually(t, 60*time.Second, "the bridge to be ready", func() bool { return b.HS.Ready() })
	bot := fmt.Sprintf("@%s:%s", hs.AS.BotLocalpart, hs.ServerName)
	tenant := harness.UniqueName("tenant-")
	provisionUser(t, b, tenant, "hilda", "Hilda")
	ada := provisionUser(t, b, tenant, "ada", "Ada")
	base := "/tenants/" + tenant + "/events/meetup"
	provision(t, b, "PUT", base, map[string]any{"name": "Meetup", "visibility": "public"}, nil)
	var br struct {
		Portal portalOut `json:"portal"`
	}
	provision(t, b, "POST", base+"/members:batch", map[string]any{"set": []map[string]string{
		{"user_slug": "hilda", "role": "host"}, {"user_slug": "ada", "role": "attendee"}}}, &br)
	roomID := br.Portal.RoomID
	adaToken := mintJWT(t, jwtSecret, tenant, "ada", time.Hour)
	eventually(t, 30*time.Second, "ada's membership", func() bool {
		return call(t, b, adaToken, "GET", "/rooms/events/meetup/messages?limit=1", nil, nil) == 200
	})
	if _, err := alice.Join(ctx, br.Portal.Alias); err != nil {
		t.Fatal(err)
	}
	levelsBefore := powerUsers(t, alice, roomID)

	var ignored []string
	for i, command := range []string{
		"!om set-pl " + ada.String() + " 100", "!om close-portal", "!om reconcile --all --apply", "!om outbox drop 1", "!om help",
	} {
		var sent struct {
			State   string `json:"state"`
			EventID string `json:"event_id"`
		}
		if code := call(t, b, adaToken, "PUT", fmt.Sprintf("/rooms/events/meetup/send/cmd-%d", i), map[string]string{"body": command}, &sent); code != 200 || sent.State != "sent" {
			t.Fatalf("send %q: %d %+v", command, code, sent)
		}
		ignored = append(ignored, sent.EventID)
	}
	// The ghost without the outbox's mark: its namespace alone is enough.
	resp, err := b.HS.Intent(ada).SendText(ctx, id.RoomID(roomID), "!om set-pl "+ada.String()+" 100")
	if err != nil {
		t.Fatal(err)
	}
	ignored = append(ignored, resp.EventID.String())
	// The outbox's mark alone is enough too, whoever the sender.
	var marked struct {
		EventID string `json:"event_id"`
	}
	path := fmt.Sprintf("/_matrix/client/v3/rooms/%s/send/m.room.message/marked-1", url.PathEscape(roomID))
	if err := alice.Do(ctx, "PUT", path, map[string]string{"msgtype": "m.text", "body": "!om set-pl " + alice.UserID + " 100", "net.openmeet.txn_id": "x"}, &marked); err != nil {
		t.Fatal(err)
	}
	ignored = append(ignored, marked.EventID)

	// The bot reads the room in order: once alice's command is answered,
	// everything before it has been read.
	chat := &botChat{t: t, user: alice, roomID: roomID, bot: bot}
	chat.run("!om set-pl "+alice.UserID+" 50", "Set the power level")
	for _, evtID := range ignored {
		if n := repliesTo(chat, evtID); n != 0 {
			t.Errorf("the bot answered %s", evtID)
		}
	}
	botMessages := 0
	for _, evt := range chat.messages() {
		if evt.Sender == bot && evt.Type == "m.room.message" {
			botMessages++
		}
	}
	if botMessages != 1 {
		t.Errorf("the bot posted %d messages in the portal room, want 1 (its answer to alice)", botMessages)
	}
	levels := powerUsers(t, alice, roomID)
	if levels[ada.String()] != levelsBefore[ada.String()] || levels[alice.UserID] != 50 {
		t.Errorf("levels after the commands: %v (before %v); want ada's unchanged and alice at 50", levels, levelsBefore)
	}
	var p portalOut
	provision(t, b, "GET", base, nil, &p)
	if p.Closed {
		t.Fatal("an OpenMeet user closed the portal")
	}
}

// TestClientRefusesTokensMadeForSomethingElse: a token signed with the
// bridge's secret but made for another purpose -- a refresh token, an
// email verification link, one without the bridge's audience -- gets the
// same vague 401 as a forged one, and the log says why (without the token).
func TestClientRefusesTokensMadeForSomethingElse(t *testing.T) {
	hs := harness.SharedSynapse(t)
	b, logs := startLoggingBridge(t, clientConfig(t, hs))
	tenant := harness.UniqueName("tenant-")
	provisionUser(t, b, tenant, "ada", "Ada")
	good := jwt.MapClaims{"sub": "ada", "tenant": tenant, "aud": jwtAudience, "exp": time.Now().Add(time.Hour).Unix()}
	with := func(extra jwt.MapClaims) jwt.MapClaims {
		c := jwt.MapClaims{}
		for k, v := range good {
			c[k] = v
		}
		for k, v := range extra {
			if v == nil {
				delete(c, k)
			} else {
				c[k] = v
			}
		}
		return c
	}
	for _, tt := range []struct {
		name   string
		token  string
		reason string // "" for a good token
	}{
		{"access token", signJWT(t, jwtSecret, good, nil), ""},
		{"access token, typ at+jwt", signJWT(t, jwtSecret, good, map[string]any{"typ": "at+jwt"}), ""},
		{"access token, typ claim access", signJWT(t, jwtSecret, with(jwt.MapClaims{"typ": "access"}), nil), ""},
		{"refresh token (claim)", signJWT(t, jwtSecret, with(jwt.MapClaims{"typ": "refresh"}), nil), "not an access token"},
		{"refresh token (header)", signJWT(t, jwtSecret, good, map[string]any{"typ": "refresh+jwt"}), "not an access token"},
		{"email verification", signJWT(t, jwtSecret, with(jwt.MapClaims{"aud": "openmeet-email-verification", "typ": "email-verification"}), nil), "wrong audience"},
		{"no audience", signJWT(t, jwtSecret, with(jwt.MapClaims{"aud": nil}), nil), "missing claim"},
		{"expired", signJWT(t, jwtSecret, with(jwt.MapClaims{"exp": time.Now().Add(-time.Hour).Unix()}), nil), "expired"},
		{"forged", signJWT(t, "some-other-secret-0123456789abcdefghij", good, nil), "bad signature"},
		{"alg none", noneToken(t, good), "algorithm not accepted"},
	} {
		before := strings.Count(logs.String(), `"reason":"`+tt.reason+`"`)
		var out map[string]any
		code := call(t, b, tt.token, "GET", "/whoami", nil, &out)
		if tt.reason == "" {
			if code != 200 || out["slug"] != "ada" {
				t.Errorf("%s: %d %v, want 200 for ada", tt.name, code, out)
			}
			continue
		}
		if code != 401 || out["errcode"] != "M_UNKNOWN_TOKEN" || out["error"] != "Invalid or expired token" {
			t.Errorf("%s: %d %v, want the vague 401", tt.name, code, out)
		}
		// The line is written before the answer.
		if strings.Count(logs.String(), `"reason":"`+tt.reason+`"`) != before+1 {
			t.Errorf("%s: no log line with reason %q", tt.name, tt.reason)
		}
		if strings.Contains(logs.String(), tt.token) {
			t.Errorf("%s: the token is in the log", tt.name)
		}
	}
	// A ticket is single-use; its reuse is logged too.
	var ticket struct {
		Ticket string `json:"ticket"`
	}
	if code := call(t, b, signJWT(t, jwtSecret, good, nil), "POST", "/events/ticket", nil, &ticket); code != 200 {
		t.Fatalf("ticket: %d", code)
	}
	stream, code := openStream(t, b, "", "?ticket="+url.QueryEscape(ticket.Ticket), "")
	if code != 200 {
		t.Fatalf("stream with a fresh ticket: %d", code)
	}
	stream.close()
	if _, code := openStream(t, b, "", "?ticket="+url.QueryEscape(ticket.Ticket), ""); code != 401 {
		t.Fatalf("stream with a used ticket: %d", code)
	}
	if !strings.Contains(logs.String(), `"reason":"ticket unknown, used already or expired"`) {
		t.Error("no log line for the reused ticket")
	}
}

// noneToken is claims with alg "none" and no signature.
func noneToken(t *testing.T, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodNone, claims).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestHSTokenOnlyInTheHeader: Synapse (both pinned releases) sends the
// hs_token in the Authorization header, which is all the bridge accepts by
// default; the same token as ?access_token= (where proxies log it) is
// refused with an answer and a log line that say to use the header.
func TestHSTokenOnlyInTheHeader(t *testing.T) {
	hs := harness.SharedSynapse(t)
	b, logs := startLoggingBridge(t, testConfig(t, t.TempDir(), hs.URL, hs.ServerName, hs.AS))
	// Synapse reaches the bridge: its ping goes through the token check.
	if _, err := b.HS.Ping(context.Background()); err != nil {
		t.Fatalf("Synapse's appservice ping: %v", err)
	}
	base := "http://" + b.Addr().String()
	req, _ := http.NewRequest("PUT", base+"/_matrix/app/v1/transactions/query-1?access_token="+url.QueryEscape(hs.AS.HSToken), strings.NewReader(`{"events":[]}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	var body struct {
		Errcode string `json:"errcode"`
		Error   string `json:"error"`
	}
	_ = json.Unmarshal(raw, &body)
	if resp.StatusCode != 401 || body.Errcode != "M_MISSING_TOKEN" || !strings.Contains(body.Error, "Authorization header") {
		t.Fatalf("hs_token in the query: %d %s", resp.StatusCode, raw)
	}
	if log := logs.String(); !strings.Contains(log, "hs_token in the query string") || strings.Contains(log, hs.AS.HSToken) {
		t.Fatal("the refusal is not logged, or the token is")
	}
}

// TestBotAndLegacyAccounts: a legacy account (appservice.legacy_users), one
// the bridge acts as for its OpenMeet user, gets no permission from a
// server-wide entry; a per-user entry still counts for what its owner sends
// from a Matrix client of their own, never for what the bridge sends for
// them through the client API.
func TestBotAndLegacyAccounts(t *testing.T) {
	hs := harness.OwnSynapse(t, harness.SynapseOptions{LegacyUserRegex: `^@[^:]+_(?:` + legacyTenant + `):localhost$`})
	ctx := context.Background()
	user := func(localpart string) *harness.MatrixUser {
		userID, token, err := hs.RegisterUser(ctx, localpart, "pw-"+localpart, false)
		if err != nil {
			t.Fatal(err)
		}
		return &harness.MatrixUser{UserID: userID, AccessToken: token, HS: hs}
	}
	alice, bob := user("alice_"+legacyTenant), user("bob_"+legacyTenant)
	cfg := clientConfig(t, hs)
	cfg.Appservice.LegacyUsers.Tenants = []string{legacyTenant}
	cfg.Permissions = map[string]string{hs.ServerName: "admin", alice.UserID: "admin"}
	cfg.ClientAPI.SendWait = 2 * time.Minute
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	b := startBridge(t, cfg)
	eventually(t, 60*time.Second, "the bridge to be ready", func() bool { return b.HS.Ready() })
	bot := fmt.Sprintf("@%s:%s", hs.AS.BotLocalpart, hs.ServerName)
	for slug, mx := range map[string]*harness.MatrixUser{"alice": alice, "bob": bob} {
		var out struct {
			State string `json:"state"`
		}
		if code := provision(t, b, "PUT", "/tenants/"+legacyTenant+"/users/"+slug, map[string]string{"displayname": slug, "matrix_user_id": mx.UserID}, &out); code != 200 || out.State != "synced" {
			t.Fatalf("adopt %s: %d %+v", slug, code, out)
		}
	}
	base := "/tenants/" + legacyTenant + "/events/meetup"
	provision(t, b, "PUT", base, map[string]any{"name": "Meetup", "visibility": "public"}, nil)
	var br struct {
		Portal portalOut `json:"portal"`
	}
	provision(t, b, "POST", base+"/members:batch", map[string]any{"set": []map[string]string{
		{"user_slug": "alice", "role": "host"}, {"user_slug": "bob", "role": "attendee"}}}, &br)
	roomID := br.Portal.RoomID
	aliceToken := mintJWT(t, jwtSecret, legacyTenant, "alice", time.Hour)
	eventually(t, 30*time.Second, "alice's and bob's memberships", func() bool {
		members := joinedMembers(t, alice, roomID)
		_, a := members[alice.UserID]
		_, b := members[bob.UserID]
		return a && b
	})
	levelsBefore := powerUsers(t, alice, roomID)

	var ignored []string
	bobChat := &botChat{t: t, user: bob, roomID: roomID, bot: bot}
	ignored = append(ignored, bobChat.send("!om set-pl "+bob.UserID+" 100"))
	var sent struct {
		State   string `json:"state"`
		EventID string `json:"event_id"`
	}
	if code := call(t, b, aliceToken, "PUT", "/rooms/events/meetup/send/cmd-1", map[string]string{"body": "!om set-pl " + bob.UserID + " 100"}, &sent); code != 200 || sent.State != "sent" {
		t.Fatalf("send through the client API: %d %+v", code, sent)
	}
	ignored = append(ignored, sent.EventID)
	aliceChat := &botChat{t: t, user: alice, roomID: roomID, bot: bot}
	aliceChat.run("!om portal", "Meetup")
	for _, evtID := range ignored {
		if n := repliesTo(aliceChat, evtID); n != 0 {
			t.Errorf("the bot answered %s", evtID)
		}
	}
	if levels := powerUsers(t, alice, roomID); levels[bob.UserID] != levelsBefore[bob.UserID] {
		t.Errorf("bob's level went from %d to %d", levelsBefore[bob.UserID], levels[bob.UserID])
	}
}

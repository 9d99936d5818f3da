package bridge_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"maunium.net/go/mautrix/id"

	"github.com/openmeet-team/openmeet-bridge/bridge"
	"github.com/openmeet-team/openmeet-bridge/internal/harness"
)

const jwtSecret = "client-api-test-secret-0123456789abcdef"

// jwtAudience is client_api.jwt.audience in every test config.
const jwtAudience = "openmeet-bridge-tests"

// mintJWT makes an access token as OpenMeet would for the bridge.
func mintJWT(t testing.TB, secret, tenant, slug string, ttl time.Duration) string {
	t.Helper()
	return signJWT(t, secret, jwt.MapClaims{"sub": slug, "tenant": tenant, "aud": jwtAudience, "exp": time.Now().Add(ttl).Unix()}, nil)
}

// signJWT signs claims with secret (HS256), with extra header fields.
func signJWT(t testing.TB, secret string, claims jwt.MapClaims, header map[string]any) string {
	t.Helper()
	token := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
	for k, v := range header {
		token.Header[k] = v
	}
	signed, err := token.SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

func clientConfig(t testing.TB, hs *harness.Synapse) *bridge.Config {
	cfg := testConfig(t, t.TempDir(), hs.URL, hs.ServerName, hs.AS)
	cfg.ClientAPI.Enabled = true
	cfg.ClientAPI.JWT.Secrets = []string{jwtSecret}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// call sends a client API request with a JWT.
func call(t testing.TB, b *bridge.Bridge, token, method, path string, body any, out any) int {
	t.Helper()
	status, raw := apiRequest(t, b, method, "/_openmeet/client/v1"+path, token, body)
	decodeInto(t, method+" "+path, status, raw, out)
	return status
}

type streamEvent struct {
	ID    string
	Event string
	Data  map[string]any
}

type eventStream struct {
	resp   *http.Response
	events chan streamEvent
}

// openStream connects to the event stream; query may carry a ticket.
func openStream(t testing.TB, b *bridge.Bridge, token, query, lastID string) (*eventStream, int) {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+b.Addr().String()+"/_openmeet/client/v1/events"+query, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		_ = resp.Body.Close()
		return nil, resp.StatusCode
	}
	if resp.Header.Get("Content-Type") != "text/event-stream" || resp.Header.Get("X-Accel-Buffering") != "no" || resp.Header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("stream headers %v", resp.Header)
	}
	s := &eventStream{resp: resp, events: make(chan streamEvent, 1000)}
	go func() {
		defer close(s.events)
		scanner := bufio.NewScanner(resp.Body)
		scanner.Buffer(make([]byte, 1<<20), 1<<20)
		var cur streamEvent
		for scanner.Scan() {
			line := scanner.Text()
			switch {
			case line == "":
				if cur.Event != "" {
					s.events <- cur
				}
				cur = streamEvent{}
			case strings.HasPrefix(line, "id: "):
				cur.ID = line[4:]
			case strings.HasPrefix(line, "event: "):
				cur.Event = line[7:]
			case strings.HasPrefix(line, "data: "):
				_ = json.Unmarshal([]byte(line[6:]), &cur.Data)
			}
		}
	}()
	t.Cleanup(s.close)
	return s, 200
}

func (s *eventStream) close() { _ = s.resp.Body.Close() }

// waitFor returns the first event matching pred, failing after timeout.
func (s *eventStream) waitFor(t testing.TB, what string, pred func(streamEvent) bool) streamEvent {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case evt, ok := <-s.events:
			if !ok {
				t.Fatalf("stream closed while waiting for %s", what)
			}
			if pred(evt) {
				return evt
			}
		case <-timeout:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// bodyOf is the text of a message event in a stream payload.
func bodyOf(evt streamEvent) string {
	inner, _ := evt.Data["event"].(map[string]any)
	content, _ := inner["content"].(map[string]any)
	body, _ := content["body"].(string)
	return body
}

func isMessage(body string) func(streamEvent) bool {
	return func(evt streamEvent) bool { return evt.Event == "m.room.message" && bodyOf(evt) == body }
}

// TestClientChatThroughSynapse: two OpenMeet users and an ordinary Matrix
// user chat in one portal; streams, history, resume and tickets.
func TestClientChatThroughSynapse(t *testing.T) {
	hs := harness.SharedSynapse(t)
	b := startBridge(t, clientConfig(t, hs))
	eventually(t, 60*time.Second, "the bridge to be ready", func() bool { return b.HS.Ready() })
	tenant := harness.UniqueName("tenant-")
	provisionUser(t, b, tenant, "ada", "Ada Lovelace")
	provisionUser(t, b, tenant, "bob", "Bob")
	base := "/tenants/" + tenant + "/events/meetup"
	var br struct {
		Portal portalOut `json:"portal"`
	}
	provision(t, b, "PUT", base, map[string]any{"name": "Meetup", "visibility": "public"}, nil)
	provision(t, b, "POST", base+"/members:batch", map[string]any{"set": []map[string]string{{"user_slug": "ada", "role": "host"}, {"user_slug": "bob", "role": "attendee"}}}, &br)
	ada, bob := mintJWT(t, jwtSecret, tenant, "ada", time.Hour), mintJWT(t, jwtSecret, tenant, "bob", time.Hour)
	eventually(t, 30*time.Second, "memberships to arrive", func() bool {
		var rooms, bobs struct {
			Rooms []map[string]any `json:"rooms"`
		}
		call(t, b, ada, "GET", "/rooms", nil, &rooms)
		call(t, b, bob, "GET", "/rooms", nil, &bobs)
		return len(rooms.Rooms) == 1 && rooms.Rooms[0]["slug"] == "meetup" && len(bobs.Rooms) == 1
	})

	stream, code := openStream(t, b, ada, "", "")
	if code != 200 {
		t.Fatalf("stream: %d", code)
	}
	var sent struct {
		TxnID   string `json:"txn_id"`
		State   string `json:"state"`
		EventID string `json:"event_id"`
	}
	if code := call(t, b, bob, "PUT", "/rooms/events/meetup/send/txn-1", map[string]string{"body": "hello from bob"}, &sent); code != 200 || sent.State != "sent" || sent.EventID == "" {
		t.Fatalf("send: %d %+v", code, sent)
	}
	// The same txn id again is the same message.
	var again struct {
		EventID string `json:"event_id"`
	}
	call(t, b, bob, "PUT", "/rooms/events/meetup/send/txn-1", map[string]string{"body": "hello from bob"}, &again)
	if again.EventID != sent.EventID {
		t.Fatalf("retried send made %s, first %s", again.EventID, sent.EventID)
	}
	evt := stream.waitFor(t, "bob's message", isMessage("hello from bob"))
	sender, _ := evt.Data["sender"].(map[string]any)
	portal, _ := evt.Data["portal"].(map[string]any)
	if evt.ID == "" || sender["slug"] != "bob" || sender["displayname"] != "Bob" || portal["slug"] != "meetup" || evt.Data["txn_id"] != "txn-1" {
		t.Fatalf("stream event %+v", evt)
	}
	// An ordinary Matrix user in the same room, shown with its name.
	alice := hs.NewUser(t, "alice")
	if _, err := alice.Join(context.Background(), br.Portal.Alias); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SendText(context.Background(), br.Portal.RoomID, "hi from element"); err != nil {
		t.Fatal(err)
	}
	evt = stream.waitFor(t, "alice's message", isMessage("hi from element"))
	if sender, _ = evt.Data["sender"].(map[string]any); sender["user_id"] != alice.UserID || sender["displayname"] == "" {
		t.Fatalf("alice's message sender %+v", sender)
	}
	lastID := evt.ID

	// History, read from Synapse as ada, shaped like the stream.
	var history struct {
		Chunk []map[string]any `json:"chunk"`
	}
	if code := call(t, b, ada, "GET", "/rooms/events/meetup/messages?limit=20", nil, &history); code != 200 {
		t.Fatalf("history: %d", code)
	}
	found := false
	for _, item := range history.Chunk {
		if s, _ := item["sender"].(map[string]any); s["slug"] == "bob" && bodyOf(streamEvent{Data: item}) == "hello from bob" {
			found = true
		}
	}
	if !found {
		t.Fatalf("history lacks bob's message: %v", history.Chunk)
	}

	// Resume: what was sent while the stream was closed arrives, once.
	stream.close()
	for i := range 3 {
		call(t, b, bob, "PUT", fmt.Sprintf("/rooms/events/meetup/send/gap-%d", i), map[string]string{"body": fmt.Sprintf("missed %d", i)}, nil)
	}
	resumed, code := openStream(t, b, ada, "", lastID)
	if code != 200 {
		t.Fatal(code)
	}
	for i := range 3 {
		evt := resumed.waitFor(t, fmt.Sprintf("missed %d", i), func(e streamEvent) bool { return e.Event == "m.room.message" })
		if bodyOf(evt) != fmt.Sprintf("missed %d", i) {
			t.Fatalf("resumed stream gave %q, want %q", bodyOf(evt), fmt.Sprintf("missed %d", i))
		}
	}

	// A ticket opens one stream, once.
	var ticket struct {
		Ticket string `json:"ticket"`
	}
	if code := call(t, b, ada, "POST", "/events/ticket", nil, &ticket); code != 200 || ticket.Ticket == "" {
		t.Fatalf("ticket: %d", code)
	}
	if _, code := openStream(t, b, "", "?ticket="+ticket.Ticket, ""); code != 200 {
		t.Fatalf("stream with ticket: %d", code)
	}
	if _, code := openStream(t, b, "", "?ticket="+ticket.Ticket, ""); code != 401 {
		t.Fatalf("reused ticket: %d", code)
	}
}

// TestClientIsolation checks every path by which a user might see or touch
// a room that is not theirs.
func TestClientIsolation(t *testing.T) {
	hs := harness.SharedSynapse(t)
	b := startBridge(t, clientConfig(t, hs))
	eventually(t, 60*time.Second, "the bridge to be ready", func() bool { return b.HS.Ready() })
	tenantA, tenantB := harness.UniqueName("tenant-a"), harness.UniqueName("tenant-b")
	provisionUser(t, b, tenantA, "ada", "Ada")
	provisionUser(t, b, tenantA, "carol", "Carol (not a member)")
	provisionUser(t, b, tenantB, "ada", "Other Ada")
	base := "/tenants/" + tenantA + "/events/meetup"
	provision(t, b, "PUT", base, map[string]any{"name": "Meetup", "visibility": "public"}, nil)
	provision(t, b, "PUT", base+"/members/ada", map[string]string{"role": "host"}, nil)
	ada := mintJWT(t, jwtSecret, tenantA, "ada", time.Hour)
	carol := mintJWT(t, jwtSecret, tenantA, "carol", time.Hour)
	otherAda := mintJWT(t, jwtSecret, tenantB, "ada", time.Hour)
	eventually(t, 30*time.Second, "ada's membership", func() bool {
		return call(t, b, ada, "GET", "/rooms/events/meetup/messages?limit=1", nil, nil) == 200
	})

	expired := mintJWT(t, jwtSecret, tenantA, "ada", -time.Hour)
	forged := mintJWT(t, "some-other-secret-0123456789abcdefghij", tenantA, "ada", time.Hour)
	unknown := mintJWT(t, jwtSecret, tenantA, "nobody", time.Hour)
	noTenant := signJWT(t, jwtSecret, jwt.MapClaims{"sub": "ada", "aud": jwtAudience, "exp": time.Now().Add(time.Hour).Unix()}, nil)
	for _, tt := range []struct {
		name, token, method, path string
		body                      any
		code                      int
		errcode                   string
	}{
		{"no token", "", "GET", "/rooms", nil, 401, "M_MISSING_TOKEN"},
		{"forged", forged, "GET", "/rooms", nil, 401, "M_UNKNOWN_TOKEN"},
		{"expired", expired, "GET", "/rooms", nil, 401, "M_UNKNOWN_TOKEN"},
		{"no tenant claim", noTenant, "GET", "/rooms", nil, 401, "M_UNKNOWN_TOKEN"},
		{"garbage", "not.a.jwt", "GET", "/rooms", nil, 401, "M_UNKNOWN_TOKEN"},
		{"unprovisioned user", unknown, "GET", "/rooms", nil, 403, "M_FORBIDDEN"},
		{"non-member history", carol, "GET", "/rooms/events/meetup/messages", nil, 403, "M_FORBIDDEN"},
		{"non-member send", carol, "PUT", "/rooms/events/meetup/send/x1", map[string]string{"body": "let me in"}, 403, "M_FORBIDDEN"},
		{"other tenant history", otherAda, "GET", "/rooms/events/meetup/messages", nil, 404, "M_NOT_FOUND"},
		{"other tenant send", otherAda, "PUT", "/rooms/events/meetup/send/x2", map[string]string{"body": "hi"}, 404, "M_NOT_FOUND"},
		{"unknown portal", ada, "GET", "/rooms/events/nope/messages", nil, 404, "M_NOT_FOUND"},
		{"empty body", ada, "PUT", "/rooms/events/meetup/send/x3", map[string]string{"body": " "}, 400, "M_INVALID_PARAM"},
		{"unknown field", ada, "PUT", "/rooms/events/meetup/send/x4", map[string]string{"text": "hi"}, 400, "M_BAD_JSON"},
		{"bad reply_to", ada, "PUT", "/rooms/events/meetup/send/x5", map[string]string{"body": "hi", "reply_to": "nope"}, 400, "M_INVALID_PARAM"},
		{"too large", ada, "PUT", "/rooms/events/meetup/send/x6", map[string]string{"body": strings.Repeat("x", 70000)}, 413, "M_TOO_LARGE"},
		{"bad limit", ada, "GET", "/rooms/events/meetup/messages?limit=0", nil, 400, "M_INVALID_PARAM"},
		{"wrong method", ada, "DELETE", "/rooms", nil, 405, "M_UNRECOGNIZED"},
	} {
		var out map[string]any
		if code := call(t, b, tt.token, tt.method, tt.path, tt.body, &out); code != tt.code || out["errcode"] != tt.errcode {
			t.Errorf("%s: %d %v, want %d %s", tt.name, code, out, tt.code, tt.errcode)
		}
	}
	var rooms struct {
		Rooms []any `json:"rooms"`
	}
	for _, token := range []string{carol, otherAda} {
		if call(t, b, token, "GET", "/rooms", nil, &rooms); len(rooms.Rooms) != 0 {
			t.Fatalf("a non-member lists rooms %v", rooms.Rooms)
		}
	}
	if n, _ := b.DB.Outbox.Depth(context.Background()); n != 0 {
		t.Fatalf("rejected sends reached the outbox: %d", n)
	}

	// Streams of the other users get nothing of the room.
	carolStream, _ := openStream(t, b, carol, "", "")
	otherStream, _ := openStream(t, b, otherAda, "", "")
	adaStream, _ := openStream(t, b, ada, "", "")
	call(t, b, ada, "PUT", "/rooms/events/meetup/send/secret", map[string]string{"body": "members only"}, nil)
	adaStream.waitFor(t, "ada's own message", isMessage("members only"))
	time.Sleep(time.Second)
	// They get their stream's position frames, and nothing else.
	for name, s := range map[string]*eventStream{"carol": carolStream, "other tenant": otherStream} {
		for more := true; more; {
			select {
			case evt := <-s.events:
				if evt.Event != "position" {
					t.Fatalf("%s received %+v", name, evt)
				}
			default:
				more = false
			}
		}
	}
	// Resuming from position 0 gives nothing of the room either.
	replay, _ := openStream(t, b, carol, "", "0")
	time.Sleep(500 * time.Millisecond)
	for more := true; more; {
		select {
		case evt := <-replay.events:
			if evt.Event != "reset" && evt.Event != "position" {
				t.Fatalf("carol's replay received %+v", evt)
			}
		default:
			more = false
		}
	}
}

// TestSendsSurviveOutages: Synapse down, then the bridge restarted while
// messages wait; every accepted message arrives exactly once.
func TestSendsSurviveOutages(t *testing.T) {
	hs := harness.OwnSynapse(t, harness.SynapseOptions{})
	cfg := clientConfig(t, hs)
	cfg.ClientAPI.SendWait = time.Second
	b := startBridge(t, cfg)
	eventually(t, 60*time.Second, "the bridge to be ready", func() bool { return b.HS.Ready() })
	tenant, ada, bob := meetupWithAdaAndBob(t, b, b)
	stream, _ := openStream(t, b, ada, "", "")

	if err := hs.Pause(); err != nil {
		t.Fatal(err)
	}
	var sent struct{ State string }
	if code := call(t, b, bob, "PUT", "/rooms/events/meetup/send/down-1", map[string]string{"body": "sent while Synapse is down"}, &sent); code != 202 || sent.State != "pending" {
		t.Fatalf("send during outage: %d %+v", code, sent)
	}
	if err := hs.Resume(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "the queued message to be sent", func() bool {
		entry, _ := b.DB.Outbox.ByTxn(context.Background(), id.UserID(fmt.Sprintf("@openmeet_%s_bob:%s", tenant, hs.ServerName)), "down-1")
		return entry != nil && entry.State == "sent"
	})
	stream.waitFor(t, "the queued message", isMessage("sent while Synapse is down"))

	// Now the bridge goes down too, with messages waiting.
	if err := hs.Pause(); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		call(t, b, bob, "PUT", fmt.Sprintf("/rooms/events/meetup/send/restart-%d", i), map[string]string{"body": fmt.Sprintf("across restart %d", i)}, nil)
	}
	stopBridge(t, b)
	if err := hs.Resume(); err != nil {
		t.Fatal(err)
	}
	b2 := startBridge(t, cfg)
	want := map[string]int{"sent while Synapse is down": 1, "across restart 0": 1, "across restart 1": 1}
	eventually(t, 90*time.Second, "the messages after the restart", func() bool {
		return countBodies(t, b2)["across restart 1"] == 1 && countBodies(t, b2)["across restart 0"] == 1
	})
	time.Sleep(2 * time.Second)
	got := countBodies(t, b2)
	for body, n := range want {
		if got[body] != n {
			t.Fatalf("%q logged %d times, want %d (all: %v)", body, got[body], n, got)
		}
	}
}

// countBodies counts logged messages by body.
func countBodies(t *testing.T, b *bridge.Bridge) map[string]int {
	events, err := b.DB.EventLog.After(context.Background(), 0, 100000)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, e := range events {
		if e.Type == "m.room.message" {
			var evt struct {
				Content struct{ Body string } `json:"content"`
			}
			_ = json.Unmarshal(e.Raw, &evt)
			out[evt.Content.Body]++
		}
	}
	return out
}

// TestClientActions: edit, react, redact (own and, with the level, others'),
// typing and receipts, each seen on the other user's stream.
func TestClientActions(t *testing.T) {
	hs := harness.SharedSynapse(t)
	b := startBridge(t, clientConfig(t, hs))
	eventually(t, 60*time.Second, "the bridge to be ready", func() bool { return b.HS.Ready() })
	_, ada, bob := meetupWithAdaAndBob(t, b, b)
	bobStream, _ := openStream(t, b, bob, "", "")
	adaStream, _ := openStream(t, b, ada, "", "")
	room := "/rooms/events/meetup"
	var sent struct {
		EventID string `json:"event_id"`
	}
	call(t, b, ada, "PUT", room+"/send/a1", map[string]string{"body": "first draft"}, &sent)
	adaMsg := sent.EventID
	call(t, b, bob, "PUT", room+"/send/b1", map[string]string{"body": "bob says hi"}, &sent)
	bobMsg := sent.EventID
	adaStream.waitFor(t, "bob's message", isMessage("bob says hi"))

	if code := call(t, b, ada, "PUT", room+"/edit/a2", map[string]string{"event_id": adaMsg, "body": "final text"}, nil); code != 200 {
		t.Fatalf("edit: %d", code)
	}
	evt := bobStream.waitFor(t, "the edit", isMessage("* final text"))
	rel, _ := evt.Data["event"].(map[string]any)["content"].(map[string]any)["m.relates_to"].(map[string]any)
	if rel["rel_type"] != "m.replace" || rel["event_id"] != adaMsg {
		t.Fatalf("edit relation %v", rel)
	}
	var out map[string]any
	if code := call(t, b, bob, "PUT", room+"/edit/b2", map[string]string{"event_id": adaMsg, "body": "hijack"}, &out); code != 403 {
		t.Fatalf("editing another's message: %d %v", code, out)
	}
	if code := call(t, b, bob, "PUT", room+"/react/b3", map[string]string{"event_id": adaMsg, "key": "👍"}, &sent); code != 200 {
		t.Fatalf("react: %d", code)
	}
	reaction := sent.EventID
	adaStream.waitFor(t, "the reaction", func(e streamEvent) bool { return e.Event == "m.reaction" })
	// Removing one's reaction is redacting it.
	if code := call(t, b, bob, "PUT", room+"/redact/b4", map[string]string{"event_id": reaction}, nil); code != 200 {
		t.Fatalf("unreact: %d", code)
	}
	adaStream.waitFor(t, "the reaction's removal", func(e streamEvent) bool { return e.Event == "m.room.redaction" })
	// An attendee may not remove the host's message; the host may remove
	// the attendee's.
	if code := call(t, b, bob, "PUT", room+"/redact/b5", map[string]string{"event_id": adaMsg}, nil); code != 403 {
		t.Fatalf("attendee redacting host: %d", code)
	}
	if code := call(t, b, ada, "PUT", room+"/redact/a3", map[string]string{"event_id": bobMsg, "reason": "off topic"}, nil); code != 200 {
		t.Fatalf("host redacting attendee: %d", code)
	}
	if code := call(t, b, ada, "PUT", room+"/react/a4", map[string]string{"event_id": "$nope", "key": "x"}, nil); code != 404 {
		t.Fatalf("reaction to an unknown event: %d", code)
	}

	if code := call(t, b, ada, "PUT", room+"/typing", map[string]any{"typing": true}, nil); code != 200 {
		t.Fatalf("typing: %d", code)
	}
	evt = bobStream.waitFor(t, "ada typing", func(e streamEvent) bool { return e.Event == "m.typing" })
	if evt.ID != "" {
		t.Fatalf("typing carries a stream position: %+v", evt)
	}
	if users, _ := evt.Data["users"].([]any); len(users) != 1 || users[0].(map[string]any)["slug"] != "ada" || users[0].(map[string]any)["displayname"] == "" {
		t.Fatalf("typing names %v, want ada", evt.Data["users"])
	}
	// Bob has unread messages from Ada (the first one and its edit) until
	// his receipt.
	unread := func() float64 {
		var rooms struct {
			Rooms []map[string]any `json:"rooms"`
		}
		call(t, b, bob, "GET", "/rooms", nil, &rooms)
		return rooms.Rooms[0]["unread"].(float64)
	}
	if n := unread(); n != 2 {
		t.Fatalf("bob's unread count %v, want 2", n)
	}
	if code := call(t, b, bob, "POST", room+"/receipt", map[string]string{"event_id": adaMsg}, nil); code != 200 {
		t.Fatalf("receipt: %d", code)
	}
	evt = adaStream.waitFor(t, "bob's receipt", func(e streamEvent) bool { return e.Event == "m.receipt" })
	if users, _ := evt.Data["users"].([]any); len(users) != 1 || users[0].(map[string]any)["slug"] != "bob" {
		t.Fatalf("receipt names %v, want bob", evt.Data["users"])
	}
	if n := unread(); n != 1 {
		t.Fatalf("bob's unread count after reading the first message %v, want 1 (the edit)", n)
	}
}

// TestTicketsCookiesAndCORS: tickets expire; the cookie option works for
// EventSource; only configured origins get CORS headers.
func TestTicketsCookiesAndCORS(t *testing.T) {
	hs := harness.SharedSynapse(t)
	cfg := clientConfig(t, hs)
	cfg.ClientAPI.TicketTTL, cfg.ClientAPI.TicketCookie = time.Second, true
	cfg.ClientAPI.AllowedOrigins = []string{"http://frontend.test"}
	b := startBridge(t, cfg)
	tenant := harness.UniqueName("tenant-")
	provisionUser(t, b, tenant, "ada", "Ada")
	ada := mintJWT(t, jwtSecret, tenant, "ada", time.Hour)
	url := "http://" + b.Addr().String() + "/_openmeet/client/v1"

	ticketReq := func(origin string) *http.Response {
		req, _ := http.NewRequest("POST", url+"/events/ticket", nil)
		req.Header.Set("Authorization", "Bearer "+ada)
		req.Header.Set("Origin", origin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp
	}
	resp := ticketReq("http://frontend.test")
	if resp.Header.Get("Access-Control-Allow-Origin") != "http://frontend.test" || resp.Header.Get("Access-Control-Allow-Credentials") != "true" {
		t.Fatalf("CORS headers for an allowed origin: %v", resp.Header)
	}
	cookies := resp.Cookies()
	if len(cookies) != 1 || !cookies[0].HttpOnly {
		t.Fatalf("ticket cookie %+v", cookies)
	}
	if resp := ticketReq("http://evil.test"); resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("CORS headers for another origin: %v", resp.Header)
	}
	pre, _ := http.NewRequest("OPTIONS", url+"/rooms", nil)
	pre.Header.Set("Origin", "http://frontend.test")
	pre.Header.Set("Access-Control-Request-Method", "GET")
	presp, err := http.DefaultClient.Do(pre)
	if err != nil {
		t.Fatal(err)
	}
	_ = presp.Body.Close()
	if presp.StatusCode != 204 || !strings.Contains(presp.Header.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Fatalf("preflight: %d %v", presp.StatusCode, presp.Header)
	}

	// The cookie opens a stream, once.
	streamReq, _ := http.NewRequest("GET", url+"/events", nil)
	streamReq.AddCookie(cookies[0])
	sresp, err := http.DefaultClient.Do(streamReq)
	if err != nil {
		t.Fatal(err)
	}
	_ = sresp.Body.Close()
	if sresp.StatusCode != 200 {
		t.Fatalf("stream with the ticket cookie: %d", sresp.StatusCode)
	}
	// An unused ticket expires.
	var ticket struct {
		Ticket string `json:"ticket"`
	}
	call(t, b, ada, "POST", "/events/ticket", nil, &ticket)
	time.Sleep(1500 * time.Millisecond)
	if _, code := openStream(t, b, "", "?ticket="+ticket.Ticket, ""); code != 401 {
		t.Fatalf("expired ticket: %d", code)
	}
}

// meetupWithAdaAndBob provisions (through a) a public event "meetup" of a
// new tenant with Ada as host and Bob as attendee, and waits until
// Synapse's pushes have made both members (as seen by b). It returns the
// tenant and their JWTs.
func meetupWithAdaAndBob(t *testing.T, a, b *bridge.Bridge) (tenant, ada, bob string) {
	t.Helper()
	tenant = harness.UniqueName("tenant-")
	provisionUser(t, a, tenant, "ada", "Ada")
	provisionUser(t, a, tenant, "bob", "Bob")
	base := "/tenants/" + tenant + "/events/meetup"
	provision(t, a, "PUT", base, map[string]any{"name": "Meetup", "visibility": "public"}, nil)
	provision(t, a, "POST", base+"/members:batch", map[string]any{"set": []map[string]string{{"user_slug": "ada", "role": "host"}, {"user_slug": "bob", "role": "attendee"}}}, nil)
	ada, bob = mintJWT(t, jwtSecret, tenant, "ada", time.Hour), mintJWT(t, jwtSecret, tenant, "bob", time.Hour)
	eventually(t, 30*time.Second, "memberships", func() bool {
		return call(t, b, bob, "GET", "/rooms/events/meetup/messages?limit=1", nil, nil) == 200 &&
			call(t, b, ada, "GET", "/rooms/events/meetup/messages?limit=1", nil, nil) == 200
	})
	return tenant, ada, bob
}

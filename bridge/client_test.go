package bridge_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/openmeet-team/openmeet-bridge/bridge"
	"github.com/openmeet-team/openmeet-bridge/internal/harness"
)

const jwtSecret = "client-api-test-secret-0123456789abcdef"

func mintJWT(t testing.TB, secret, tenant, slug string, ttl time.Duration) string {
	t.Helper()
	token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": slug, "tenant": tenant, "exp": time.Now().Add(ttl).Unix(),
	}).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return token
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
	var reader io.Reader
	if body != nil {
		data, _ := json.Marshal(body)
		reader = strings.NewReader(string(data))
	}
	req, _ := http.NewRequest(method, "http://"+b.Addr().String()+"/_openmeet/client/v1"+path, reader)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %d %q", method, path, resp.StatusCode, raw)
		}
	}
	return resp.StatusCode
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
		var rooms struct {
			Rooms []map[string]any `json:"rooms"`
		}
		call(t, b, ada, "GET", "/rooms", nil, &rooms)
		return len(rooms.Rooms) == 1 && rooms.Rooms[0]["slug"] == "meetup"
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

package bridge_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/openmeet-team/openmeet-bridge/bridge"
	"github.com/openmeet-team/openmeet-bridge/internal/harness"
)

// A 200 means done for the caller's next call: these tests make that next
// call at once, without waiting for anything, several times over so that
// the race with Synapse's pushes is real.

type memberOut struct {
	UserID     string  `json:"user_id"`
	Membership *string `json:"membership"`
}

type roomsOut struct {
	Rooms []struct {
		Slug   string `json:"slug"`
		Unread int    `json:"unread"`
	} `json:"rooms"`
}

// inRooms reports whether GET /rooms lists the portal slug for token.
func inRooms(t *testing.T, b *bridge.Bridge, token, slug string) bool {
	t.Helper()
	var rooms roomsOut
	if code := call(t, b, token, "GET", "/rooms", nil, &rooms); code != 200 {
		t.Fatalf("GET /rooms: %d", code)
	}
	for _, r := range rooms.Rooms {
		if r.Slug == slug {
			return true
		}
	}
	return false
}

// joinedOf counts how many of the tenant's users slugs the bridge's room
// member table has joined to roomID: what the client API checks.
func joinedOf(t *testing.T, b *bridge.Bridge, roomID, tenant string, slugs []string) int {
	t.Helper()
	joined, err := b.DB.Members.JoinedMembers(context.Background(), id.RoomID(roomID))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, slug := range slugs {
		g, err := b.DB.Ghosts.Get(context.Background(), tenant, slug)
		if err != nil || g == nil {
			t.Fatal(g, err)
		}
		if slices.Contains(joined, g.UserID) {
			n++
		}
	}
	return n
}

// TestMemberCallsAnswerWhenUsable: after PUT member answers 200 the user
// can use the room through the client API at once; after DELETE member
// answers 200 it cannot; the same for batches. Public and private portals
// (a private one needs an invite before the join).
func TestMemberCallsAnswerWhenUsable(t *testing.T) {
	hs := harness.SharedSynapse(t)
	b := startBridge(t, clientConfig(t, hs))
	eventually(t, 60*time.Second, "the bridge to be ready", func() bool { return b.HS.Ready() })
	tenant := harness.UniqueName("tenant-")
	provisionUser(t, b, tenant, "ada", "Ada")
	for _, visibility := range []string{"public", "private"} {
		slug := visibility + "-meetup"
		base := "/tenants/" + tenant + "/events/" + slug
		room := "/rooms/events/" + slug
		if code := provision(t, b, "PUT", base, map[string]any{"name": "Meetup", "visibility": visibility}, nil); code != 200 {
			t.Fatalf("PUT portal: %d", code)
		}
		if code := provision(t, b, "PUT", base+"/members/ada", map[string]string{"role": "host"}, nil); code != 200 {
			t.Fatalf("PUT host: %d", code)
		}
		for i := range 4 {
			user := fmt.Sprintf("%s-u%d", visibility, i)
			provisionUser(t, b, tenant, user, "User "+user)
			token := mintJWT(t, jwtSecret, tenant, user, time.Hour)
			var m memberOut
			if code := provision(t, b, "PUT", base+"/members/"+user, map[string]string{"role": "attendee"}, &m); code != 200 {
				t.Fatalf("PUT member %s: %d", user, code)
			}
			if m.Membership == nil || *m.Membership != "join" {
				t.Fatalf("PUT member %s answered membership %v, want join", user, m.Membership)
			}
			if !inRooms(t, b, token, slug) {
				t.Fatalf("%s: GET /rooms right after PUT member 200 lacks the room", user)
			}
			if code := call(t, b, token, "PUT", room+"/send/hi", map[string]string{"body": "hello"}, nil); code != 200 {
				t.Fatalf("%s: send right after PUT member 200: %d", user, code)
			}
			if code := provision(t, b, "DELETE", base+"/members/"+user, nil, nil); code != 200 {
				t.Fatalf("DELETE member %s: %d", user, code)
			}
			var out map[string]any
			if code := call(t, b, token, "PUT", room+"/send/bye", map[string]string{"body": "still here?"}, &out); code != 403 {
				t.Fatalf("%s: send right after DELETE member 200: %d %v, want 403", user, code, out)
			}
			if inRooms(t, b, token, slug) {
				t.Fatalf("%s: GET /rooms right after DELETE member 200 lists the room", user)
			}
			// Back in, with the leave just logged: the stale leave must not
			// pass for the new join, nor the old join for anything.
			if code := provision(t, b, "PUT", base+"/members/"+user, map[string]string{"role": "attendee"}, nil); code != 200 {
				t.Fatalf("PUT member %s again: %d", user, code)
			}
			if code := call(t, b, token, "PUT", room+"/send/back", map[string]string{"body": "back"}, nil); code != 200 {
				t.Fatalf("%s: send right after re-adding: %d", user, code)
			}
		}

		// Batches: everyone set can send at once, everyone removed cannot.
		// The public portal's batch is larger than the number of users the
		// bridge looks up one by one (16), so it reads the whole room.
		size := 3
		if visibility == "public" {
			size = 18
		}
		var slugs []string
		var set []map[string]string
		for i := range size {
			user := fmt.Sprintf("%s-batch%d", visibility, i)
			provisionUser(t, b, tenant, user, "Batch "+user)
			slugs = append(slugs, user)
			set = append(set, map[string]string{"user_slug": user, "role": "attendee"})
		}
		var br struct {
			Portal portalOut `json:"portal"`
		}
		if code := provision(t, b, "POST", base+"/members:batch", map[string]any{"set": set}, &br); code != 200 {
			t.Fatalf("batch set: %d", code)
		}
		// First all at once, as the client API sees them (one query, so
		// that the last pushes are not given time by the calls before).
		if n := joinedOf(t, b, br.Portal.RoomID, tenant, slugs); n != len(slugs) {
			t.Fatalf("right after the batch answered 200, %d of its %d users are joined", n, len(slugs))
		}
		for _, user := range slugs {
			token := mintJWT(t, jwtSecret, tenant, user, time.Hour)
			if code := call(t, b, token, "PUT", room+"/send/hi", map[string]string{"body": "hello"}, nil); code != 200 {
				t.Fatalf("%s: send right after batch 200: %d", user, code)
			}
		}
		if code := provision(t, b, "POST", base+"/members:batch", map[string]any{"remove": slugs}, nil); code != 200 {
			t.Fatalf("batch remove: %d", code)
		}
		if n := joinedOf(t, b, br.Portal.RoomID, tenant, slugs); n != 0 {
			t.Fatalf("right after the removal answered 200, %d of its %d users are still joined", n, len(slugs))
		}
		for _, user := range slugs {
			token := mintJWT(t, jwtSecret, tenant, user, time.Hour)
			if code := call(t, b, token, "PUT", room+"/send/bye", map[string]string{"body": "bye"}, nil); code != 403 {
				t.Fatalf("%s: send right after batch removal 200: %d, want 403", user, code)
			}
		}
		// Closing: the host, still a member, can no longer use the room
		// right after DELETE answers 200.
		hostToken := mintJWT(t, jwtSecret, tenant, "ada", time.Hour)
		if code := call(t, b, hostToken, "PUT", room+"/send/before-close-"+visibility, map[string]string{"body": "closing"}, nil); code != 200 {
			t.Fatalf("host send before close: %d", code)
		}
		if code := provision(t, b, "DELETE", base, nil, nil); code != 200 {
			t.Fatalf("close: %d", code)
		}
		if code := call(t, b, hostToken, "PUT", room+"/send/after-close", map[string]string{"body": "closed?"}, nil); code != 403 {
			t.Fatalf("host send right after close 200: %d, want 403", code)
		}
		if inRooms(t, b, hostToken, slug) {
			t.Fatal("GET /rooms right after close 200 lists the room")
		}
	}
}

// TestMemberMembershipIsMatrix: the membership of member answers is a
// Matrix membership or absent, in single reads and in the list; a member
// kicked in Matrix shows "leave" (not "", as the list used to say).
func TestMemberMembershipIsMatrix(t *testing.T) {
	hs := harness.SharedSynapse(t)
	b := startBridge(t, clientConfig(t, hs))
	eventually(t, 60*time.Second, "the bridge to be ready", func() bool { return b.HS.Ready() })
	tenant := harness.UniqueName("tenant-")
	provisionUser(t, b, tenant, "ada", "Ada")
	bob := provisionUser(t, b, tenant, "bob", "Bob")
	base := "/tenants/" + tenant + "/events/meetup"
	var br struct {
		Portal portalOut `json:"portal"`
	}
	provision(t, b, "PUT", base, map[string]any{"name": "Meetup", "visibility": "public"}, nil)
	if code := provision(t, b, "POST", base+"/members:batch", map[string]any{"set": []map[string]string{{"user_slug": "ada", "role": "host"}, {"user_slug": "bob", "role": "attendee"}}}, &br); code != 200 {
		t.Fatalf("batch: %d", code)
	}
	list := func() map[string]*string {
		var out struct {
			Members []memberOut `json:"members"`
		}
		if code := provision(t, b, "GET", base+"/members", nil, &out); code != 200 {
			t.Fatalf("list: %d", code)
		}
		got := map[string]*string{}
		for _, m := range out.Members {
			got[m.UserID] = m.Membership
		}
		return got
	}
	for user, m := range list() {
		if m == nil || *m != "join" {
			t.Fatalf("right after the batch, %s has membership %v, want join", user, m)
		}
	}
	// The bot kicks Bob in Matrix; the bridge still wants him, and says
	// what Synapse reports.
	kick := fmt.Sprintf("%s/_matrix/client/v3/rooms/%s/kick", hs.URL, url.PathEscape(br.Portal.RoomID))
	req, _ := http.NewRequest("POST", kick, strings.NewReader(fmt.Sprintf(`{"user_id":%q}`, bob)))
	req.Header.Set("Authorization", "Bearer "+hs.AS.ASToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("kick: %d", resp.StatusCode)
	}
	eventually(t, 30*time.Second, "the kick to be pushed", func() bool {
		m := list()[bob.String()]
		return m != nil && *m == "leave"
	})
	var m memberOut
	if code := provision(t, b, "GET", base+"/members/bob", nil, &m); code != 200 || m.Membership == nil || *m.Membership != "leave" {
		t.Fatalf("GET member bob: %d %v, want leave", code, m.Membership)
	}
}

type sendOut struct {
	State   string `json:"state"`
	EventID string `json:"event_id"`
}

// TestActOnEventsAtOnce: edit, react, redact and receipt of an event work
// right after its send answered 200, before Synapse has pushed it.
func TestActOnEventsAtOnce(t *testing.T) {
	hs := harness.SharedSynapse(t)
	b := startBridge(t, clientConfig(t, hs))
	eventually(t, 60*time.Second, "the bridge to be ready", func() bool { return b.HS.Ready() })
	_, ada, bob := meetupWithAdaAndBob(t, b, b)
	room := "/rooms/events/meetup"
	unread := func(token string) int {
		var rooms roomsOut
		call(t, b, token, "GET", "/rooms", nil, &rooms)
		if len(rooms.Rooms) != 1 {
			t.Fatalf("rooms %+v", rooms)
		}
		return rooms.Rooms[0].Unread
	}
	for i := range 4 {
		var sent sendOut
		if code := call(t, b, ada, "PUT", room+fmt.Sprintf("/send/m%d", i), map[string]string{"body": fmt.Sprintf("message %d", i)}, &sent); code != 200 || sent.EventID == "" {
			t.Fatalf("send %d: %d %+v", i, code, sent)
		}
		steps := []struct {
			name, token, path string
			body              map[string]string
		}{
			{"react", bob, fmt.Sprintf("/react/r%d", i), map[string]string{"event_id": sent.EventID, "key": "👍"}},
			{"receipt", bob, "/receipt", map[string]string{"event_id": sent.EventID}},
			{"edit", ada, fmt.Sprintf("/edit/e%d", i), map[string]string{"event_id": sent.EventID, "body": "edited"}},
			{"redact", ada, fmt.Sprintf("/redact/d%d", i), map[string]string{"event_id": sent.EventID}},
		}
		if i%2 == 1 { // each action gets to be the first after the send
			steps[0], steps[1], steps[2] = steps[2], steps[0], steps[1]
		}
		for _, s := range steps {
			method := "PUT"
			if s.name == "receipt" {
				method = "POST"
			}
			var out map[string]any
			if code := call(t, b, s.token, method, room+s.path, s.body, &out); code != 200 {
				t.Fatalf("round %d: %s right after the send: %d %v", i, s.name, code, out)
			}
			if s.name == "receipt" && i%2 == 0 {
				// The receipt waited for the message's push and marked
				// exactly up to it.
				if n := unread(bob); n != 0 {
					t.Fatalf("round %d: bob's unread count after reading the newest message: %d", i, n)
				}
			}
		}
	}
}

// TestActOnEventsNotInLog: events the log no longer has (pruned) are read
// from Synapse as the caller; events of other rooms or that the caller may
// not see are 404; malformed IDs are 400. Receipts of unlogged events move
// the read marker by the documented rule.
func TestActOnEventsNotInLog(t *testing.T) {
	hs := harness.SharedSynapse(t)
	b := startBridge(t, clientConfig(t, hs))
	eventually(t, 60*time.Second, "the bridge to be ready", func() bool { return b.HS.Ready() })
	tenant, ada, bob := meetupWithAdaAndBob(t, b, b)
	ctx := context.Background()
	room := "/rooms/events/meetup"
	// sendLogged sends as token and waits until the event is logged.
	sendLogged := func(token, roomPath, txn, body string) id.EventID {
		t.Helper()
		var sent sendOut
		if code := call(t, b, token, "PUT", roomPath+"/send/"+txn, map[string]string{"body": body}, &sent); code != 200 {
			t.Fatalf("send %s: %d", txn, code)
		}
		eventually(t, 30*time.Second, "the message to be logged", func() bool {
			_, ok, _ := b.DB.EventLog.Position(ctx, id.EventID(sent.EventID))
			return ok
		})
		return id.EventID(sent.EventID)
	}
	forget := func(eventID id.EventID) {
		t.Helper()
		if _, err := b.DB.Exec(ctx, "DELETE FROM event_log WHERE event_id = $1", eventID); err != nil {
			t.Fatal(err)
		}
	}
	unread := func() int {
		var rooms roomsOut
		call(t, b, ada, "GET", "/rooms", nil, &rooms)
		return rooms.Rooms[0].Unread
	}
	m1 := sendLogged(bob, room, "m1", "one")
	sendLogged(bob, room, "m2", "two")
	m3 := sendLogged(bob, room, "m3", "three")
	if n := unread(); n != 3 {
		t.Fatalf("ada's unread count %d, want 3", n)
	}

	// A pruned event that is older than what the log has: the marker stays.
	forget(m1)
	if n := unread(); n != 2 {
		t.Fatalf("unread after pruning m1: %d", n)
	}
	if code := call(t, b, ada, "POST", room+"/receipt", map[string]string{"event_id": m1.String()}, nil); code != 200 {
		t.Fatalf("receipt of a pruned event: %d", code)
	}
	if n := unread(); n != 2 {
		t.Fatalf("a receipt of an older pruned event moved the marker: unread %d, want 2", n)
	}
	// One newer than anything logged in the room: all that is logged so far
	// is read (m2), after a bounded wait for its push.
	forget(m3)
	if code := call(t, b, ada, "POST", room+"/receipt", map[string]string{"event_id": m3.String()}, nil); code != 200 {
		t.Fatalf("receipt of a newer unlogged event: %d", code)
	}
	if n := unread(); n != 0 {
		t.Fatalf("a receipt of a newer unlogged event left %d unread, want 0", n)
	}

	// React, edit (own only) and redact an event read from Synapse.
	var out map[string]any
	if code := call(t, b, ada, "PUT", room+"/react/r1", map[string]string{"event_id": m1.String(), "key": "🎉"}, &out); code != 200 {
		t.Fatalf("react to a pruned event: %d %v", code, out)
	}
	if code := call(t, b, ada, "PUT", room+"/edit/e1", map[string]string{"event_id": m1.String(), "body": "hijack"}, &out); code != 403 {
		t.Fatalf("editing another's pruned message: %d %v, want 403", code, out)
	}
	if code := call(t, b, bob, "PUT", room+"/edit/e2", map[string]string{"event_id": m1.String(), "body": "one, edited"}, &out); code != 200 {
		t.Fatalf("editing one's own pruned message: %d %v", code, out)
	}
	if code := call(t, b, bob, "PUT", room+"/redact/d1", map[string]string{"event_id": m3.String()}, &out); code != 200 {
		t.Fatalf("redacting one's own pruned message: %d %v", code, out)
	}
	if code := call(t, b, ada, "PUT", room+"/redact/d2", map[string]string{"event_id": m1.String()}, &out); code != 200 {
		t.Fatalf("the host redacting a pruned message: %d %v", code, out)
	}

	// An event of another portal the caller is also in: 404, whether the
	// log has it or Synapse is asked.
	base := "/tenants/" + tenant + "/events/other"
	provision(t, b, "PUT", base, map[string]any{"name": "Other", "visibility": "public"}, nil)
	if code := provision(t, b, "PUT", base+"/members/ada", map[string]string{"role": "host"}, nil); code != 200 {
		t.Fatalf("PUT member of the other portal: %d", code)
	}
	other := sendLogged(ada, "/rooms/events/other", "o1", "elsewhere")
	// An event of a room the caller is not in at all.
	alice := hs.NewUser(t, "alice")
	privateRoom, err := alice.CreateRoom(ctx, map[string]any{"preset": "private_chat"})
	if err != nil {
		t.Fatal(err)
	}
	secret, err := alice.SendText(ctx, privateRoom, "not for ghosts")
	if err != nil {
		t.Fatal(err)
	}
	checkAll := func(eventID string, code int, errcode string) {
		t.Helper()
		for _, a := range []struct {
			method, path, token string
			body                map[string]string
		}{
			{"PUT", "/react/x", bob, map[string]string{"event_id": eventID, "key": "x"}},
			{"PUT", "/edit/x", ada, map[string]string{"event_id": eventID, "body": "x"}},
			{"PUT", "/redact/x", ada, map[string]string{"event_id": eventID}},
			{"POST", "/receipt", ada, map[string]string{"event_id": eventID}},
		} {
			var out map[string]any
			if got := call(t, b, a.token, a.method, room+a.path, a.body, &out); got != code || out["errcode"] != errcode {
				t.Errorf("%s %q: %d %v, want %d %s", a.path, eventID, got, out, code, errcode)
			}
		}
	}
	checkAll(other.String(), 404, "M_NOT_FOUND")
	forget(other)
	checkAll(other.String(), 404, "M_NOT_FOUND")
	checkAll(secret, 404, "M_NOT_FOUND")
	checkAll("$"+strings.Repeat("A", 43), 404, "M_NOT_FOUND")
	for _, bad := range []string{"", "nope", "$", "$" + strings.Repeat("a", 255), "$a\x00b", "$a b", "$a\nb", "$a/../../b\u2028"} {
		checkAll(bad, 400, "M_INVALID_PARAM")
		if bad == "" {
			continue // no reply_to is a plain message
		}
		if code := call(t, b, ada, "PUT", room+"/send/reply", map[string]string{"body": "hi", "reply_to": bad}, &out); code != 400 {
			t.Errorf("reply_to %q: %d %v, want 400", bad, code, out)
		}
	}
	for _, slug := range []string{"ada", "bob"} {
		g, err := b.DB.Ghosts.Get(ctx, tenant, slug)
		if err != nil || g == nil {
			t.Fatal(g, err)
		}
		for _, txn := range []string{"x", "reply"} {
			if entry, err := b.DB.Outbox.ByTxn(ctx, g.UserID, txn); err != nil || entry != nil {
				t.Fatalf("a rejected action of %s reached the outbox: %+v %v", slug, entry, err)
			}
		}
	}
}

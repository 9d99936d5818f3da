package bridge_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/openmeet-team/openmeet-bridge/bridge"
	"github.com/openmeet-team/openmeet-bridge/internal/harness"
)

// positionFrame fails unless evt is a position frame whose id and data
// agree, and returns the position.
func positionFrame(t *testing.T, evt streamEvent) int64 {
	t.Helper()
	pos, err := strconv.ParseInt(evt.ID, 10, 64)
	if evt.Event != "position" || err != nil || evt.Data["stream_pos"] != float64(pos) {
		t.Fatalf("got %+v, want a position frame", evt)
	}
	return pos
}

func nextEvent(t *testing.T, s *eventStream) streamEvent {
	t.Helper()
	return s.waitFor(t, "the next event", func(streamEvent) bool { return true })
}

func sendText(t *testing.T, b *bridge.Bridge, token, txnID, body string) string {
	t.Helper()
	var sent struct {
		State   string `json:"state"`
		EventID string `json:"event_id"`
	}
	if code := call(t, b, token, "PUT", "/rooms/events/meetup/send/"+txnID, map[string]string{"body": body}, &sent); code != 200 || sent.State != "sent" {
		t.Fatalf("send %q: %d %+v", body, code, sent)
	}
	return sent.EventID
}

// TestStreamResumableFromItsFirstByte, on real Synapse: a stream cut
// before any live event resumes from the position of its first frame and
// misses nothing; a resumed stream ends its catch-up with the position,
// past events of rooms the user is not in.
func TestStreamResumableFromItsFirstByte(t *testing.T) {
	hs := harness.SharedSynapse(t)
	b := startBridge(t, clientConfig(t, hs))
	eventually(t, 60*time.Second, "the bridge to be ready", func() bool { return b.HS.Ready() })
	_, ada, bob := meetupWithAdaAndBob(t, b, b)
	_, _, otherBob := meetupWithAdaAndBob(t, b, b)

	stream, code := openStream(t, b, ada, "", "")
	if code != 200 {
		t.Fatalf("stream: %d", code)
	}
	start := positionFrame(t, nextEvent(t, stream))
	stream.close() // cut before any live event
	sendText(t, b, bob, "cut-1", "sent during the cut 1")
	sendText(t, b, bob, "cut-2", "sent during the cut 2")
	// The last event before the resume is in a room Ada is not in.
	otherStream, _ := openStream(t, b, otherBob, "", "")
	sendText(t, b, otherBob, "other-1", "not for ada")
	other := otherStream.waitFor(t, "the other room's message", isMessage("not for ada"))
	otherPos, _ := strconv.ParseInt(other.ID, 10, 64)

	resumed, code := openStream(t, b, ada, "", strconv.FormatInt(start, 10))
	if code != 200 {
		t.Fatalf("resume: %d", code)
	}
	if got := positionFrame(t, nextEvent(t, resumed)); got != start {
		t.Fatalf("the resumed stream starts at %d, want %d", got, start)
	}
	seen := map[string]int{}
	var end int64
	for end == 0 {
		evt := nextEvent(t, resumed)
		if evt.Event == "position" {
			end = positionFrame(t, evt)
			continue
		}
		if id, _ := strconv.ParseInt(evt.ID, 10, 64); id <= start || id >= otherPos {
			t.Fatalf("catch-up gave %+v, outside (%d, %d)", evt, start, otherPos)
		}
		seen[bodyOf(evt)]++
	}
	if seen["sent during the cut 1"] != 1 || seen["sent during the cut 2"] != 1 || seen["not for ada"] != 0 {
		t.Fatalf("catch-up gave %v, want each message sent during the cut once", seen)
	}
	if end < otherPos {
		t.Fatalf("the catch-up ends at %d, before the other room's event at %d", end, otherPos)
	}
}

// TestHistoryThenStream, on real Synapse: history says which stream
// position it is consistent with, and a stream opened from there carries
// what came after the page, and nothing the page already had.
func TestHistoryThenStream(t *testing.T) {
	hs := harness.SharedSynapse(t)
	b := startBridge(t, clientConfig(t, hs))
	eventually(t, 60*time.Second, "the bridge to be ready", func() bool { return b.HS.Ready() })
	_, ada, bob := meetupWithAdaAndBob(t, b, b)
	watch, _ := openStream(t, b, ada, "", "")
	first := sendText(t, b, bob, "h-1", "before the page 1")
	second := sendText(t, b, bob, "h-2", "before the page 2")
	watch.waitFor(t, "the second message to be logged", isMessage("before the page 2"))
	watch.close()

	var page struct {
		Chunk []struct {
			Event struct {
				EventID string `json:"event_id"`
			} `json:"event"`
		} `json:"chunk"`
		StreamPos *int64 `json:"stream_pos"`
	}
	if code := call(t, b, ada, "GET", "/rooms/events/meetup/messages?limit=50", nil, &page); code != 200 || page.StreamPos == nil {
		t.Fatalf("history: %d, stream_pos %v", code, page.StreamPos)
	}
	inPage := map[string]bool{}
	for _, item := range page.Chunk {
		inPage[item.Event.EventID] = true
	}
	if !inPage[first] || !inPage[second] {
		t.Fatalf("the page lacks the messages sent before it: %v", inPage)
	}
	// Every message of the room logged up to stream_pos is in the page.
	logged, err := b.DB.EventLog.After(context.Background(), 0, 100000)
	if err != nil {
		t.Fatal(err)
	}
	room := meetupRoomID(t, b, ada)
	for _, evt := range logged {
		if evt.Position <= *page.StreamPos && evt.Type == "m.room.message" && evt.RoomID.String() == room && !inPage[evt.EventID.String()] {
			t.Fatalf("logged message %s at %d <= stream_pos %d is not in the page", evt.EventID, evt.Position, *page.StreamPos)
		}
	}

	after := sendText(t, b, bob, "h-3", "after the page")
	stream, _ := openStream(t, b, ada, "", strconv.FormatInt(*page.StreamPos, 10))
	positionFrame(t, nextEvent(t, stream))
	evt := stream.waitFor(t, "a message after the page", func(e streamEvent) bool { return e.Event == "m.room.message" })
	if id, _ := evt.Data["event"].(map[string]any)["event_id"].(string); id != after {
		t.Fatalf("the stream from stream_pos gave %s (%q) first, want %s: the page had it already", id, bodyOf(evt), after)
	}
}

// meetupRoomID is the room ID of the meetup as the user's room list names it.
func meetupRoomID(t *testing.T, b *bridge.Bridge, token string) string {
	t.Helper()
	var rooms struct {
		Rooms []struct {
			Slug   string `json:"slug"`
			RoomID string `json:"room_id"`
		} `json:"rooms"`
	}
	call(t, b, token, "GET", "/rooms", nil, &rooms)
	for _, r := range rooms.Rooms {
		if r.Slug == "meetup" {
			return r.RoomID
		}
	}
	t.Fatal("no meetup room")
	return ""
}

// TestDuplicateReaction, on real Synapse: reacting twice with the same key
// is 409 M_DUPLICATE_ANNOTATION (also when the second txn id is repeated),
// never 502; after the reaction is taken back, reacting again works.
func TestDuplicateReaction(t *testing.T) {
	hs := harness.SharedSynapse(t)
	b := startBridge(t, clientConfig(t, hs))
	eventually(t, 60*time.Second, "the bridge to be ready", func() bool { return b.HS.Ready() })
	_, ada, bob := meetupWithAdaAndBob(t, b, b)
	msg := sendText(t, b, ada, "m-1", "react to me")
	react := func(txnID string) (int, map[string]any) {
		var out map[string]any
		code := call(t, b, bob, "PUT", "/rooms/events/meetup/react/"+txnID, map[string]string{"event_id": msg, "key": "👍"}, &out)
		return code, out
	}
	code, out := react("r-1")
	if code != 200 || out["event_id"] == "" {
		t.Fatalf("first reaction: %d %v", code, out)
	}
	reaction := out["event_id"].(string)
	for _, txnID := range []string{"r-2", "r-2", "r-3"} {
		if code, out := react(txnID); code != http.StatusConflict || out["errcode"] != "M_DUPLICATE_ANNOTATION" {
			t.Fatalf("the same reaction again (%s): %d %v, want 409 M_DUPLICATE_ANNOTATION", txnID, code, out)
		}
	}
	if code, out := react("r-1"); code != 200 || out["event_id"] != reaction {
		t.Fatalf("the first reaction's txn id again: %d %v, want 200 with %s", code, out, reaction)
	}
	// The toggle: take it back (redact it), then react again.
	if code := call(t, b, bob, "PUT", "/rooms/events/meetup/redact/u-1", map[string]string{"event_id": reaction}, nil); code != 200 {
		t.Fatalf("taking the reaction back: %d", code)
	}
	if code, out := react("r-4"); code != 200 || out["event_id"] == reaction {
		t.Fatalf("reacting after taking it back: %d %v", code, out)
	}
}

// TestRoomPowerAndRetryAfter, on real Synapse: the room endpoint gives the
// user's level and the redact level; a refused stream says when to retry
// in its body, and CORS lets a page of an allowed origin read Retry-After
// and the error (and no other origin).
func TestRoomPowerAndRetryAfter(t *testing.T) {
	hs := harness.SharedSynapse(t)
	cfg := clientConfig(t, hs)
	cfg.ClientAPI.AllowedOrigins = []string{"http://frontend.test"}
	cfg.ClientAPI.Stream.MaxPerUser = 2
	b := startBridge(t, cfg)
	eventually(t, 60*time.Second, "the bridge to be ready", func() bool { return b.HS.Ready() })
	_, ada, bob := meetupWithAdaAndBob(t, b, b)
	for _, user := range []struct {
		token        string
		level        float64
		mayRedactAll bool
	}{{ada, 100, true}, {bob, 0, false}} {
		var room map[string]any
		if code := call(t, b, user.token, "GET", "/rooms/events/meetup", nil, &room); code != 200 {
			t.Fatalf("room: %d %v", code, room)
		}
		redact, _ := room["redact_level"].(float64)
		if room["power_level"] != user.level || room["slug"] != "meetup" || (room["power_level"].(float64) >= redact) != user.mayRedactAll {
			t.Fatalf("room as a user of level %v: %v", user.level, room)
		}
	}
	if code := call(t, b, bob, "GET", "/rooms/events/nope", nil, nil); code != 404 {
		t.Fatalf("unknown room: %d", code)
	}

	// A stream for an allowed origin works through the CORS wrapper (it is
	// taken over and parked) and carries the CORS headers.
	req, _ := http.NewRequest("GET", "http://"+b.Addr().String()+"/_openmeet/client/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+ada)
	req.Header.Set("Origin", "http://frontend.test")
	first, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Body.Close()
	if first.StatusCode != 200 || first.Header.Get("Access-Control-Allow-Origin") != "http://frontend.test" ||
		first.Header.Get("Access-Control-Expose-Headers") != "Retry-After" {
		t.Fatalf("stream for an allowed origin: %d %v", first.StatusCode, first.Header)
	}
	lines := bufio.NewReader(first.Body)
	for line := ""; line != "event: position\n"; {
		if line, err = lines.ReadString('\n'); err != nil {
			t.Fatalf("stream for an allowed origin ended before its position: %v", err)
		}
	}
	for range cfg.ClientAPI.Stream.MaxPerUser - 1 {
		if _, code := openStream(t, b, ada, "", ""); code != 200 {
			t.Fatalf("stream: %d", code)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var refusal struct {
		ErrCode      string `json:"errcode"`
		RetryAfterMS int64  `json:"retry_after_ms"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&refusal)
	if resp.StatusCode != http.StatusServiceUnavailable || refusal.ErrCode != "M_LIMIT_EXCEEDED" || refusal.RetryAfterMS <= 0 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("a stream over the per-user limit: %d %+v %v", resp.StatusCode, refusal, resp.Header)
	}
	if got := resp.Header.Get("Access-Control-Expose-Headers"); got != "Retry-After" {
		t.Fatalf("Access-Control-Expose-Headers %q, want Retry-After", got)
	}
	// Matrix errors carry this API's CORS headers, not "*": a page on an
	// allowed origin reads them (also with credentials), others do not.
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "http://frontend.test" {
		t.Fatalf("Access-Control-Allow-Origin of an error %q, want the allowed origin", got)
	}
	req.Header.Set("Origin", "http://evil.test")
	other, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = other.Body.Close()
	if other.StatusCode != http.StatusServiceUnavailable || other.Header.Get("Access-Control-Allow-Origin") != "" || other.Header.Get("Access-Control-Expose-Headers") != "" {
		t.Fatalf("an error to another origin: %d %v", other.StatusCode, other.Header)
	}
}

package sse

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http/httputil"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/openmeet-team/openmeet-bridge/database"
)

// sseEvent is one event as a browser's EventSource dispatches it.
type sseEvent struct {
	id, name, data string
	hasID          bool
}

// parseSSE reads a stream the way the HTML standard tells EventSource to:
// lines end at CR, LF or CRLF; a blank line dispatches; "field: value" or
// "field" alone; one space after the colon is dropped; comments start with
// a colon; an id containing NUL is ignored. Unlike a browser it also
// returns events with empty data, so that nothing is hidden from a test.
func parseSSE(stream []byte) (events []sseEvent, rest []byte) {
	var cur sseEvent
	var data []string
	pending := stream // from the start of the event not dispatched yet
	for {
		i := bytes.IndexAny(stream, "\r\n")
		if i < 0 || (stream[i] == '\r' && i+1 == len(stream)) {
			// An incomplete line (a CR at the very end may be half of a
			// CRLF): the event waits for more.
			return events, pending
		}
		line := string(stream[:i])
		if stream[i] == '\r' && stream[i+1] == '\n' {
			i++
		}
		stream = stream[i+1:]
		if line == "" {
			if data != nil || cur.name != "" || cur.hasID {
				cur.data = strings.Join(data, "\n")
				events = append(events, cur)
			}
			cur, data, pending = sseEvent{}, nil, stream
			continue
		}
		if line[0] == ':' {
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "id":
			if !strings.Contains(value, "\x00") {
				cur.id, cur.hasID = value, true
			}
		case "event":
			cur.name = value
		case "data":
			data = append(data, value)
		}
	}
}

var fixedNames = map[string]bool{
	"m.room.message": true, "m.reaction": true, "m.room.redaction": true, "m.room.member": true,
	"m.typing": true, "m.receipt": true, EventOther: true, EventReset: true, EventMembers: true, EventPosition: true,
}

// checkFrame fails unless frame is exactly one well-formed event: one
// optional id line (the position), one event line with a fixed name, one
// data line of valid UTF-8 JSON, and the blank line that ends it; nothing
// a browser could read as a line break or a second field anywhere else.
func checkFrame(t *testing.T, frame []byte, pos int64) map[string]any {
	t.Helper()
	if bytes.ContainsAny(frame, "\x00") {
		t.Fatalf("frame holds NUL: %q", frame)
	}
	if bytes.Contains(frame, []byte("\u2028")) || bytes.Contains(frame, []byte("\u2029")) || bytes.Contains(frame, []byte("\u0085")) {
		t.Fatalf("frame holds a raw Unicode line separator: %q", frame)
	}
	if !utf8.Valid(frame) {
		t.Fatalf("frame is not UTF-8: %q", frame)
	}
	if bytes.Count(frame, []byte("\r")) != 0 || !bytes.HasSuffix(frame, []byte("\n\n")) {
		t.Fatalf("frame does not end where it should: %q", frame)
	}
	lines := strings.Split(string(frame[:len(frame)-2]), "\n")
	if pos > 0 {
		if lines[0] != "id: "+strconv.FormatInt(pos, 10) {
			t.Fatalf("id line %q, want position %d", lines[0], pos)
		}
		lines = lines[1:]
	}
	if len(lines) != 2 {
		t.Fatalf("frame has %d lines besides the id, want 2: %q", len(lines), frame)
	}
	name, ok := strings.CutPrefix(lines[0], "event: ")
	if !ok || !fixedNames[name] {
		t.Fatalf("event line %q is not one of the fixed names", lines[0])
	}
	data, ok := strings.CutPrefix(lines[1], "data: ")
	if !ok || !json.Valid([]byte(data)) {
		t.Fatalf("data line %q is not JSON", lines[1])
	}
	events, rest := parseSSE(frame)
	if len(events) != 1 || len(rest) != 0 || events[0].name != name || events[0].data != data {
		t.Fatalf("a browser reads %+v (rest %q) from %q", events, rest, frame)
	}
	var decoded map[string]any
	if err := json.Unmarshal([]byte(data), &decoded); err != nil {
		t.Fatalf("data is not an object: %v", err)
	}
	return decoded
}

// hostile are strings a room member or a federated server can put into an
// event's type or content, each trying to end the frame and start its own.
var hostile = map[string]string{
	"LF":     "m.room.message\nid: 999999\ndata: {\"forged\":true}\n\n",
	"CR":     "m.room.message\rid: 999999\rdata: {\"forged\":true}\r\r",
	"CRLF":   "m.room.message\r\nid: 999999\r\ndata: {\"forged\":true}\r\n\r\n",
	"NUL":    "m.room.message\x00id: 999999",
	"U+2028": "m.room.message\u2028id: 999999\u2029data: x",
	"reset":  "reset",
	"blank":  "",
	"named+": "m.room.message ",
}

// TestHostileEventTypesCannotForgeFrames: whatever an event's type and
// content hold, each logged event reaches the stream as exactly one event,
// under a fixed name, with its own position; the real type is inside the
// data, byte for byte.
func TestHostileEventTypesCannotForgeFrames(t *testing.T) {
	bothModes(t, func(t *testing.T, cfg Config) {
		f := newHubFixture(t, cfg)
		f.push(t, membership("!a", "@u:test", event.MembershipJoin))
		conn := f.rawStream(t, "@u:test", "")
		type sent struct {
			typ, name string
			pos       int64
		}
		var want []sent
		for label, bad := range hostile {
			for _, typ := range []string{bad, "m.room.message"} {
				evtID := fmt.Sprintf("$h%d", seq.Add(1))
				raw, _ := json.Marshal(map[string]any{"event_id": evtID, "room_id": "!a", "type": typ, "sender": "@x:test",
					"content": map[string]any{"body": bad, "label": label}})
				written := f.push(t, &database.LoggedEvent{EventID: id.EventID(evtID), RoomID: "!a", Type: typ, Sender: "@x:test", Raw: raw})
				name := EventOther
				if typ == "m.room.message" {
					name = "m.room.message"
				}
				want = append(want, sent{typ, name, written[0].Position})
			}
		}
		got := conn.read(t, len(want))
		for i, w := range want {
			g := got[i]
			if g.id != strconv.FormatInt(w.pos, 10) || g.name != w.name {
				t.Fatalf("event %d: got id %q name %q, want %d %q", i, g.id, g.name, w.pos, w.name)
			}
			var data struct {
				StreamPos int64 `json:"stream_pos"`
				Event     struct {
					Type string `json:"type"`
				} `json:"event"`
			}
			if err := json.Unmarshal([]byte(g.data), &data); err != nil || data.Event.Type != w.typ || data.StreamPos != w.pos {
				t.Fatalf("event %d: data %q (%v), want type %q", i, g.data, err, w.typ)
			}
		}
		conn.none(t)
	})
}

// TestFramesOfHostileInput: the encoder on its own, for logged and
// ephemeral events, members notes and resets, with hostile text in every
// string it writes.
func TestFramesOfHostileInput(t *testing.T) {
	t.Parallel()
	for label, bad := range hostile {
		t.Run(label, func(t *testing.T) {
			t.Parallel()
			raw, _ := json.Marshal(map[string]any{"type": bad, "content": map[string]any{"body": bad}})
			p := &Payload{StreamPos: 7, RoomID: id.RoomID(bad), Portal: &PortalInfo{Name: bad, Slug: bad}, Sender: &SenderInfo{UserID: id.UserID(bad), Displayname: bad}, TxnID: bad, Event: raw}
			data := checkFrame(t, encodeFrame(7, bad, p), 7)
			if evt, _ := data["event"].(map[string]any); evt["type"] != bad || (bad != "" && data["txn_id"] != bad) {
				t.Fatalf("the type or a string was changed: %v", data)
			}
			checkFrame(t, encodeFrame(0, bad, &Payload{RoomID: id.RoomID(bad), Event: raw}), 0)
			checkFrame(t, encodeNamedFrame(0, EventMembers, &MembersPayload{RoomID: id.RoomID(bad), Portal: &PortalInfo{Name: bad}}), 0)
		})
	}
	// Content that is not JSON, or not UTF-8, still makes one well-formed
	// frame.
	for _, raw := range []string{"not json\n\nid: 5\n\n", "{\"a\":\"\xff\xfe\"}", "{\"a\":1}\n{\"b\":2}", "", "\x00"} {
		checkFrame(t, encodeFrame(3, "m.room.message", &Payload{RoomID: "!a", Event: json.RawMessage(raw)}), 3)
	}
}

// FuzzEncodeFrame: any event type, content, room, names and position give
// exactly one well-formed frame, whose data holds the event type unchanged
// when the event is JSON.
func FuzzEncodeFrame(f *testing.F) {
	f.Add(int64(1), "m.room.message", []byte(`{"type":"m.room.message","content":{"body":"hi"}}`), "!a:test", "Ada", "txn1")
	f.Add(int64(0), "m.typing", []byte(`{"type":"m.typing","content":{"user_ids":["@a:test"]}}`), "!a:test", "", "")
	f.Add(int64(42), "m.room.message\nid: 1\n\ndata: {}\n\n", []byte("{\"type\":\"x\\ny\"}"), "!a\r\n", "\u2028", "\x00")
	f.Fuzz(func(t *testing.T, pos int64, typ string, raw []byte, room, name, txn string) {
		if pos < 0 {
			pos = -(pos + 1)
		}
		p := &Payload{StreamPos: pos, RoomID: id.RoomID(room), Portal: &PortalInfo{Name: name}, Sender: &SenderInfo{Displayname: name}, TxnID: txn, Event: raw}
		data := checkFrame(t, encodeFrame(pos, typ, p), pos)
		// A map, not a struct: encoding/json matches struct fields without
		// regard to case ("tYpe" would count as "type"), a browser does not.
		var evt map[string]any
		if utf8.Valid(raw) && json.Unmarshal(raw, &evt) == nil {
			if typ, ok := evt["type"].(string); ok {
				got, _ := data["event"].(map[string]any)
				if got["type"] != typ {
					t.Fatalf("event type %q came out as %v", typ, got["type"])
				}
			}
		}
	})
}

// rawConn is a stream read as bytes, parsed as a browser would.
type rawConn struct {
	conn   net.Conn
	body   io.Reader // the conn, or what undoes its chunked encoding
	buf    []byte
	events []sseEvent
}

// rawStream opens a stream over a plain TCP connection.
func (f *hubFixture) rawStream(t *testing.T, user, lastID string) *rawConn {
	t.Helper()
	return f.rawStreamWith(t, &net.Dialer{}, user, lastID)
}

func (f *hubFixture) rawStreamWith(t *testing.T, dialer *net.Dialer, user, lastID string) *rawConn {
	t.Helper()
	conn, err := dialer.Dial("tcp", strings.TrimPrefix(f.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	req := "GET /?user=" + user + " HTTP/1.1\r\nHost: test\r\n"
	if lastID != "" {
		req += "Last-Event-ID: " + lastID + "\r\n"
	}
	if _, err := io.WriteString(conn, req+"\r\n"); err != nil {
		t.Fatal(err)
	}
	c := &rawConn{conn: conn, body: conn}
	c.fill(t, func() bool { return bytes.Contains(c.buf, []byte("\r\n\r\n")) })
	head, body, _ := bytes.Cut(c.buf, []byte("\r\n\r\n"))
	if !bytes.HasPrefix(head, []byte("HTTP/1.1 200")) {
		t.Fatalf("stream answered %q", head)
	}
	c.buf = body
	if bytes.Contains(bytes.ToLower(head), []byte("transfer-encoding: chunked")) {
		c.body, c.buf = httputil.NewChunkedReader(io.MultiReader(bytes.NewReader(body), conn)), nil
	}
	c.fill(t, func() bool { return bytes.Contains(c.buf, []byte(": connected\n\n")) })
	_, c.buf, _ = bytes.Cut(c.buf, []byte(": connected\n\n"))
	if lastID == "" {
		// A new stream's first frame is its position; tests read what
		// comes after it.
		if first := c.read(t, 1)[0]; first.name != EventPosition || !first.hasID {
			t.Fatalf("a new stream began with %+v, want its position", first)
		}
	}
	return c
}

// fill reads until done says so, failing after a generous deadline.
func (c *rawConn) fill(t *testing.T, done func() bool) {
	t.Helper()
	chunk := make([]byte, 64<<10)
	deadline := time.Now().Add(20 * time.Second)
	for !done() {
		_ = c.conn.SetReadDeadline(deadline)
		n, err := c.body.Read(chunk)
		c.buf = append(c.buf, chunk[:n]...)
		if err != nil {
			t.Fatalf("stream read: %v (have %d bytes)", err, len(c.buf))
		}
	}
}

// read returns the next n events.
func (c *rawConn) read(t *testing.T, n int) []sseEvent {
	t.Helper()
	c.fill(t, func() bool {
		events, rest := parseSSE(c.buf)
		c.events, c.buf = append(c.events, events...), rest
		return len(c.events) >= n
	})
	got := c.events[:n]
	c.events = c.events[n:]
	return got
}

// none checks that nothing more arrives for a while.
func (c *rawConn) none(t *testing.T) {
	t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	chunk := make([]byte, 4096)
	n, _ := c.body.Read(chunk)
	events, _ := parseSSE(append(c.buf, chunk[:n]...))
	if len(c.events)+len(events) > 0 {
		t.Fatalf("unexpected events %+v %+v", c.events, events)
	}
}

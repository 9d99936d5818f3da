package database_test

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"go.mau.fi/util/dbutil"
	"maunium.net/go/mautrix/id"

	"github.com/openmeet-team/openmeet-bridge/database"
)

// TestMediaSpool: chunks come back in order, a spooled file's entry gets
// its content replaced under its claim, and pruning spares files whose
// message still waits.
func TestMediaSpool(t *testing.T) {
	engines(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		entry := addEntry(t, db, "@u:test", "!r", "file-1")
		spoolID, err := db.MediaSpool.Create(ctx, &database.SpoolFile{UserID: "@u:test", TxnID: "file-1", MediaType: "image/png", Filename: "a.png", Size: 6})
		if err != nil {
			t.Fatal(err)
		}
		for seq, chunk := range [][]byte{{0, 1, 2}, {3, 4, 0xff}} {
			if err := db.MediaSpool.AddChunk(ctx, spoolID, seq, chunk); err != nil {
				t.Fatal(err)
			}
		}
		if err := db.MediaSpool.Complete(ctx, spoolID); err != nil {
			t.Fatal(err)
		}
		f, err := db.MediaSpool.Get(ctx, spoolID)
		if err != nil || f == nil || !f.Complete || f.Size != 6 || f.Filename != "a.png" || f.UserID != "@u:test" {
			t.Fatalf("get: %v %+v", err, f)
		}
		var all []byte
		for seq := 0; ; seq++ {
			chunk, err := db.MediaSpool.Chunk(ctx, spoolID, seq)
			if err != nil {
				t.Fatal(err)
			}
			if chunk == nil {
				break
			}
			all = append(all, chunk...)
		}
		if !bytes.Equal(all, []byte{0, 1, 2, 3, 4, 0xff}) {
			t.Fatalf("chunks: %v", all)
		}
		if n, _ := db.MediaSpool.Bytes(ctx); n != 6 {
			t.Fatalf("bytes: %d", n)
		}
		// The message still waits: pruning keeps the file.
		if n, err := db.MediaSpool.Prune(ctx, time.Now().Add(time.Hour)); err != nil || n != 0 {
			t.Fatalf("prune while waiting: %d %v", n, err)
		}
		// Content is replaced only under the entry's claim.
		if err := db.Outbox.SetContent(ctx, entry, `{"url":"mxc://x/y"}`); err != database.ErrClaimLost {
			t.Fatalf("unclaimed: %v", err)
		}
		_, claimed := claimIDs(t, db, 10, time.Minute)
		if err := db.Outbox.SetContent(ctx, claimed[0], `{"url":"mxc://x/y"}`); err != nil {
			t.Fatal(err)
		}
		if got, _ := db.Outbox.ByID(ctx, entry.ID); got.Content != `{"url":"mxc://x/y"}` {
			t.Fatalf("content %q", got.Content)
		}
		// A file of a message that no longer waits goes, with its chunks.
		if err := db.Outbox.MarkSent(ctx, claimed[0], "$e"); err != nil {
			t.Fatal(err)
		}
		if n, err := db.MediaSpool.Prune(ctx, time.Now().Add(time.Hour)); err != nil || n != 1 {
			t.Fatalf("prune after sending: %d %v", n, err)
		}
		if chunk, err := db.MediaSpool.Chunk(ctx, spoolID, 0); err != nil || chunk != nil {
			t.Fatalf("chunk after prune: %v %v", chunk, err)
		}
	})
}

// mediaEvent is an event of the media corpus: what it is, and the files
// it names in the places a file is named (room and event are its own).
type mediaEvent struct {
	eventID, roomID, evtType string
	stateKey                 *string
	content                  string
	// extra is added at the top level of the event (a redaction's
	// redacts up to room version 10).
	extra string
	refs  []string
}

func (m mediaEvent) logged() *database.LoggedEvent {
	raw := fmt.Sprintf(`{"event_id":%q,"room_id":%q,"type":%q,"sender":"@a:test","origin_server_ts":1,`, m.eventID, m.roomID, m.evtType)
	if m.stateKey != nil {
		raw += fmt.Sprintf(`"state_key":%q,`, *m.stateKey)
	}
	if m.extra != "" {
		raw += m.extra + ","
	}
	raw += `"content":` + m.content + `}`
	return &database.LoggedEvent{EventID: id.EventID(m.eventID), RoomID: id.RoomID(m.roomID), Type: m.evtType,
		Sender: "@a:test", StateKey: m.stateKey, OriginTS: 1, Raw: []byte(raw)}
}

var emptyKey, memberKey = "", "@a:test"

// mediaCorpus are events naming files in every structured place, in
// places that are not structured (a text body quoting an mxc URI: what
// anyone can write), in malformed ways, and redactions, some applying
// (in their room, top-level or v11 content redacts) and one not (from
// another room). The first txn ends with an event and its redaction
// together; the second holds the other redactions.
var mediaCorpus = [][]mediaEvent{{
	{"$img", "!r", "m.room.message", nil, `{"msgtype":"m.image","body":"a.png","url":"mxc://hs/img1","info":{"mimetype":"image/png","thumbnail_url":"mxc://hs/thumb1"}}`, "", []string{"mxc://hs/img1", "mxc://hs/thumb1"}},
	{"$enc", "!r", "m.room.message", nil, `{"msgtype":"m.file","body":"a.bin","file":{"url":"mxc://hs/enc1","v":"v2"},"info":{"thumbnail_file":{"url":"mxc://hs/encthumb1"}}}`, "", []string{"mxc://hs/enc1", "mxc://hs/encthumb1"}},
	{"$edit", "!r", "m.room.message", nil, `{"msgtype":"m.image","body":"* b.png","url":"mxc://hs/edit1","m.new_content":{"msgtype":"m.image","body":"b.png","url":"mxc://hs/edit1","file":{"url":"mxc://hs/editenc1"},"info":{"thumbnail_url":"mxc://hs/editthumb1","thumbnail_file":{"url":"mxc://hs/editencthumb1"}}},"m.relates_to":{"rel_type":"m.replace","event_id":"$img"}}`, "",
		[]string{"mxc://hs/edit1", "mxc://hs/editenc1", "mxc://hs/editencthumb1", "mxc://hs/editthumb1"}},
	{"$ravatar", "!r", "m.room.avatar", &emptyKey, `{"url":"mxc://hs.example:8448/room-avatar_1"}`, "", []string{"mxc://hs.example:8448/room-avatar_1"}},
	{"$mavatar", "!r", "m.room.member", &memberKey, `{"membership":"join","avatar_url":"mxc://[::1]:8448/member1"}`, "", []string{"mxc://[::1]:8448/member1"}},
	{"$text", "!r", "m.room.message", nil, `{"msgtype":"m.text","body":"look \"mxc://hs/secret\"","formatted_body":"<img src=\"mxc://hs/secret\">","info":{"url":"mxc://hs/secret"},"external_url":"mxc://hs/secret"}`, "", nil},
	{"$bad1", "!r", "m.room.message", nil, `{"msgtype":"m.image","url":"mxc://hs/a/b","info":{"thumbnail_url":"MXC://hs/up"},"file":{"url":"mxc:///x"}}`, "", nil},
	{"$bad2", "!r", "m.room.member", &memberKey, `{"membership":"join","avatar_url":5,"url":"mxc://hs/","m.new_content":{"url":"mxc://hs/a%b","info":{"thumbnail_url":"mxc://h s/x"},"file":{"url":"mxc://hs/x_"}}}`, "", []string{"mxc://hs/x_"}},
	{"$img-o", "!o", "m.room.message", nil, `{"msgtype":"m.image","body":"a.png","url":"mxc://hs/img1"}`, "", []string{"mxc://hs/img1"}},
	{"$gone", "!r", "m.room.message", nil, `{"msgtype":"m.image","url":"mxc://hs/gone"}`, "", nil},
	{"$gone11", "!r", "m.room.message", nil, `{"msgtype":"m.image","url":"mxc://hs/gone11"}`, "", nil},
	{"$kept", "!r", "m.room.message", nil, `{"msgtype":"m.image","url":"mxc://hs/kept"}`, "", []string{"mxc://hs/kept"}},
	{"$same", "!r", "m.room.message", nil, `{"msgtype":"m.image","url":"mxc://hs/same"}`, "", nil},
	{"$red-same", "!r", "m.room.redaction", nil, `{}`, `"redacts":"$same"`, nil},
}, {
	{"$red-gone", "!r", "m.room.redaction", nil, `{}`, `"redacts":"$gone"`, nil},
	{"$red-gone11", "!r", "m.room.redaction", nil, `{"redacts":"$gone11"}`, "", nil},
	{"$red-other", "!o", "m.room.redaction", nil, `{"redacts":"$kept"}`, `"redacts":"$kept"`, nil},
}}

// wantMediaRefs lists "mxc room event" of the corpus's references.
func wantMediaRefs() []string {
	var want []string
	for _, txn := range mediaCorpus {
		for _, m := range txn {
			for _, mxc := range m.refs {
				want = append(want, mxc+" "+m.roomID+" "+m.eventID)
			}
		}
	}
	slices.Sort(want)
	return want
}

// mediaRefs lists "mxc room event" of every media_ref row.
func mediaRefs(t *testing.T, db *database.Database) []string {
	t.Helper()
	rows, err := db.Query(context.Background(), `SELECT mxc || ' ' || room_id || ' ' || event_id FROM media_ref`)
	got, err := dbutil.NewRowIterWithError(rows, dbutil.ScanSingleColumn[string], err).AsList()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	return got
}

// TestMediaRefsAtIngest: logging the corpus records exactly the files its
// events name in structured places, less those of redacted events; the
// download check finds a file only in a room with such an event, never
// through a text message that quotes its URI.
func TestMediaRefsAtIngest(t *testing.T) {
	engines(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		for i, txn := range mediaCorpus {
			var events []*database.LoggedEvent
			for _, m := range txn {
				events = append(events, m.logged())
			}
			if _, err := appendTxn(ctx, db, fmt.Sprint("t", i), events); err != nil {
				t.Fatal(err)
			}
		}
		if got, want := mediaRefs(t, db), wantMediaRefs(); !slices.Equal(got, want) {
			t.Fatalf("media_ref after ingest:\n got %q\nwant %q", got, want)
		}
		checkReferences(t, db)

		// Pruning the log keeps the references; a redaction still removes
		// them afterwards (in its room only).
		if _, err := db.EventLog.Prune(ctx, time.Now().Add(time.Hour), 1000); err != nil {
			t.Fatal(err)
		}
		if n, _ := db.EventLog.Count(ctx); n != 0 {
			t.Fatalf("%d events left after pruning", n)
		}
		if got, want := mediaRefs(t, db), wantMediaRefs(); !slices.Equal(got, want) {
			t.Fatalf("media_ref after pruning:\n got %q\nwant %q", got, want)
		}
		redaction := mediaEvent{"$red-img", "!r", "m.room.redaction", nil, `{"redacts":"$img"}`, `"redacts":"$img"`, nil}
		if _, err := appendTxn(ctx, db, "t-late", []*database.LoggedEvent{redaction.logged()}); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			room, mxc string
			want      bool
		}{
			{"!r", "mxc://hs/img1", false},
			{"!r", "mxc://hs/thumb1", false},
			{"!o", "mxc://hs/img1", true},
			{"!r", "mxc://hs/enc1", true},
		} {
			if got, err := db.EventLog.ReferencesMedia(ctx, id.RoomID(tc.room), tc.mxc); err != nil || got != tc.want {
				t.Errorf("after the late redaction, %s %s: %v %v, want %v", tc.room, tc.mxc, got, err, tc.want)
			}
		}
	})
}

// checkReferences asks the download check about the corpus's files.
func checkReferences(t *testing.T, db *database.Database) {
	t.Helper()
	for _, tc := range []struct {
		room, mxc string
		want      bool
	}{
		{"!r", "mxc://hs/img1", true},
		{"!r", "mxc://hs/thumb1", true},
		{"!o", "mxc://hs/img1", true},
		{"!o", "mxc://hs/thumb1", false},
		{"!r", "mxc://hs/editencthumb1", true},
		{"!r", "mxc://hs.example:8448/room-avatar_1", true},
		{"!r", "mxc://[::1]:8448/member1", true},
		{"!r", "mxc://hs/secret", false},
		{"!r", "mxc://hs/gone", false},
		{"!r", "mxc://hs/gone11", false},
		{"!r", "mxc://hs/same", false},
		{"!r", "mxc://hs/kept", true},
		{"!r", "mxc://hs/img", false},
		{"!r", "mxc://hs/img1 ", false},
		{"!x", "mxc://hs/img1", false},
	} {
		got, err := db.EventLog.ReferencesMedia(context.Background(), id.RoomID(tc.room), tc.mxc)
		if err != nil || got != tc.want {
			t.Errorf("%s %s: %v %v, want %v", tc.room, tc.mxc, got, err, tc.want)
		}
	}
}

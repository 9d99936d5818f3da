package sse

import (
	"context"
	"net/url"
	"path/filepath"
	"testing"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/id"

	"github.com/openmeet-team/openmeet-bridge/database"
)

// fakeSigner names what it was asked to sign, and signs only mxc URIs.
type fakeSigner struct{}

func (fakeSigner) URL(kind string, roomID id.RoomID, mxc string, extra url.Values) string {
	if len(mxc) < 7 || mxc[:6] != "mxc://" {
		return ""
	}
	return kind + "|" + string(roomID) + "|" + mxc + "|" + extra.Get("width")
}

// TestMediaURLs: files, thumbnails and avatars become URLs signed for the
// event's room; events that show none carry none.
func TestMediaURLs(t *testing.T) {
	f := newHubFixture(t, testCfg())
	f.hub.SetMediaSigner(fakeSigner{})
	ctx := context.Background()
	ada := id.UserID("@openmeet_t_ada:test")
	if _, err := f.db.Ghosts.Put(ctx, &database.Ghost{Tenant: "t", Slug: "ada", UserID: ada, Displayname: "Ada", AvatarMXC: "mxc://test/ada"}); err != nil {
		t.Fatal(err)
	}
	const room = id.RoomID("!r:test")
	media := func(sender id.UserID, eventType, raw string) *MediaURLs {
		t.Helper()
		p, err := f.hub.Payload(ctx, &database.LoggedEvent{RoomID: room, Sender: sender, Type: eventType, Raw: []byte(raw)})
		if err != nil {
			t.Fatal(err)
		}
		return p.Media
	}
	for name, tc := range map[string]struct {
		sender    id.UserID
		eventType string
		raw       string
		want      *MediaURLs
	}{
		"image with thumbnail": {"@alice:test", "m.room.message", `{"content":{"msgtype":"m.image","url":"mxc://hs/img","info":{"thumbnail_url":"mxc://hs/th"}}}`,
			&MediaURLs{URL: "download|!r:test|mxc://hs/img|", ThumbnailURL: "download|!r:test|mxc://hs/th|"}},
		"image without": {"@alice:test", "m.room.message", `{"content":{"msgtype":"m.image","url":"mxc://hs/img"}}`,
			&MediaURLs{URL: "download|!r:test|mxc://hs/img|", ThumbnailURL: "thumbnail|!r:test|mxc://hs/img|800"}},
		"file": {"@alice:test", "m.room.message", `{"content":{"msgtype":"m.file","url":"mxc://hs/f"}}`,
			&MediaURLs{URL: "download|!r:test|mxc://hs/f|"}},
		"text":             {"@alice:test", "m.room.message", `{"content":{"msgtype":"m.text","body":"hi"}}`, nil},
		"not an mxc URI":   {"@alice:test", "m.room.message", `{"content":{"msgtype":"m.image","url":"https://evil.example/x.png"}}`, nil},
		"url not a string": {"@alice:test", "m.room.message", `{"content":{"msgtype":"m.image","url":{"x":1}}}`, nil},
		"member avatar": {"@bob:test", "m.room.member", `{"state_key":"@bob:test","content":{"membership":"join","avatar_url":"mxc://hs/bob"}}`,
			&MediaURLs{AvatarURL: "thumbnail|!r:test|mxc://hs/bob|96"}},
		"ghost's message": {ada, "m.room.message", `{"content":{"msgtype":"m.text","body":"hi"}}`,
			&MediaURLs{SenderAvatarURL: "thumbnail|!r:test|mxc://test/ada|96"}},
	} {
		got := media(tc.sender, tc.eventType, tc.raw)
		if (got == nil) != (tc.want == nil) || got != nil && *got != *tc.want {
			t.Errorf("%s: %+v, want %+v", name, got, tc.want)
		}
	}
}

// BenchmarkPayloadMedia: what signing media URLs adds to formatting a text
// message (sender and portal cached), and to an image.
//
//	go test -run '^$' -bench BenchmarkPayloadMedia -count 5 ./sse/
func BenchmarkPayloadMedia(b *testing.B) {
	db, err := database.Open(database.Config{Type: "sqlite3-fk-wal", URI: "file:" + filepath.Join(b.TempDir(), "b.db") + "?_txlock=immediate"}, zerolog.Nop())
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if err := db.Upgrade(context.Background()); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	// A bridged room, as in production: the portal lookup is cached.
	key := database.PortalKey{Tenant: "t", Kind: "event", Slug: "meetup"}
	if _, err := db.Portals.Put(ctx, &database.Portal{Tenant: "t", Kind: "event", Slug: "meetup", Alias: "#openmeet_t_event_meetup:test", Name: "Meetup", Visibility: "public"}); err != nil {
		b.Fatal(err)
	}
	if err := db.Portals.SetRoomID(ctx, key, "!r:test"); err != nil {
		b.Fatal(err)
	}
	text := &database.LoggedEvent{RoomID: "!r:test", Sender: "@alice:test", Type: "m.room.message",
		Raw: []byte(`{"type":"m.room.message","sender":"@alice:test","content":{"msgtype":"m.text","body":"hello there, how are you"}}`)}
	img := &database.LoggedEvent{RoomID: "!r:test", Sender: "@alice:test", Type: "m.room.message",
		Raw: []byte(`{"type":"m.room.message","sender":"@alice:test","content":{"msgtype":"m.image","body":"a.png","url":"mxc://hs/abc","info":{"mimetype":"image/png","w":10,"h":10}}}`)}
	for _, tc := range []struct {
		name   string
		signer MediaSigner
		evt    *database.LoggedEvent
	}{
		{"text/without-media", nil, text},
		{"text/with-media", fakeSigner{}, text},
		{"image/with-media", fakeSigner{}, img},
	} {
		b.Run(tc.name, func(b *testing.B) {
			f := newFormatter(db)
			if tc.signer != nil {
				h := &Hub{fmt: f}
				h.SetMediaSigner(tc.signer)
			}
			if _, err := f.payload(ctx, tc.evt); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, err := f.payload(ctx, tc.evt); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

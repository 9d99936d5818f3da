package database_test

import (
	"bytes"
	"context"
	"testing"
	"time"

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

// TestReferencesMedia: a file is found only in the room whose event names
// it exactly; LIKE's wildcards in media IDs match only themselves.
func TestReferencesMedia(t *testing.T) {
	engines(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		evt := echo("$img", "!room", "@a:test", "m.room.message", "")
		evt.Raw = []byte(`{"type":"m.room.message","event_id":"$img","room_id":"!room","sender":"@a:test","content":{"msgtype":"m.image","url":"mxc://hs/ab_c%d"}}`)
		if _, err := db.EventLog.AppendTransaction(ctx, "t1", database.TxnDigest([]*database.LoggedEvent{evt}, nil), []*database.LoggedEvent{evt}); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			room, mxc string
			want      bool
		}{
			{"!room", "mxc://hs/ab_c%d", true},
			{"!other", "mxc://hs/ab_c%d", false},
			{"!room", "mxc://hs/abXc%d", false},
			{"!room", "mxc://hs/ab_c", false},
			{"!room", "mxc://hs/ab_c%", false},
			{"!room", "mxc://hs/%", false},
		} {
			got, err := db.EventLog.ReferencesMedia(ctx, id.RoomID(tc.room), tc.mxc)
			if err != nil || got != tc.want {
				t.Errorf("%s %s: %v %v", tc.room, tc.mxc, got, err)
			}
		}
	})
}

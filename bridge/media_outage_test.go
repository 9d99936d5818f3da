package bridge_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/openmeet-team/openmeet-bridge/internal/harness"
)

// TestMediaUploadWhileSynapseIsDown: an upload while Synapse does not
// answer is kept in the database's spool and answered 202; once Synapse is
// back the outbox uploads it as the ghost and sends the message, and the
// spool is empty again. A truncated upload meanwhile keeps nothing.
func TestMediaUploadWhileSynapseIsDown(t *testing.T) {
	hs := harness.OwnSynapse(t, harness.SynapseOptions{})
	cfg := clientConfig(t, hs)
	cfg.ClientAPI.SendWait = time.Second
	b := startBridge(t, cfg)
	eventually(t, 60*time.Second, "the bridge to be ready", func() bool { return b.HS.Ready() })
	ada, alice, roomID := mediaRoom(t, hs, b)
	ctx := context.Background()
	var who struct {
		UserID id.UserID `json:"user_id"`
	}
	call(t, b, ada, "GET", "/whoami", nil, &who)
	stream, _ := openStream(t, b, ada, "", "")
	spooled := func() int64 {
		n, err := b.DB.MediaSpool.Bytes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}

	if err := hs.Pause(); err != nil {
		t.Fatal(err)
	}
	img := testPNG(t, 1000, 700)
	var up uploaded
	if code := uploadFile(t, b, ada, "/rooms/events/meetup/upload/down-1?filename=offline.png", "image/png", img, &up); code != 202 || up.State != "pending" {
		_ = hs.Resume()
		t.Fatalf("upload while Synapse is down: %d %+v", code, up)
	}
	if n := spooled(); n != int64(len(img)) {
		_ = hs.Resume()
		t.Fatalf("spool holds %d bytes, want %d", n, len(img))
	}
	// The same txn id again is the same message: nothing more is kept.
	if code := uploadFile(t, b, ada, "/rooms/events/meetup/upload/down-1?filename=offline.png", "image/png", img, &up); code != 202 || spooled() != int64(len(img)) {
		_ = hs.Resume()
		t.Fatalf("repeated upload while down: %d, spool %d", code, spooled())
	}
	// A body that breaks off leaves nothing in the spool.
	if status, body := truncatedUpload(t, b, ada, "/rooms/events/meetup/upload/down-2", img[:len(img)/3], len(img)); status != 400 || spooled() != int64(len(img)) {
		_ = hs.Resume()
		t.Fatalf("truncated upload while down: %d %s, spool %d", status, body, spooled())
	}
	if err := hs.Resume(); err != nil {
		t.Fatal(err)
	}

	eventually(t, 90*time.Second, "the spooled file's message to be sent", func() bool {
		entry, _ := b.DB.Outbox.ByTxn(ctx, who.UserID, "down-1")
		return entry != nil && entry.State == "sent"
	})
	evt := stream.waitFor(t, "the spooled image", isMessage("offline.png"))
	urls, _ := evt.Data["media"].(map[string]any)
	fileURL, _ := urls["url"].(string)
	if status, _, body := fetchURL(t, b, fileURL, nil); status != 200 || !bytes.Equal(body, img) {
		t.Fatalf("the spooled image's URL: %d, %d bytes", status, len(body))
	}
	inner, _ := evt.Data["event"].(map[string]any)
	eventID, _ := inner["event_id"].(string)
	got, err := alice.Event(ctx, roomID, eventID)
	if err != nil {
		t.Fatal(err)
	}
	content, _ := got["content"].(map[string]any)
	info, _ := content["info"].(map[string]any)
	if content["msgtype"] != "m.image" || info["w"] != float64(1000) || info["h"] != float64(700) || info["size"] != float64(len(img)) ||
		info["thumbnail_url"] == nil || content["net.openmeet.spool_id"] != nil {
		t.Fatalf("m.image content %v", content)
	}
	data, _, err := alice.Download(ctx, content["url"].(string))
	if err != nil || !bytes.Equal(data, img) {
		t.Fatalf("alice's download: %v, %d bytes", err, len(data))
	}
	if n := spooled(); n != 0 {
		t.Fatalf("the spool still holds %d bytes", n)
	}
	// Asked again, the txn id now names the file.
	var again uploaded
	if code := uploadFile(t, b, ada, "/rooms/events/meetup/upload/down-1?filename=offline.png", "image/png", img, &again); code != 200 || again.ContentURI != content["url"] || again.EventID != eventID {
		t.Fatalf("txn id after delivery: %d %+v", code, again)
	}
}

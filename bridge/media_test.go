package bridge_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/openmeet-team/openmeet-bridge/bridge"
	"github.com/openmeet-team/openmeet-bridge/internal/harness"
)

// testPNG is a PNG of the given size with a pattern, so that its
// thumbnail differs from it.
func testPNG(t testing.TB, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(x), uint8(y), uint8(x ^ y), 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// uploadFile sends a file through the client API and decodes the answer
// (checked against the OpenAPI description).
func uploadFile(t testing.TB, b *bridge.Bridge, token, path, contentType string, data []byte, out any) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, "http://"+b.Addr().String()+"/_openmeet/client/v1"+path, bytes.NewReader(data))
	req.Header.Set("Authorization", "Bearer "+token)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	checkAgainstOpenAPI(t, req, resp.StatusCode, raw)
	decodeInto(t, "PUT "+path, resp.StatusCode, raw, out)
	return resp.StatusCode
}

// fetchURL loads a URL the bridge handed out, as an <img> tag would: no
// token, only what the URL carries.
func fetchURL(t testing.TB, b *bridge.Bridge, rawURL string, header map[string]string) (int, http.Header, []byte) {
	t.Helper()
	if strings.HasPrefix(rawURL, "/") {
		rawURL = "http://" + b.Addr().String() + rawURL
	}
	req, _ := http.NewRequest(http.MethodGet, rawURL, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, raw
}

type uploaded struct {
	TxnID        string `json:"txn_id"`
	State        string `json:"state"`
	EventID      string `json:"event_id"`
	ContentURI   string `json:"content_uri"`
	URL          string `json:"url"`
	ThumbnailURL string `json:"thumbnail_url"`
}

// mediaRoom makes a meetup with ada (an OpenMeet user) and alice (a
// Matrix user) in it.
func mediaRoom(t testing.TB, hs *harness.Synapse, b *bridge.Bridge) (ada string, alice *harness.MatrixUser, roomID string) {
	t.Helper()
	tenant := harness.UniqueName("tenant-")
	provisionUser(t, b, tenant, "ada", "Ada")
	base := "/tenants/" + tenant + "/events/meetup"
	var br struct {
		Portal portalOut `json:"portal"`
	}
	provision(t, b, "PUT", base, map[string]any{"name": "Meetup", "visibility": "public"}, nil)
	provision(t, b, "POST", base+"/members:batch", map[string]any{"set": []map[string]string{{"user_slug": "ada", "role": "host"}}}, &br)
	ada = mintJWT(t, jwtSecret, tenant, "ada", time.Hour)
	eventually(t, 30*time.Second, "ada's membership", func() bool {
		return call(t, b, ada, "GET", "/rooms/events/meetup/messages?limit=1", nil, nil) == 200
	})
	alice = hs.NewUser(t, "alice")
	if _, err := alice.Join(context.Background(), br.Portal.Alias); err != nil {
		t.Fatal(err)
	}
	return ada, alice, br.Portal.RoomID
}

// TestMediaBothWays: a Matrix user's image reaches the OpenMeet user's
// stream with a URL that loads the same bytes; the OpenMeet user's upload
// reaches the Matrix user as m.image with its info, and downloads.
func TestMediaBothWays(t *testing.T) {
	hs := harness.SharedSynapse(t)
	b := startBridge(t, clientConfig(t, hs))
	eventually(t, 60*time.Second, "the bridge to be ready", func() bool { return b.HS.Ready() })
	ada, alice, roomID := mediaRoom(t, hs, b)
	ctx := context.Background()
	stream, code := openStream(t, b, ada, "", "")
	if code != 200 {
		t.Fatalf("stream: %d", code)
	}

	// Matrix → browser.
	img := testPNG(t, 64, 48)
	mxc, err := alice.Upload(ctx, "image/png", "from-alice.png", img)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SendEvent(ctx, roomID, "m.room.message", map[string]any{"msgtype": "m.image", "body": "from-alice.png", "url": mxc,
		"info": map[string]any{"mimetype": "image/png", "size": len(img), "w": 64, "h": 48}}); err != nil {
		t.Fatal(err)
	}
	evt := stream.waitFor(t, "alice's image", isMessage("from-alice.png"))
	urls, _ := evt.Data["media"].(map[string]any)
	fileURL, _ := urls["url"].(string)
	thumbURL, _ := urls["thumbnail_url"].(string)
	if fileURL == "" || thumbURL == "" {
		t.Fatalf("stream event without media URLs: %+v", evt.Data)
	}
	// History carries the same kind of URL.
	var history struct {
		Chunk []map[string]any `json:"chunk"`
	}
	call(t, b, ada, "GET", "/rooms/events/meetup/messages?limit=5", nil, &history)
	var historyURL string
	for _, item := range history.Chunk {
		if m, ok := item["media"].(map[string]any); ok && m["url"] != nil {
			historyURL, _ = m["url"].(string)
		}
	}
	if status, _, body := fetchURL(t, b, historyURL, nil); historyURL == "" || status != 200 || !bytes.Equal(body, img) {
		t.Fatalf("history's media URL %q: %d", historyURL, status)
	}
	status, header, body := fetchURL(t, b, fileURL, nil)
	if status != 200 || !bytes.Equal(body, img) {
		t.Fatalf("download: %d, %d bytes (want %d)", status, len(body), len(img))
	}
	for key, want := range map[string]string{"Content-Type": "image/png", "X-Content-Type-Options": "nosniff", "Accept-Ranges": "bytes"} {
		if header.Get(key) != want {
			t.Errorf("%s: %q, want %q", key, header.Get(key), want)
		}
	}
	if !strings.HasPrefix(header.Get("Content-Disposition"), "inline") || !strings.Contains(header.Get("Content-Security-Policy"), "sandbox") ||
		!strings.Contains(header.Get("Cache-Control"), "max-age=") || header.Get("ETag") == "" {
		t.Errorf("serving headers %v", header)
	}
	// A range, and a revalidation.
	status, header, body = fetchURL(t, b, fileURL, map[string]string{"Range": "bytes=10-19"})
	if status != 206 || !bytes.Equal(body, img[10:20]) || header.Get("Content-Range") != "bytes 10-19/"+itoa(len(img)) {
		t.Fatalf("range: %d %q %v", status, body, header)
	}
	status, _, body = fetchURL(t, b, fileURL, map[string]string{"Range": "bytes=-5"})
	if status != 206 || !bytes.Equal(body, img[len(img)-5:]) {
		t.Fatalf("suffix range: %d %q", status, body)
	}
	if status, _, _ = fetchURL(t, b, fileURL, map[string]string{"Range": "bytes=999999-"}); status != http.StatusRequestedRangeNotSatisfiable {
		t.Fatalf("range past the end: %d", status)
	}
	if status, _, _ = fetchURL(t, b, fileURL, map[string]string{"If-None-Match": header.Get("ETag")}); status != http.StatusNotModified {
		t.Fatalf("revalidation: %d", status)
	}
	// HEAD: the headers alone.
	if resp, err := http.Head(resolve(b, fileURL)); err != nil || resp.StatusCode != 200 || resp.ContentLength != int64(len(img)) || resp.Header.Get("ETag") == "" {
		t.Fatalf("HEAD: %v %v", err, resp)
	} else {
		_ = resp.Body.Close()
	}
	status, header, body = fetchURL(t, b, thumbURL, nil)
	if status != 200 || !strings.HasPrefix(header.Get("Content-Type"), "image/") {
		t.Fatalf("thumbnail: %d %v", status, header)
	}
	if _, _, err := image.DecodeConfig(bytes.NewReader(body)); err != nil {
		t.Fatalf("thumbnail is not an image: %v", err)
	}
	// With the JWT instead of a signature: the room names where it was seen.
	req, _ := http.NewRequest(http.MethodGet, "http://"+b.Addr().String()+"/_openmeet/client/v1/media/download/"+strings.TrimPrefix(mxc, "mxc://")+"?room="+roomID, nil)
	req.Header.Set("Authorization", "Bearer "+ada)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(body, img) {
		t.Fatalf("download with the JWT: %d", resp.StatusCode)
	}

	// Alice's avatar: her member event and her next message carry URLs
	// that load it.
	avatar := testPNG(t, 64, 64)
	avatarMXC, err := alice.Upload(ctx, "image/png", "me.png", avatar)
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.Do(ctx, http.MethodPut, "/_matrix/client/v3/profile/"+url.PathEscape(alice.UserID)+"/avatar_url", map[string]string{"avatar_url": avatarMXC}, nil); err != nil {
		t.Fatal(err)
	}
	member := stream.waitFor(t, "alice's new avatar", func(e streamEvent) bool {
		m, _ := e.Data["media"].(map[string]any)
		return e.Event == "m.room.member" && m["avatar_url"] != nil
	})
	memberURL := member.Data["media"].(map[string]any)["avatar_url"].(string)
	if _, err := alice.SendText(ctx, roomID, "with my face"); err != nil {
		t.Fatal(err)
	}
	withFace := stream.waitFor(t, "alice's message", isMessage("with my face"))
	senderURL, _ := withFace.Data["media"].(map[string]any)["sender_avatar_url"].(string)
	for _, u := range []string{memberURL, senderURL} {
		status, header, body := fetchURL(t, b, u, nil)
		if _, _, err := image.DecodeConfig(bytes.NewReader(body)); status != 200 || err != nil || !strings.HasPrefix(header.Get("Content-Type"), "image/") {
			t.Fatalf("avatar URL %q: %d %v", u, status, err)
		}
	}

	// Browser → Matrix: large enough for Synapse to make a thumbnail.
	big := testPNG(t, 1200, 900)
	var up uploaded
	if code := uploadFile(t, b, ada, "/rooms/events/meetup/upload/img-1?filename=cat.png", "image/png", big, &up); code != 200 || up.State != "sent" || up.EventID == "" {
		t.Fatalf("upload: %d %+v", code, up)
	}
	got, err := alice.Event(ctx, roomID, up.EventID)
	if err != nil {
		t.Fatal(err)
	}
	content, _ := got["content"].(map[string]any)
	info, _ := content["info"].(map[string]any)
	thumbInfo, _ := info["thumbnail_info"].(map[string]any)
	if content["msgtype"] != "m.image" || content["body"] != "cat.png" || content["url"] != up.ContentURI || info["mimetype"] != "image/png" ||
		info["size"] != float64(len(big)) || info["w"] != float64(1200) || info["h"] != float64(900) {
		t.Fatalf("m.image content %v", content)
	}
	if info["thumbnail_url"] == nil || thumbInfo["w"] != float64(800) || thumbInfo["h"] != float64(600) || thumbInfo["mimetype"] == nil {
		t.Fatalf("thumbnail info %v", info)
	}
	data, _, err := alice.Download(ctx, up.ContentURI)
	if err != nil || !bytes.Equal(data, big) {
		t.Fatalf("alice's download: %v, %d bytes", err, len(data))
	}
	thumb, _, err := alice.Download(ctx, info["thumbnail_url"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if cfg, _, err := image.DecodeConfig(bytes.NewReader(thumb)); err != nil || cfg.Width != 800 {
		t.Fatalf("thumbnail %v %+v", err, cfg)
	}
	// The upload's own URL loads it too, and the txn id again is the same
	// message, not a second file.
	if status, _, body := fetchURL(t, b, up.URL, nil); status != 200 || !bytes.Equal(body, big) {
		t.Fatalf("uploaded file's URL: %d", status)
	}
	var again uploaded
	if code := uploadFile(t, b, ada, "/rooms/events/meetup/upload/img-1?filename=cat.png", "image/png", big, &again); code != 200 ||
		again.EventID != up.EventID || again.ContentURI != up.ContentURI {
		t.Fatalf("repeated upload: %d %+v, first %+v", code, again, up)
	}
}

// TestMediaSimultaneousUploadsOfOneTxn: two uploads of one file with one
// txn id at once (a client retrying while its first try still runs) make
// one message, and both are answered with it.
func TestMediaSimultaneousUploadsOfOneTxn(t *testing.T) {
	hs := harness.SharedSynapse(t)
	b := startBridge(t, clientConfig(t, hs))
	eventually(t, 60*time.Second, "the bridge to be ready", func() bool { return b.HS.Ready() })
	ada, _, _ := mediaRoom(t, hs, b)
	answers := make(chan uploaded, 2)
	errs := make(chan error, 2)
	file := testPNG(t, 20, 20)
	for range 2 {
		go func() {
			req, _ := http.NewRequest(http.MethodPut, "http://"+b.Addr().String()+"/_openmeet/client/v1/rooms/events/meetup/upload/same", bytes.NewReader(file))
			req.Header.Set("Authorization", "Bearer "+ada)
			req.Header.Set("Content-Type", "image/png")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			var out uploaded
			if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
				errs <- fmt.Errorf("%d %v", resp.StatusCode, err)
				return
			}
			answers <- out
		}()
	}
	var got []uploaded
	for range 2 {
		select {
		case err := <-errs:
			t.Fatal(err)
		case a := <-answers:
			got = append(got, a)
		}
	}
	if got[0].EventID == "" || got[0].EventID != got[1].EventID || got[0].ContentURI != got[1].ContentURI || got[0].URL != got[1].URL {
		t.Fatalf("answers differ: %+v", got)
	}
	// One outbox entry (the txn id is unique), so one message.
	eventually(t, 30*time.Second, "the message's echo", func() bool { return countBodies(t, b)["file.png"] == 1 })
}

func resolve(b *bridge.Bridge, u string) string {
	if strings.HasPrefix(u, "/") {
		return "http://" + b.Addr().String() + u
	}
	return u
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

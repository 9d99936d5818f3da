package bridge_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/openmeet-team/openmeet-bridge/bridge"
	"github.com/openmeet-team/openmeet-bridge/internal/harness"
	"github.com/openmeet-team/openmeet-bridge/media"
)

// ghostMedia counts the files a user has in Synapse's media repository,
// read through the admin API.
func ghostMedia(t *testing.T, admin *harness.MatrixUser, userID id.UserID) int {
	t.Helper()
	var out struct {
		Total int `json:"total"`
	}
	if err := admin.Do(context.Background(), http.MethodGet, "/_synapse/admin/v1/users/"+url.PathEscape(string(userID))+"/media", nil, &out); err != nil {
		t.Fatal(err)
	}
	return out.Total
}

// errcodeOf uploads and returns the status and errcode.
func uploadErr(t *testing.T, b *bridge.Bridge, token, path, contentType string, data []byte) (int, string) {
	t.Helper()
	var out struct {
		ErrCode string `json:"errcode"`
		Error   string `json:"error"`
	}
	status := uploadFile(t, b, token, path, contentType, data, &out)
	if status >= 400 && out.Error == "" {
		t.Errorf("%s: %d without an error message", path, status)
	}
	return status, out.ErrCode
}

// truncatedUpload sends headers promising more bytes than follow, then
// half-closes the connection, and reads the answer.
func truncatedUpload(t *testing.T, b *bridge.Bridge, token, path string, data []byte, promised int) (int, string) {
	t.Helper()
	conn, err := net.Dial("tcp", b.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "PUT /_openmeet/client/v1%s HTTP/1.1\r\nHost: bridge\r\nAuthorization: Bearer %s\r\nContent-Type: image/png\r\nContent-Length: %d\r\n\r\n", path, token, promised)
	_, _ = conn.Write(data)
	_ = conn.(*net.TCPConn).CloseWrite()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}

// TestMediaBadInput: every bad upload and download gets a clear error and
// stores nothing: no file in Synapse's media repository, no message, and
// its txn id stays free.
func TestMediaBadInput(t *testing.T) {
	hs := harness.SharedSynapse(t)
	cfg := clientConfig(t, hs)
	cfg.ClientAPI.Media.MaxUploadBytes = 200 << 10
	// Each bad upload counts against the user's upload bucket; this test
	// is about what a bad upload leaves behind, not about the limit
	// (TestClientRateLimits).
	cfg.ClientAPI.Limits.Upload.Burst = 1000
	b := startBridge(t, cfg)
	eventually(t, 60*time.Second, "the bridge to be ready", func() bool { return b.HS.Ready() })
	ada, alice, roomID := mediaRoom(t, hs, b)
	ctx := context.Background()
	adminID, adminToken, err := hs.RegisterUser(ctx, harness.UniqueName("admin"), "password-admin", true)
	if err != nil {
		t.Fatal(err)
	}
	admin := &harness.MatrixUser{UserID: adminID, AccessToken: adminToken, HS: hs}
	var who struct {
		UserID id.UserID `json:"user_id"`
		Tenant string    `json:"tenant"`
	}
	call(t, b, ada, "GET", "/whoami", nil, &who)
	// The limit is the bridge's, being smaller than Synapse's.
	var mc struct {
		Max     int64    `json:"max_upload_bytes"`
		Allowed []string `json:"allowed_types"`
	}
	if call(t, b, ada, "GET", "/media/config", nil, &mc); mc.Max != 200<<10 || len(mc.Allowed) == 0 {
		t.Fatalf("media config %+v", mc)
	}
	png := testPNG(t, 40, 30)
	// One good upload first, so the ghost is registered and has a file.
	var up uploaded
	if code := uploadFile(t, b, ada, "/rooms/events/meetup/upload/good?filename=ok.png", "image/png", png, &up); code != 200 {
		t.Fatalf("good upload: %d", code)
	}
	before := ghostMedia(t, admin, who.UserID)
	if before < 1 {
		t.Fatalf("the admin API lists %d files of the ghost after an upload", before)
	}

	big := bytes.Repeat([]byte("a"), 300<<10)
	html := []byte("<!DOCTYPE html><html><script>alert(1)</script></html>")
	for _, tc := range []struct {
		name, contentType string
		data              []byte
		status            int
		errcode           string
	}{
		{"too large", "text/plain", big, 413, "M_TOO_LARGE"},
		{"svg", "image/svg+xml", []byte(`<svg xmlns="http://www.w3.org/2000/svg"/>`), 415, "NET.OPENMEET.TYPE_NOT_ALLOWED"},
		{"html", "text/html", html, 415, "NET.OPENMEET.TYPE_NOT_ALLOWED"},
		{"no type", "", png, 415, "NET.OPENMEET.TYPE_NOT_ALLOWED"},
		{"html as text", "text/plain", html, 415, "NET.OPENMEET.TYPE_MISMATCH"},
		{"not a png", "image/png", []byte("GIF89a this is not a PNG at all"), 415, "NET.OPENMEET.TYPE_MISMATCH"},
		{"jpeg as png", "image/png", []byte("\xff\xd8\xff\xe0\x00\x10JFIF\x00"), 415, "NET.OPENMEET.TYPE_MISMATCH"},
		{"empty", "image/png", []byte{}, 400, "M_INVALID_PARAM"},
	} {
		status, errcode := uploadErr(t, b, ada, "/rooms/events/meetup/upload/bad-"+strings.ReplaceAll(tc.name, " ", "-"), tc.contentType, tc.data)
		if status != tc.status || errcode != tc.errcode {
			t.Errorf("%s: %d %s, want %d %s", tc.name, status, errcode, tc.status, tc.errcode)
		}
	}
	// A body that ends before its Content-Length.
	if status, body := truncatedUpload(t, b, ada, "/rooms/events/meetup/upload/bad-truncated", png[:len(png)/2], len(png)); status != 400 || !strings.Contains(body, "NET.OPENMEET.TRUNCATED") {
		t.Errorf("truncated: %d %s", status, body)
	}
	// No Content-Length (chunked).
	req, _ := http.NewRequest(http.MethodPut, "http://"+b.Addr().String()+"/_openmeet/client/v1/rooms/events/meetup/upload/bad-chunked", io.MultiReader(bytes.NewReader(png)))
	req.Header.Set("Authorization", "Bearer "+ada)
	req.Header.Set("Content-Type", "image/png")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusLengthRequired {
		t.Errorf("chunked upload: %v %v", err, resp)
	} else {
		_ = resp.Body.Close()
	}
	// A room the user is not in.
	carol := mintJWT(t, jwtSecret, who.Tenant, "carol", time.Hour)
	provisionUser(t, b, who.Tenant, "carol", "Carol")
	if status, errcode := uploadErr(t, b, carol, "/rooms/events/meetup/upload/x", "image/png", png); status != 403 || errcode != "M_FORBIDDEN" {
		t.Errorf("upload to a room not joined: %d %s", status, errcode)
	}

	// Nothing was stored: no file, no message, and every txn id is free.
	if after := ghostMedia(t, admin, who.UserID); after != before {
		t.Errorf("the ghost has %d files after the bad uploads, %d before", after, before)
	}
	for _, txn := range []string{"bad-too-large", "bad-truncated", "bad-not-a-png", "bad-chunked"} {
		var ok uploaded
		if code := uploadFile(t, b, ada, "/rooms/events/meetup/upload/"+txn+"?filename="+txn+".png", "image/png", png, &ok); code != 200 || ok.EventID == "" || ok.EventID == up.EventID {
			t.Errorf("txn id %s after its bad upload: %d %+v", txn, code, ok)
		}
	}

	// Downloads. The good file's URL works; changed in any part, or
	// expired, or for a room the user is not in, it does not.
	if status, _, _ := fetchURL(t, b, up.URL, nil); status != 200 {
		t.Fatalf("good URL: %d", status)
	}
	u, _ := url.Parse(up.URL)
	q := u.Query()
	server, mediaID, _ := media.ParseMXC(up.ContentURI)
	other := "mxc://" + server + "/" + mediaID
	otherMXC, err := alice.Upload(ctx, "image/png", "private.png", png)
	if err != nil {
		t.Fatal(err)
	}
	_, otherID, _ := media.ParseMXC(otherMXC)
	forge := func(change func(q url.Values, path *string)) string {
		q2 := url.Values{}
		for k, v := range q {
			q2[k] = append([]string(nil), v...)
		}
		path := u.Path
		change(q2, &path)
		return path + "?" + q2.Encode()
	}
	signer := media.NewSigner(media.DeriveKey(hs.AS.ASToken), time.Hour, "")
	signer.Now = func() time.Time { return time.Now().Add(-3 * time.Hour) }
	for name, bad := range map[string]string{
		"signature changed": forge(func(q url.Values, _ *string) { q.Set("sig", strings.Repeat("A", len(q.Get("sig")))) }),
		"no signature":      forge(func(q url.Values, _ *string) { q.Set("sig", "") }),
		"other room":        forge(func(q url.Values, _ *string) { q.Set("room", "!other:"+hs.ServerName) }),
		"expiry moved":      forge(func(q url.Values, _ *string) { q.Set("exp", fmt.Sprint(time.Now().Add(48*time.Hour).Unix())) }),
		"other file":        forge(func(_ url.Values, p *string) { *p = strings.Replace(*p, mediaID, otherID, 1) }),
		"as thumbnail": forge(func(q url.Values, p *string) {
			*p = strings.Replace(*p, "/download/", "/thumbnail/", 1)
			q.Set("width", "32")
			q.Set("height", "32")
		}),
		"expired": signer.URL(media.Download, id.RoomID(roomID), other, nil),
	} {
		status, header, body := fetchURL(t, b, bad, nil)
		if status != 403 || !strings.Contains(string(body), "M_FORBIDDEN") || header.Get("Content-Type") != "application/json" {
			t.Errorf("%s: %d %s", name, status, body)
		}
		if name == "expired" && !strings.Contains(string(body), "expired") {
			t.Errorf("expired URL: %s", body)
		}
	}
	// With a JWT: alice's private file was never sent to the room; carol
	// is in no room with either file.
	for name, tc := range map[string]struct{ token, mxc string }{
		"file not in the room": {ada, otherMXC},
		"not a member":         {carol, up.ContentURI},
	} {
		s, m, _ := media.ParseMXC(tc.mxc)
		req, _ := http.NewRequest(http.MethodGet, "http://"+b.Addr().String()+"/_openmeet/client/v1/media/download/"+s+"/"+m+"?room="+url.QueryEscape(roomID), nil)
		req.Header.Set("Authorization", "Bearer "+tc.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != 403 || !strings.Contains(string(body), "M_FORBIDDEN") {
			t.Errorf("%s: %d %s", name, resp.StatusCode, body)
		}
	}
	// SVG and HTML a Matrix user sends are never shown inline: attachment,
	// sandboxed, not sniffed; an image is inline.
	for _, tc := range []struct {
		contentType, name, body string
		inline                  bool
	}{
		{"image/svg+xml", "x.svg", `<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>`, false},
		{"text/html", "x.html", `<html><script>alert(1)</script></html>`, false},
		{"application/xhtml+xml", "x.xhtml", `<html xmlns="http://www.w3.org/1999/xhtml"><script>alert(1)</script></html>`, false},
		{"image/png", "x.png", string(png), true},
	} {
		mxc, err := alice.Upload(ctx, tc.contentType, tc.name, []byte(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := alice.SendEvent(ctx, roomID, "m.room.message", map[string]any{"msgtype": "m.file", "body": tc.name, "url": mxc}); err != nil {
			t.Fatal(err)
		}
		s, m, _ := media.ParseMXC(mxc)
		var status int
		var header http.Header
		var body []byte
		eventually(t, 30*time.Second, tc.name+" in the event log", func() bool {
			req, _ := http.NewRequest(http.MethodGet, "http://"+b.Addr().String()+"/_openmeet/client/v1/media/download/"+s+"/"+m+"?room="+url.QueryEscape(roomID), nil)
			req.Header.Set("Authorization", "Bearer "+ada)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			status, header = resp.StatusCode, resp.Header
			body, _ = io.ReadAll(resp.Body)
			return status != 403
		})
		disposition := header.Get("Content-Disposition")
		if status != 200 || string(body) != tc.body || header.Get("X-Content-Type-Options") != "nosniff" ||
			!strings.Contains(header.Get("Content-Security-Policy"), "sandbox") || strings.HasPrefix(disposition, "inline") != tc.inline ||
			!strings.HasPrefix(disposition, "inline") && !strings.HasPrefix(disposition, "attachment") || !strings.Contains(disposition, tc.name) {
			t.Errorf("%s: %d %v", tc.name, status, header)
		}
	}
	// A thumbnail of a silly size.
	thumb := signerFor(hs).URL(media.Thumbnail, id.RoomID(roomID), up.ContentURI, url.Values{"width": {"0"}, "height": {"99999"}})
	if status, _, body := fetchURL(t, b, thumb, nil); status != 400 {
		t.Errorf("thumbnail size: %d %s", status, body)
	}
}

func signerFor(hs *harness.Synapse) *media.Signer {
	return media.NewSigner(media.DeriveKey(hs.AS.ASToken), time.Hour, "")
}

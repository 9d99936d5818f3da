package bridge_test

import (
	"bytes"
	"context"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/openmeet-team/openmeet-bridge/internal/harness"
)

func pngBytes(t *testing.T) []byte {
	img := image.NewRGBA(image.Rect(0, 0, 8, 8))
	img.Set(1, 1, color.RGBA{R: 255, A: 255})
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestGhostAvatarFromURL(t *testing.T) {
	hs := harness.SharedSynapse(t)
	cfg := testConfig(t, t.TempDir(), hs.URL, hs.ServerName, hs.AS)
	// The test server speaks plain HTTP on loopback; production accepts
	// only https:// and mxc:// URLs.
	cfg.Portals.Avatars.AllowHTTP = true
	cfg.Portals.Avatars.MaxBytes = 64 << 10
	cfg.Portals.SyncWait = 5 * time.Second
	b := startBridge(t, cfg)
	eventually(t, 60*time.Second, "the bridge to be ready", func() bool { return b.HS.Ready() })
	img := pngBytes(t)
	files := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok.png":
			w.Header().Set("Content-Type", "image/png")
			_, _ = w.Write(img)
		case "/huge.png":
			w.Header().Set("Content-Type", "image/png")
			_, _ = w.Write(bytes.Repeat([]byte{0}, 65<<10))
		case "/page.html":
			w.Header().Set("Content-Type", "text/html")
			_, _ = w.Write([]byte("<html></html>"))
		default:
			http.NotFound(w, r)
		}
	}))
	defer files.Close()
	tenant := harness.UniqueName("tenant-")
	alice := hs.NewUser(t, "alice")

	var out struct {
		UserID    string `json:"user_id"`
		State     string `json:"state"`
		LastError string `json:"last_error"`
		AvatarMXC string `json:"avatar_mxc"`
	}
	if code := provision(t, b, "PUT", "/tenants/"+tenant+"/users/pic", map[string]string{"displayname": "Pic", "avatar_url": files.URL + "/ok.png"}, &out); code != 200 || !strings.HasPrefix(out.AvatarMXC, "mxc://") {
		t.Fatalf("avatar from URL: %d %+v", code, out)
	}
	_, avatar, err := alice.Profile(context.Background(), out.UserID)
	if err != nil || avatar != out.AvatarMXC {
		t.Fatalf("Synapse has avatar %q (%v), want %q", avatar, err, out.AvatarMXC)
	}
	// The same URL again is not downloaded again.
	first := out.AvatarMXC
	provision(t, b, "PUT", "/tenants/"+tenant+"/users/pic", map[string]string{"displayname": "Pic", "avatar_url": files.URL + "/ok.png"}, &out)
	if out.AvatarMXC != first {
		t.Fatalf("re-uploaded: %s vs %s", out.AvatarMXC, first)
	}
	for _, bad := range []struct{ path, want string }{
		{"/huge.png", "larger than"}, {"/page.html", "not an image"}, {"/missing.png", "HTTP 404"},
	} {
		code := provision(t, b, "PUT", "/tenants/"+tenant+"/users/"+strings.Trim(bad.path, "/."), map[string]string{"displayname": "Bad", "avatar_url": files.URL + bad.path}, &out)
		if code != 202 || out.State != "error" || !strings.Contains(out.LastError, bad.want) {
			t.Errorf("%s: %d %+v, want 202 with an error about %q", bad.path, code, out, bad.want)
		}
	}
}

package bridge_test

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
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
	// only https:// and mxc:// URLs, from public addresses.
	cfg.Portals.Avatars.AllowHTTP = true
	cfg.Portals.Avatars.AllowPrivateAddresses = true
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
	// Why a download failed is logged, not shown: the answer says only
	// that it failed.
	for _, bad := range []string{"/huge.png", "/page.html", "/missing.png"} {
		code := provision(t, b, "PUT", "/tenants/"+tenant+"/users/"+strings.Trim(bad, "/."), map[string]string{"displayname": "Bad", "avatar_url": files.URL + bad}, &out)
		if code != 202 || out.State != "error" || out.LastError != "avatar could not be downloaded" {
			t.Errorf("%s: %d %+v, want 202 with the generic download error", bad, code, out)
		}
	}
}

// TestGhostAvatarFromInternalAddressRefused: without
// portals.avatars.allow_private_addresses the bridge does not connect to
// loopback (nor other internal addresses), and the provisioning API does
// not tell a refused address from an unreachable one or a bad answer.
func TestGhostAvatarFromInternalAddressRefused(t *testing.T) {
	hs := harness.SharedSynapse(t)
	cfg := testConfig(t, t.TempDir(), hs.URL, hs.ServerName, hs.AS)
	cfg.Portals.Avatars.AllowHTTP = true
	cfg.Portals.SyncWait = 5 * time.Second
	b := startBridge(t, cfg)
	eventually(t, 60*time.Second, "the bridge to be ready", func() bool { return b.HS.Ready() })
	var hits atomic.Int64
	img := pngBytes(t)
	internal := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "image/png")
		_, _ = w.Write(img)
	}))
	defer internal.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()
	tenant := harness.UniqueName("tenant-")
	port := internal.Listener.Addr().(*net.TCPAddr).Port
	for i, source := range []string{
		internal.URL + "/a.png",
		fmt.Sprintf("http://localhost:%d/a.png", port),
		fmt.Sprintf("http://[::ffff:127.0.0.1]:%d/a.png", port),
		"http://169.254.169.254/latest/meta-data/",
		closedURL + "/a.png",
	} {
		var out struct {
			State     string `json:"state"`
			LastError string `json:"last_error"`
			AvatarMXC string `json:"avatar_mxc"`
		}
		code := provision(t, b, "PUT", fmt.Sprintf("/tenants/%s/users/u%d", tenant, i), map[string]string{"displayname": "Probe", "avatar_url": source}, &out)
		if code != 202 || out.State != "error" || out.LastError != "avatar could not be downloaded" || out.AvatarMXC != "" {
			t.Errorf("%s: %d %+v, want 202 with the generic download error", source, code, out)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("%d requests reached the loopback server", n)
	}
}

package bridge_test

import (
	"bytes"
	"image"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/openmeet-team/openmeet-bridge/internal/harness"
)

// TestGhostAvatarURLs: a ghost's avatar (set from the provisioning API)
// reaches other members' streams as a URL that loads it.
func TestGhostAvatarURLs(t *testing.T) {
	hs := harness.SharedSynapse(t)
	cfg := clientConfig(t, hs)
	cfg.Portals.Avatars.AllowHTTP = true
	cfg.Portals.Avatars.AllowPrivateAddresses = true
	b := startBridge(t, cfg)
	eventually(t, 60*time.Second, "the bridge to be ready", func() bool { return b.HS.Ready() })
	img := testPNG(t, 48, 48)
	files := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/png")
		_, _ = w.Write(img)
	}))
	defer files.Close()
	tenant, ada, bob := meetupWithAdaAndBob(t, b, b)
	stream, _ := openStream(t, b, ada, "", "")
	provision(t, b, "PUT", "/tenants/"+tenant+"/users/bob", map[string]string{"displayname": "Bob", "avatar_url": files.URL + "/bob.png"}, nil)
	if code := call(t, b, bob, "PUT", "/rooms/events/meetup/send/face-1", map[string]string{"body": "bob with a face"}, nil); code != 200 {
		t.Fatalf("send: %d", code)
	}
	evt := stream.waitFor(t, "bob's message", isMessage("bob with a face"))
	urls, _ := evt.Data["media"].(map[string]any)
	avatarURL, _ := urls["sender_avatar_url"].(string)
	status, header, body := fetchURL(t, b, avatarURL, nil)
	cfgImg, _, err := image.DecodeConfig(bytes.NewReader(body))
	if avatarURL == "" || status != 200 || err != nil || header.Get("Content-Type") != "image/png" || cfgImg.Width == 0 {
		t.Fatalf("bob's avatar %q: %d %v %v", avatarURL, status, err, header)
	}
}

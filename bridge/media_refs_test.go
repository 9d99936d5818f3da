package bridge_test

import (
	"bytes"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/openmeet-team/openmeet-bridge/bridge"
	"github.com/openmeet-team/openmeet-bridge/internal/harness"
	"github.com/openmeet-team/openmeet-bridge/media"
)

// downloadAs fetches a file with a JWT and ?room=, as a page without a
// signed URL does.
func downloadAs(t *testing.T, b *bridge.Bridge, token, mxc, roomID string) (int, []byte) {
	t.Helper()
	server, mediaID, ok := media.ParseMXC(mxc)
	if !ok {
		t.Fatalf("not an mxc URI: %q", mxc)
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+b.Addr().String()+"/_openmeet/client/v1/media/download/"+server+"/"+mediaID+"?room="+url.QueryEscape(roomID), nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	checkAgainstOpenAPI(t, req, resp.StatusCode, body)
	return resp.StatusCode, body
}

// TestMediaNamedInAnotherRoom: a file posted in one room is not served to
// a member of another room who names it in a text message there (the
// message's JSON then holds "mxc://server/id" in quotes, as a file's url
// would); a member of the file's room gets it until its event is
// redacted. On both engines: their writes of the references differ.
func TestMediaNamedInAnotherRoom(t *testing.T) {
	hs := harness.SharedSynapse(t)
	// One after the other: both would be the appservice Synapse pushes to.
	t.Run("sqlite", func(t *testing.T) { mediaNamedInAnotherRoom(t, hs, clientConfig(t, hs)) })
	t.Run("postgres", func(t *testing.T) {
		cfg := clientConfig(t, hs)
		cfg.Database.Type, cfg.Database.URI = "postgres", harness.PostgresURI(t)
		mediaNamedInAnotherRoom(t, hs, cfg)
	})
}

func mediaNamedInAnotherRoom(t *testing.T, hs *harness.Synapse, cfg *bridge.Config) {
	b := startBridge(t, cfg)
	eventually(t, 60*time.Second, "the bridge to be ready", func() bool { return b.HS.Ready() })
	ada, _, room1 := mediaRoom(t, hs, b)
	var who struct {
		Tenant string `json:"tenant"`
	}
	call(t, b, ada, "GET", "/whoami", nil, &who)

	// Mallory is in a second meetup of the tenant only.
	provisionUser(t, b, who.Tenant, "mallory", "Mallory")
	base := "/tenants/" + who.Tenant + "/events/other"
	var br struct {
		Portal portalOut `json:"portal"`
	}
	provision(t, b, "PUT", base, map[string]any{"name": "Other", "visibility": "public"}, nil)
	provision(t, b, "POST", base+"/members:batch", map[string]any{"set": []map[string]string{{"user_slug": "mallory", "role": "attendee"}}}, &br)
	room2 := br.Portal.RoomID
	mallory := mintJWT(t, jwtSecret, who.Tenant, "mallory", time.Hour)
	eventually(t, 30*time.Second, "mallory's membership", func() bool {
		return call(t, b, mallory, "GET", "/rooms/events/other/messages?limit=1", nil, nil) == 200
	})
	adaStream, code := openStream(t, b, ada, "", "")
	if code != 200 {
		t.Fatalf("ada's stream: %d", code)
	}
	malloryStream, code := openStream(t, b, mallory, "", "")
	if code != 200 {
		t.Fatalf("mallory's stream: %d", code)
	}

	// Ada posts a file in room 1; the upload's echo is logged when her
	// stream shows it.
	secret := testPNG(t, 40, 30)
	var up uploaded
	if code := uploadFile(t, b, ada, "/rooms/events/meetup/upload/secret?filename=secret.png", "image/png", secret, &up); code != 200 || up.EventID == "" {
		t.Fatalf("upload: %d %+v", code, up)
	}
	adaStream.waitFor(t, "ada's file", isMessage("secret.png"))
	if status, body := downloadAs(t, b, ada, up.ContentURI, room1); status != 200 || !bytes.Equal(body, secret) {
		t.Fatalf("ada downloading her file in its room: %d, %d bytes", status, len(body))
	}

	// Mallory names it in room 2 the way a file's url reads in JSON.
	text := `look at "` + up.ContentURI
	var sent struct {
		State string `json:"state"`
	}
	if code := call(t, b, mallory, "PUT", "/rooms/events/other/send/m1", map[string]string{"body": text}, &sent); code != 200 || sent.State != "sent" {
		t.Fatalf("mallory's message: %d %+v", code, sent)
	}
	evt := malloryStream.waitFor(t, "mallory's message", isMessage(text))
	if m, _ := evt.Data["media"].(map[string]any); m["url"] != nil || m["thumbnail_url"] != nil {
		t.Fatalf("a text message got media URLs: %v", m)
	}
	for name, tc := range map[string]struct{ token, room string }{
		"mallory, in the room of her message": {mallory, room2},
		"mallory, in the file's room":         {mallory, room1},
		"ada, in a room she is not in":        {ada, room2},
	} {
		if status, body := downloadAs(t, b, tc.token, up.ContentURI, tc.room); status != 403 || !strings.Contains(string(body), "M_FORBIDDEN") {
			t.Errorf("%s: %d %.80q", name, status, body)
		}
	}
	if status, body := downloadAs(t, b, ada, up.ContentURI, room1); status != 200 || !bytes.Equal(body, secret) {
		t.Fatalf("ada downloading her file after mallory's message: %d", status)
	}

	// Once the file's event is redacted it is served through it no more.
	if code := call(t, b, ada, "PUT", "/rooms/events/meetup/redact/r1", map[string]string{"event_id": up.EventID}, nil); code != 200 {
		t.Fatalf("redact: %d", code)
	}
	adaStream.waitFor(t, "the redaction", func(e streamEvent) bool { return e.Event == "m.room.redaction" })
	if status, body := downloadAs(t, b, ada, up.ContentURI, room1); status != 403 || !strings.Contains(string(body), "M_FORBIDDEN") {
		t.Fatalf("download of a redacted file: %d %.80q", status, body)
	}
}

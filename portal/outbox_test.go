package portal

import (
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"

	"github.com/openmeet-team/openmeet-bridge/appservice"
	"github.com/openmeet-team/openmeet-bridge/database"
)

// TestDeliveryBound: the longest send is every attempt the client makes at
// its full HTTP timeout plus the pauses between them, and a claim outlives
// it, also with the homeserver client the bridge really uses.
func TestDeliveryBound(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name   string
		client *mautrix.Client
		want   time.Duration
	}{
		{"mautrix defaults", &mautrix.Client{Client: &http.Client{Timeout: time.Minute}, DefaultHTTPRetries: 2}, 3*time.Minute + 4*time.Second + 8*time.Second},
		{"one attempt", &mautrix.Client{Client: &http.Client{Timeout: 10 * time.Second}}, 10 * time.Second},
		{"no timeout counts as a minute", &mautrix.Client{Client: &http.Client{}, DefaultHTTPRetries: 1, DefaultHTTPBackoff: time.Second}, 2*time.Minute + time.Second},
	} {
		if got := deliveryBound(tt.client); got != tt.want {
			t.Errorf("%s: %s, want %s", tt.name, got, tt.want)
		}
	}

	db, err := database.Open(database.Config{Type: "sqlite3-fk-wal", URI: "file:" + filepath.Join(t.TempDir(), "t.db") + "?_txlock=immediate"}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	hs, err := appservice.NewHomeserver(&appservice.Config{ID: "openmeet", ASToken: "as-token", HSToken: "hs-token",
		Address: "http://127.0.0.1:1", Bot: appservice.BotConfig{Username: "openmeetbot"}},
		&appservice.HomeserverConfig{Address: "http://127.0.0.1:2", Domain: "example.org"}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	o := NewOutbox(db, hs, zerolog.Nop())
	ghost := hs.Intent("@openmeet_t_u:example.org").Client
	worst := time.Duration(ghost.DefaultHTTPRetries+1)*ghost.Client.Timeout + 4*time.Second + 8*time.Second
	if o.sendBound != worst || o.claimFor <= worst+recordTimeout+searchBudget {
		t.Fatalf("send bound %s, claim %s; a ghost's worst send takes %s", o.sendBound, o.claimFor, worst)
	}
}

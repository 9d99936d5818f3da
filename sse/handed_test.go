package sse

import (
	"fmt"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix/event"

	"github.com/openmeet-team/openmeet-bridge/database"
)

// TestHandedAndLoggedEventsReachAStreamInOrder: events handed to the hub in
// process right after their commit and events it must read from the log
// (logged but not handed, as another replica's; handed out of order or
// twice; a transaction whose first position was skipped for an event
// logged before) reach a stream once each, in log order, without a gap;
// and the frames of handed events are timed from their push's arrival.
func TestHandedAndLoggedEventsReachAStreamInOrder(t *testing.T) {
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) {
			bothModes(t, func(t *testing.T, cfg Config) {
				db, _ := openTestDB(t, engine, "")
				observed := make(chan time.Duration, 100)
				f := startHub(t, db, cfg, func(h *Hub, _ *httptest.Server) {
					h.ObserveDelivery(func(d time.Duration) { observed <- d })
				})
				f.push(t, membership("!a", "@u:test", event.MembershipJoin))
				frames, _ := f.open(t, "@u:test", "")
				received := time.Now()
				hand := func(events ...*database.LoggedEvent) []*database.LoggedEvent {
					t.Helper()
					written, err := f.log(events...)
					if err != nil {
						t.Fatal(err)
					}
					f.hub.Logged(written, received)
					return written
				}
				logOnly := func(events ...*database.LoggedEvent) []*database.LoggedEvent {
					t.Helper()
					written, err := f.log(events...)
					if err != nil {
						t.Fatal(err)
					}
					return written
				}
				first := message("!a", "m1")
				hand(first, message("!a", "m2"))
				logOnly(message("!a", "m3"))
				hand(message("!a", "m4"))
				w5, w6 := logOnly(message("!a", "m5")), logOnly(message("!a", "m6"))
				f.hub.Logged(w6, received)
				f.hub.Logged(w5, received)
				f.hub.Logged(w6, received)
				again := *first
				hand(&again, message("!a", "m7"))
				second := message("!a", "m8")
				hand(second)
				againSecond := *second
				last := hand(message("!a", "m9"), &againSecond, message("!a", "m10"))
				var pos int64
				for i := 1; i <= 10; i++ {
					got := next(t, frames)
					if !strings.Contains(got.data, fmt.Sprintf(`"body":"m%d"`, i)) {
						t.Fatalf("frame %d is %+v, want m%d", i, got, i)
					}
					p, err := strconv.ParseInt(got.id, 10, 64)
					if err != nil || p <= pos {
						t.Fatalf("frame %d has id %q after %d", i, got.id, pos)
					}
					pos = p
				}
				if want := last[len(last)-1].Position; pos != want {
					t.Fatalf("the stream ends at %d, the log at %d", pos, want)
				}
				expectNone(t, frames)
				// Handed events are timed (those the hub read from the log
				// instead, because a poll came first, are not): at least
				// one, at most one per message, each after its arrival.
				select {
				case d := <-observed:
					if d <= 0 {
						t.Fatalf("a delivery timed at %v", d)
					}
				case <-time.After(5 * time.Second):
					t.Fatal("no delivery was timed")
				}
				if n := len(observed); n > 9 {
					t.Fatalf("%d more deliveries timed, want at most 9", n)
				}
			})
		})
	}
}

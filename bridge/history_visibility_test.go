package bridge_test

import (
	"context"
	"net/url"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/openmeet-team/openmeet-bridge/bridge"
	"github.com/openmeet-team/openmeet-bridge/internal/harness"
)

// TestResumeFollowsHistoryVisibility, on real Synapse: a stream resumed
// from a position taken before its user joined carries exactly what
// Synapse shows that user of the range (their /messages), besides the
// user's own membership: with history "joined" none of the messages sent
// before the join, with "shared" all of them. A stream resumed from before
// the user left carries the room up to the leave, and nothing after it.
func TestResumeFollowsHistoryVisibility(t *testing.T) {
	for _, tc := range []struct {
		visibility     string
		seesBeforeJoin bool
		postgres       bool
	}{
		{"joined", false, false},
		{"shared", true, false},
		{"joined", false, true},
	} {
		name := tc.visibility
		if tc.postgres {
			name += "/postgres"
		}
		t.Run(name, func(t *testing.T) {
			hs := harness.SharedSynapse(t)
			cfg := clientConfig(t, hs)
			cfg.Portals.HistoryVisibility = tc.visibility
			if tc.postgres {
				cfg.Database.Type, cfg.Database.URI = "postgres", harness.PostgresURI(t)
			}
			b := startBridge(t, cfg)
			eventually(t, 60*time.Second, "the bridge to be ready", func() bool { return b.HS.Ready() })
			tenant, ada, bob := meetupWithAdaAndBob(t, b, b)
			roomID := meetupRoomID(t, b, ada)
			carolID := provisionUser(t, b, tenant, "carol", "Carol")
			carol := mintJWT(t, jwtSecret, tenant, "carol", time.Hour)
			watch, _ := openStream(t, b, ada, "", "")
			positionFrame(t, nextEvent(t, watch))

			stream, code := openStream(t, b, carol, "", "")
			if code != 200 {
				t.Fatalf("carol's stream: %d", code)
			}
			before := positionFrame(t, nextEvent(t, stream))
			stream.close()
			var early []string
			for i := 1; i <= 3; i++ {
				early = append(early, sendText(t, b, bob, "early-"+strconv.Itoa(i), "before carol "+strconv.Itoa(i)))
			}
			base := "/tenants/" + tenant + "/events/meetup"
			provision(t, b, "POST", base+"/members:batch", map[string]any{"set": []map[string]string{{"user_slug": "carol", "role": "attendee"}}}, nil)
			eventually(t, 30*time.Second, "carol to be joined", func() bool {
				return call(t, b, carol, "GET", "/rooms/events/meetup/messages?limit=1", nil, nil) == 200
			})
			later := sendText(t, b, bob, "later", "after carol joined")
			watch.waitFor(t, "the message after the join", isMessage("after carol joined"))

			got, end := resume(t, b, carol, carolID.String(), before, roomID)
			want := synapseShows(t, b, hs, carolID.String(), roomID, before, end)
			for _, evtID := range early {
				if slices.Contains(got.ids, evtID) != tc.seesBeforeJoin {
					t.Errorf("message %s sent before carol joined: in the resumed stream %v, want %v", evtID, !tc.seesBeforeJoin, tc.seesBeforeJoin)
				}
			}
			if !slices.Contains(got.ids, later) || !got.hasOwn("join") {
				t.Errorf("the resumed stream lacks carol's join or the later message: %v", got.ids)
			}
			got.sameAs(t, want)

			// Carol leaves; a stream resumed from before gets the room up
			// to her leave.
			sendText(t, b, bob, "last-before-leave", "before carol left")
			provision(t, b, "POST", base+"/members:batch", map[string]any{"remove": []string{"carol"}}, nil)
			eventually(t, 30*time.Second, "carol to have left", func() bool {
				return call(t, b, carol, "GET", "/rooms/events/meetup/messages?limit=1", nil, nil) != 200
			})
			afterLeave := sendText(t, b, bob, "after-leave", "after carol left")
			watch.waitFor(t, "the message after the leave", isMessage("after carol left"))
			got, end = resume(t, b, carol, carolID.String(), before, roomID)
			want = synapseShows(t, b, hs, carolID.String(), roomID, before, end)
			if slices.Contains(got.ids, afterLeave) || !got.hasOwn("leave") || !slices.Contains(got.ids, later) {
				t.Errorf("resumed after the leave: %v; want the later message and the leave, not %s", got.ids, afterLeave)
			}
			got.sameAs(t, want)
		})
	}
}

// resumed is what a resumed stream carried of one room, in order.
type resumed struct {
	ids        []string
	membership map[string]string // the user's own member event ID -> membership
}

func (r resumed) hasOwn(membership string) bool {
	for _, m := range r.membership {
		if m == membership {
			return true
		}
	}
	return false
}

// sameAs fails unless the stream carried the events Synapse shows, apart
// from the user's own member events (the stream always carries those).
func (r resumed) sameAs(t *testing.T, synapse []string) {
	t.Helper()
	var others []string
	for _, evtID := range r.ids {
		if _, own := r.membership[evtID]; !own {
			others = append(others, evtID)
		}
	}
	var want []string
	for _, evtID := range synapse {
		if _, own := r.membership[evtID]; !own {
			want = append(want, evtID)
		}
	}
	if !slices.Equal(others, want) {
		t.Errorf("the resumed stream carried %v of the room, Synapse shows the user %v", others, want)
	}
}

// resume opens the stream of userID (token) from position from and returns
// what its catch-up carried of roomID, and the position the catch-up ended
// at.
func resume(t *testing.T, b *bridge.Bridge, token, userID string, from int64, roomID string) (resumed, int64) {
	t.Helper()
	stream, code := openStream(t, b, token, "", strconv.FormatInt(from, 10))
	if code != 200 {
		t.Fatalf("resume: %d", code)
	}
	defer stream.close()
	if got := positionFrame(t, nextEvent(t, stream)); got != from {
		t.Fatalf("the resumed stream starts at %d, want %d", got, from)
	}
	r := resumed{membership: map[string]string{}}
	for {
		evt := nextEvent(t, stream)
		if evt.Event == "position" {
			end := positionFrame(t, evt)
			if end == from && len(r.ids) > 0 {
				t.Fatalf("a catch-up with events ends where it started")
			}
			return r, end
		}
		inner, _ := evt.Data["event"].(map[string]any)
		if evt.Data["room_id"] != roomID {
			continue
		}
		evtID, _ := inner["event_id"].(string)
		r.ids = append(r.ids, evtID)
		if stateKey, _ := inner["state_key"].(string); inner["type"] == "m.room.member" && stateKey == userID {
			content, _ := inner["content"].(map[string]any)
			r.membership[evtID], _ = content["membership"].(string)
		}
	}
}

// synapseShows is what Synapse's /messages shows userID of roomID, logged
// after position from up to to, in log order.
func synapseShows(t *testing.T, b *bridge.Bridge, hs *harness.Synapse, userID, roomID string, from, to int64) []string {
	t.Helper()
	as := &harness.MatrixUser{AccessToken: hs.AS.ASToken, HS: hs}
	var page struct {
		Chunk []struct {
			EventID string `json:"event_id"`
		} `json:"chunk"`
	}
	path := "/_matrix/client/v3/rooms/" + url.PathEscape(roomID) + "/messages?dir=b&limit=1000&user_id=" + url.QueryEscape(userID)
	if err := as.Do(context.Background(), "GET", path, nil, &page); err != nil {
		t.Fatalf("messages as %s: %v", userID, err)
	}
	shown := map[string]bool{}
	for _, evt := range page.Chunk {
		shown[evt.EventID] = true
	}
	logged, err := b.DB.EventLog.After(context.Background(), from, 100000)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, evt := range logged {
		if evt.Position <= to && evt.RoomID.String() == roomID && shown[evt.EventID.String()] {
			ids = append(ids, evt.EventID.String())
		}
	}
	return ids
}

package sse

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/openmeet-team/openmeet-bridge/database"
)

func historyVisibility(room, vis string) *database.LoggedEvent {
	evtID := fmt.Sprintf("$v%d", seq.Add(1))
	empty := ""
	return &database.LoggedEvent{EventID: id.EventID(evtID), RoomID: id.RoomID(room), Type: "m.room.history_visibility", Sender: "@x:test", StateKey: &empty,
		Raw: []byte(fmt.Sprintf(`{"event_id":%q,"room_id":%q,"type":"m.room.history_visibility","sender":"@x:test","state_key":"","content":{"history_visibility":%q}}`, evtID, room, vis))}
}

// resumeBodies resumes user's stream from position from and returns the
// messages (bodies) and own member events ("membership room") of its
// catch-up.
func resumeBodies(t *testing.T, f *hubFixture, user string, from int64) []string {
	t.Helper()
	frames, resp := f.openAll(t, user, fmt.Sprint(from))
	if resp.StatusCode != 200 {
		t.Fatalf("resume: %d", resp.StatusCode)
	}
	defer resp.Body.Close()
	var got []string
	for first := true; ; first = false {
		fr := next(t, frames)
		switch {
		case fr.event == EventPosition && !first:
			return got
		case fr.event == "m.room.message":
			got = append(got, gjsonString([]byte(fr.data), "event.content.body"))
		case fr.event == "m.room.member":
			got = append(got, gjsonString([]byte(fr.data), "event.content.membership")+" "+gjsonString([]byte(fr.data), "room_id"))
		case strings.Contains(fr.data, `"history_visibility":`):
			got = append(got, "visibility "+gjsonString([]byte(fr.data), "event.content.history_visibility"))
		}
	}
}

// TestResumeHistoryVisibilityRules: the rules of a resumed stream beyond
// what the real-Synapse test covers: "invited" history shows what was sent
// while the user was invited, once they joined, and nothing while they
// are only invited; a visibility change counts with the laxer of before
// and after; when the log was pruned up to the resumed position, a room
// the user stayed in shows, one whose membership changed since shows only
// the change.
func TestResumeHistoryVisibilityRules(t *testing.T) {
	t.Parallel()
	f := newHubFixture(t, testCfg())
	const u = "@u:test"
	f.push(t, historyVisibility("!i", "invited"), historyVisibility("!n", "invited"), historyVisibility("!c", "joined"))
	from := f.push(t, message("!i", "before the invite"))[0].Position
	f.push(t,
		membership("!i", u, event.MembershipInvite), message("!i", "while invited"),
		membership("!n", u, event.MembershipInvite), message("!n", "invited, never joined"),
		message("!c", "joined history"), historyVisibility("!c", "shared"), message("!c", "shared history"),
		membership("!i", u, event.MembershipJoin), membership("!c", u, event.MembershipJoin),
		message("!i", "joined"))
	got := strings.Join(resumeBodies(t, f, u, from), "|")
	want := strings.Join([]string{"invite !i", "while invited", "invite !n", "visibility shared", "shared history", "join !i", "join !c", "joined"}, "|")
	if got != want {
		t.Fatalf("resumed:\n got %s\nwant %s", got, want)
	}

	// Pruned up to the resumed position: the user's joins are gone from
	// the log. The user is still in !q: its messages show. In !p the user
	// left since: what their membership was at the position is no longer
	// known, so only the leave shows.
	p := newHubFixture(t, testCfg())
	p.push(t, historyVisibility("!p", "joined"), membership("!p", u, event.MembershipJoin), membership("!q", u, event.MembershipJoin))
	last := p.push(t, message("!p", "pruned"))[0].Position
	if n, err := p.db.EventLog.Prune(context.Background(), time.Now().Add(time.Hour), int(last)); err != nil || n != last {
		t.Fatalf("prune: %d %v", n, err)
	}
	p.push(t, message("!q", "after the prune in !q"), message("!p", "after the prune in !p"),
		membership("!p", u, event.MembershipLeave), message("!p", "after the leave"))
	got = strings.Join(resumeBodies(t, p, u, last), "|")
	if want := "after the prune in !q|leave !p"; got != want {
		t.Fatalf("resumed after a prune: got %s, want %s", got, want)
	}
}

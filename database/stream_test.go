package database_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/openmeet-team/openmeet-bridge/database"
)

// memberWithContent is member with the membership in the raw event too,
// as Synapse sends it and as the stream reads it back.
func memberWithContent(eventID, roomID, userID string, m event.Membership) *database.LoggedEvent {
	e := member(eventID, roomID, userID, m)
	e.Raw = fmt.Appendf(nil, `{"event_id":%q,"type":"m.room.member","state_key":%q,"content":{"membership":%q}}`, eventID, userID, m)
	return e
}

func TestStreamSnapshotAndMemberEvents(t *testing.T) {
	engines(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		snap, err := db.EventLog.StreamSnapshot(ctx, "@u:test")
		if err != nil || snap.Position != 0 || len(snap.Rooms) != 0 {
			t.Fatalf("empty log: %+v %v", snap, err)
		}
		if _, err := appendTxn(ctx, db, "t1", []*database.LoggedEvent{
			memberWithContent("$1", "!b", "@u:test", event.MembershipJoin),
			memberWithContent("$2", "!a", "@u:test", event.MembershipJoin),
			memberWithContent("$3", "!c", "@u:test", event.MembershipJoin),
			memberWithContent("$4", "!a", "@other:test", event.MembershipJoin),
			msg("$5", "!a"),
			memberWithContent("$6", "!c", "@u:test", event.MembershipLeave),
		}); err != nil {
			t.Fatal(err)
		}
		snap, err = db.EventLog.StreamSnapshot(ctx, "@u:test")
		if err != nil || snap.Position != 6 || !slices.Equal(snap.Rooms, []id.RoomID{"!a", "!b"}) {
			t.Fatalf("snapshot %+v %v", snap, err)
		}
		if snap, err = db.EventLog.StreamSnapshot(ctx, "@nobody:test"); err != nil || snap.Position != 6 || len(snap.Rooms) != 0 {
			t.Fatalf("user without rooms: %+v %v", snap, err)
		}
		events, err := db.EventLog.MemberEventsBetween(ctx, "@u:test", 1, 6)
		if err != nil || len(events) != 3 || events[0].EventID != "$2" || events[1].EventID != "$3" || events[2].EventID != "$6" {
			t.Fatalf("member events: %+v %v", events, err)
		}
		if events, err = db.EventLog.MemberEventsBetween(ctx, "@u:test", 3, 5); err != nil || len(events) != 0 {
			t.Fatalf("a range without the user's member events: %+v %v", events, err)
		}
	})
}

// TestStreamSnapshotIsAtomic: while membership changes are logged, every
// snapshot's rooms are exactly what the log up to its position says.
func TestStreamSnapshotIsAtomic(t *testing.T) {
	engines(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		const txns = 150
		var wg sync.WaitGroup
		wg.Add(1)
		writeErr := make(chan error, 1)
		go func() {
			defer wg.Done()
			for i := range txns {
				m := event.MembershipJoin
				if i%3 == 2 {
					m = event.MembershipLeave
				}
				room := fmt.Sprintf("!r%d", i%5)
				if _, err := appendTxn(ctx, db, fmt.Sprint("w", i), []*database.LoggedEvent{
					msg(fmt.Sprint("$m", i), room), memberWithContent(fmt.Sprint("$j", i), room, "@u:test", m),
				}); err != nil {
					writeErr <- err
					return
				}
			}
		}()
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		for checked := 0; ; checked++ {
			snap, err := db.EventLog.StreamSnapshot(ctx, "@u:test")
			if err != nil {
				t.Fatal(err)
			}
			events, err := db.EventLog.MemberEventsBetween(ctx, "@u:test", 0, snap.Position)
			if err != nil {
				t.Fatal(err)
			}
			joined := map[id.RoomID]bool{}
			for _, evt := range events {
				joined[evt.RoomID] = gjson.GetBytes(evt.Raw, "content.membership").Str == "join"
			}
			var want []id.RoomID
			for room, in := range joined {
				if in {
					want = append(want, room)
				}
			}
			slices.Sort(want)
			if !slices.Equal(snap.Rooms, want) {
				t.Fatalf("snapshot at %d has rooms %v, the log says %v", snap.Position, snap.Rooms, want)
			}
			select {
			case err := <-writeErr:
				t.Fatal(err)
			case <-done:
				if snap.Position == 2*txns {
					return
				}
			default:
			}
		}
	})
}

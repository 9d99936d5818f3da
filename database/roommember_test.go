package database_test

import (
	"context"
	"testing"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/openmeet-team/openmeet-bridge/database"
)

// TestMemberRowsAndEventPositions: the queries behind "a 200 means done":
// a member row names the event it comes from and its position, and the log
// answers where an event is and which is a room's newest.
func TestMemberRowsAndEventPositions(t *testing.T) {
	engines(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		if pos, _, ok, err := db.EventLog.NewestInRoom(ctx, "!r"); err != nil || ok || pos != 0 {
			t.Fatalf("newest of an empty room: %d %v %v", pos, ok, err)
		}
		join, other := member("$j", "!r", "@bob:test", event.MembershipJoin), msg("$o", "!other")
		join.OriginTS, other.OriginTS = 10, 30
		late := msg("$m", "!r")
		late.OriginTS = 20
		if _, err := appendTxn(ctx, db, "t1", []*database.LoggedEvent{join, other, late}); err != nil {
			t.Fatal(err)
		}
		row, err := db.Members.Get(ctx, "!r", "@bob:test")
		if err != nil || row == nil || row.Membership != event.MembershipJoin || row.EventID != "$j" || row.Position != 1 {
			t.Fatalf("bob's row %+v %v", row, err)
		}
		if row, err := db.Members.Get(ctx, "!r", "@nobody:test"); err != nil || row != nil {
			t.Fatalf("a row for nobody: %+v %v", row, err)
		}
		if _, err := appendTxn(ctx, db, "t2", []*database.LoggedEvent{
			member("$l", "!r", "@bob:test", event.MembershipLeave),
			member("$c", "!r", "@carol:test", event.MembershipBan),
		}); err != nil {
			t.Fatal(err)
		}
		rows, err := db.Members.List(ctx, "!r")
		if err != nil || len(rows) != 2 {
			t.Fatalf("rows %+v %v", rows, err)
		}
		want := []database.RoomMember{
			{UserID: "@bob:test", Membership: event.MembershipLeave, EventID: "$l", Position: 4},
			{UserID: "@carol:test", Membership: event.MembershipBan, EventID: "$c", Position: 5},
		}
		for i := range want {
			if *rows[i] != want[i] {
				t.Fatalf("row %d: %+v, want %+v", i, *rows[i], want[i])
			}
		}
		for eventID, wantPos := range map[id.EventID]int64{"$j": 1, "$o": 2, "$m": 3, "$c": 5} {
			if pos, ok, err := db.EventLog.Position(ctx, eventID); err != nil || !ok || pos != wantPos {
				t.Fatalf("position of %s: %d %v %v, want %d", eventID, pos, ok, err, wantPos)
			}
		}
		if _, ok, err := db.EventLog.Position(ctx, "$nope"); err != nil || ok {
			t.Fatalf("position of an unknown event: %v %v", ok, err)
		}
		if pos, ts, ok, err := db.EventLog.NewestInRoom(ctx, "!other"); err != nil || !ok || pos != 2 || ts != 30 {
			t.Fatalf("newest of !other: %d %d %v %v", pos, ts, ok, err)
		}
		if pos, ts, ok, err := db.EventLog.NewestInRoom(ctx, "!r"); err != nil || !ok || pos != 5 || ts != 1 {
			t.Fatalf("newest of !r: %d %d %v %v", pos, ts, ok, err)
		}
	})
}

// TestBackfillMembers: memberships read from a room's state fill only rows
// Synapse never pushed, and any pushed member event replaces them.
func TestBackfillMembers(t *testing.T) {
	engines(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		if _, err := appendTxn(ctx, db, "t1", []*database.LoggedEvent{member("$l", "!r", "@bob:test", event.MembershipLeave)}); err != nil {
			t.Fatal(err)
		}
		err := db.Members.Backfill(ctx, "!r", []database.BackfilledMember{
			{UserID: "@bob:test", Membership: event.MembershipJoin, EventID: "$old"},
			{UserID: "@alice:test", Membership: event.MembershipJoin, Displayname: "Alice", EventID: "$a"},
		})
		if err != nil {
			t.Fatal(err)
		}
		if m, _ := db.Members.Membership(ctx, "!r", "@bob:test"); m != event.MembershipLeave {
			t.Fatalf("backfill overwrote a pushed row: %s", m)
		}
		row, err := db.Members.Get(ctx, "!r", "@alice:test")
		if err != nil || row == nil || row.Membership != event.MembershipJoin || row.Position != 0 || row.EventID != "$a" {
			t.Fatalf("alice's backfilled row %+v %v", row, err)
		}
		if rooms, _ := db.Members.JoinedRooms(ctx, "@alice:test"); len(rooms) != 1 {
			t.Fatalf("alice's rooms %v", rooms)
		}
		if _, err := appendTxn(ctx, db, "t2", []*database.LoggedEvent{member("$al", "!r", "@alice:test", event.MembershipLeave)}); err != nil {
			t.Fatal(err)
		}
		if m, _ := db.Members.Membership(ctx, "!r", "@alice:test"); m != event.MembershipLeave {
			t.Fatalf("a pushed event did not replace the backfilled row: %s", m)
		}
	})
}

package database_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/openmeet-team/openmeet-bridge/database"
)

// TestRoomQueriesFollowTheLog checks the per-room queries (newest event,
// unread count, media reference) against a model of the log, after
// transactions that put several events of a room in one transaction,
// interleave rooms, repeat events already logged (skipped, in the middle
// of a room's run) and prune the oldest. On SQLite they walk the room
// chain kept by triggers; on PostgreSQL they use the room index; both must
// answer alike.
func TestRoomQueriesFollowTheLog(t *testing.T) {
	engines(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		rng := rand.New(rand.NewPCG(7, 11))
		rooms := []id.RoomID{"!a:test", "!b:test", "!c:test", "!d:test"}
		type logged struct {
			pos     int64
			room    id.RoomID
			sender  id.UserID
			msgType string
			mxc     string
			ts      int64
		}
		var model []logged // what the log holds, in order
		var all []*database.LoggedEvent
		next := 0
		check := func(step string) {
			t.Helper()
			for _, room := range rooms {
				var newest *logged
				for i := range model {
					if model[i].room == room {
						newest = &model[i]
					}
				}
				pos, ts, ok, err := db.EventLog.NewestInRoom(ctx, room)
				if err != nil {
					t.Fatal(err)
				}
				if newest == nil {
					if ok {
						t.Fatalf("%s: %s has no event, NewestInRoom says %d", step, room, pos)
					}
				} else if !ok || pos != newest.pos || ts != newest.ts {
					t.Fatalf("%s: %s newest (%d, %d, %v), want (%d, %d)", step, room, pos, ts, ok, newest.pos, newest.ts)
				}
				for _, marker := range []int64{0, int64(next / 3), int64(next - 2)} {
					user := id.UserID(fmt.Sprintf("@reader%d:test", marker))
					if marker > 0 {
						if err := db.ReadMarkers.Set(ctx, user, room, marker); err != nil {
							t.Fatal(err)
						}
					}
					want := 0
					for _, e := range model {
						if e.room == room && e.pos > marker && e.msgType == "m.room.message" && e.sender != user {
							want++
						}
					}
					for _, limit := range []int{3, 1000} {
						got, err := db.ReadMarkers.Unread(ctx, user, room, limit)
						if err != nil {
							t.Fatal(err)
						}
						if got != min(want, limit) {
							t.Fatalf("%s: %s unread after %d (limit %d): %d, want %d", step, room, marker, limit, got, min(want, limit))
						}
					}
				}
				for _, e := range all[max(0, len(all)-12):] {
					mxc := "mxc://test/" + string(e.EventID[1:])
					want := false
					for _, m := range model {
						if m.room == room && m.mxc == mxc {
							want = true
						}
					}
					got, err := db.EventLog.ReferencesMedia(ctx, room, mxc)
					if err != nil || got != want {
						t.Fatalf("%s: %s references %s: %v %v, want %v", step, room, mxc, got, err, want)
					}
				}
			}
		}
		for txn := range 40 {
			var events []*database.LoggedEvent
			for range 1 + rng.IntN(8) {
				if len(all) > 0 && rng.IntN(6) == 0 {
					// Synapse sends an event again in another transaction.
					events = append(events, all[rng.IntN(len(all))])
					continue
				}
				next++
				eventID := fmt.Sprintf("$e%d", next)
				room := rooms[rng.IntN(len(rooms))]
				e := msg(eventID, string(room))
				e.Sender = id.UserID(fmt.Sprintf("@reader%d:test", rng.IntN(4)*next/4))
				e.OriginTS = int64(1000 + next)
				if rng.IntN(3) == 0 {
					e.Type = "m.room.name"
					e.Raw = []byte(fmt.Sprintf(`{"event_id":%q,"type":"m.room.name"}`, eventID))
				} else {
					e.Raw = []byte(fmt.Sprintf(`{"event_id":%q,"content":{"url":"mxc://test/%s"}}`, eventID, eventID[1:]))
				}
				events = append(events, e)
				all = append(all, e)
			}
			written, err := appendTxn(ctx, db, fmt.Sprintf("t%d", txn), events)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range written {
				l := logged{pos: e.Position, room: e.RoomID, sender: e.Sender, msgType: e.Type, ts: e.OriginTS}
				if e.Type == "m.room.message" {
					l.mxc = "mxc://test/" + string(e.EventID[1:])
				}
				model = append(model, l)
			}
			check(fmt.Sprintf("txn %d", txn))
			if txn%13 == 12 {
				// Prune the oldest third: logged_at is now, so prune all
				// up to a count.
				n := int64(len(model) / 3)
				pruned, err := db.EventLog.Prune(ctx, time.Now().Add(time.Minute), int(n))
				if err != nil || pruned != n {
					t.Fatalf("prune: %d %v, want %d", pruned, err, n)
				}
				model = model[n:]
				check(fmt.Sprintf("prune after txn %d", txn))
			}
		}
	})
}

// TestRoomChainOfRowsWithoutIt: rows inserted the way a bridge of schema
// version 6 did (no prev_in_room, no room head moved) are chained by the
// trigger, between and after transactions of this version.
func TestRoomChainOfRowsWithoutIt(t *testing.T) {
	engines(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		if _, err := appendTxn(ctx, db, "t1", []*database.LoggedEvent{msg("$1", "!r"), msg("$2", "!r")}); err != nil {
			t.Fatal(err)
		}
		for _, q := range []string{
			`UPDATE stream_position SET position = position + 2`,
			`INSERT INTO event_log (stream_pos, event_id, room_id, event_type, sender, state_key, origin_ts, event, txn_id, logged_at)
				VALUES (3, '$3', '!r', 'm.room.message', '@alice:test', NULL, 3, '{}', 'old', 1),
				       (4, '$4', '!new', 'm.room.message', '@alice:test', NULL, 4, '{}', 'old', 1)`,
		} {
			if _, err := db.Exec(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := appendTxn(ctx, db, "t2", []*database.LoggedEvent{msg("$5", "!new"), msg("$6", "!r")}); err != nil {
			t.Fatal(err)
		}
		for room, want := range map[id.RoomID][2]int64{"!r": {6, 4}, "!new": {5, 2}} {
			pos, _, ok, err := db.EventLog.NewestInRoom(ctx, room)
			if err != nil || !ok || pos != want[0] {
				t.Fatalf("%s: newest %d %v %v, want %d", room, pos, ok, err, want[0])
			}
			if n, err := db.ReadMarkers.Unread(ctx, "@bob:test", room, 100); err != nil || int64(n) != want[1] {
				t.Fatalf("%s: %d unread (%v), want %d", room, n, err, want[1])
			}
		}
	})
}

// TestPruneTakesOnlyAPrefix: logged_at need not grow with the position (a
// clock stepping back); pruning stops at the first event logged at or
// after the time, so no hole opens in the log or in a room's chain.
func TestPruneTakesOnlyAPrefix(t *testing.T) {
	engines(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		if _, err := appendTxn(ctx, db, "t1", []*database.LoggedEvent{msg("$1", "!r"), msg("$2", "!r"), msg("$3", "!r"), msg("$4", "!r")}); err != nil {
			t.Fatal(err)
		}
		for pos, at := range map[int]int{1: 100, 2: 90, 3: 300, 4: 10} {
			if _, err := db.Exec(ctx, `UPDATE event_log SET logged_at = $1 WHERE stream_pos = $2`, at, pos); err != nil {
				t.Fatal(err)
			}
		}
		if n, err := db.EventLog.Prune(ctx, time.UnixMilli(150), 1); err != nil || n != 1 {
			t.Fatalf("pruned %d (%v), want the limit 1", n, err)
		}
		if n, err := db.EventLog.Prune(ctx, time.UnixMilli(150), 100); err != nil || n != 1 {
			t.Fatalf("pruned %d (%v), want 1: position 3 is newer, 4 stays behind it", n, err)
		}
		if oldest, _ := db.EventLog.OldestPosition(ctx); oldest != 3 {
			t.Fatalf("oldest position %d, want 3", oldest)
		}
		if pos, _, ok, err := db.EventLog.NewestInRoom(ctx, "!r"); err != nil || !ok || pos != 4 {
			t.Fatalf("newest %d %v %v, want 4", pos, ok, err)
		}
		if n, err := db.ReadMarkers.Unread(ctx, "@bob:test", "!r", 100); err != nil || n != 2 {
			t.Fatalf("%d unread (%v), want 2", n, err)
		}
	})
}

// TestRepeatWithinOneCall: an event repeated within one call is written
// once, on both engines (the transaction handler drops such repeats
// itself; the log does not rely on it).
func TestRepeatWithinOneCall(t *testing.T) {
	engines(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		first := msg("$1", "!r")
		written, err := appendTxn(ctx, db, "t1", []*database.LoggedEvent{first, msg("$2", "!r"), msg("$1", "!r"), msg("$3", "!r")})
		if err != nil || len(written) != 3 {
			t.Fatalf("written %d (%v), want 3", len(written), err)
		}
		if written[0] != first {
			t.Fatal("the first of the repeated events is not the one written")
		}
		if n, err := db.ReadMarkers.Unread(ctx, "@bob:test", "!r", 100); err != nil || n != 3 {
			t.Fatalf("%d unread (%v), want 3", n, err)
		}
	})
}

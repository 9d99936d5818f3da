package database_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/openmeet-team/openmeet-bridge/database"
	"github.com/openmeet-team/openmeet-bridge/internal/harness"
)

func TestMain(m *testing.M) { os.Exit(harness.Main(m)) }

// engines runs fn once on a fresh SQLite file and once on a fresh
// PostgreSQL database.
func engines(t *testing.T, fn func(t *testing.T, db *database.Database)) {
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		fn(t, openDB(t, database.Config{Type: "sqlite3-fk-wal", URI: "file:" + filepath.Join(t.TempDir(), "test.db") + "?_txlock=immediate"}))
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		fn(t, openDB(t, database.Config{Type: "postgres", URI: harness.PostgresURI(t), MaxOpenConns: 20}))
	})
}

func openDB(t testing.TB, cfg database.Config) *database.Database {
	t.Helper()
	db, err := database.Open(cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if err := db.Upgrade(context.Background()); err != nil {
		t.Fatal(err)
	}
	return db
}

// appendTxn appends a transaction the way the appservice handler does.
func appendTxn(ctx context.Context, db *database.Database, txnID string, events []*database.LoggedEvent) ([]*database.LoggedEvent, error) {
	return db.EventLog.AppendTransaction(ctx, txnID, database.TxnDigest(events, nil), events)
}

func msg(eventID, roomID string) *database.LoggedEvent {
	return &database.LoggedEvent{
		EventID: id.EventID(eventID), RoomID: id.RoomID(roomID), Type: "m.room.message",
		Sender: "@alice:test", OriginTS: 1, Raw: []byte(`{"event_id":"` + eventID + `"}`),
	}
}

func member(eventID, roomID, userID string, m event.Membership) *database.LoggedEvent {
	e := msg(eventID, roomID)
	e.Type = "m.room.member"
	e.StateKey = &userID
	e.Membership = m
	return e
}

func TestMigrationsAreIdempotent(t *testing.T) {
	engines(t, func(t *testing.T, db *database.Database) {
		// A second run on a migrated database must be a no-op.
		if err := db.Upgrade(context.Background()); err != nil {
			t.Fatal(err)
		}
		pos, err := db.EventLog.MaxPosition(context.Background())
		if err != nil || pos != 0 {
			t.Fatalf("fresh database: position %d, %v", pos, err)
		}
	})
}

func TestAppendTransaction(t *testing.T) {
	engines(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		written, err := appendTxn(ctx, db, "t1", []*database.LoggedEvent{msg("$a", "!r"), msg("$b", "!r")})
		if err != nil || len(written) != 2 || written[0].Position != 1 || written[1].Position != 2 {
			t.Fatalf("first txn: %v %v", written, err)
		}
		// The same txn again: nothing happens.
		if _, err := appendTxn(ctx, db, "t1", []*database.LoggedEvent{msg("$a", "!r"), msg("$b", "!r")}); err != database.ErrDuplicateTxn {
			t.Fatalf("repeated txn: %v", err)
		}
		// A new txn repeating a logged event writes only the new one. (The
		// pause keeps the receive times of t1 and t2 apart for LastTxn.)
		time.Sleep(5 * time.Millisecond)
		written, err = appendTxn(ctx, db, "t2", []*database.LoggedEvent{msg("$b", "!r"), msg("$d", "!r")})
		if err != nil || len(written) != 1 || written[0].EventID != "$d" || written[0].Position <= 2 {
			t.Fatalf("txn with a known event: %+v %v", written, err)
		}
		// Synapse on SQLite reuses txn ids after a restart: the same id with
		// other events is a new transaction, not a retry.
		time.Sleep(5 * time.Millisecond)
		if written, err = appendTxn(ctx, db, "t1", []*database.LoggedEvent{msg("$c", "!r")}); err != nil || len(written) != 1 {
			t.Fatalf("reused txn id: %v %v", written, err)
		}
		all, err := db.EventLog.After(ctx, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		var ids []id.EventID
		for _, e := range all {
			ids = append(ids, e.EventID)
		}
		if fmt.Sprint(ids) != "[$a $b $d $c]" {
			t.Fatalf("log holds %v", ids)
		}
		if string(all[2].Raw) != `{"event_id":"$d"}` {
			t.Fatalf("raw event changed: %s", all[2].Raw)
		}
		got, err := db.EventLog.Get(ctx, "$a")
		if err != nil || got == nil || got.Position != 1 {
			t.Fatalf("Get: %+v %v", got, err)
		}
		if missing, err := db.EventLog.Get(ctx, "$nope"); err != nil || missing != nil {
			t.Fatalf("Get of unknown event: %+v %v", missing, err)
		}
		txnID, _, ok, err := db.EventLog.LastTxn(ctx)
		if err != nil || !ok || txnID != "t1" {
			t.Fatalf("LastTxn = %q %v %v", txnID, ok, err)
		}
	})
}

func TestMembershipFollowsLog(t *testing.T) {
	engines(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		_, err := appendTxn(ctx, db, "t1", []*database.LoggedEvent{
			member("$j1", "!r", "@bob:test", event.MembershipInvite),
			member("$j2", "!r", "@bob:test", event.MembershipJoin),
			member("$j3", "!r", "@carol:test", event.MembershipJoin),
		})
		if err != nil {
			t.Fatal(err)
		}
		if m, _ := db.Members.Membership(ctx, "!r", "@bob:test"); m != event.MembershipJoin {
			t.Fatalf("bob is %q", m)
		}
		members, err := db.Members.JoinedMembers(ctx, "!r")
		if err != nil || fmt.Sprint(members) != "[@bob:test @carol:test]" {
			t.Fatalf("members %v %v", members, err)
		}
		if _, err = appendTxn(ctx, db, "t2", []*database.LoggedEvent{member("$l", "!r", "@bob:test", event.MembershipLeave)}); err != nil {
			t.Fatal(err)
		}
		rooms, err := db.Members.JoinedRooms(ctx, "@bob:test")
		if err != nil || len(rooms) != 0 {
			t.Fatalf("bob still in %v %v", rooms, err)
		}
		if m, _ := db.Members.Membership(ctx, "!r", "@nobody:test"); m != "" {
			t.Fatalf("unknown member is %q", m)
		}
	})
}

// TestPositionsBecomeVisibleInOrder checks guarantee 2: with concurrent
// writers, once a reader has seen position N no row below N appears later.
func TestPositionsBecomeVisibleInOrder(t *testing.T) {
	engines(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		const writers, txns, perTxn = 4, 25, 10
		var wg sync.WaitGroup
		errs := make(chan error, writers)
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range txns {
					events := make([]*database.LoggedEvent, perTxn)
					for j := range events {
						events[j] = msg(fmt.Sprintf("$w%d-%d-%d", w, i, j), "!r")
					}
					if _, err := appendTxn(ctx, db, fmt.Sprintf("w%d-%d", w, i), events); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		var seen int64
		var count int
		for finished := false; !finished; {
			select {
			case <-done:
				finished = true
			default:
			}
			events, err := db.EventLog.After(ctx, seen, 1000)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range events {
				seen = e.Position
				count++
			}
		}
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		// A row that became visible below an already seen position would
		// have been skipped by the reader, so the count would fall short.
		rest, _ := db.EventLog.After(ctx, seen, 10000)
		if count+len(rest) != writers*txns*perTxn {
			t.Fatalf("read %d events, want %d", count+len(rest), writers*txns*perTxn)
		}
	})
}

// TestAppendTransactionShapes covers what the one-statement write of
// PostgreSQL and the chunked inserts of SQLite must both get right: sizes
// that span several chunks, events already logged in the middle, member
// rows from written events only (the newest per user), and transactions
// without timeline events.
func TestAppendTransactionShapes(t *testing.T) {
	engines(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		if _, err := appendTxn(ctx, db, "t0", []*database.LoggedEvent{msg("$e-50", "!r"), member("$old-join", "!r", "@bob:test", event.MembershipJoin)}); err != nil {
			t.Fatal(err)
		}
		// 103 events: chunks of 64, 32, 4, 2 and 1; $e-50 is logged already.
		var events []*database.LoggedEvent
		for i := range 101 {
			events = append(events, msg(fmt.Sprintf("$e-%d", i), "!r"))
		}
		events = append(events,
			member("$bob-invite", "!r", "@bob:test", event.MembershipInvite),
			member("$old-join", "!r", "@bob:test", event.MembershipJoin), // logged already
			member("$carol-invite", "!r", "@carol:test", event.MembershipInvite),
			member("$carol-join", "!r", "@carol:test", event.MembershipJoin))
		written, err := appendTxn(ctx, db, "t1", events)
		if err != nil {
			t.Fatal(err)
		}
		if len(written) != len(events)-2 {
			t.Fatalf("%d written, want %d", len(written), len(events)-2)
		}
		for i, evt := range written {
			if i > 0 && evt.Position <= written[i-1].Position {
				t.Fatalf("written out of order at %d: %d after %d", i, evt.Position, written[i-1].Position)
			}
			if evt.EventID == "$e-50" || evt.EventID == "$old-join" {
				t.Fatalf("%s was logged before but is in written", evt.EventID)
			}
			// In the transaction's order; PostgreSQL leaves the positions
			// of skipped events unused, SQLite gives none to them.
			if i > 0 && slices.Index(events, evt) <= slices.Index(events, written[i-1]) {
				t.Fatalf("%s at %d, not at its place in the transaction", evt.EventID, evt.Position)
			}
		}
		logged, err := db.EventLog.After(ctx, 2, 1000)
		if err != nil || len(logged) != len(written) {
			t.Fatalf("log after t0 holds %d events (%v), want %d", len(logged), err, len(written))
		}
		for i, evt := range logged {
			if evt.EventID != written[i].EventID || evt.Position != written[i].Position || string(evt.Raw) != string(written[i].Raw) {
				t.Fatalf("logged %d: %s at %d, written %s at %d", i, evt.EventID, evt.Position, written[i].EventID, written[i].Position)
			}
		}
		for user, want := range map[id.UserID]event.Membership{"@bob:test": event.MembershipInvite, "@carol:test": event.MembershipJoin} {
			row, err := db.Members.Get(ctx, "!r", user)
			if err != nil || row == nil || row.Membership != want {
				t.Fatalf("%s: %+v %v, want %s", user, row, err, want)
			}
			pos, _, _ := db.EventLog.Position(ctx, row.EventID)
			if pos != row.Position {
				t.Fatalf("%s: member row at %d, its event at %d", user, row.Position, pos)
			}
		}
		// Only ephemeral events: the txn is recorded, no position is used,
		// and its retry is a duplicate.
		before, _ := db.EventLog.MaxPosition(ctx)
		if written, err = db.EventLog.AppendTransaction(ctx, "t2", database.TxnDigest(nil, [][]byte{[]byte(`{}`)}), nil); err != nil || len(written) != 0 {
			t.Fatalf("ephemeral-only txn: %v %v", written, err)
		}
		if _, err = db.EventLog.AppendTransaction(ctx, "t2", database.TxnDigest(nil, [][]byte{[]byte(`{}`)}), nil); err != database.ErrDuplicateTxn {
			t.Fatalf("retried ephemeral-only txn: %v", err)
		}
		if after, _ := db.EventLog.MaxPosition(ctx); after != before {
			t.Fatalf("ephemeral-only txn moved the position from %d to %d", before, after)
		}
		// Every event logged before: the txn is applied, nothing written.
		if written, err = appendTxn(ctx, db, "t3", []*database.LoggedEvent{msg("$e-1", "!r")}); err != nil || len(written) != 0 {
			t.Fatalf("txn of logged events: %v %v", written, err)
		}
	})
}

package portal

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/openmeet-team/openmeet-bridge/database"
)

func TestPollEnds(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	n := 0
	if err := poll(ctx, time.Now().Add(10*time.Second), func(context.Context) (bool, error) { n++; return n == 3, nil }); err != nil || n != 3 {
		t.Fatalf("poll until done: %v after %d checks", err, n)
	}
	start := time.Now()
	if err := poll(ctx, start.Add(100*time.Millisecond), func(context.Context) (bool, error) { return false, nil }); !errors.Is(err, ErrPending) {
		t.Fatalf("poll past the deadline: %v", err)
	}
	if waited := time.Since(start); waited < 100*time.Millisecond || waited > 5*time.Second {
		t.Fatalf("poll waited %s for a 100ms deadline", waited)
	}
	boom := errors.New("boom")
	if err := poll(ctx, time.Now().Add(10*time.Second), func(context.Context) (bool, error) { return false, boom }); !errors.Is(err, boom) {
		t.Fatalf("poll with a failing check: %v", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := poll(cancelled, time.Now().Add(10*time.Second), func(context.Context) (bool, error) { return false, nil }); !errors.Is(err, ErrPending) {
		t.Fatalf("poll with an ended context: %v", err)
	}
}

// TestRowShows: a member row counts as showing Synapse's current member
// event only once that event was logged, so a stale row with the right
// membership (a join from before a leave still being pushed) does not pass.
func TestRowShows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, err := database.Open(database.Config{Type: "sqlite3-fk-wal", URI: "file:" + filepath.Join(t.TempDir(), "t.db") + "?_txlock=immediate"}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if err := db.Upgrade(ctx); err != nil {
		t.Fatal(err)
	}
	r := &Registry{db: db, cfg: &Config{}}
	const room, bob = id.RoomID("!r:test"), id.UserID("@bob:test")
	push := func(txn string, eventID id.EventID, m event.Membership) {
		t.Helper()
		key := bob.String()
		evt := &database.LoggedEvent{EventID: eventID, RoomID: room, Type: "m.room.member", Sender: bob, StateKey: &key, Raw: []byte(`{}`), Membership: m}
		if _, err := db.EventLog.AppendTransaction(ctx, txn, txn, []*database.LoggedEvent{evt}); err != nil {
			t.Fatal(err)
		}
	}
	shows := func(cur currentMember, join bool) bool {
		t.Helper()
		row, err := db.Members.Get(ctx, room, bob)
		if err != nil {
			t.Fatal(err)
		}
		ok, err := r.rowShows(ctx, row, cur, join)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if !shows(currentMember{}, false) || shows(currentMember{"$j1", event.MembershipJoin}, true) || shows(currentMember{"$l0", event.MembershipLeave}, false) {
		t.Fatal("without a row: only 'never a member' may pass")
	}
	push("t1", "$j1", event.MembershipJoin)
	if !shows(currentMember{"$j1", event.MembershipJoin}, true) || shows(currentMember{"$j1", event.MembershipJoin}, false) {
		t.Fatal("the current join logged")
	}
	// Synapse has since had a leave ($l2) and a new join ($j3), neither
	// pushed yet: the old join must not pass for the new one.
	if shows(currentMember{"$j3", event.MembershipJoin}, true) {
		t.Fatal("a stale join passed for the new one")
	}
	push("t2", "$l2", event.MembershipLeave)
	if shows(currentMember{"$j3", event.MembershipJoin}, true) {
		t.Fatal("the leave passed for a join")
	}
	push("t3", "$j3", event.MembershipJoin)
	if !shows(currentMember{"$j3", event.MembershipJoin}, true) {
		t.Fatal("the new join logged")
	}
	// Something newer than the snapshot was pushed: the row shows it.
	push("t4", "$l4", event.MembershipLeave)
	if shows(currentMember{"$j3", event.MembershipJoin}, true) || !shows(currentMember{"$j3", event.MembershipJoin}, false) {
		t.Fatal("a newer row must decide")
	}
}

package database_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/openmeet-team/openmeet-bridge/database"
)

// addEntry stores a message of user in room with the given txn id.
func addEntry(t *testing.T, db *database.Database, user, room, txn string) *database.OutboxEntry {
	t.Helper()
	e, _, err := db.Outbox.Add(context.Background(), &database.OutboxEntry{
		UserID: id.UserID(user), RoomID: id.RoomID(room), TxnID: txn, EventType: "m.room.message",
		Content: `{"msgtype":"m.text","body":"` + txn + `","net.openmeet.txn_id":"` + txn + `"}`,
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func claimIDs(t *testing.T, db *database.Database, limit int, claimFor time.Duration) ([]int64, []*database.OutboxEntry) {
	t.Helper()
	claimed, err := db.Outbox.Claim(context.Background(), limit, claimFor)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]int64, len(claimed))
	for i, e := range claimed {
		ids[i] = e.ID
	}
	return ids, claimed
}

func mustState(t *testing.T, db *database.Database, entryID int64, state string, eventID id.EventID) *database.OutboxEntry {
	t.Helper()
	e, err := db.Outbox.ByID(context.Background(), entryID)
	if err != nil || e == nil || e.State != state || e.EventID != eventID {
		t.Fatalf("entry %d: %+v %v, want %s %q", entryID, e, err, state, eventID)
	}
	return e
}

func TestOutboxQueries(t *testing.T) {
	engines(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		// Two rooms, so both entries are heads of their queues.
		a, b := addEntry(t, db, "@u:test", "!r1", "a"), addEntry(t, db, "@u:test", "!r2", "b")
		if again, added, _ := db.Outbox.Add(ctx, &database.OutboxEntry{UserID: "@u:test", RoomID: "!r1", TxnID: "a", EventType: "m.room.message", Content: "{}"}); added || again.ID != a.ID {
			t.Fatalf("repeated txn id made a new entry: %+v %v", again, added)
		}
		// Claimed entries come oldest first and are not claimed twice.
		ids, claimed := claimIDs(t, db, 10, time.Minute)
		if fmt.Sprint(ids) != fmt.Sprint([]int64{a.ID, b.ID}) {
			t.Fatalf("claim: %v", ids)
		}
		if again, _ := claimIDs(t, db, 10, time.Minute); len(again) != 0 {
			t.Fatalf("claimed twice: %v", again)
		}
		// A released entry is claimable again; a retried one waits.
		if err := db.Outbox.Release(ctx, claimed[0]); err != nil {
			t.Fatal(err)
		}
		if err := db.Outbox.MarkRetry(ctx, claimed[1], time.Now().Add(time.Hour), "down"); err != nil {
			t.Fatal(err)
		}
		ids, claimedA := claimIDs(t, db, 10, time.Minute)
		if fmt.Sprint(ids) != fmt.Sprint([]int64{a.ID}) {
			t.Fatalf("after release and retry: %v", ids)
		}
		if depth, _ := db.Outbox.Depth(ctx); depth != 2 {
			t.Fatalf("depth %d", depth)
		}
		// Synapse is back: everything waiting is due now.
		if err := db.Outbox.DueNow(ctx); err != nil {
			t.Fatal(err)
		}
		_, claimedB := claimIDs(t, db, 10, time.Minute)
		if len(claimedB) != 1 || claimedB[0].ID != b.ID || claimedB[0].Attempts != 1 || claimedB[0].LastError != "down" {
			t.Fatalf("after DueNow: %+v", claimedB)
		}
		if err := db.Outbox.MarkSent(ctx, claimedA[0], "$sent"); err != nil {
			t.Fatal(err)
		}
		if err := db.Outbox.MarkFailed(ctx, claimedB[0], "M_FORBIDDEN"); err != nil {
			t.Fatal(err)
		}
		// A sent entry can be neither retried nor dropped; a failed one can.
		if ok, _ := db.Outbox.Retry(ctx, a.ID); ok {
			t.Fatal("retried a sent entry")
		}
		if ok, _ := db.Outbox.Drop(ctx, a.ID); ok {
			t.Fatal("dropped a sent entry")
		}
		if waiting, _ := db.Outbox.Waiting(ctx, 10); len(waiting) != 1 || waiting[0].State != database.OutboxFailed {
			t.Fatalf("waiting %+v", waiting)
		}
		if ok, _ := db.Outbox.Retry(ctx, b.ID); !ok {
			t.Fatal("could not retry a failed entry")
		}
		if ok, _ := db.Outbox.Drop(ctx, b.ID); !ok {
			t.Fatal("could not drop an undelivered entry")
		}
		if depth, _ := db.Outbox.Depth(ctx); depth != 0 {
			t.Fatalf("depth after drop %d", depth)
		}
	})
}

// TestOutboxQueueOrder: only the head of a (user, room) queue is claimed,
// across backoff; a queue that backs off or is being sent holds up no
// other queue.
func TestOutboxQueueOrder(t *testing.T) {
	engines(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		a0 := addEntry(t, db, "@u:test", "!a", "a0")
		a1 := addEntry(t, db, "@u:test", "!a", "a1")
		a2 := addEntry(t, db, "@u:test", "!a", "a2")
		b0 := addEntry(t, db, "@u:test", "!b", "b0")
		// The same room, another user: another queue.
		v0 := addEntry(t, db, "@v:test", "!a", "v0")
		b1 := addEntry(t, db, "@u:test", "!b", "b1")

		ids, claimed := claimIDs(t, db, 10, time.Minute)
		if fmt.Sprint(ids) != fmt.Sprint([]int64{a0.ID, b0.ID, v0.ID}) {
			t.Fatalf("first claim took %v, want the heads %v", ids, []int64{a0.ID, b0.ID, v0.ID})
		}
		// a0 fails and backs off for an hour: nothing of queue a may go,
		// though a1 and a2 are due.
		if err := db.Outbox.MarkRetry(ctx, claimed[0], time.Now().Add(time.Hour), "down"); err != nil {
			t.Fatal(err)
		}
		if ids, _ := claimIDs(t, db, 10, time.Minute); len(ids) != 0 {
			t.Fatalf("claimed %v while every head is backing off or claimed", ids)
		}
		// b0 is sent: b1 is next, although queue a still backs off.
		if err := db.Outbox.MarkSent(ctx, claimed[1], "$b0"); err != nil {
			t.Fatal(err)
		}
		ids, _ = claimIDs(t, db, 10, time.Minute)
		if fmt.Sprint(ids) != fmt.Sprint([]int64{b1.ID}) {
			t.Fatalf("after b0 was sent: claimed %v, want [%d]", ids, b1.ID)
		}
		// Backoff over (Synapse back): a0 again, still not a1.
		if err := db.Outbox.DueNow(ctx); err != nil {
			t.Fatal(err)
		}
		ids, claimedA := claimIDs(t, db, 10, time.Minute)
		if fmt.Sprint(ids) != fmt.Sprint([]int64{a0.ID}) {
			t.Fatalf("after DueNow: claimed %v, want [%d]", ids, a0.ID)
		}
		// A refused message does not block its queue.
		if err := db.Outbox.MarkFailed(ctx, claimedA[0], "M_FORBIDDEN"); err != nil {
			t.Fatal(err)
		}
		ids, claimedA = claimIDs(t, db, 10, time.Minute)
		if fmt.Sprint(ids) != fmt.Sprint([]int64{a1.ID}) {
			t.Fatalf("after a0 failed: claimed %v, want [%d]", ids, a1.ID)
		}
		// An admin retries a0 while a1 is being sent: neither a0 nor a2 may
		// go until a1 has settled, or two sends of one queue would race.
		if ok, err := db.Outbox.Retry(ctx, a0.ID); !ok || err != nil {
			t.Fatalf("retry: %v %v", ok, err)
		}
		if ids, _ := claimIDs(t, db, 10, time.Minute); len(ids) != 0 {
			t.Fatalf("claimed %v while a1 of the same queue is being sent", ids)
		}
		if err := db.Outbox.MarkSent(ctx, claimedA[0], "$a1"); err != nil {
			t.Fatal(err)
		}
		ids, claimedA = claimIDs(t, db, 10, time.Minute)
		if fmt.Sprint(ids) != fmt.Sprint([]int64{a0.ID}) {
			t.Fatalf("after a1 was sent: claimed %v, want the retried a0 %d", ids, a0.ID)
		}
		if err := db.Outbox.MarkSent(ctx, claimedA[0], "$a0"); err != nil {
			t.Fatal(err)
		}
		if ids, _ := claimIDs(t, db, 10, time.Minute); fmt.Sprint(ids) != fmt.Sprint([]int64{a2.ID}) {
			t.Fatalf("after a0 was sent: claimed %v, want [%d]", ids, a2.ID)
		}
	})
}

// TestOutboxClaimFencing: a worker whose claim expired and was taken over
// can write nothing; one whose claim merely expired still can.
func TestOutboxClaimFencing(t *testing.T) {
	engines(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		e := addEntry(t, db, "@u:test", "!r", "t1")
		// A claim that has already run out, as if its worker stalled.
		_, first := claimIDs(t, db, 1, -time.Second)
		if len(first) != 1 {
			t.Fatalf("first claim: %+v", first)
		}
		if err := db.Outbox.BeginAttempt(ctx, first[0], -time.Second); err != nil {
			t.Fatalf("begin: %v", err)
		}
		if got := mustState(t, db, e.ID, database.OutboxPending, ""); !got.MaybeSent {
			t.Fatal("a begun send is not noted")
		}
		// Another worker takes the expired claim over.
		_, second := claimIDs(t, db, 1, time.Minute)
		if len(second) != 1 || second[0].ClaimToken == first[0].ClaimToken || !second[0].MaybeSent {
			t.Fatalf("takeover: %+v (first %+v)", second, first)
		}
		// The stalled worker comes back: every write of its is refused.
		for name, write := range map[string]func() error{
			"begin":   func() error { return db.Outbox.BeginAttempt(ctx, first[0], time.Minute) },
			"sent":    func() error { return db.Outbox.MarkSent(ctx, first[0], "$late") },
			"retry":   func() error { return db.Outbox.MarkRetry(ctx, first[0], time.Now().Add(time.Hour), "late") },
			"failed":  func() error { return db.Outbox.MarkFailed(ctx, first[0], "late") },
			"release": func() error { return db.Outbox.Release(ctx, first[0]) },
		} {
			if err := write(); !errors.Is(err, database.ErrClaimLost) {
				t.Fatalf("stale %s: %v, want ErrClaimLost", name, err)
			}
		}
		mustState(t, db, e.ID, database.OutboxPending, "")
		// The current holder's result counts, once.
		if err := db.Outbox.MarkSent(ctx, second[0], "$real"); err != nil {
			t.Fatal(err)
		}
		if err := db.Outbox.MarkSent(ctx, second[0], "$again"); !errors.Is(err, database.ErrClaimLost) {
			t.Fatalf("second MarkSent: %v", err)
		}
		if err := db.Outbox.MarkRetry(ctx, first[0], time.Now(), "late"); !errors.Is(err, database.ErrClaimLost) {
			t.Fatalf("stale retry after sent: %v", err)
		}
		mustState(t, db, e.ID, database.OutboxSent, "$real")

		// Expired but not taken over: the late result is still the truth.
		f := addEntry(t, db, "@u:test", "!r", "t2")
		_, late := claimIDs(t, db, 1, -time.Second)
		if len(late) != 1 || late[0].ID != f.ID {
			t.Fatalf("claim t2: %+v", late)
		}
		if err := db.Outbox.MarkSent(ctx, late[0], "$t2"); err != nil {
			t.Fatalf("late result of an untaken claim: %v", err)
		}
		mustState(t, db, f.ID, database.OutboxSent, "$t2")

		// A begun send extends the claim: no one else may claim meanwhile.
		g := addEntry(t, db, "@u:test", "!r", "t3")
		_, short := claimIDs(t, db, 1, -time.Second)
		if err := db.Outbox.BeginAttempt(ctx, short[0], time.Hour); err != nil {
			t.Fatal(err)
		}
		if ids, _ := claimIDs(t, db, 1, time.Minute); len(ids) != 0 {
			t.Fatalf("claimed %v during a send", ids)
		}
		// Ending a claim with a retry ends the token too.
		if err := db.Outbox.MarkRetry(ctx, short[0], time.Now(), "down"); err != nil {
			t.Fatal(err)
		}
		if err := db.Outbox.BeginAttempt(ctx, short[0], time.Hour); !errors.Is(err, database.ErrClaimLost) {
			t.Fatalf("begin after the claim ended: %v", err)
		}
		mustState(t, db, g.ID, database.OutboxPending, "")
	})
}

// echo is a pushed event carrying txn as the outbox's txn id key.
func echo(eventID, roomID, sender, evtType, txn string) *database.LoggedEvent {
	return &database.LoggedEvent{
		EventID: id.EventID(eventID), RoomID: id.RoomID(roomID), Type: evtType, Sender: id.UserID(sender), OriginTS: 1,
		Raw: []byte(`{"event_id":"` + eventID + `","type":"` + evtType + `","content":{"body":"x","net.openmeet.txn_id":` + txn + `}}`),
	}
}

// TestOutboxEchoSettles: a pushed event from the entry's user, in its
// room, of its type, with its txn id settles it in the same transaction;
// the worker that sent it can then write nothing, and nothing else matches.
func TestOutboxEchoSettles(t *testing.T) {
	engines(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		var hooked []int64
		var hookMu sync.Mutex
		db.EventLog.OnEcho(func(ids []int64) {
			hookMu.Lock()
			hooked = append(hooked, ids...)
			hookMu.Unlock()
		})
		e0 := addEntry(t, db, "@u:test", "!r", "t0")
		e1 := addEntry(t, db, "@u:test", "!r", "t1")
		other := addEntry(t, db, "@v:test", "!r", "t0")
		_, claimed := claimIDs(t, db, 10, time.Minute)
		if len(claimed) != 2 || claimed[0].ID != e0.ID {
			t.Fatalf("claim: %+v", claimed)
		}
		if err := db.Outbox.BeginAttempt(ctx, claimed[0], time.Minute); err != nil {
			t.Fatal(err)
		}
		// Look-alikes that must settle nothing: wrong sender, room, type,
		// a txn id that is not a string, a txn id no entry has.
		if _, err := appendTxn(ctx, db, "x1", []*database.LoggedEvent{
			echo("$x1", "!r", "@w:test", "m.room.message", `"t0"`),
			echo("$x2", "!elsewhere", "@u:test", "m.room.message", `"t0"`),
			echo("$x3", "!r", "@u:test", "m.reaction", `"t0"`),
			echo("$x4", "!r", "@u:test", "m.room.message", `7`),
			echo("$x5", "!r", "@u:test", "m.room.message", `"nope"`),
		}); err != nil {
			t.Fatal(err)
		}
		mustState(t, db, e0.ID, database.OutboxPending, "")
		mustState(t, db, other.ID, database.OutboxPending, "")
		// The echo of t0 arrives before the send's answer.
		if _, err := appendTxn(ctx, db, "t-echo", []*database.LoggedEvent{msg("$before", "!r"), echo("$e0", "!r", "@u:test", "m.room.message", `"t0"`)}); err != nil {
			t.Fatal(err)
		}
		mustState(t, db, e0.ID, database.OutboxSent, "$e0")
		mustState(t, db, other.ID, database.OutboxPending, "")
		hookMu.Lock()
		if fmt.Sprint(hooked) != fmt.Sprint([]int64{e0.ID}) {
			t.Fatalf("echo hook got %v, want [%d]", hooked, e0.ID)
		}
		hookMu.Unlock()
		// The answer (or a timeout) comes late: nothing is overwritten.
		if err := db.Outbox.MarkSent(ctx, claimed[0], "$copy"); !errors.Is(err, database.ErrClaimLost) {
			t.Fatalf("MarkSent after the echo: %v", err)
		}
		if err := db.Outbox.MarkRetry(ctx, claimed[0], time.Now(), "timeout"); !errors.Is(err, database.ErrClaimLost) {
			t.Fatalf("MarkRetry after the echo: %v", err)
		}
		mustState(t, db, e0.ID, database.OutboxSent, "$e0")
		// The queue moves on: t1 is its head now.
		if ids, _ := claimIDs(t, db, 10, time.Minute); fmt.Sprint(ids) != fmt.Sprint([]int64{e1.ID}) {
			t.Fatalf("after the echo: claimed %v, want [%d]", ids, e1.ID)
		}
		// An entry given up on whose echo arrives was sent after all; a
		// repeated push of a logged event changes nothing.
		_, err := db.Exec(ctx, `UPDATE outbox SET state = 'failed' WHERE id = $1`, other.ID)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := appendTxn(ctx, db, "t-other", []*database.LoggedEvent{echo("$v0", "!r", "@v:test", "m.room.message", `"t0"`)}); err != nil {
			t.Fatal(err)
		}
		mustState(t, db, other.ID, database.OutboxSent, "$v0")
		if _, err := appendTxn(ctx, db, "t-again", []*database.LoggedEvent{echo("$e0", "!r", "@u:test", "m.room.message", `"t0"`)}); err != nil {
			t.Fatal(err)
		}
		// A transaction that fails settles nothing and calls no hook.
		hookMu.Lock()
		hooked = nil
		hookMu.Unlock()
		cancelled, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := appendTxn(cancelled, db, "t-fail", []*database.LoggedEvent{echo("$e1", "!r", "@u:test", "m.room.message", `"t1"`)}); err == nil {
			t.Fatal("append with a cancelled context succeeded")
		}
		mustState(t, db, e1.ID, database.OutboxPending, "")
		hookMu.Lock()
		defer hookMu.Unlock()
		if len(hooked) != 0 {
			t.Fatalf("hook called for a failed transaction: %v", hooked)
		}
	})
}

// TestOutboxConcurrentWorkers: several workers claim and send at once (on
// PostgreSQL through separate connections, as replicas would): no queue
// ever has two entries being sent, and each queue is sent in order.
func TestOutboxConcurrentWorkers(t *testing.T) {
	engines(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		const queues, perQueue, workers = 6, 15, 6
		want := map[string][]int64{}
		for i := range perQueue {
			for q := range queues {
				room := fmt.Sprintf("!q%d", q)
				e := addEntry(t, db, "@u:test", room, fmt.Sprintf("q%d-%02d", q, i))
				want[room] = append(want[room], e.ID)
			}
		}
		var mu sync.Mutex
		sentOrder := map[string][]int64{}
		var overlaps atomic.Int32
		var sent atomic.Int32
		deadline := time.Now().Add(2 * time.Minute)
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for range workers {
			wg.Go(func() {
				for sent.Load() < queues*perQueue && time.Now().Before(deadline) {
					claimed, err := db.Outbox.Claim(ctx, 2, time.Minute)
					if err != nil {
						errs <- err
						return
					}
					for _, e := range claimed {
						room := string(e.RoomID)
						// Everything before it in its queue has settled.
						var unsettled int
						if err := db.QueryRow(ctx, `SELECT COUNT(*) FROM outbox WHERE user_id = $1 AND room_id = $2 AND id < $3 AND state <> 'sent'`,
							e.UserID, e.RoomID, e.ID).Scan(&unsettled); err != nil {
							errs <- err
							return
						}
						if unsettled != 0 {
							overlaps.Add(1)
						}
						mu.Lock()
						sentOrder[room] = append(sentOrder[room], e.ID)
						mu.Unlock()
						if err := db.Outbox.MarkSent(ctx, e, id.EventID(fmt.Sprintf("$%d", e.ID))); err != nil {
							errs <- err
							return
						}
						sent.Add(1)
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if n := sent.Load(); n != queues*perQueue {
			t.Fatalf("sent %d of %d entries", n, queues*perQueue)
		}
		if n := overlaps.Load(); n != 0 {
			t.Fatalf("%d times an entry was claimed before the earlier ones of its queue had settled", n)
		}
		for room, ids := range want {
			if !slices.Equal(sentOrder[room], ids) {
				t.Fatalf("queue %s sent in order %v, want %v", room, sentOrder[room], ids)
			}
		}
	})
}

// TestOutboxBacklogAndDelivered: Backlog counts the waiting entries and
// dates the oldest; OnDelivered hears of each entry once when it is
// recorded as sent, by the send's answer or by its echo.
func TestOutboxBacklogAndDelivered(t *testing.T) {
	engines(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		if n, oldest, err := db.Outbox.Backlog(ctx); err != nil || n != 0 || !oldest.IsZero() {
			t.Fatalf("empty backlog: %d %v %v", n, oldest, err)
		}
		var mu sync.Mutex
		var waits []time.Duration
		db.Outbox.OnDelivered(func(waited time.Duration) {
			mu.Lock()
			waits = append(waits, waited)
			mu.Unlock()
		})
		before := time.Now().Add(-time.Second)
		a := addEntry(t, db, "@u:test", "!r1", "a")
		b := addEntry(t, db, "@u:test", "!r2", "b")
		// a was accepted an hour ago.
		hourAgo := time.Now().Add(-time.Hour).UnixMilli()
		if _, err := db.Exec(ctx, `UPDATE outbox SET created_at = $1 WHERE id = $2`, hourAgo, a.ID); err != nil {
			t.Fatal(err)
		}
		n, oldest, err := db.Outbox.Backlog(ctx)
		if err != nil || n != 2 || oldest.UnixMilli() != hourAgo {
			t.Fatalf("backlog: %d %v %v, want 2 and %v", n, oldest, err, time.UnixMilli(hourAgo))
		}
		_, claimed := claimIDs(t, db, 10, time.Minute)
		if len(claimed) != 2 {
			t.Fatalf("claimed %d", len(claimed))
		}
		// a by the send's answer, b by its echo; then a late answer for b.
		if err := db.Outbox.MarkSent(ctx, claimed[0], "$a"); err != nil {
			t.Fatal(err)
		}
		if _, err := appendTxn(ctx, db, "echo-b", []*database.LoggedEvent{echo("$b", "!r2", "@u:test", "m.room.message", `"b"`)}); err != nil {
			t.Fatal(err)
		}
		if err := db.Outbox.MarkSent(ctx, claimed[1], "$b2"); !errors.Is(err, database.ErrClaimLost) {
			t.Fatalf("late answer: %v", err)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(waits) != 2 || waits[0] < time.Hour || waits[0] > time.Hour+time.Minute || waits[1] > time.Since(before) {
			t.Fatalf("delivered waits %v, want about 1h for a, then under a second for b (%d)", waits, b.ID)
		}
		if n, oldest, err := db.Outbox.Backlog(ctx); err != nil || n != 0 || !oldest.IsZero() {
			t.Fatalf("backlog after delivery: %d %v %v", n, oldest, err)
		}
	})
}

// TestOutboxHSTxnIDs: every entry gets a homeserver txn id of its own,
// also one that gets the row id of a dropped entry; the request digest is
// kept, and a repeat of the txn id keeps the first entry's.
func TestOutboxHSTxnIDs(t *testing.T) {
	engines(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		seen := map[string]bool{}
		add := func(txn, digest string) *database.OutboxEntry {
			t.Helper()
			e, _, err := db.Outbox.Add(ctx, &database.OutboxEntry{UserID: "@u:test", RoomID: "!r", TxnID: txn, EventType: "m.room.message",
				Content: "{}", RequestDigest: digest, HSTxnID: "om1"})
			if err != nil {
				t.Fatal(err)
			}
			return e
		}
		for i := range 50 {
			e := add(fmt.Sprintf("t%d", i), fmt.Sprintf("d%d", i))
			if !strings.HasPrefix(e.HSTxnID, "om") || len(e.HSTxnID) < 2+26 || seen[e.HSTxnID] || e.RequestDigest != fmt.Sprintf("d%d", i) {
				t.Fatalf("entry %d: txn id %q (seen before: %v), digest %q", i, e.HSTxnID, seen[e.HSTxnID], e.RequestDigest)
			}
			seen[e.HSTxnID] = true
		}
		if again := add("t0", "other"); again.RequestDigest != "d0" || !seen[again.HSTxnID] {
			t.Fatalf("a repeated txn id changed the entry: %+v", again)
		}
		newest := add("newest", "n")
		if ok, err := db.Outbox.Drop(ctx, newest.ID); err != nil || !ok {
			t.Fatalf("drop: %v %v", ok, err)
		}
		next := add("next", "n")
		if next.HSTxnID == newest.HSTxnID || seen[next.HSTxnID] {
			t.Fatalf("the entry after a drop has txn id %q, the dropped one had %q", next.HSTxnID, newest.HSTxnID)
		}
	})
}

// TestOutboxPendingOf: a user's waiting entries, counted up to the limit,
// through the partial index whatever else the user has sent.
func TestOutboxPendingOf(t *testing.T) {
	engines(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		pending := func(user string, limit int) int {
			t.Helper()
			n, err := db.Outbox.PendingOf(ctx, id.UserID(user), limit)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
		if n := pending("@u:test", 10); n != 0 {
			t.Fatalf("no entries: %d pending", n)
		}
		for i := range 4 {
			addEntry(t, db, "@u:test", fmt.Sprintf("!r%d", i), fmt.Sprintf("t%d", i))
		}
		addEntry(t, db, "@other:test", "!r0", "o")
		if n := pending("@u:test", 10); n != 4 {
			t.Fatalf("%d pending, want 4", n)
		}
		if n := pending("@u:test", 3); n != 3 {
			t.Fatalf("counted up to 3: %d", n)
		}
		// Sent and failed entries no longer wait.
		_, claimed := claimIDs(t, db, 10, time.Minute)
		for _, e := range claimed {
			switch e.TxnID {
			case "t0":
				if err := db.Outbox.MarkSent(ctx, e, "$sent"); err != nil {
					t.Fatal(err)
				}
			case "t1":
				if err := db.Outbox.MarkFailed(ctx, e, "refused"); err != nil {
					t.Fatal(err)
				}
			}
		}
		if n := pending("@u:test", 10); n != 2 {
			t.Fatalf("after one sent and one failed: %d pending, want 2", n)
		}
		if n := pending("@other:test", 10); n != 1 {
			t.Fatalf("the other user: %d pending, want 1", n)
		}
	})
}

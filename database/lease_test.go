package database_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/openmeet-team/openmeet-bridge/database"
	"github.com/openmeet-team/openmeet-bridge/internal/harness"
)

// waitUntil polls cond until it holds, failing after a generous deadline.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// fencedCursor writes the bot cursor as the holder of l.
func fencedCursor(ctx context.Context, db *database.Database, l *database.Lease, value string) error {
	return db.Leases.Fenced(ctx, l, func(ctx context.Context) error {
		return db.Bot.SetState(ctx, "test.cursor", value)
	})
}

func cursor(t *testing.T, db *database.Database) string {
	t.Helper()
	v, _, err := db.Bot.State(context.Background(), "test.cursor")
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// A lease is refused to a second holder while it lasts; once it expired
// the next holder gets a higher token, and the old holder's renewal and
// fenced writes fail and write nothing. A lease that expired without a
// new holder fences off its old holder too, and a released one passes on
// at once without its token going back.
func TestLeaseTakeover(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		long := db.Leases.WithTiming(database.LeaseTiming{Duration: time.Hour})
		// A renewal through this one makes the lease expire at once.
		short := db.Leases.WithTiming(database.LeaseTiming{Duration: time.Millisecond})

		a, err := long.Acquire(ctx, "job")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := long.Acquire(ctx, "job"); !errors.Is(err, database.ErrLeaseHeld) {
			t.Fatalf("second holder: got %v, want ErrLeaseHeld", err)
		}
		if err := long.Renew(ctx, a); err != nil {
			t.Fatalf("holder's renewal: %v", err)
		}
		if err := fencedCursor(ctx, db, a, "a1"); err != nil {
			t.Fatalf("holder's fenced write: %v", err)
		}

		// The holder stalls; its lease expires and another takes over.
		if err := short.Renew(ctx, a); err != nil {
			t.Fatal(err)
		}
		var b *database.Lease
		waitUntil(t, "the expired lease to be taken over", func() bool {
			b, err = long.Acquire(ctx, "job")
			if err != nil && !errors.Is(err, database.ErrLeaseHeld) {
				t.Fatal(err)
			}
			return err == nil
		})
		if b.Token <= a.Token {
			t.Fatalf("new holder's token %d, old %d: want higher", b.Token, a.Token)
		}
		if err := long.Renew(ctx, a); !errors.Is(err, database.ErrLeaseLost) {
			t.Fatalf("old holder's renewal after take-over: got %v, want ErrLeaseLost", err)
		}
		if err := fencedCursor(ctx, db, a, "a2"); !errors.Is(err, database.ErrLeaseLost) {
			t.Fatalf("old holder's fenced write after take-over: got %v, want ErrLeaseLost", err)
		}
		if got := cursor(t, db); got != "a1" {
			t.Fatalf("cursor %q after the old holder's refused write, want a1", got)
		}
		if err := fencedCursor(ctx, db, b, "b1"); err != nil {
			t.Fatalf("new holder's fenced write: %v", err)
		}

		// Expired with nobody taking over: the holder is fenced off all
		// the same.
		if err := short.Renew(ctx, b); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, "the lease to expire", func() bool {
			return errors.Is(fencedCursor(ctx, db, b, "b2"), database.ErrLeaseLost)
		})
		if err := long.Renew(ctx, b); !errors.Is(err, database.ErrLeaseLost) {
			t.Fatalf("renewal of an expired lease: got %v, want ErrLeaseLost", err)
		}
		if err := fencedCursor(ctx, db, b, "b3"); !errors.Is(err, database.ErrLeaseLost) {
			t.Fatalf("fenced write on an expired lease: got %v, want ErrLeaseLost", err)
		}
		if got := cursor(t, db); got == "b3" {
			t.Fatal("a fenced write on an expired lease was kept")
		}

		c, err := long.Acquire(ctx, "job")
		if err != nil {
			t.Fatal(err)
		}
		if err := long.Release(ctx, c); err != nil {
			t.Fatal(err)
		}
		d, err := long.Acquire(ctx, "job")
		if err != nil {
			t.Fatalf("taking a released lease: %v", err)
		}
		if d.Token <= c.Token {
			t.Fatalf("token %d after release, previous %d: want higher", d.Token, c.Token)
		}
		if err := long.Release(ctx, c); !errors.Is(err, database.ErrLeaseLost) {
			t.Fatalf("old holder releasing the new holder's lease: got %v, want ErrLeaseLost", err)
		}
		if _, err := long.Acquire(ctx, "other job"); err != nil {
			t.Fatalf("a lease of another name: %v", err)
		}
	})
}

// A held lease is renewed in the background; when a renewal finds that
// another holder took over, the lease's context ends and Lost says so.
// Released, it passes on at once.
func TestHeldLeaseNoticesLoss(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		q := db.Leases.WithTiming(database.LeaseTiming{Duration: time.Hour, Renew: 20 * time.Millisecond, GiveUp: time.Hour, Retry: 20 * time.Millisecond})
		h, err := q.TryHold(ctx, "job")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := q.TryHold(ctx, "job"); !errors.Is(err, database.ErrLeaseHeld) {
			t.Fatalf("second holder: got %v, want ErrLeaseHeld", err)
		}
		// As another replica would after the holder stalled past expiry.
		if _, err := db.Exec(ctx, `UPDATE lease SET token = token + 1, holder = 'other' WHERE name = 'job'`); err != nil {
			t.Fatal(err)
		}
		select {
		case <-h.Context().Done():
		case <-time.After(60 * time.Second):
			t.Fatal("the holder did not notice that its lease was taken over")
		}
		if !h.Lost() {
			t.Fatalf("Lost() = false after take-over (cause %v)", context.Cause(h.Context()))
		}
		h.Release() // must not end the other holder's lease
		if _, err := q.TryHold(ctx, "job"); !errors.Is(err, database.ErrLeaseHeld) {
			t.Fatalf("after the old holder's release: got %v, want ErrLeaseHeld", err)
		}

		h2, err := q.TryHold(ctx, "job2")
		if err != nil {
			t.Fatal(err)
		}
		h2.Release()
		h2.Release()
		if h2.Lost() || h2.Context().Err() == nil {
			t.Fatalf("released lease: Lost %v, context err %v", h2.Lost(), h2.Context().Err())
		}
		h3, err := q.TryHold(ctx, "job2")
		if err != nil {
			t.Fatalf("taking a released lease: %v", err)
		}
		h3.Release()
	})
}

// A holder that cannot renew (its database is unreachable) stops by
// itself, GiveUp after its last renewal, while its lease still lasts.
func TestHeldLeaseGivesUpWithoutDatabase(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, db *database.Database) {
		q := db.Leases.WithTiming(database.LeaseTiming{Duration: time.Hour, Renew: 20 * time.Millisecond, GiveUp: 200 * time.Millisecond})
		h, err := q.TryHold(context.Background(), "job")
		if err != nil {
			t.Fatal(err)
		}
		if err := db.RawDB.Close(); err != nil {
			t.Fatal(err)
		}
		select {
		case <-h.Context().Done():
		case <-time.After(60 * time.Second):
			t.Fatal("the holder kept going without renewing")
		}
		if !h.Lost() {
			t.Fatalf("Lost() = false (cause %v)", context.Cause(h.Context()))
		}
		h.Release()
	})
}

// Killing the holder's PostgreSQL sessions (pg_terminate_backend) takes
// nothing from it: unlike a session advisory lock, which PostgreSQL frees
// with the session while the holder carries on unaware, the lease stays
// with the holder, which renews it over a new connection, and nobody else
// gets it.
func TestLeaseSurvivesKilledSession(t *testing.T) {
	t.Parallel()
	uri := harness.PostgresURI(t)
	holderDB := openDB(t, database.Config{Type: "postgres", URI: uri + "&application_name=lease_holder"})
	other := openDB(t, database.Config{Type: "postgres", URI: uri})
	timing := database.LeaseTiming{Duration: 2 * time.Second, Renew: 100 * time.Millisecond, GiveUp: 1500 * time.Millisecond, Retry: 50 * time.Millisecond}
	ctx := context.Background()
	h, err := holderDB.Leases.WithTiming(timing).TryHold(ctx, "job")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Release()

	var killed int
	var killedAt int64
	err = other.QueryRow(ctx, `
		SELECT COUNT(*), MAX((EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT)
		FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'lease_holder' AND datname = current_database()) k`).Scan(&killed, &killedAt)
	if err != nil {
		t.Fatal(err)
	}
	if killed == 0 {
		t.Fatal("the holder had no session to kill")
	}
	// Every take-over attempt until the holder renewed after the kill,
	// and for one lease duration beyond the kill, is refused.
	otherLeases := other.Leases.WithTiming(timing)
	waitUntil(t, "a renewal after the kill, past the lease's expiry at the kill", func() bool {
		if _, err := otherLeases.Acquire(ctx, "job"); !errors.Is(err, database.ErrLeaseHeld) {
			t.Fatalf("another replica's attempt after the kill: got %v, want ErrLeaseHeld", err)
		}
		if h.Context().Err() != nil {
			t.Fatalf("the holder stopped: %v", context.Cause(h.Context()))
		}
		var expires int64
		if err := other.QueryRow(ctx, `SELECT expires_at FROM lease WHERE name = 'job'`).Scan(&expires); err != nil {
			t.Fatal(err)
		}
		return expires > killedAt+2*timing.Duration.Milliseconds()
	})
	if err := fencedCursor(ctx, holderDB, &h.Lease, "after kill"); err != nil {
		t.Fatalf("holder's fenced write after the kill: %v", err)
	}
}

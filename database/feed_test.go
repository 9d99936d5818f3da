package database_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/openmeet-team/openmeet-bridge/database"
	"github.com/openmeet-team/openmeet-bridge/internal/harness"
)

// TestFeed: a batch handed in position order is returned as it is, without
// reading the log; one that does not continue where the reader stands
// (something logged but not handed came between, batches handed out of
// order, a dropped batch, a position skipped for an event logged before)
// makes the feed read the log instead, so the reader sees every event once,
// in order.
func TestFeed(t *testing.T) {
	engines(t, func(t *testing.T, db *database.Database) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		feed := db.EventLog.NewFeed(3, 3)
		reads := 0
		feed.BeforeRead = func(context.Context) { reads++ }
		txn := 0
		logTxn := func(events ...*database.LoggedEvent) []*database.LoggedEvent {
			t.Helper()
			txn++
			written, err := appendTxn(ctx, db, fmt.Sprint(txn), events)
			if err != nil {
				t.Fatal(err)
			}
			return written
		}
		var pos int64
		seen := []string{}
		// next takes one batch from the feed and checks that it continues
		// the reader's position without a gap the log does not have.
		next := func(wantReads int) database.Batch {
			t.Helper()
			b, err := feed.Next(ctx, pos, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			for _, evt := range b.Events {
				if evt.Position <= pos {
					t.Fatalf("position %d again after %d", evt.Position, pos)
				}
				pos = evt.Position
				seen = append(seen, string(evt.EventID))
			}
			if reads != wantReads {
				t.Fatalf("%d reads of the log, want %d", reads, wantReads)
			}
			return b
		}
		at := time.Unix(1000, 0)

		// In order: no read.
		w := logTxn(msg("$1", "!r"), msg("$2", "!r"))
		pos = w[0].Position - 1
		feed.Hand(w, at)
		if b := next(0); len(b.Events) != 2 || !b.Received(w[1].Position).Equal(at) {
			t.Fatalf("handed batch came back as %d events, received %v", len(b.Events), b.Received(w[1].Position))
		}
		// Logged but not handed (another replica), then a handed batch:
		// the log has both; only the handed one's arrival is known.
		other := logTxn(msg("$3", "!r"))
		w = logTxn(msg("$4", "!r"))
		feed.Hand(w, at)
		b := next(1)
		if len(b.Events) != 2 || !b.Received(other[0].Position).IsZero() || !b.Received(w[0].Position).Equal(at) {
			t.Fatalf("fallback gave %d events, arrivals %v %v", len(b.Events), b.Received(other[0].Position), b.Received(w[0].Position))
		}
		// Handed out of order: the later one makes the feed read both,
		// the earlier one is then skipped, as is a batch handed twice.
		w5, w6 := logTxn(msg("$5", "!r")), logTxn(msg("$6", "!r"))
		feed.Hand(w6, at)
		next(2)
		feed.Hand(w5, at)
		feed.Hand(w6, at)
		w7 := logTxn(msg("$7", "!r"))
		feed.Hand(w7, at)
		next(2)
		// A transaction whose first event was logged before. PostgreSQL
		// skips its position, which the feed cannot tell from a missing
		// batch, so it reads the log; SQLite leaves logged events out
		// before it gives positions, so there is no gap to read. One
		// skipped inside a batch is handed as it is.
		w = logTxn(msg("$1", "!r"), msg("$8", "!r"))
		r := 2
		if w[0].Position != pos+1 {
			r = 3
		}
		feed.Hand(w, at)
		next(r)
		w = logTxn(msg("$9", "!r"), msg("$2", "!r"), msg("$10", "!r"))
		if len(w) != 2 || (w[1].Position != w[0].Position+2 && w[1].Position != w[0].Position+1) {
			t.Fatalf("written %d events at %v", len(w), w)
		}
		feed.Hand(w, at)
		next(r)
		// More batches than the queue holds: the rest are dropped and the
		// log is read (the wake of a dropped batch wins over the queue,
		// which the read covers), limit events at a time, the next read
		// without waiting; the arrival of the queued ones is still known.
		for i := 11; i <= 15; i++ {
			feed.Hand(logTxn(msg(fmt.Sprintf("$%d", i), "!r")), at)
		}
		if b := next(r + 1); len(b.Events) != 3 || !b.Received(b.Events[0].Position).Equal(at) {
			t.Fatalf("read %d events, want the limit, the first received %v", len(b.Events), b.Received(b.Events[0].Position))
		}
		next(r + 2) // $14, $15
		feed.Wake()
		if b := next(r + 3); len(b.Events) != 0 {
			t.Fatalf("read %d events after the end", len(b.Events))
		}
		w = logTxn(msg("$16", "!r"))
		feed.Hand(w, at)
		next(r + 3)
		want := []string{"$1", "$2", "$3", "$4", "$5", "$6", "$7", "$8", "$9", "$10", "$11", "$12", "$13", "$14", "$15", "$16"}
		if !slices.Equal(seen, want) {
			t.Fatalf("saw %v, want %v", seen, want)
		}
		// The reader's context ending ends a wait.
		cctx, ccancel := context.WithCancel(ctx)
		ccancel()
		if _, err := feed.Next(cctx, pos, time.Hour); err == nil {
			t.Fatal("Next returned without an error after its context ended")
		}
	})
}

// TestFeedAnnounced: a notification up to a position the reader has, or
// was handed, reads nothing; one beyond, or without a position, reads the
// log. On PostgreSQL the notification of a commit carries its last
// position.
func TestFeedAnnounced(t *testing.T) {
	engines(t, func(t *testing.T, db *database.Database) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		feed := db.EventLog.NewFeed(8, 100)
		reads := 0
		feed.BeforeRead = func(context.Context) { reads++ }
		w, err := appendTxn(ctx, db, "a1", []*database.LoggedEvent{msg("$a1", "!r"), msg("$a2", "!r")})
		if err != nil {
			t.Fatal(err)
		}
		at := w[0].Position - 1
		feed.Hand(w, time.Time{})
		last := w[1].Position
		feed.Announced(last, at) // handed that far: no read
		b, err := feed.Next(ctx, at, time.Hour)
		if err != nil || len(b.Events) != 2 || b.FromLog || reads != 0 {
			t.Fatalf("got %d events (from the log: %v), %d reads, %v", len(b.Events), b.FromLog, reads, err)
		}
		at = last
		feed.Announced(last, at) // there already: no read
		feed.Announced(last+1, at)
		if b, err = feed.Next(ctx, at, time.Hour); err != nil || !b.FromLog || reads != 1 {
			t.Fatalf("an announcement beyond: from the log %v, %d reads, %v", b.FromLog, reads, err)
		}
		feed.Announced(0, at)
		if b, err = feed.Next(ctx, at, time.Hour); err != nil || !b.FromLog || reads != 2 {
			t.Fatalf("an announcement without a position: from the log %v, %d reads, %v", b.FromLog, reads, err)
		}
	})
}

// TestNotificationCarriesPosition: on PostgreSQL a replica listening is
// told the last position of each commit.
func TestNotificationCarriesPosition(t *testing.T) {
	uri := harness.PostgresURI(t)
	db := openDB(t, database.Config{Type: "postgres", URI: uri})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	announced := make(chan int64, 1000)
	go db.ListenPositions(ctx, uri, zerolog.Nop(), func(upTo int64) { announced <- upTo })
	// Until the listener is connected, commits go unannounced.
	for i := 0; ; i++ {
		if _, err := appendTxn(ctx, db, fmt.Sprintf("warm%d", i), []*database.LoggedEvent{msg(fmt.Sprintf("$w%d", i), "!r")}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-announced:
		case <-time.After(100 * time.Millisecond):
			if i == 100 {
				t.Fatal("no notification")
			}
			continue
		}
		break
	}
	w, err := appendTxn(ctx, db, "last", []*database.LoggedEvent{msg("$l1", "!r"), msg("$l2", "!r")})
	if err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case upTo := <-announced:
			if upTo <= 0 || upTo > w[1].Position {
				t.Fatalf("announced %d, the log ends at %d", upTo, w[1].Position)
			}
			if upTo == w[1].Position {
				return
			}
		case <-ctx.Done():
			t.Fatal("the commit was not announced with its position")
		}
	}
}

package database_test

import (
	"context"
	"testing"
	"time"

	"github.com/openmeet-team/openmeet-bridge/database"
)

func TestOutboxQueries(t *testing.T) {
	engines(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		add := func(txn string) *database.OutboxEntry {
			e, _, err := db.Outbox.Add(ctx, &database.OutboxEntry{UserID: "@u:test", RoomID: "!r", TxnID: txn, EventType: "m.room.message", Content: "{}"})
			if err != nil {
				t.Fatal(err)
			}
			return e
		}
		a, b := add("a"), add("b")
		if again, added, _ := db.Outbox.Add(ctx, &database.OutboxEntry{UserID: "@u:test", RoomID: "!r", TxnID: "a", EventType: "m.room.message", Content: "{}"}); added || again.ID != a.ID {
			t.Fatalf("repeated txn id made a new entry: %+v %v", again, added)
		}
		// Claimed entries come oldest first and are not claimed twice.
		claimed, err := db.Outbox.Claim(ctx, 10, time.Minute)
		if err != nil || len(claimed) != 2 || claimed[0].ID != a.ID || claimed[1].ID != b.ID {
			t.Fatalf("claim: %+v %v", claimed, err)
		}
		if again, _ := db.Outbox.Claim(ctx, 10, time.Minute); len(again) != 0 {
			t.Fatalf("claimed twice: %+v", again)
		}
		// A released entry is claimable again; a retried one waits.
		if err := db.Outbox.Release(ctx, a.ID); err != nil {
			t.Fatal(err)
		}
		if err := db.Outbox.MarkRetry(ctx, b.ID, time.Now().Add(time.Hour), "down"); err != nil {
			t.Fatal(err)
		}
		if got, _ := db.Outbox.Claim(ctx, 10, time.Minute); len(got) != 1 || got[0].ID != a.ID {
			t.Fatalf("after release and retry: %+v", got)
		}
		if depth, _ := db.Outbox.Depth(ctx); depth != 2 {
			t.Fatalf("depth %d", depth)
		}
		// Synapse is back: everything waiting is due now.
		if err := db.Outbox.DueNow(ctx); err != nil {
			t.Fatal(err)
		}
		if got, _ := db.Outbox.Claim(ctx, 10, time.Minute); len(got) != 1 || got[0].ID != b.ID || got[0].Attempts != 1 || got[0].LastError != "down" {
			t.Fatalf("after DueNow: %+v", got)
		}
		if err := db.Outbox.MarkSent(ctx, a.ID, "$sent"); err != nil {
			t.Fatal(err)
		}
		if err := db.Outbox.MarkFailed(ctx, b.ID, "M_FORBIDDEN"); err != nil {
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

func TestTicketsAndPruning(t *testing.T) {
	engines(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		if err := db.Tickets.Add(ctx, "live", "acme", "ada", time.Now().Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if err := db.Tickets.Add(ctx, "old", "acme", "ada", time.Now().Add(-time.Minute)); err != nil {
			t.Fatal(err)
		}
		if tenant, slug, ok, err := db.Tickets.Redeem(ctx, "live"); err != nil || !ok || tenant != "acme" || slug != "ada" {
			t.Fatalf("redeem: %q %q %v %v", tenant, slug, ok, err)
		}
		if _, _, ok, _ := db.Tickets.Redeem(ctx, "live"); ok {
			t.Fatal("ticket redeemed twice")
		}
		if err := db.Tickets.Prune(ctx); err != nil {
			t.Fatal(err)
		}
		if _, _, ok, _ := db.Tickets.Redeem(ctx, "old"); ok {
			t.Fatal("expired ticket accepted")
		}

		if _, err := appendTxn(ctx, db, "t1", []*database.LoggedEvent{msg("$a", "!r"), msg("$b", "!r")}); err != nil {
			t.Fatal(err)
		}
		// Read markers only move forward; unread counts others' messages.
		if n, _ := db.ReadMarkers.Unread(ctx, "@reader:test", "!r", 100); n != 2 {
			t.Fatalf("unread %d, want 2", n)
		}
		if err := db.ReadMarkers.Set(ctx, "@reader:test", "!r", 2); err != nil {
			t.Fatal(err)
		}
		if err := db.ReadMarkers.Set(ctx, "@reader:test", "!r", 1); err != nil {
			t.Fatal(err)
		}
		if n, _ := db.ReadMarkers.Unread(ctx, "@reader:test", "!r", 100); n != 0 {
			t.Fatalf("unread after marker %d, want 0", n)
		}
		if n, _ := db.ReadMarkers.Unread(ctx, "@alice:test", "!r", 100); n != 0 {
			t.Fatalf("own messages counted as unread: %d", n)
		}

		// Pruning: old log rows and txn ids go; the position counter stays.
		future := time.Now().Add(time.Hour)
		if n, err := db.EventLog.Prune(ctx, future, 1); err != nil || n != 1 {
			t.Fatalf("prune: %d %v", n, err)
		}
		if oldest, _ := db.EventLog.OldestPosition(ctx); oldest != 2 {
			t.Fatalf("oldest position %d, want 2", oldest)
		}
		if err := db.EventLog.PruneTxns(ctx, future); err != nil {
			t.Fatal(err)
		}
		if _, _, ok, _ := db.EventLog.LastTxn(ctx); ok {
			t.Fatal("txn ids survived pruning")
		}
		if pos, _ := db.EventLog.MaxPosition(ctx); pos != 2 {
			t.Fatalf("max position %d after pruning, want 2", pos)
		}
	})
}

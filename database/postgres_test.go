package database_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/openmeet-team/openmeet-bridge/database"
	"github.com/openmeet-team/openmeet-bridge/internal/harness"
)

// The one-statement write of PostgreSQL still wakes the other replicas:
// its NOTIFY arrives on a listening connection, for a txn without an echo
// (one statement in its own transaction) and for one with (in a database
// transaction with the outbox update).
func TestAppendNotifiesOtherReplicas(t *testing.T) {
	uri := harness.PostgresURI(t)
	db := openDB(t, database.Config{Type: "postgres", URI: uri})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	woken := make(chan struct{}, 100)
	go db.Listen(ctx, uri, zerolog.Nop(), func() { woken <- struct{}{} })
	push := func(txn int, echo bool) {
		evt := msg(fmt.Sprintf("$n%d", txn), "!r")
		if echo {
			evt.Raw = []byte(fmt.Sprintf(`{"event_id":"$n%d","content":{"%s":"x%d"}}`, txn, database.OutboxTxnIDKey, txn))
		}
		if _, err := appendTxn(ctx, db, fmt.Sprint(txn), []*database.LoggedEvent{evt}); err != nil {
			t.Fatal(err)
		}
	}
	// LISTEN may not be in place yet: push until a wake-up arrives.
	txn := 0
	deadline := time.After(30 * time.Second)
	for got := false; !got; {
		txn++
		push(txn, false)
		select {
		case <-woken:
			got = true
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			t.Fatalf("no notification after %d transactions", txn)
		}
	}
	// Let wake-ups of the pushes before settle, then one of each shape.
	for quiet := false; !quiet; {
		select {
		case <-woken:
		case <-time.After(500 * time.Millisecond):
			quiet = true
		}
	}
	for _, echo := range []bool{false, true} {
		txn++
		push(txn, echo)
		select {
		case <-woken:
		case <-time.After(30 * time.Second):
			t.Fatalf("echo %v: no notification", echo)
		}
	}
}

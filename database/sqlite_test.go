package database

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/id"
)

// walFrames is the number of pages in the WAL, as a PASSIVE checkpoint
// reports it.
func walFrames(t *testing.T, db *Database) int {
	t.Helper()
	var busy, frames, copied int
	if err := db.RawDB.QueryRow("PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &frames, &copied); err != nil {
		t.Fatal(err)
	}
	return frames
}

// A checkpoint of a long WAL makes the next commit start the WAL over, also
// when a reader kept the WAL from being copied in full when it began (as a
// commit during a PASSIVE checkpoint does under steady load).
func TestCheckpointRestartsLongWAL(t *testing.T) {
	db, err := Open(Config{Type: "sqlite3-fk-wal", URI: "file:" + filepath.Join(t.TempDir(), "wal.db") + "?_txlock=immediate"}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.stopCheckpointer()
	<-db.checkpointerDone
	ctx := context.Background()
	if err = db.Upgrade(ctx); err != nil {
		t.Fatal(err)
	}
	txn := 0
	appendSome := func(n int) {
		for range n {
			events := make([]*LoggedEvent, 10)
			for i := range events {
				evtID := fmt.Sprintf("$wal-%d-%d", txn, i)
				events[i] = &LoggedEvent{EventID: id.EventID(evtID), RoomID: "!r:test", Type: "m.room.message",
					Sender: "@a:test", Raw: []byte(`{"event_id":"` + evtID + `","pad":"` + fmt.Sprintf("%0400d", i) + `"}`)}
			}
			if _, err := db.EventLog.AppendTransaction(ctx, fmt.Sprint(txn), TxnDigest(events, nil), events); err != nil {
				t.Fatal(err)
			}
			txn++
		}
	}
	appendSome(20)
	reader, err := db.RawDB.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	var n int
	if _, err = reader.ExecContext(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	if err = reader.QueryRowContext(ctx, "SELECT COUNT(*) FROM event_log").Scan(&n); err != nil {
		t.Fatal(err)
	}
	appendSome(20)
	long := walFrames(t, db)
	// The reader ends while the checkpoint waits for it.
	go func() {
		time.Sleep(50 * time.Millisecond)
		_, _ = reader.ExecContext(ctx, "COMMIT")
	}()
	if err = db.checkpoint(ctx, 1, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	appendSome(1)
	if short := walFrames(t, db); short*4 > long {
		t.Fatalf("WAL of %d pages after the checkpoint and one commit, %d before: it did not start over", short, long)
	}
	if err = db.QueryRow(ctx, "SELECT COUNT(*) FROM event_log").Scan(&n); err != nil || n != 410 {
		t.Fatalf("log holds %d events (%v), want 410", n, err)
	}
	// Below the threshold a checkpoint only copies.
	if err = db.checkpoint(ctx, long*100, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	// A reader that stays gives up the restart, not the checkpoint, and
	// writes go on.
	if _, err = reader.ExecContext(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	if err = reader.QueryRowContext(ctx, "SELECT COUNT(*) FROM event_log").Scan(&n); err != nil {
		t.Fatal(err)
	}
	appendSome(5)
	if err = db.checkpoint(ctx, 1, 10*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	appendSome(5)
	if _, err = reader.ExecContext(ctx, "COMMIT"); err != nil {
		t.Fatal(err)
	}
	var timeout int
	for range 3 { // whichever connections the pool hands out
		if err = db.RawDB.QueryRow("PRAGMA busy_timeout").Scan(&timeout); err != nil || timeout != 5000 {
			t.Fatalf("busy_timeout %d (%v) after a checkpoint, want 5000", timeout, err)
		}
	}
}

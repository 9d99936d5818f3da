package database_test

import (
	"context"
	"embed"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.mau.fi/util/dbutil"

	"github.com/openmeet-team/openmeet-bridge/database"
	"github.com/openmeet-team/openmeet-bridge/internal/harness"
)

//go:embed testdata/v1/*.sql
var v1Schema embed.FS

// schemaOf lists "table.column type" for every column, to compare schemas.
func schemaOf(t *testing.T, db *database.Database) []string {
	t.Helper()
	ctx := context.Background()
	var query string
	if db.Dialect == dbutil.Postgres {
		query = `SELECT table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable
			FROM information_schema.columns WHERE table_schema = 'public' AND table_name <> 'version'`
	} else {
		query = `SELECT m.name || '.' || p.name || ' ' || p.type || ' ' || p."notnull"
			FROM sqlite_master m JOIN pragma_table_info(m.name) p
			WHERE m.type = 'table' AND m.name <> 'version'`
	}
	rows, err := db.Query(ctx, query)
	cols, err := dbutil.NewRowIterWithError(rows, dbutil.ScanSingleColumn[string], err).AsList()
	if err != nil {
		t.Fatal(err)
	}
	if len(cols) < 20 {
		t.Fatalf("schema query found only %v", cols)
	}
	slices.Sort(cols)
	return cols
}

// TestUpgradeFromV1 builds a version-1 database holding data, upgrades it,
// and checks that it ends with the same schema as a fresh one and that the
// data survived.
func TestUpgradeFromV1(t *testing.T) {
	cfgs := map[string]func(t *testing.T) database.Config{
		"sqlite": func(t *testing.T) database.Config {
			return database.Config{Type: "sqlite3-fk-wal", URI: "file:" + filepath.Join(t.TempDir(), "t.db") + "?_txlock=immediate"}
		},
		"postgres": func(t *testing.T) database.Config {
			return database.Config{Type: "postgres", URI: harness.PostgresURI(t)}
		},
	}
	for name, cfg := range cfgs {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			fresh := openDB(t, cfg(t))

			old, err := database.Open(cfg(t), zerolog.Nop())
			if err != nil {
				t.Fatal(err)
			}
			defer old.Close()
			current := old.UpgradeTable
			old.UpgradeTable = dbutil.BuildUpgradeTable().WithFSPath(v1Schema, "testdata/v1").Finish()
			if err := old.Upgrade(ctx); err != nil {
				t.Fatal(err)
			}
			// Data as version 1 wrote it, with version 1's columns.
			for _, q := range []string{
				`INSERT INTO appservice_txn (txn_id, received_at, event_count) VALUES ('t1', 1, 2)`,
				`INSERT INTO event_log (stream_pos, event_id, room_id, event_type, sender, state_key, origin_ts, event, txn_id, logged_at)
					VALUES (1, '$a', '!r', 'm.room.message', '@a:test', NULL, 1, '{}', 't1', 1),
					       (2, '$m', '!r', 'm.room.member', '@b:test', '@b:test', 1, '{}', 't1', 1)`,
				`INSERT INTO room_member (room_id, user_id, membership, event_id, stream_pos) VALUES ('!r', '@b:test', 'join', '$m', 2)`,
				`UPDATE stream_position SET position = 2`,
			} {
				if _, err := old.Exec(ctx, q); err != nil {
					t.Fatal(err)
				}
			}
			old.UpgradeTable = current
			if err := old.Upgrade(ctx); err != nil {
				t.Fatal(err)
			}
			if got, want := schemaOf(t, old), schemaOf(t, fresh); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("upgraded schema differs from a fresh one:\n got %v\nwant %v", got, want)
			}
			if n, _ := old.EventLog.Count(ctx); n != 2 {
				t.Fatalf("events lost in the upgrade: %d left", n)
			}
			if m, _ := old.Members.Membership(ctx, "!r", "@b:test"); m != "join" {
				t.Fatalf("membership lost in the upgrade: %q", m)
			}
			// The upgraded database works, new columns and tables included.
			if _, err := appendTxn(ctx, old, "t2", []*database.LoggedEvent{member("$n", "!r", "@c:test", "join")}); err != nil {
				t.Fatal(err)
			}
			if pos, _ := old.EventLog.MaxPosition(ctx); pos != 3 {
				t.Fatalf("position after upgrade %d, want 3", pos)
			}
			// A room's events are found as before the upgrade (on SQLite
			// through the chain it built from the old rows).
			if pos, ts, ok, err := old.EventLog.NewestInRoom(ctx, "!r"); err != nil || !ok || pos != 3 || ts != 1 {
				t.Fatalf("newest in room after upgrade: %d %d %v %v", pos, ts, ok, err)
			}
			if n, err := old.ReadMarkers.Unread(ctx, "@z:test", "!r", 10); err != nil || n != 1 {
				t.Fatalf("unread after upgrade: %d %v, want 1", n, err)
			}
			if _, err := old.Ghosts.Put(ctx, &database.Ghost{Tenant: "t", Slug: "s", UserID: "@openmeet_t_s:test", Displayname: "S"}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestUpgradeOutboxFromV4: entries as version 4 left them get the columns
// of claim fencing; those a v4 bridge had tried, or claimed and not handed
// back, count as possibly sent, so they are looked for before being sent
// again; and only queue heads are claimed afterwards.
func TestUpgradeOutboxFromV4(t *testing.T) {
	cfgs := map[string]func(t *testing.T) database.Config{
		"sqlite": func(t *testing.T) database.Config {
			return database.Config{Type: "sqlite3-fk-wal", URI: "file:" + filepath.Join(t.TempDir(), "t.db") + "?_txlock=immediate"}
		},
		"postgres": func(t *testing.T) database.Config {
			return database.Config{Type: "postgres", URI: harness.PostgresURI(t)}
		},
	}
	for name, cfg := range cfgs {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			fresh := openDB(t, cfg(t))

			old, err := database.Open(cfg(t), zerolog.Nop())
			if err != nil {
				t.Fatal(err)
			}
			defer old.Close()
			current := old.UpgradeTable
			// Version 1, then the shipped upgrades up to version 4.
			old.UpgradeTable = dbutil.BuildUpgradeTable().WithFSPath(v1Schema, "testdata/v1").Finish()
			if err := old.Upgrade(ctx); err != nil {
				t.Fatal(err)
			}
			old.UpgradeTable = current[:4]
			if err := old.Upgrade(ctx); err != nil {
				t.Fatal(err)
			}
			var version int
			if err := old.QueryRow(ctx, `SELECT version FROM version`).Scan(&version); err != nil || version != 4 {
				t.Fatalf("prepared version %d, %v; want 4", version, err)
			}
			// What v4 left: id → (room, state, attempts, claimed_until).
			rows := []struct {
				id               int64
				room, state      string
				attempts         int
				claimedUntil     int64
				wantMaybeSent    bool
				wantClaimedFirst bool
			}{
				{1, "!r", "pending", 0, 0, false, true}, // waiting, never tried
				{2, "!r", "pending", 2, 0, true, false}, // tried twice, behind 1
				{3, "!s", "pending", 0, 1, true, true},  // claimed, not handed back
				{4, "!s", "sent", 1, 0, false, false},
				{5, "!t", "failed", 1, 0, true, false},
			}
			for _, r := range rows {
				state := r.state
				var eventID any
				if state == "sent" {
					eventID = fmt.Sprintf("$e%d", r.id)
				}
				// In this order, the rows get ids 1 to 5.
				if _, err := old.Exec(ctx, `INSERT INTO outbox (user_id, room_id, txn_id, event_type, content, state, event_id, attempts, next_attempt_at, claimed_until, created_at)
					VALUES ('@u:test', $1, $2, 'm.room.message', '{}', $3, $4, $5, 1, $6, 1)`,
					r.room, fmt.Sprintf("t%d", r.id), state, eventID, r.attempts, r.claimedUntil); err != nil {
					t.Fatal(err)
				}
			}
			old.UpgradeTable = current
			if err := old.Upgrade(ctx); err != nil {
				t.Fatal(err)
			}
			if got, want := schemaOf(t, old), schemaOf(t, fresh); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("upgraded schema differs from a fresh one:\n got %v\nwant %v", got, want)
			}
			for _, r := range rows {
				e, err := old.Outbox.ByTxn(ctx, "@u:test", fmt.Sprintf("t%d", r.id))
				if err != nil || e == nil || e.ID != r.id {
					t.Fatalf("entry %d lost: %v", r.id, err)
				}
				if e.MaybeSent != r.wantMaybeSent || e.State != r.state || e.Attempts != r.attempts || e.ClaimToken != 0 {
					t.Fatalf("entry %d after the upgrade: %+v", r.id, e)
				}
				// The homeserver txn id it may already have been sent
				// with, and no digest: a repeat is answered as before.
				if e.HSTxnID != fmt.Sprintf("om%d", r.id) || e.RequestDigest != "" {
					t.Fatalf("entry %d's txn id %q and digest %q after the upgrade", r.id, e.HSTxnID, e.RequestDigest)
				}
			}
			claimed, err := old.Outbox.Claim(ctx, 10, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			var got, want []int64
			for _, r := range rows {
				if r.wantClaimedFirst {
					want = append(want, r.id)
				}
			}
			for _, e := range claimed {
				got = append(got, e.ID)
				if e.ClaimToken != 1 {
					t.Fatalf("claim token %d, want 1", e.ClaimToken)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("claimed %v after the upgrade, want the heads %v", got, want)
			}
			// New entries get ids after the old ones (PostgreSQL identity).
			added, _, err := old.Outbox.Add(ctx, &database.OutboxEntry{UserID: "@u:test", RoomID: "!t", TxnID: "new", EventType: "m.room.message", Content: "{}"})
			if err != nil || added.ID <= 5 || added.HSTxnID == fmt.Sprintf("om%d", added.ID) || len(added.HSTxnID) < 2+26 {
				t.Fatalf("new entry after the upgrade: %+v %v", added, err)
			}
		})
	}
}

// TestUpgradeMediaRefsFromV7: migration 8 records the references of the
// events a v7 bridge logged (the media corpus, written as rows of schema
// 7) exactly as ingest would: files in structured places, none from a
// text message quoting an mxc URI, none of malformed URIs or of events
// redacted in their room.
func TestUpgradeMediaRefsFromV7(t *testing.T) {
	cfgs := map[string]func(t *testing.T) database.Config{
		"sqlite": func(t *testing.T) database.Config {
			return database.Config{Type: "sqlite3-fk-wal", URI: "file:" + filepath.Join(t.TempDir(), "t.db") + "?_txlock=immediate"}
		},
		"postgres": func(t *testing.T) database.Config {
			return database.Config{Type: "postgres", URI: harness.PostgresURI(t)}
		},
	}
	for name, cfg := range cfgs {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			old, err := database.Open(cfg(t), zerolog.Nop())
			if err != nil {
				t.Fatal(err)
			}
			defer old.Close()
			current := old.UpgradeTable
			old.UpgradeTable = dbutil.BuildUpgradeTable().WithFSPath(v1Schema, "testdata/v1").Finish()
			if err := old.Upgrade(ctx); err != nil {
				t.Fatal(err)
			}
			old.UpgradeTable = current[:7]
			if err := old.Upgrade(ctx); err != nil {
				t.Fatal(err)
			}
			var version int
			if err := old.QueryRow(ctx, `SELECT version FROM version`).Scan(&version); err != nil || version != 7 {
				t.Fatalf("prepared version %d, %v; want 7", version, err)
			}
			if _, err := old.Exec(ctx, `INSERT INTO appservice_txn (txn_id, received_at, event_count) VALUES ('t1', 1, 1)`); err != nil {
				t.Fatal(err)
			}
			pos := 0
			for _, txn := range mediaCorpus {
				for _, m := range txn {
					pos++
					evt := m.logged()
					if _, err := old.Exec(ctx, `INSERT INTO event_log (stream_pos, event_id, room_id, event_type, sender, state_key, origin_ts, event, txn_id, logged_at)
						VALUES ($1, $2, $3, $4, $5, $6, 1, $7, 't1', 1)`,
						pos, evt.EventID, evt.RoomID, evt.Type, evt.Sender, evt.StateKey, string(evt.Raw)); err != nil {
						t.Fatal(err)
					}
				}
			}
			if _, err := old.Exec(ctx, `UPDATE stream_position SET position = $1`, pos); err != nil {
				t.Fatal(err)
			}
			old.UpgradeTable = current
			if err := old.Upgrade(ctx); err != nil {
				t.Fatal(err)
			}
			if got, want := mediaRefs(t, old), wantMediaRefs(); !slices.Equal(got, want) {
				t.Fatalf("media_ref after the upgrade:\n got %q\nwant %q", got, want)
			}
			checkReferences(t, old)
			// Rows keep their event's position.
			var stale int
			if err := old.QueryRow(ctx, `SELECT COUNT(*) FROM media_ref m JOIN event_log e ON e.event_id = m.event_id WHERE e.stream_pos <> m.stream_pos`).Scan(&stale); err != nil || stale != 0 {
				t.Fatalf("%d rows with another position than their event's, %v", stale, err)
			}
		})
	}
}

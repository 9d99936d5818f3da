package portal

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/openmeet-team/openmeet-bridge/database"
	"github.com/openmeet-team/openmeet-bridge/internal/harness"
)

func TestMain(m *testing.M) { os.Exit(harness.Main(m)) }

func openPostgres(t *testing.T, uri string) *database.Database {
	t.Helper()
	db, err := database.Open(database.Config{Type: "postgres", URI: uri, LeaseDuration: "2s"}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if err := db.Upgrade(context.Background()); err != nil {
		t.Fatal(err)
	}
	return db
}

// Two replicas' registries serialise a portal's syncs through its lease,
// and killing the holder's PostgreSQL sessions does not let the other in:
// with a session advisory lock the other replica would have taken the
// portal at once and written its power levels while the holder still was.
// The other gets the portal when the holder lets it go, and the holder's
// context has ended by then.
func TestPortalLockSurvivesKilledSession(t *testing.T) {
	t.Parallel()
	uri := harness.PostgresURI(t)
	dbA := openPostgres(t, uri+"&application_name=portal_replica_a")
	dbB := openPostgres(t, uri)
	rA := NewRegistry(dbA, nil, nil, "", &Config{}, zerolog.Nop())
	rB := NewRegistry(dbB, nil, nil, "", &Config{}, zerolog.Nop())
	key := database.PortalKey{Tenant: "t", Kind: "event", Slug: "x"}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	lockedA, unlockA, err := rA.lockPortal(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	var killed int
	var killedAt int64
	err = dbB.QueryRow(ctx, `
		SELECT COUNT(*), MAX((EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT)
		FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		      WHERE application_name = 'portal_replica_a' AND datname = current_database()) k`).Scan(&killed, &killedAt)
	if err != nil {
		t.Fatal(err)
	}
	if killed == 0 {
		t.Fatal("replica A had no session to kill")
	}

	gotB := make(chan context.Context, 1)
	go func() {
		lockedB, unlockB, err := rB.lockPortal(ctx, key)
		if err != nil {
			return
		}
		gotB <- lockedB
		<-ctx.Done()
		unlockB()
	}()
	// B asks again and again (Hold polls at least every second) while A's
	// lease is renewed past twice its length after the kill.
	deadline := time.Now().Add(120 * time.Second)
	for {
		select {
		case <-gotB:
			t.Fatal("replica B took the portal while replica A held it")
		default:
		}
		if lockedA.Err() != nil {
			t.Fatalf("replica A lost the portal: %v", context.Cause(lockedA))
		}
		var expires int64
		if err := dbB.QueryRow(ctx, `SELECT expires_at FROM lease WHERE name = $1`, portalLeaseName(key)).Scan(&expires); err != nil {
			t.Fatal(err)
		}
		if expires > killedAt+2*(2*time.Second).Milliseconds() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("replica A's lease was not renewed after the kill")
		}
		time.Sleep(50 * time.Millisecond)
	}

	unlockA()
	if lockedA.Err() == nil {
		t.Fatal("replica A's context goes on after it let the portal go")
	}
	select {
	case lockedB := <-gotB:
		if lockedB.Err() != nil {
			t.Fatalf("replica B's context ended at once: %v", context.Cause(lockedB))
		}
	case <-time.After(60 * time.Second):
		t.Fatal("replica B did not get the portal after replica A let it go")
	}
}

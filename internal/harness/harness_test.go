package harness

import (
	"context"
	"net/http"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

func TestPostgresGivesFreshDatabases(t *testing.T) {
	ctx := context.Background()
	a, b := PostgresURI(t), PostgresURI(t)
	if a == b {
		t.Fatal("two tests got the same database")
	}
	conn, err := pgx.Connect(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE TABLE t (x INT)"); err != nil {
		t.Fatal(err)
	}
}

func TestSynapseServesUsers(t *testing.T) {
	hs := SharedSynapse(t)
	resp, err := http.Get(hs.URL + "/health")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("health: %v %v", resp, err)
	}
	_ = resp.Body.Close()
	alice := hs.NewUser(t, "alice")
	ctx := context.Background()
	room, err := alice.CreateRoom(ctx, map[string]any{"name": "harness"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SendText(ctx, room, "hello"); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Join(ctx, "#nope:"+hs.ServerName); err == nil {
		t.Fatal("joined an alias that does not exist")
	}
}

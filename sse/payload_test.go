package sse

import (
	"context"
	"testing"

	"maunium.net/go/mautrix/id"

	"github.com/openmeet-team/openmeet-bridge/database"
)

// Typing notices and receipts name the users they are about: ghosts with
// their OpenMeet slug and name, others by their Matrix name; a user who
// read several events is named once; content that is not what the spec
// says names nobody rather than failing.
func TestEphemeralUsersAreNamed(t *testing.T) {
	f := newHubFixture(t, testCfg())
	ctx := context.Background()
	ada := id.UserID("@openmeet_t_ada:test")
	if _, err := f.db.Ghosts.Put(ctx, &database.Ghost{Tenant: "t", Slug: "ada", UserID: ada, Displayname: "Ada Lovelace"}); err != nil {
		t.Fatal(err)
	}
	const room = id.RoomID("!r:test")
	names := func(eventType, raw string) []string {
		t.Helper()
		users, err := f.hub.fmt.ephemeralUsers(ctx, room, eventType, []byte(raw))
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, u := range users {
			out = append(out, string(u.UserID)+"="+u.Displayname+"/"+u.Slug)
		}
		return out
	}
	same := func(got []string, want ...string) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("named %q, want %q", got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("named %q, want %q", got, want)
			}
		}
	}
	same(names("m.typing", `{"type":"m.typing","content":{"user_ids":["@openmeet_t_ada:test","@alice:test"]}}`),
		"@openmeet_t_ada:test=Ada Lovelace/ada", "@alice:test=alice/")
	same(names("m.typing", `{"type":"m.typing","content":{"user_ids":[]}}`))
	same(names("m.receipt", `{"type":"m.receipt","content":{
		"$1":{"m.read":{"@alice:test":{"ts":1}}},
		"$2":{"m.read":{"@alice:test":{"ts":2},"@openmeet_t_ada:test":{"ts":2}},"m.read.private":{"@alice:test":{"ts":3}}}}}`),
		"@alice:test=alice/", "@openmeet_t_ada:test=Ada Lovelace/ada")
	same(names("m.typing", `{"type":"m.typing","content":{"user_ids":"@alice:test"}}`))
	same(names("m.typing", `{"type":"m.typing","content":{"user_ids":[5,"",null,"alice"]}}`))
	same(names("m.typing", `{"type":"m.typing","content":"nope"}`))
	same(names("m.receipt", `{"type":"m.receipt","content":["$1"]}`))
	same(names("m.receipt", `{"type":"m.receipt","content":{"$1":"read","$2":{"m.read":["@alice:test"]}}}`))
	same(names("m.presence", `{"type":"m.presence","content":{"user_ids":["@alice:test"]}}`))
}

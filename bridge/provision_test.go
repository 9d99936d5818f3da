package bridge_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/openmeet-team/openmeet-bridge/bridge"
	"github.com/openmeet-team/openmeet-bridge/database"
	"github.com/openmeet-team/openmeet-bridge/internal/harness"
)

// snapshot is everything a bad request must leave alone.
type snapshot struct {
	ghosts, portals, members, logged int64
	ghost                            database.Ghost
	ghostApplied                     string
	portal                           database.Portal
}

func takeSnapshot(t *testing.T, b *bridge.Bridge, tenant string) snapshot {
	t.Helper()
	ctx := context.Background()
	var s snapshot
	var err error
	if s.ghosts, err = b.DB.Ghosts.Count(ctx); err != nil {
		t.Fatal(err)
	}
	s.portals, _ = b.DB.Portals.Count(ctx)
	s.logged, _ = b.DB.EventLog.Count(ctx)
	key := database.PortalKey{Tenant: tenant, Kind: "event", Slug: "meetup"}
	members, _ := b.DB.PortalMembers.List(ctx, key)
	s.members = int64(len(members))
	g, _ := b.DB.Ghosts.Get(ctx, tenant, "hilda")
	p, _ := b.DB.Portals.Get(ctx, key)
	s.ghost, s.portal = *g, *p
	s.ghost.UpdatedAt, s.portal.UpdatedAt = 0, 0
	s.ghostApplied = *s.ghost.DisplaynameApplied + "|" + *s.ghost.AvatarApplied
	s.ghost.DisplaynameApplied, s.ghost.AvatarApplied = nil, nil
	return s
}

func rawRequest(t *testing.T, b *bridge.Bridge, method, path, token, body string) (int, map[string]any) {
	t.Helper()
	status, raw := apiRequest(t, b, method, "/_openmeet/provision/v1"+path, token, body)
	var out map[string]any
	decodeInto(t, method+" "+path, status, raw, &out)
	return status, out
}

func TestProvisioningBadInputs(t *testing.T) {
	hs := harness.SharedSynapse(t)
	b, _ := startOnSynapse(t, hs, t.TempDir())
	tenant := harness.UniqueName("tenant-")
	provisionUser(t, b, tenant, "hilda", "Hilda")
	provisionUser(t, b, tenant, "mo", "Mo")
	base := "/tenants/" + tenant + "/events/meetup"
	if code := provision(t, b, "PUT", base, map[string]any{"name": "Meetup", "visibility": "public"}, nil); code != 200 {
		t.Fatal(code)
	}
	if code := provision(t, b, "PUT", base+"/members/hilda", map[string]string{"role": "host"}, nil); code != 200 {
		t.Fatal(code)
	}
	secret := b.Config.Provisioning.SharedSecret
	user := "/tenants/" + tenant + "/users/hilda"
	var hugeBatch bytes.Buffer
	hugeBatch.WriteString(`{"set":[`)
	for i := range 10001 {
		if i > 0 {
			hugeBatch.WriteByte(',')
		}
		fmt.Fprintf(&hugeBatch, `{"user_slug":"u%d","role":"attendee"}`, i)
	}
	hugeBatch.WriteString(`]}`)
	tests := []struct {
		name, method, path, token, body string
		code                            int
		errcode                         string
	}{
		{"no secret", "PUT", user, "", `{"displayname":"X"}`, 401, "M_MISSING_TOKEN"},
		{"wrong secret", "PUT", user, "wrong", `{"displayname":"X"}`, 403, "M_FORBIDDEN"},
		{"user: not JSON", "PUT", user, secret, `{"displayname":`, 400, "M_NOT_JSON"},
		{"user: unknown field", "PUT", user, secret, `{"displayname":"X","nick":"x"}`, 400, "M_BAD_JSON"},
		{"user: wrong type", "PUT", user, secret, `{"displayname":5}`, 400, "M_BAD_JSON"},
		{"user: empty name", "PUT", user, secret, `{"displayname":"  "}`, 400, "M_INVALID_PARAM"},
		{"user: ftp avatar", "PUT", user, secret, `{"displayname":"X","avatar_url":"ftp://x/y.png"}`, 400, "M_INVALID_PARAM"},
		{"user: http avatar", "PUT", user, secret, `{"displayname":"X","avatar_url":"http://x/y.png"}`, 400, "M_INVALID_PARAM"},
		{"user: slug too long", "PUT", "/tenants/" + tenant + "/users/" + strings.Repeat("s", 201), secret, `{"displayname":"X"}`, 400, "M_INVALID_PARAM"},
		{"user: control character", "PUT", "/tenants/" + tenant + "/users/a%01b", secret, `{"displayname":"X"}`, 400, "M_INVALID_PARAM"},
		{"user: too large", "PUT", user, secret, `{"displayname":"` + strings.Repeat("x", 5<<20) + `"}`, 413, "M_TOO_LARGE"},
		{"user: unknown", "GET", "/tenants/" + tenant + "/users/nobody", secret, "", 404, "M_NOT_FOUND"},
		{"user: wrong method", "PATCH", user, secret, `{}`, 405, "M_UNRECOGNIZED"},
		{"unknown path", "GET", "/tenants/" + tenant + "/parties/x", secret, "", 404, "M_UNRECOGNIZED"},
		{"portal: bad visibility", "PUT", base, secret, `{"name":"M","visibility":"secret"}`, 400, "M_INVALID_PARAM"},
		{"portal: no name", "PUT", base, secret, `{"visibility":"public"}`, 400, "M_INVALID_PARAM"},
		{"portal: long topic", "PUT", base, secret, `{"name":"M","topic":"` + strings.Repeat("t", 5000) + `"}`, 400, "M_INVALID_PARAM"},
		{"portal: unknown", "GET", base + "x", secret, "", 404, "M_NOT_FOUND"},
		{"portal: delete unknown", "DELETE", base + "x", secret, "", 404, "M_NOT_FOUND"},
		{"list: unknown tenant", "GET", "/tenants/nobody-here/events", secret, "", 404, "M_NOT_FOUND"},
		{"list: bad limit", "GET", "/tenants/" + tenant + "/events?limit=0", secret, "", 400, "M_INVALID_PARAM"},
		{"member: unknown portal", "PUT", base + "x/members/hilda", secret, `{"role":"host"}`, 404, "M_NOT_FOUND"},
		{"member: unknown user", "PUT", base + "/members/nobody", secret, `{"role":"host"}`, 404, "M_NOT_FOUND"},
		{"member: bad role", "PUT", base + "/members/mo", secret, `{"role":"owner"}`, 400, "M_INVALID_PARAM"},
		{"member: no role", "PUT", base + "/members/mo", secret, `{}`, 400, "M_INVALID_PARAM"},
		{"member: get non-member", "GET", base + "/members/mo", secret, "", 404, "M_NOT_FOUND"},
		{"batch: unknown user", "POST", base + "/members:batch", secret, `{"set":[{"user_slug":"mo","role":"speaker"},{"user_slug":"nobody","role":"speaker"}]}`, 404, "M_NOT_FOUND"},
		{"batch: bad role", "POST", base + "/members:batch", secret, `{"set":[{"user_slug":"mo","role":"speaker"},{"user_slug":"hilda","role":"king"}]}`, 400, "M_INVALID_PARAM"},
		{"batch: duplicate", "POST", base + "/members:batch", secret, `{"set":[{"user_slug":"mo","role":"speaker"}],"remove":["mo"]}`, 400, "M_INVALID_PARAM"},
		{"batch: too many", "POST", base + "/members:batch", secret, hugeBatch.String(), 400, "M_INVALID_PARAM"},
		{"batch: not JSON", "POST", base + "/members:batch", secret, `[`, 400, "M_NOT_JSON"},
	}
	// Synapse pushes the join asynchronously; the snapshot must wait for it.
	eventually(t, 30*time.Second, "hilda's join to be pushed", func() bool {
		p, _ := b.DB.Portals.Get(context.Background(), database.PortalKey{Tenant: tenant, Kind: "event", Slug: "meetup"})
		m, _ := b.DB.Members.Membership(context.Background(), p.RoomID, id.UserID("@openmeet_"+tenant+"_hilda:"+hs.ServerName))
		return m == "join"
	})
	time.Sleep(500 * time.Millisecond)
	before := takeSnapshot(t, b, tenant)
	for _, tt := range tests {
		code, body := rawRequest(t, b, tt.method, tt.path, tt.token, tt.body)
		if code != tt.code || body["errcode"] != tt.errcode {
			t.Errorf("%s: got %d %v, want %d %s", tt.name, code, body, tt.code, tt.errcode)
		}
	}
	if after := takeSnapshot(t, b, tenant); after != before {
		t.Fatalf("bad requests changed state:\nbefore %+v\nafter  %+v", before, after)
	}
}

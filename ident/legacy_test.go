package ident

import (
	"errors"
	"regexp"
	"testing"

	"maunium.net/go/mautrix/id"
)

func TestLegacyUsers(t *testing.T) {
	t.Parallel()
	n, err := NewNamer("example.net", DefaultGhostTemplate, DefaultAliasTemplate)
	if err != nil {
		t.Fatal(err)
	}
	if n.Legacy().Enabled() || n.Legacy().Regex() != "" || n.Managed("@alice_t1:example.net") {
		t.Fatal("a namer without legacy tenants adopts nothing")
	}
	if _, err := n.WithLegacyTenants([]string{"has_underscore"}); err == nil {
		t.Fatal("a tenant with _ cannot be told apart from the slug")
	}
	n, err = n.WithLegacyTenants([]string{"t2", "t1", "t1"})
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(n.Legacy().Regex())
	for _, c := range []struct {
		user   id.UserID
		tenant string
		ok     bool
	}{
		{"@alice_t1:example.net", "t1", true},
		{"@john-smith-x7k2a_t2:example.net", "t2", true},
		{"@under_score_t1:example.net", "t1", true},
		{"@alice_t3:example.net", "", false},
		{"@alice_t1:example.org", "", false},
		{"@alice_t1x:example.net", "", false},
		{"@_t1:example.net", "", false},
		{"@alicet1:example.net", "", false},
		{"alice_t1", "", false},
	} {
		tenant, err := n.Legacy().Tenant(c.user)
		if (err == nil) != c.ok || tenant != c.tenant || (err != nil && !errors.Is(err, ErrNotLegacy)) {
			t.Errorf("%s: tenant %q, err %v", c.user, tenant, err)
		}
		// The registration's regex, which Synapse applies, agrees.
		if re.MatchString(string(c.user)) != c.ok {
			t.Errorf("%s: regex %s says %v", c.user, re, !c.ok)
		}
		if n.Managed(c.user) != c.ok {
			t.Errorf("%s: managed %v", c.user, !c.ok)
		}
	}
	if err := n.Legacy().CheckAdoption("@alice_t1:example.net", "t2"); !errors.Is(err, ErrNotLegacy) {
		t.Fatalf("another tenant's account: %v", err)
	}
	if !n.Managed("@openmeet_t1_alice:example.net") {
		t.Fatal("ghosts stay managed")
	}
}

func TestParseLegacyAlias(t *testing.T) {
	t.Parallel()
	kind, slug, tenant, domain, err := ParseLegacyAlias("#event-summer-party-2024-t1:example.net")
	if err != nil || kind != KindEvent || slug != "summer-party-2024" || tenant != "t1" || domain != "example.net" {
		t.Fatalf("%s %s %s %s %v", kind, slug, tenant, domain, err)
	}
	for _, bad := range []id.RoomAlias{"#meetup-x-t1:example.net", "#event-t1:example.net", "#group-x-t1", "event-x-t1:example.net"} {
		if _, _, _, _, err := ParseLegacyAlias(bad); err == nil {
			t.Errorf("%s parsed", bad)
		}
	}
}

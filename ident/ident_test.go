package ident

import (
	"errors"
	"strings"
	"testing"

	"maunium.net/go/mautrix/id"
)

func testNamer(t testing.TB) *Namer {
	t.Helper()
	n, err := NewNamer("example.org", DefaultGhostTemplate, DefaultAliasTemplate)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestGhostIDRoundTrip(t *testing.T) {
	t.Parallel()
	n := testNamer(t)
	tests := []struct {
		tenant, slug string
		want         id.UserID
	}{
		{"acme", "john-doe", "@openmeet_acme_john-doe:example.org"},
		{"my-tenant", "a-b-c", "@openmeet_my-tenant_a-b-c:example.org"},
		{"a_b", "c", "@openmeet_a=5fb_c:example.org"},
		{"a", "b_c", "@openmeet_a_b=5fc:example.org"},
		{"Acme", "X=Y", "@openmeet_=41cme_=58=3d=59:example.org"},
		{"", "", "@openmeet__:example.org"},
		{"t", "jürgen", "@openmeet_t_j=c3=bcrgen:example.org"},
	}
	for _, tt := range tests {
		got, err := n.GhostID(tt.tenant, tt.slug)
		if err != nil {
			t.Fatalf("GhostID(%q, %q): %v", tt.tenant, tt.slug, err)
		}
		if got != tt.want {
			t.Errorf("GhostID(%q, %q) = %s, want %s", tt.tenant, tt.slug, got, tt.want)
		}
		tenant, slug, err := n.ParseGhost(got)
		if err != nil || tenant != tt.tenant || slug != tt.slug {
			t.Errorf("ParseGhost(%s) = %q, %q, %v", got, tenant, slug, err)
		}
	}
}

func TestHyphenatedTenantsDoNotCollide(t *testing.T) {
	t.Parallel()
	n := testNamer(t)
	a, _ := n.GhostID("a-b", "c")
	b, _ := n.GhostID("a", "b-c")
	c, _ := n.GhostID("a_b", "c")
	d, _ := n.GhostID("a", "b_c")
	seen := map[id.UserID]bool{}
	for _, u := range []id.UserID{a, b, c, d} {
		if seen[u] {
			t.Fatalf("collision on %s", u)
		}
		seen[u] = true
	}
}

func TestParseGhostRejects(t *testing.T) {
	t.Parallel()
	n := testNamer(t)
	for _, u := range []id.UserID{
		"@openmeetbot:example.org",          // the bot, not a ghost
		"@openmeet_acme_bob:other.org",      // other server
		"@someone:example.org",              // not ours
		"@openmeet_acme:example.org",        // no separator
		"@openmeet_acme_b=2dob:example.org", // escape of a literal is not canonical
		"@openmeet_acme_b=5Fob:example.org", // upper-case hex
		"@openmeet_acme_bob=:example.org",   // truncated escape
		"@openmeet_acme_=ff:example.org",    // invalid UTF-8
		"@openmeet_a_b_c:example.org",       // stray underscore in the slug
	} {
		if tenant, slug, err := n.ParseGhost(u); err == nil {
			t.Errorf("ParseGhost(%s) = %q, %q, want error", u, tenant, slug)
		}
	}
}

func TestTooLong(t *testing.T) {
	t.Parallel()
	n := testNamer(t)
	if _, err := n.GhostID("acme", strings.Repeat("x", 300)); !errors.Is(err, ErrTooLong) {
		t.Fatalf("want ErrTooLong, got %v", err)
	}
	// Escaping triples a byte, so the limit applies to the encoded form.
	if _, err := n.GhostID("acme", strings.Repeat("_", 80)); !errors.Is(err, ErrTooLong) {
		t.Fatalf("want ErrTooLong for escaped length, got %v", err)
	}
	if _, err := n.Alias("acme", KindEvent, strings.Repeat("y", 250)); !errors.Is(err, ErrTooLong) {
		t.Fatalf("want ErrTooLong, got %v", err)
	}
}

func TestAliasRoundTrip(t *testing.T) {
	t.Parallel()
	n := testNamer(t)
	alias, err := n.Alias("my_tenant", KindGroup, "Hiking-Club")
	if err != nil {
		t.Fatal(err)
	}
	if alias != "#openmeet_my=5ftenant_group_=48iking-=43lub:example.org" {
		t.Fatalf("unexpected alias %s", alias)
	}
	tenant, kind, slug, err := n.ParseAlias(alias)
	if err != nil || tenant != "my_tenant" || kind != KindGroup || slug != "Hiking-Club" {
		t.Fatalf("ParseAlias = %q %q %q %v", tenant, kind, slug, err)
	}
	if _, _, _, err := n.ParseAlias("#openmeet_t_party_s:example.org"); err == nil {
		t.Fatal("unknown kind accepted")
	}
}

func TestTemplates(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		ghost, alias string
		ok           bool
	}{
		{DefaultGhostTemplate, DefaultAliasTemplate, true},
		{"om_{tenant}__{slug}_x", "om_{tenant}_{kind}_{slug}", true},
		{"{tenant}_{slug}", DefaultAliasTemplate, false},          // no prefix
		{"openmeet_{tenant}{slug}", DefaultAliasTemplate, false},  // no separator
		{"openmeet_{tenant}-{slug}", DefaultAliasTemplate, false}, // separator without "_"
		{"openmeet_{slug}_{tenant}", DefaultAliasTemplate, false}, // wrong order
		{"openmeet_{tenant}_{slug}", "openmeet_{tenant}_{slug}", false},
		{"Openmeet_{tenant}_{slug}", DefaultAliasTemplate, false}, // upper case
		{"openmeet_{tenant}_{slug", DefaultAliasTemplate, false},  // unclosed
	} {
		_, err := NewNamer("example.org", tt.ghost, tt.alias)
		if (err == nil) != tt.ok {
			t.Errorf("NewNamer(%q, %q) error = %v, want ok=%v", tt.ghost, tt.alias, err, tt.ok)
		}
	}
	n, err := NewNamer("example.org", "om_{tenant}__{slug}_x", DefaultAliasTemplate)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := n.GhostID("a", "b")
	if tenant, slug, err := n.ParseGhost(u); err != nil || tenant != "a" || slug != "b" {
		t.Fatalf("custom template round trip: %s → %q %q %v", u, tenant, slug, err)
	}
}

func TestNamespaceRegex(t *testing.T) {
	t.Parallel()
	n := testNamer(t)
	if got := n.UserNamespaceRegex(); got != `^@openmeet_.*:example\.org$` {
		t.Fatalf("user regex %s", got)
	}
	if got := n.AliasNamespaceRegex(); got != `^#openmeet_.*:example\.org$` {
		t.Fatalf("alias regex %s", got)
	}
	// The whole namespace, not only IDs that parse as ghosts: nobody but
	// the bridge can register any of them.
	for userID, want := range map[id.UserID]bool{
		"@openmeet_acme_bob:example.org": true, "@openmeet_not=zz=a=ghost:example.org": true,
		"@openmeet_acme_bob:example.com": false, "@openmeetbot:example.org": false, "@bob_acme:example.org": false,
	} {
		if got := n.InGhostNamespace(userID); got != want {
			t.Errorf("InGhostNamespace(%s) = %v", userID, got)
		}
	}
}

// FuzzGhostID checks that the mapping is injective and reversible: every
// accepted input parses back to itself, and the parse of any localpart that
// parses re-encodes to the same localpart (so no two localparts share an
// input).
func FuzzGhostID(f *testing.F) {
	for _, s := range [][2]string{
		{"acme", "bob"}, {"a-b", "c"}, {"a", "b-c"}, {"a_b", "c"}, {"A", "="},
		{"", ""}, {"ü", "日本"}, {strings.Repeat("x", 200), "y"}, {"a\x00", "\xff"},
	} {
		f.Add(s[0], s[1])
	}
	n := testNamer(f)
	f.Fuzz(func(t *testing.T, tenant, slug string) {
		u, err := n.GhostID(tenant, slug)
		if err != nil {
			if !errors.Is(err, ErrTooLong) && !errors.Is(err, ErrInvalidUTF8) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		gotTenant, gotSlug, err := n.ParseGhost(u)
		if err != nil || gotTenant != tenant || gotSlug != slug {
			t.Fatalf("%q/%q → %s → %q/%q (%v)", tenant, slug, u, gotTenant, gotSlug, err)
		}
		a, err := n.Alias(tenant, KindEvent, slug)
		if err != nil {
			return
		}
		gt, gk, gs, err := n.ParseAlias(a)
		if err != nil || gt != tenant || gk != KindEvent || gs != slug {
			t.Fatalf("alias %q/%q → %s → %q/%q/%q (%v)", tenant, slug, a, gt, gk, gs, err)
		}
	})
}

// FuzzParseGhost feeds arbitrary localparts: whatever parses must re-encode
// to exactly the same user ID.
func FuzzParseGhost(f *testing.F) {
	for _, s := range []string{"openmeet_a_b", "openmeet_a=5fb_c", "openmeet__", "openmeet_a_b_c", "openmeet_=41_x"} {
		f.Add(s)
	}
	n := testNamer(f)
	f.Fuzz(func(t *testing.T, localpart string) {
		u := id.NewUserID(localpart, "example.org")
		tenant, slug, err := n.ParseGhost(u)
		if err != nil {
			return
		}
		again, err := n.GhostID(tenant, slug)
		if err != nil || again != u {
			t.Fatalf("%s parsed to %q/%q but encodes to %s (%v)", u, tenant, slug, again, err)
		}
	})
}

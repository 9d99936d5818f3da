package ident

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"maunium.net/go/mautrix/id"
)

// fuzzNamers are the mappings the properties must hold for: the default
// templates, and others that put text around and between the parts, on
// a plain domain and on one with a port.
var fuzzNamers = func() []*Namer {
	var out []*Namer
	for _, c := range []struct{ domain, ghost, alias string }{
		{"example.org", DefaultGhostTemplate, DefaultAliasTemplate},
		{"matrix.example.org:8448", "om.{tenant}__{slug}", "om_{tenant}.-_{kind}_-{slug}"},
		{"example.org", "x_{tenant}_{slug}_y", "x_{tenant}_{kind}_{slug}.room"},
	} {
		n, err := NewNamer(c.domain, c.ghost, c.alias)
		if err != nil {
			panic(err)
		}
		out = append(out, n)
	}
	return out
}()

// userLocalpart is the grammar of a user ID's localpart in the Matrix
// specification (historical characters excluded): what every ghost uses.
var userLocalpart = regexp.MustCompile(`^[a-z0-9._=\-/+]+$`)

// checkGhost checks that a produced user ID is one Synapse accepts and one
// the registration's namespace claims.
func checkGhost(t *testing.T, n *Namer, u id.UserID) {
	t.Helper()
	localpart, domain, err := u.ParseAndValidateStrict()
	if err != nil || domain != n.Domain() || !userLocalpart.MatchString(localpart) || len(u) > MaxIDLength {
		t.Fatalf("%s is not a valid user ID on %s (%v)", u, n.Domain(), err)
	}
	if ok, _ := regexp.MatchString(n.UserNamespaceRegex(), string(u)); !ok {
		t.Fatalf("%s is outside the namespace %s", u, n.UserNamespaceRegex())
	}
}

func checkAlias(t *testing.T, n *Namer, a id.RoomAlias) {
	t.Helper()
	localpart, domain, _ := strings.Cut(strings.TrimPrefix(string(a), "#"), ":")
	if !strings.HasPrefix(string(a), "#") || domain != n.Domain() || !userLocalpart.MatchString(localpart) || len(a) > MaxIDLength {
		t.Fatalf("%s is not a valid alias on %s", a, n.Domain())
	}
	if ok, _ := regexp.MatchString(n.AliasNamespaceRegex(), string(a)); !ok {
		t.Fatalf("%s is outside the namespace %s", a, n.AliasNamespaceRegex())
	}
}

// FuzzMappingInjective: for any two (tenant, slug) pairs, on every
// template, the ghost IDs and the aliases are equal exactly when the pairs
// (and kinds) are; each parses back to its pair; each is a valid Matrix
// identifier inside the bridge's namespace. Inputs are refused only for
// being too long or not UTF-8.
func FuzzMappingInjective(f *testing.F) {
	for _, s := range [][4]string{
		{"acme", "bob", "acme", "bob"}, {"a-b", "c", "a", "b-c"}, {"a_b", "c", "a", "b_c"},
		{"a", "b_c", "a_b", "c"}, {"A", "b", "a", "b"}, {"=41", "x", "A", "x"}, {"a=", "b", "a", "=b"},
		{"", "", "", "_"}, {"ü", "日本", "u", "ri"}, {"a.b", "c", "a", ".b.c"}, {"event", "x", "group", "x"},
		{"a\x00", "\xff", "a", "\x00"}, {strings.Repeat("x", 200), "y", strings.Repeat("x", 199), "xy"},
		{"tenant-1", "slug", "tenant", "1_slug"}, {"Ω", "ǅ", "ω", "ǆ"}, {"/", "+", "%2F", "%2B"},
	} {
		f.Add(s[0], s[1], s[2], s[3], uint8(0))
	}
	f.Fuzz(func(t *testing.T, tenant1, slug1, tenant2, slug2 string, choice uint8) {
		n := fuzzNamers[int(choice)%len(fuzzNamers)]
		kind1, kind2 := KindEvent, KindEvent
		if choice&0x10 != 0 {
			kind2 = KindGroup
		}
		u1, err1 := mapGhost(t, n, tenant1, slug1)
		u2, err2 := mapGhost(t, n, tenant2, slug2)
		same := tenant1 == tenant2 && slug1 == slug2
		if err1 == nil && err2 == nil && (u1 == u2) != same {
			t.Fatalf("%q/%q → %s and %q/%q → %s", tenant1, slug1, u1, tenant2, slug2, u2)
		}
		a1, err1 := mapAlias(t, n, tenant1, kind1, slug1)
		a2, err2 := mapAlias(t, n, tenant2, kind2, slug2)
		if err1 == nil && err2 == nil && (a1 == a2) != (same && kind1 == kind2) {
			t.Fatalf("%q/%s/%q → %s and %q/%s/%q → %s", tenant1, kind1, slug1, a1, tenant2, kind2, slug2, a2)
		}
	})
}

// mapGhost maps and parses back, failing on any broken property.
func mapGhost(t *testing.T, n *Namer, tenant, slug string) (id.UserID, error) {
	t.Helper()
	u, err := n.GhostID(tenant, slug)
	if err != nil {
		if !errors.Is(err, ErrTooLong) && !errors.Is(err, ErrInvalidUTF8) {
			t.Fatalf("%q/%q: unexpected error %v", tenant, slug, err)
		}
		return "", err
	}
	checkGhost(t, n, u)
	gotTenant, gotSlug, err := n.ParseGhost(u)
	if err != nil || gotTenant != tenant || gotSlug != slug {
		t.Fatalf("%q/%q → %s → %q/%q (%v)", tenant, slug, u, gotTenant, gotSlug, err)
	}
	return u, nil
}

func mapAlias(t *testing.T, n *Namer, tenant string, kind Kind, slug string) (id.RoomAlias, error) {
	t.Helper()
	a, err := n.Alias(tenant, kind, slug)
	if err != nil {
		if !errors.Is(err, ErrTooLong) && !errors.Is(err, ErrInvalidUTF8) {
			t.Fatalf("%q/%s/%q: unexpected error %v", tenant, kind, slug, err)
		}
		return "", err
	}
	checkAlias(t, n, a)
	gotTenant, gotKind, gotSlug, err := n.ParseAlias(a)
	if err != nil || gotTenant != tenant || gotKind != kind || gotSlug != slug {
		t.Fatalf("%q/%s/%q → %s → %q/%s/%q (%v)", tenant, kind, slug, a, gotTenant, gotKind, gotSlug, err)
	}
	return a, nil
}

// FuzzEscape: Escape writes only [a-z0-9.=-], Unescape reverses it for
// every UTF-8 string, and Unescape accepts only what Escape writes (so two
// localparts never name one input).
func FuzzEscape(f *testing.F) {
	for _, s := range []string{"", "abc", "A_b-c.d=e", "=41", "=5f", "=2", "=zz", "ü", "\x00", "\xff\xfe", "日本", "a=3d=3d", "=4A", "=61", "b=2e", "=e6=97=a5"} {
		f.Add(s)
	}
	allowed := regexp.MustCompile(`^[a-z0-9.=\-]*$`)
	f.Fuzz(func(t *testing.T, s string) {
		e := Escape(s)
		if !allowed.MatchString(e) {
			t.Fatalf("Escape(%q) = %q", s, e)
		}
		back, err := Unescape(e)
		switch {
		case !utf8Valid(s):
			if !errors.Is(err, ErrInvalidUTF8) {
				t.Fatalf("Unescape(Escape(%q)) = %q, %v; want ErrInvalidUTF8", s, back, err)
			}
		case err != nil || back != s:
			t.Fatalf("Unescape(Escape(%q)) = %q, %v", s, back, err)
		}
		// s as an encoded part: if it decodes, it is the canonical
		// encoding of what it decodes to.
		if decoded, err := Unescape(s); err == nil && Escape(decoded) != s {
			t.Fatalf("Unescape(%q) = %q, which encodes to %q", s, decoded, Escape(decoded))
		}
	})
}

// FuzzParseAlias feeds arbitrary aliases: whatever parses must encode back
// to exactly the same alias, on every template.
func FuzzParseAlias(f *testing.F) {
	for _, s := range []string{
		"#openmeet_acme_event_x:example.org", "#openmeet_a=5fb_group_c:example.org", "#openmeet_a_room_b:example.org",
		"#openmeet___:example.org", "#om_a.-_event_-b:matrix.example.org:8448", "#x_a_group_b.room:example.org",
		"#openmeet_a_event_b:example.org:1", "openmeet_a_event_b:example.org", "#openmeet_=41_event_b:example.org",
		"#openmeet_=61_event_b:example.org", "#openmeet_=4A_event_b:example.org", "#openmeet_a_Event_b:example.org",
	} {
		f.Add(s, uint8(0))
	}
	f.Fuzz(func(t *testing.T, alias string, choice uint8) {
		n := fuzzNamers[int(choice)%len(fuzzNamers)]
		tenant, kind, slug, err := n.ParseAlias(id.RoomAlias(alias))
		if err != nil {
			return
		}
		again, err := n.Alias(tenant, kind, slug)
		if err != nil || string(again) != alias {
			t.Fatalf("%s parsed to %q/%s/%q but encodes to %s (%v)", alias, tenant, kind, slug, again, err)
		}
	})
}

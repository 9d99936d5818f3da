package ident

import (
	"fmt"
	"regexp"
	"strings"

	"maunium.net/go/mautrix/id"
)

// Kind is the kind of OpenMeet object a portal bridges.
type Kind string

const (
	KindEvent Kind = "event"
	KindGroup Kind = "group"
)

// Valid reports whether k is one of the known kinds.
func (k Kind) Valid() bool { return k == KindEvent || k == KindGroup }

// Default templates; the config may override them.
const (
	DefaultGhostTemplate = "openmeet_{tenant}_{slug}"
	DefaultAliasTemplate = "openmeet_{tenant}_{kind}_{slug}"
)

// Namer builds and parses the bridge's identifiers on one homeserver.
type Namer struct {
	domain string
	ghost  *template
	alias  *template
	legacy *LegacyUsers
	// ghostNamespace is UserNamespaceRegex compiled.
	ghostNamespace *regexp.Regexp
}

// NewNamer checks both templates and returns a Namer for domain.
func NewNamer(domain, ghostTemplate, aliasTemplate string) (*Namer, error) {
	if domain == "" {
		return nil, fmt.Errorf("empty homeserver domain")
	}
	ghost, err := parseTemplate(ghostTemplate, "tenant", "slug")
	if err != nil {
		return nil, err
	}
	alias, err := parseTemplate(aliasTemplate, "tenant", "kind", "slug")
	if err != nil {
		return nil, err
	}
	n := &Namer{domain: domain, ghost: ghost, alias: alias}
	n.ghostNamespace = regexp.MustCompile(n.UserNamespaceRegex())
	return n, nil
}

// WithLegacyTenants returns a copy of n that also knows the legacy
// accounts of tenants (see LegacyUsers).
func (n *Namer) WithLegacyTenants(tenants []string) (*Namer, error) {
	legacy, err := NewLegacyUsers(n.domain, tenants)
	if err != nil {
		return nil, err
	}
	c := *n
	c.legacy = legacy
	return &c, nil
}

// Legacy is the legacy user namespace (possibly without tenants).
func (n *Namer) Legacy() *LegacyUsers {
	if n.legacy == nil {
		return &LegacyUsers{domain: n.domain}
	}
	return n.legacy
}

// Managed reports whether the bridge may act as userID and move it in and
// out of rooms: one of its ghosts, or an account of the legacy namespace.
func (n *Namer) Managed(userID id.UserID) bool {
	if _, _, err := n.ParseGhost(userID); err == nil {
		return true
	}
	return n.legacy.Contains(userID)
}

// InGhostNamespace reports whether userID is in the bridge's exclusive user
// namespace: only the bridge can register such a user and act as it, be it
// one of its ghosts or not.
func (n *Namer) InGhostNamespace(userID id.UserID) bool {
	return n.ghostNamespace.MatchString(string(userID))
}

// Domain is the homeserver's server name.
func (n *Namer) Domain() string { return n.domain }

// GhostLocalpart is the localpart of the ghost of (tenant, slug).
func (n *Namer) GhostLocalpart(tenant, slug string) (string, error) {
	if err := checkUTF8(tenant, slug); err != nil {
		return "", err
	}
	localpart := n.ghost.format(tenant, slug)
	if 1+len(localpart)+1+len(n.domain) > MaxIDLength {
		return "", ErrTooLong
	}
	return localpart, nil
}

// GhostID is the Matrix user ID of the ghost of (tenant, slug).
func (n *Namer) GhostID(tenant, slug string) (id.UserID, error) {
	localpart, err := n.GhostLocalpart(tenant, slug)
	if err != nil {
		return "", err
	}
	return id.NewUserID(localpart, n.domain), nil
}

// ParseGhost returns the (tenant, slug) whose ghost userID is, or ErrNotOurs
// (or ErrBadEscape) when it is not one of our ghosts.
func (n *Namer) ParseGhost(userID id.UserID) (tenant, slug string, err error) {
	localpart, domain, err := userID.ParseAndValidateRelaxed()
	if err != nil || domain != n.domain || len(userID) > MaxIDLength {
		return "", "", ErrNotOurs
	}
	values, err := n.ghost.parse(localpart)
	if err != nil {
		return "", "", err
	}
	return values[0], values[1], nil
}

// Alias is the canonical alias of the portal (tenant, kind, slug).
func (n *Namer) Alias(tenant string, kind Kind, slug string) (id.RoomAlias, error) {
	if err := checkUTF8(tenant, slug); err != nil {
		return "", err
	}
	localpart := n.alias.format(tenant, string(kind), slug)
	if 1+len(localpart)+1+len(n.domain) > MaxIDLength {
		return "", ErrTooLong
	}
	return id.NewRoomAlias(localpart, n.domain), nil
}

// ParseAlias reverses Alias.
func (n *Namer) ParseAlias(alias id.RoomAlias) (tenant string, kind Kind, slug string, err error) {
	s := string(alias)
	if len(s) > MaxIDLength {
		// Alias never makes one this long, so it cannot be ours.
		return "", "", "", ErrTooLong
	}
	colon := strings.IndexByte(s, ':')
	if !strings.HasPrefix(s, "#") || colon < 0 || s[colon+1:] != n.domain {
		return "", "", "", ErrNotOurs
	}
	values, err := n.alias.parse(s[1:colon])
	if err != nil {
		return "", "", "", err
	}
	if !Kind(values[1]).Valid() {
		return "", "", "", fmt.Errorf("%w: unknown kind %q", ErrNotOurs, values[1])
	}
	return values[0], Kind(values[1]), values[2], nil
}

// UserNamespaceRegex is the anchored regex of the ghost namespace for the
// registration file.
func (n *Namer) UserNamespaceRegex() string {
	return "^@" + n.ghost.namespaceRegex() + ":" + regexp.QuoteMeta(n.domain) + "$"
}

// AliasNamespaceRegex is the anchored regex of the alias namespace.
func (n *Namer) AliasNamespaceRegex() string {
	return "^#" + n.alias.namespaceRegex() + ":" + regexp.QuoteMeta(n.domain) + "$"
}

func checkUTF8(parts ...string) error {
	for _, p := range parts {
		if !utf8Valid(p) {
			return ErrInvalidUTF8
		}
	}
	return nil
}

package ident

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"maunium.net/go/mautrix/id"
)

// ErrNotLegacy is returned when a user ID offered for adoption is not an
// account of OpenMeet's earlier Matrix integration: not on this server, or
// not of the form @{slug}_{tenant} for a configured tenant.
var ErrNotLegacy = errors.New("not in the legacy user namespace")

// legacyTenantRegex is what a configured legacy tenant may contain: the
// characters of a Matrix localpart other than "_" (which separates it from
// the slug) and ":".
var legacyTenantRegex = regexp.MustCompile(`^[a-z0-9.=/+-]+$`)

// LegacyUsers is the namespace of the Matrix accounts OpenMeet created
// before the bridge, @{user slug}_{tenant id}:{domain}, for the configured
// tenants. The bridge adopts them instead of making ghosts, and acts as them
// through the appservice's non-exclusive user namespace: their owners keep
// logging in with their own clients.
type LegacyUsers struct {
	domain  string
	tenants []string
}

// NewLegacyUsers checks the tenant IDs; none means no adoption.
func NewLegacyUsers(domain string, tenants []string) (*LegacyUsers, error) {
	for _, t := range tenants {
		if !legacyTenantRegex.MatchString(t) {
			return nil, fmt.Errorf("legacy tenant %q may contain only a-z, 0-9 and . = / + -", t)
		}
	}
	sorted := slices.Clone(tenants)
	slices.Sort(sorted)
	return &LegacyUsers{domain: domain, tenants: slices.Compact(sorted)}, nil
}

// Enabled reports whether any tenant is configured.
func (l *LegacyUsers) Enabled() bool { return l != nil && len(l.tenants) > 0 }

// Regex is the anchored regex of the namespace for the registration, or ""
// when no tenant is configured.
func (l *LegacyUsers) Regex() string {
	if !l.Enabled() {
		return ""
	}
	quoted := make([]string, len(l.tenants))
	for i, t := range l.tenants {
		quoted[i] = regexp.QuoteMeta(t)
	}
	return "^@[^:]+_(?:" + strings.Join(quoted, "|") + "):" + regexp.QuoteMeta(l.domain) + "$"
}

// Tenant returns the tenant whose legacy account userID is, or ErrNotLegacy.
func (l *LegacyUsers) Tenant(userID id.UserID) (string, error) {
	if !l.Enabled() {
		return "", fmt.Errorf("%w: no legacy tenants are configured (appservice.legacy_users.tenants)", ErrNotLegacy)
	}
	localpart, domain, err := userID.ParseAndValidateRelaxed()
	if err != nil || len(userID) > MaxIDLength {
		return "", fmt.Errorf("%w: %q is not a Matrix user ID", ErrNotLegacy, userID)
	}
	if domain != l.domain {
		return "", fmt.Errorf("%w: %s is not on this homeserver (%s)", ErrNotLegacy, userID, l.domain)
	}
	under := strings.LastIndexByte(localpart, '_')
	if under <= 0 {
		return "", fmt.Errorf("%w: %s is not of the form @{slug}_{tenant}:%s", ErrNotLegacy, userID, l.domain)
	}
	tenant := localpart[under+1:]
	if _, found := slices.BinarySearch(l.tenants, tenant); !found {
		return "", fmt.Errorf("%w: tenant %q of %s is not a configured legacy tenant", ErrNotLegacy, tenant, userID)
	}
	return tenant, nil
}

// Contains reports whether userID is in the namespace.
func (l *LegacyUsers) Contains(userID id.UserID) bool {
	_, err := l.Tenant(userID)
	return err == nil
}

// CheckAdoption says why userID may not become the account of an OpenMeet
// user of tenant: it must be that tenant's legacy account on this server.
func (l *LegacyUsers) CheckAdoption(userID id.UserID, tenant string) error {
	got, err := l.Tenant(userID)
	if err != nil {
		return err
	}
	if got != tenant {
		return fmt.Errorf("%w: %s belongs to tenant %q, not %q", ErrNotLegacy, userID, got, tenant)
	}
	return nil
}

// legacyAliasRegex matches OpenMeet's room aliases #{kind}-{slug}-{tenant}.
var legacyAliasRegex = regexp.MustCompile(`^#(event|group)-(.+)-([^-:]+):(.+)$`)

// ParseLegacyAlias splits an alias of OpenMeet's earlier integration,
// #event-{slug}-{tenant}:{domain} or #group-{slug}-{tenant}:{domain}.
func ParseLegacyAlias(alias id.RoomAlias) (kind Kind, slug, tenant, domain string, err error) {
	m := legacyAliasRegex.FindStringSubmatch(string(alias))
	if m == nil || len(alias) > MaxIDLength {
		return "", "", "", "", fmt.Errorf("%q is not an alias of the form #event-{slug}-{tenant}:{server} or #group-{slug}-{tenant}:{server}", alias)
	}
	return Kind(m[1]), m[2], m[3], m[4], nil
}

package database

import (
	"context"
	"fmt"
	"time"

	"go.mau.fi/util/dbutil"
	"maunium.net/go/mautrix/id"
)

// PortalMember is an OpenMeet user who should be in a portal's room.
type PortalMember struct {
	PortalKey
	UserSlug  string
	UserID    id.UserID
	Role      string
	UpdatedAt int64
	// Registered is the ghost's: whether the homeserver knows it.
	Registered bool
}

// PortalMemberQuery reads and writes the portal_member table. Every change
// also bumps the portal's desired_version, in the same transaction.
type PortalMemberQuery struct {
	db      *dbutil.Database
	portals *PortalQuery
}

const (
	listMembersQuery = `
		SELECT m.tenant, m.kind, m.slug, m.user_slug, g.user_id, m.role, m.updated_at, g.registered
		FROM portal_member m JOIN ghost g ON g.tenant = m.tenant AND g.slug = m.user_slug
		WHERE m.tenant = $1 AND m.kind = $2 AND m.slug = $3 ORDER BY m.user_slug`
	getMemberQuery = `
		SELECT m.tenant, m.kind, m.slug, m.user_slug, g.user_id, m.role, m.updated_at, g.registered
		FROM portal_member m JOIN ghost g ON g.tenant = m.tenant AND g.slug = m.user_slug
		WHERE m.tenant = $1 AND m.kind = $2 AND m.slug = $3 AND m.user_slug = $4`
	upsertMemberRoleQuery = `
		INSERT INTO portal_member (tenant, kind, slug, user_slug, role, updated_at) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (tenant, kind, slug, user_slug) DO UPDATE SET role = excluded.role, updated_at = excluded.updated_at
		WHERE portal_member.role <> excluded.role`
	deleteMemberQuery  = `DELETE FROM portal_member WHERE tenant = $1 AND kind = $2 AND slug = $3 AND user_slug = $4`
	portalsOfUserQuery = `SELECT tenant, kind, slug FROM portal_member WHERE tenant = $1 AND user_slug = $2`
)

// MemberChange is one entry of a batch: a role to set, or a removal when
// Role is empty.
type MemberChange struct {
	UserSlug string
	Role     string
}

// List returns the portal's members in user slug order.
func (q *PortalMemberQuery) List(ctx context.Context, key PortalKey) ([]*PortalMember, error) {
	rows, err := q.db.Query(ctx, listMembersQuery, key.Tenant, key.Kind, key.Slug)
	return dbutil.NewRowIterWithError(rows, scanPortalMember, err).AsList()
}

// Get returns one member, or nil.
func (q *PortalMemberQuery) Get(ctx context.Context, key PortalKey, userSlug string) (*PortalMember, error) {
	return nilIfNoRows(scanPortalMember(q.db.QueryRow(ctx, getMemberQuery, key.Tenant, key.Kind, key.Slug, userSlug)))
}

// Apply sets or removes members of one portal in one transaction, and bumps
// the portal's version if anything changed. The caller has checked that the
// portal and the users exist.
func (q *PortalMemberQuery) Apply(ctx context.Context, key PortalKey, changes []MemberChange) (changed bool, err error) {
	now := time.Now().UnixMilli()
	err = q.db.DoTxn(ctx, nil, func(ctx context.Context) error {
		for _, c := range changes {
			var one bool
			var err error
			if c.Role == "" {
				one, err = affected(q.db.Exec(ctx, deleteMemberQuery, key.Tenant, key.Kind, key.Slug, c.UserSlug))
			} else {
				one, err = affected(q.db.Exec(ctx, upsertMemberRoleQuery, key.Tenant, key.Kind, key.Slug, c.UserSlug, c.Role, now))
			}
			if err != nil {
				return fmt.Errorf("failed to change member %s: %w", c.UserSlug, err)
			}
			changed = changed || one
		}
		if changed {
			return q.portals.Bump(ctx, key)
		}
		return nil
	})
	return changed, err
}

// PortalsOf lists the portals a user is a member of.
func (q *PortalMemberQuery) PortalsOf(ctx context.Context, tenant, userSlug string) ([]PortalKey, error) {
	rows, err := q.db.Query(ctx, portalsOfUserQuery, tenant, userSlug)
	return dbutil.NewRowIterWithError(rows, func(row dbutil.Scannable) (PortalKey, error) {
		var k PortalKey
		err := row.Scan(&k.Tenant, &k.Kind, &k.Slug)
		return k, err
	}, err).AsList()
}

func scanPortalMember(row dbutil.Scannable) (*PortalMember, error) {
	var m PortalMember
	err := row.Scan(&m.Tenant, &m.Kind, &m.Slug, &m.UserSlug, &m.UserID, &m.Role, &m.UpdatedAt, &m.Registered)
	if err != nil {
		return nil, err
	}
	return &m, nil
}

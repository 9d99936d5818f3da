package database

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"go.mau.fi/util/dbutil"
	"maunium.net/go/mautrix/id"
)

// Ghost is an OpenMeet user and its Matrix puppet.
type Ghost struct {
	Tenant       string
	Slug         string
	UserID       id.UserID
	Displayname  string
	AvatarSource string
	AvatarMXC    string
	Registered   bool
	// What was last set on the homeserver; nil when nothing was.
	DisplaynameApplied *string
	AvatarApplied      *string
	LastError          string
	UpdatedAt          int64
}

// NeedsSync reports whether the homeserver lags behind the row.
func (g *Ghost) NeedsSync() bool {
	return !g.Registered || g.DisplaynameApplied == nil || *g.DisplaynameApplied != g.Displayname ||
		g.AvatarApplied == nil || *g.AvatarApplied != g.AvatarMXC || (g.AvatarSource != "" && g.AvatarMXC == "")
}

// GhostQuery reads and writes the ghost table.
type GhostQuery struct {
	db *dbutil.Database
}

const (
	ghostColumns   = `tenant, slug, user_id, displayname, avatar_source, avatar_mxc, registered, displayname_applied, avatar_applied, last_error, updated_at`
	getGhostQuery  = `SELECT ` + ghostColumns + ` FROM ghost WHERE tenant = $1 AND slug = $2`
	getGhostByUser = `SELECT ` + ghostColumns + ` FROM ghost WHERE user_id = $1`
	// A new avatar source forgets the uploaded copy of the old one.
	upsertGhostQuery = `
		INSERT INTO ghost (tenant, slug, user_id, displayname, avatar_source, avatar_mxc, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (tenant, slug) DO UPDATE SET
			displayname = excluded.displayname,
			avatar_mxc = CASE WHEN ghost.avatar_source = excluded.avatar_source THEN ghost.avatar_mxc ELSE excluded.avatar_mxc END,
			avatar_source = excluded.avatar_source,
			updated_at = excluded.updated_at
		WHERE ghost.displayname <> excluded.displayname OR ghost.avatar_source <> excluded.avatar_source`
	markGhostRegisteredQuery = `UPDATE ghost SET registered = true WHERE user_id = $1`
	setGhostAvatarMXCQuery   = `UPDATE ghost SET avatar_mxc = $3 WHERE tenant = $1 AND slug = $2 AND avatar_source = $4`
	setGhostAppliedQuery     = `UPDATE ghost SET displayname_applied = $3, avatar_applied = $4, last_error = '' WHERE tenant = $1 AND slug = $2`
	setGhostErrorQuery       = `UPDATE ghost SET last_error = $3 WHERE tenant = $1 AND slug = $2`
	countGhostsQuery         = `SELECT COUNT(*) FROM ghost`
	unsyncedGhostsQuery      = `SELECT ` + ghostColumns + ` FROM ghost
		WHERE NOT registered OR displayname_applied IS NULL OR displayname_applied <> displayname
			OR avatar_applied IS NULL OR avatar_applied <> avatar_mxc OR (avatar_source <> '' AND avatar_mxc = '')`
)

// Get returns the ghost of (tenant, slug), or nil.
func (q *GhostQuery) Get(ctx context.Context, tenant, slug string) (*Ghost, error) {
	return nilIfNoRows(scanGhost(q.db.QueryRow(ctx, getGhostQuery, tenant, slug)))
}

// GetByUserID returns the ghost with that Matrix ID, or nil.
func (q *GhostQuery) GetByUserID(ctx context.Context, userID id.UserID) (*Ghost, error) {
	return nilIfNoRows(scanGhost(q.db.QueryRow(ctx, getGhostByUser, userID)))
}

// Put creates the ghost or changes its desired profile. It reports whether
// anything changed.
func (q *GhostQuery) Put(ctx context.Context, g *Ghost) (changed bool, err error) {
	res, err := q.db.Exec(ctx, upsertGhostQuery, g.Tenant, g.Slug, g.UserID, g.Displayname, g.AvatarSource, g.AvatarMXC, time.Now().UnixMilli())
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

// MarkRegistered records that the homeserver knows the user.
func (q *GhostQuery) MarkRegistered(ctx context.Context, userID id.UserID) error {
	_, err := q.db.Exec(ctx, markGhostRegisteredQuery, userID)
	return err
}

// SetAvatarMXC stores the upload of source, unless the source changed
// meanwhile.
func (q *GhostQuery) SetAvatarMXC(ctx context.Context, g *Ghost, source, mxc string) error {
	_, err := q.db.Exec(ctx, setGhostAvatarMXCQuery, g.Tenant, g.Slug, mxc, source)
	return err
}

// SetApplied records what the homeserver now has and clears the error.
func (q *GhostQuery) SetApplied(ctx context.Context, g *Ghost, displayname, avatar string) error {
	_, err := q.db.Exec(ctx, setGhostAppliedQuery, g.Tenant, g.Slug, displayname, avatar)
	return err
}

// SetError records why the last sync failed.
func (q *GhostQuery) SetError(ctx context.Context, g *Ghost, msg string) error {
	_, err := q.db.Exec(ctx, setGhostErrorQuery, g.Tenant, g.Slug, msg)
	return err
}

// Count is the number of ghosts.
func (q *GhostQuery) Count(ctx context.Context) (n int64, err error) {
	err = q.db.QueryRow(ctx, countGhostsQuery).Scan(&n)
	return
}

// Unsynced lists ghosts whose profile the homeserver does not have yet.
func (q *GhostQuery) Unsynced(ctx context.Context) ([]*Ghost, error) {
	rows, err := q.db.Query(ctx, unsyncedGhostsQuery)
	return dbutil.NewRowIterWithError(rows, scanGhost, err).AsList()
}

func scanGhost(row dbutil.Scannable) (*Ghost, error) {
	var g Ghost
	var dn, av sql.NullString
	err := row.Scan(&g.Tenant, &g.Slug, &g.UserID, &g.Displayname, &g.AvatarSource, &g.AvatarMXC, &g.Registered, &dn, &av, &g.LastError, &g.UpdatedAt)
	if err != nil {
		return nil, err
	}
	if dn.Valid {
		g.DisplaynameApplied = &dn.String
	}
	if av.Valid {
		g.AvatarApplied = &av.String
	}
	return &g, nil
}

func nilIfNoRows[T any](v *T, err error) (*T, error) {
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	return v, err
}

const tenantExistsQuery = `SELECT EXISTS (SELECT 1 FROM ghost WHERE tenant = $1) OR EXISTS (SELECT 1 FROM portal WHERE tenant = $1)`

// TenantExists reports whether any user or portal of tenant is known.
func (db *Database) TenantExists(ctx context.Context, tenant string) (exists bool, err error) {
	err = db.QueryRow(ctx, tenantExistsQuery, tenant).Scan(&exists)
	return
}

const clearGhostAppliedQuery = `UPDATE ghost SET displayname_applied = NULL, avatar_applied = NULL WHERE tenant = $1 AND slug = $2`

// ClearApplied forgets what the homeserver has, so the next sync sends the
// whole profile again.
func (q *GhostQuery) ClearApplied(ctx context.Context, tenant, slug string) error {
	_, err := q.db.Exec(ctx, clearGhostAppliedQuery, tenant, slug)
	return err
}

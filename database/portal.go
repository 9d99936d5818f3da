package database

import (
	"context"
	"database/sql"
	"time"

	"go.mau.fi/util/dbutil"
	"maunium.net/go/mautrix/id"
)

// Portal is an OpenMeet event or group and its Matrix room: the desired
// state, and how far the homeserver has caught up with it.
type Portal struct {
	Tenant         string
	Kind           string
	Slug           string
	Alias          id.RoomAlias
	RoomID         id.RoomID
	Name           string
	Topic          string
	Visibility     string
	Closed         bool
	RoomRequested  bool
	DesiredVersion int64
	SyncedVersion  int64
	LastError      string
	CreatedAt      int64
	UpdatedAt      int64
}

// Synced reports whether the homeserver has every change of the row.
func (p *Portal) Synced() bool { return p.SyncedVersion >= p.DesiredVersion }

// PortalKey identifies a portal.
type PortalKey struct {
	Tenant, Kind, Slug string
}

// Key is the portal's key.
func (p *Portal) Key() PortalKey { return PortalKey{p.Tenant, p.Kind, p.Slug} }

// PortalQuery reads and writes the portal table.
type PortalQuery struct {
	db *dbutil.Database
}

const (
	portalColumns = `tenant, kind, slug, alias, room_id, name, topic, visibility, closed, room_requested,
		desired_version, synced_version, last_error, created_at, updated_at`
	getPortalQuery        = `SELECT ` + portalColumns + ` FROM portal WHERE tenant = $1 AND kind = $2 AND slug = $3`
	getPortalByAliasQuery = `SELECT ` + portalColumns + ` FROM portal WHERE alias = $1`
	getPortalByRoomQuery  = `SELECT ` + portalColumns + ` FROM portal WHERE room_id = $1`
	listPortalsQuery      = `SELECT ` + portalColumns + ` FROM portal
		WHERE tenant = $1 AND kind = $2 AND slug > $3 ORDER BY slug LIMIT $4`
	listAllPortalsQuery = `SELECT ` + portalColumns + ` FROM portal
		WHERE (tenant, kind, slug) > ($1, $2, $3) ORDER BY tenant, kind, slug LIMIT $4`
	unsyncedPortalsQuery = `SELECT ` + portalColumns + ` FROM portal WHERE synced_version < desired_version`
	// Reopening a closed portal counts as a change.
	upsertPortalQuery = `
		INSERT INTO portal (tenant, kind, slug, alias, name, topic, visibility, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)
		ON CONFLICT (tenant, kind, slug) DO UPDATE SET
			name = excluded.name, topic = excluded.topic, visibility = excluded.visibility, closed = false,
			desired_version = portal.desired_version + 1, updated_at = excluded.updated_at
		WHERE portal.name <> excluded.name OR portal.topic <> excluded.topic
			OR portal.visibility <> excluded.visibility OR portal.closed`
	closePortalQuery = `
		UPDATE portal SET closed = true, desired_version = desired_version + 1, updated_at = $4
		WHERE tenant = $1 AND kind = $2 AND slug = $3 AND NOT closed`
	bumpPortalQuery = `
		UPDATE portal SET desired_version = desired_version + 1, updated_at = $4
		WHERE tenant = $1 AND kind = $2 AND slug = $3`
	requestRoomQuery = `
		UPDATE portal SET room_requested = true, desired_version = desired_version + 1
		WHERE tenant = $1 AND kind = $2 AND slug = $3 AND NOT room_requested`
	setPortalRoomQuery  = `UPDATE portal SET room_id = $4 WHERE tenant = $1 AND kind = $2 AND slug = $3`
	markPortalSynced    = `UPDATE portal SET synced_version = $4, last_error = '' WHERE tenant = $1 AND kind = $2 AND slug = $3 AND synced_version < $4`
	setPortalErrorQuery = `UPDATE portal SET last_error = $4 WHERE tenant = $1 AND kind = $2 AND slug = $3`
	countPortalsQuery   = `SELECT COUNT(*) FROM portal`
	// The same states as the provisioning API's answers, plus closed.
	countPortalStatesQuery = `
		SELECT CASE
			WHEN synced_version < desired_version AND last_error <> '' THEN 'error'
			WHEN synced_version < desired_version THEN 'pending'
			WHEN closed THEN 'closed'
			ELSE 'synced' END AS state, COUNT(*)
		FROM portal GROUP BY 1`
)

// Portal states counted by CountByState.
const (
	PortalStateSynced  = "synced"
	PortalStatePending = "pending"
	PortalStateError   = "error"
	PortalStateClosed  = "closed"
)

// PortalStates lists every state CountByState may report.
var PortalStates = []string{PortalStateSynced, PortalStatePending, PortalStateError, PortalStateClosed}

// Get returns the portal, or nil.
func (q *PortalQuery) Get(ctx context.Context, key PortalKey) (*Portal, error) {
	return nilIfNoRows(scanPortal(q.db.QueryRow(ctx, getPortalQuery, key.Tenant, key.Kind, key.Slug)))
}

// GetByAlias returns the portal with that alias, or nil.
func (q *PortalQuery) GetByAlias(ctx context.Context, alias id.RoomAlias) (*Portal, error) {
	return nilIfNoRows(scanPortal(q.db.QueryRow(ctx, getPortalByAliasQuery, alias)))
}

// GetByRoomID returns the portal bridged to roomID, or nil.
func (q *PortalQuery) GetByRoomID(ctx context.Context, roomID id.RoomID) (*Portal, error) {
	return nilIfNoRows(scanPortal(q.db.QueryRow(ctx, getPortalByRoomQuery, roomID)))
}

// List returns up to limit portals of one tenant and kind after the slug
// after, in slug order.
func (q *PortalQuery) List(ctx context.Context, tenant, kind, after string, limit int) ([]*Portal, error) {
	rows, err := q.db.Query(ctx, listPortalsQuery, tenant, kind, after, limit)
	return dbutil.NewRowIterWithError(rows, scanPortal, err).AsList()
}

// ListAll pages through every portal in key order.
func (q *PortalQuery) ListAll(ctx context.Context, after PortalKey, limit int) ([]*Portal, error) {
	rows, err := q.db.Query(ctx, listAllPortalsQuery, after.Tenant, after.Kind, after.Slug, limit)
	return dbutil.NewRowIterWithError(rows, scanPortal, err).AsList()
}

// Unsynced lists portals whose room lags behind their row.
func (q *PortalQuery) Unsynced(ctx context.Context) ([]*Portal, error) {
	rows, err := q.db.Query(ctx, unsyncedPortalsQuery)
	return dbutil.NewRowIterWithError(rows, scanPortal, err).AsList()
}

// Put creates the portal or changes its desired state (reopening it if it
// was closed). It reports whether anything changed.
func (q *PortalQuery) Put(ctx context.Context, p *Portal) (changed bool, err error) {
	res, err := q.db.Exec(ctx, upsertPortalQuery, p.Tenant, p.Kind, p.Slug, p.Alias, p.Name, p.Topic, p.Visibility, time.Now().UnixMilli())
	return affected(res, err)
}

// Close marks the portal closed; it reports whether it was open.
func (q *PortalQuery) Close(ctx context.Context, key PortalKey) (changed bool, err error) {
	res, err := q.db.Exec(ctx, closePortalQuery, key.Tenant, key.Kind, key.Slug, time.Now().UnixMilli())
	return affected(res, err)
}

// Bump records a change of the portal's desired state made elsewhere (its
// members).
func (q *PortalQuery) Bump(ctx context.Context, key PortalKey) error {
	_, err := q.db.Exec(ctx, bumpPortalQuery, key.Tenant, key.Kind, key.Slug, time.Now().UnixMilli())
	return err
}

// RequestRoom records that the portal's room should exist even without
// members; it reports whether that is news.
func (q *PortalQuery) RequestRoom(ctx context.Context, key PortalKey) (bool, error) {
	res, err := q.db.Exec(ctx, requestRoomQuery, key.Tenant, key.Kind, key.Slug)
	return affected(res, err)
}

// SetRoomID stores the room created for the portal.
func (q *PortalQuery) SetRoomID(ctx context.Context, key PortalKey, roomID id.RoomID) error {
	_, err := q.db.Exec(ctx, setPortalRoomQuery, key.Tenant, key.Kind, key.Slug, roomID)
	return err
}

// MarkSynced records that the homeserver matches version of the row.
func (q *PortalQuery) MarkSynced(ctx context.Context, key PortalKey, version int64) error {
	_, err := q.db.Exec(ctx, markPortalSynced, key.Tenant, key.Kind, key.Slug, version)
	return err
}

// SetError records why the last sync failed.
func (q *PortalQuery) SetError(ctx context.Context, key PortalKey, msg string) error {
	_, err := q.db.Exec(ctx, setPortalErrorQuery, key.Tenant, key.Kind, key.Slug, msg)
	return err
}

// Count is the number of portals.
func (q *PortalQuery) Count(ctx context.Context) (n int64, err error) {
	err = q.db.QueryRow(ctx, countPortalsQuery).Scan(&n)
	return
}

// CountByState counts portals by state: synced, pending (Synapse has not
// caught up), error (the last attempt failed) and closed (and synced).
func (q *PortalQuery) CountByState(ctx context.Context) (map[string]int64, error) {
	rows, err := q.db.Query(ctx, countPortalStatesQuery)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	counts := make(map[string]int64, len(PortalStates))
	for rows.Next() {
		var state string
		var n int64
		if err := rows.Scan(&state, &n); err != nil {
			return nil, err
		}
		counts[state] = n
	}
	return counts, rows.Err()
}

func scanPortal(row dbutil.Scannable) (*Portal, error) {
	var p Portal
	var roomID sql.NullString
	err := row.Scan(&p.Tenant, &p.Kind, &p.Slug, &p.Alias, &roomID, &p.Name, &p.Topic, &p.Visibility, &p.Closed, &p.RoomRequested,
		&p.DesiredVersion, &p.SyncedVersion, &p.LastError, &p.CreatedAt, &p.UpdatedAt)
	if err != nil {
		return nil, err
	}
	p.RoomID = id.RoomID(roomID.String)
	return &p, nil
}

func affected(res sql.Result, err error) (bool, error) {
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

package api

import (
	"errors"
	"net/http"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/openmeet-team/openmeet-bridge/database"
	"github.com/openmeet-team/openmeet-bridge/portal"
)

// homeserverUnavailable answers 502 when a check that needs Synapse could
// not be made; nothing was stored.
func (p *Provisioning) homeserverUnavailable(w http.ResponseWriter, r *http.Request, err error) {
	p.log.Warn().Err(err).Str("path", r.URL.Path).Msg("Homeserver request failed")
	mautrix.MUnknown.WithMessage("The homeserver did not answer; nothing was changed").WithStatus(http.StatusBadGateway).Write(w)
}

// adoptRoom resolves the existing room a portal request names and checks
// that the portal may take it: a portal's room never changes once set, and
// one room serves one portal. It returns "" (and true) when the portal
// already has that room. On failure it has written the error.
func (p *Provisioning) adoptRoom(w http.ResponseWriter, r *http.Request, key database.PortalKey, ref string) (id.RoomID, bool) {
	ctx := r.Context()
	roomID, err := p.portals.ResolveRoom(ctx, key, ref)
	switch {
	case errors.Is(err, portal.ErrBadRoomRef):
		errInvalid.WithMessage("room: %s", err.Error()).Write(w)
		return "", false
	case errors.Is(err, portal.ErrRoomNotFound):
		errNotFound.WithMessage("room: %s", err.Error()).Write(w)
		return "", false
	case err != nil:
		p.homeserverUnavailable(w, r, err)
		return "", false
	}
	existing, err := p.db.Portals.Get(ctx, key)
	if err != nil {
		p.internalError(w, r, err)
		return "", false
	}
	// Until the portal has synced once (the room was never taken over), the
	// room named may still be corrected.
	if existing != nil && existing.RoomID != "" && existing.SyncedVersion > 0 {
		if existing.RoomID == roomID {
			return "", true
		}
		errConflict.WithMessage("the %s already has the room %s; it cannot change to %s", key.Kind, existing.RoomID, roomID).Write(w)
		return "", false
	}
	owner, err := p.db.Portals.GetByRoomID(ctx, roomID)
	if err != nil {
		p.internalError(w, r, err)
		return "", false
	}
	if owner != nil && owner.Key() != key {
		errConflict.WithMessage("the room %s already belongs to %s %q of tenant %q", roomID, owner.Kind, owner.Slug, owner.Tenant).Write(w)
		return "", false
	}
	return roomID, true
}

package api

import (
	"errors"
	"net/http"

	"maunium.net/go/mautrix/id"

	"github.com/openmeet-team/openmeet-bridge/database"
	"github.com/openmeet-team/openmeet-bridge/portal"
)

type userRequest struct {
	Displayname string `json:"displayname"`
	// AvatarURL is an mxc:// URI or an https URL; empty for none.
	AvatarURL string `json:"avatar_url"`
	// MatrixUserID adopts an existing account of OpenMeet's earlier
	// integration (@{slug}_{tenant}:{server}) instead of creating a ghost.
	MatrixUserID string `json:"matrix_user_id"`
}

type userResponse struct {
	Tenant      string `json:"tenant"`
	Slug        string `json:"slug"`
	UserID      string `json:"user_id"`
	Displayname string `json:"displayname"`
	AvatarURL   string `json:"avatar_url"`
	AvatarMXC   string `json:"avatar_mxc"`
	State       string `json:"state"`
	LastError   string `json:"last_error,omitempty"`
}

func newUserResponse(g *database.Ghost) *userResponse {
	state := syncedState
	if g.NeedsSync() {
		state = pendingState
		if g.LastError != "" {
			state = errorState
		}
	}
	return &userResponse{
		Tenant: g.Tenant, Slug: g.Slug, UserID: g.UserID.String(), Displayname: g.Displayname,
		AvatarURL: g.AvatarSource, AvatarMXC: g.AvatarMXC, State: state, LastError: g.LastError,
	}
}

func (p *Provisioning) putUser(w http.ResponseWriter, r *http.Request) {
	tenant, slug := pathVar(r, "tenant"), pathVar(r, "slug")
	if err := errors.Join(checkSlug("tenant", tenant), checkSlug("slug", slug)); err != nil {
		errInvalid.WithMessage("%s", err.Error()).Write(w)
		return
	}
	var req userRequest
	var ok bool
	if !readJSON(w, r, p.maxBody, &req) {
		return
	}
	if err := checkText("displayname", req.Displayname, maxNameBytes, true); err != nil {
		errInvalid.WithMessage("%s", err.Error()).Write(w)
		return
	}
	if err := p.portals.Config().CheckAvatarURL(req.AvatarURL); err != nil {
		errInvalid.WithMessage("avatar_url: %s", err.Error()).Write(w)
		return
	}
	userID, err := p.portals.Namer().GhostID(tenant, slug)
	if err != nil && req.MatrixUserID == "" {
		errInvalid.WithMessage("tenant and slug cannot form a Matrix ID: %s", err.Error()).Write(w)
		return
	}
	adopted := req.MatrixUserID != ""
	if adopted {
		if userID, ok = p.checkAdoption(w, r, tenant, slug, id.UserID(req.MatrixUserID)); !ok {
			return
		}
	}
	g := &database.Ghost{Tenant: tenant, Slug: slug, UserID: userID, Displayname: req.Displayname, AvatarSource: req.AvatarURL}
	if portal.IsMXC(req.AvatarURL) {
		g.AvatarMXC = req.AvatarURL
	}
	if _, err := p.db.Ghosts.Put(r.Context(), g); err != nil {
		p.internalError(w, r, err)
		return
	}
	if adopted {
		// The account exists: it must never be registered.
		if err := p.db.Ghosts.MarkRegistered(r.Context(), userID); err != nil {
			p.internalError(w, r, err)
			return
		}
	}
	stored, err := p.db.Ghosts.Get(r.Context(), tenant, slug)
	if err != nil {
		p.internalError(w, r, err)
		return
	}
	status := http.StatusOK
	if stored.NeedsSync() {
		status = syncStatus(p.portals.SyncGhost(r.Context(), tenant, slug))
		if stored, err = p.db.Ghosts.Get(r.Context(), tenant, slug); err != nil {
			p.internalError(w, r, err)
			return
		}
	}
	writeJSON(w, status, newUserResponse(stored))
}

func (p *Provisioning) getUser(w http.ResponseWriter, r *http.Request) {
	tenant, slug := pathVar(r, "tenant"), pathVar(r, "slug")
	g, err := p.db.Ghosts.Get(r.Context(), tenant, slug)
	if err != nil {
		p.internalError(w, r, err)
		return
	}
	if g == nil {
		errNotFound.WithMessage("No user %q in tenant %q", slug, tenant).Write(w)
		return
	}
	writeJSON(w, http.StatusOK, newUserResponse(g))
}

// checkAdoption decides whether (tenant, slug) may adopt the existing
// account userID: it must be in the legacy namespace of that tenant on this
// server, exist on the homeserver, and belong to nobody else here; a user
// already provisioned keeps the account it has. On failure it has written
// the error.
func (p *Provisioning) checkAdoption(w http.ResponseWriter, r *http.Request, tenant, slug string, userID id.UserID) (id.UserID, bool) {
	ctx := r.Context()
	if err := p.portals.Namer().Legacy().CheckAdoption(userID, tenant); err != nil {
		errInvalid.WithMessage("matrix_user_id: %s", err.Error()).Write(w)
		return "", false
	}
	if _, _, err := p.portals.Namer().ParseGhost(userID); err == nil {
		errInvalid.WithMessage("matrix_user_id: %s is in the bridge's own ghost namespace, not an existing account", userID).Write(w)
		return "", false
	}
	existing, err := p.db.Ghosts.Get(ctx, tenant, slug)
	if err != nil {
		p.internalError(w, r, err)
		return "", false
	}
	if existing != nil {
		if existing.UserID != userID {
			errConflict.WithMessage("user %q of tenant %q already has the Matrix account %s; it cannot change to %s",
				slug, tenant, existing.UserID, userID).Write(w)
			return "", false
		}
		return userID, true
	}
	owner, err := p.db.Ghosts.GetByUserID(ctx, userID)
	if err != nil {
		p.internalError(w, r, err)
		return "", false
	}
	if owner != nil {
		errConflict.WithMessage("%s is already the account of user %q of tenant %q", userID, owner.Slug, owner.Tenant).Write(w)
		return "", false
	}
	if err := p.portals.CheckAccount(ctx, userID); errors.Is(err, portal.ErrNoAccount) {
		errInvalid.WithMessage("matrix_user_id: %s", err.Error()).Write(w)
		return "", false
	} else if err != nil {
		p.homeserverUnavailable(w, r, err)
		return "", false
	}
	return userID, true
}

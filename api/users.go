package api

import (
	"errors"
	"net/http"

	"github.com/openmeet-team/openmeet-bridge/database"
	"github.com/openmeet-team/openmeet-bridge/portal"
)

type userRequest struct {
	Displayname string `json:"displayname"`
	// AvatarURL is an mxc:// URI or an https URL; empty for none.
	AvatarURL string `json:"avatar_url"`
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
	if err != nil {
		errInvalid.WithMessage("tenant and slug cannot form a Matrix ID: %s", err.Error()).Write(w)
		return
	}
	g := &database.Ghost{Tenant: tenant, Slug: slug, UserID: userID, Displayname: req.Displayname, AvatarSource: req.AvatarURL}
	if portal.IsMXC(req.AvatarURL) {
		g.AvatarMXC = req.AvatarURL
	}
	if _, err := p.db.Ghosts.Put(r.Context(), g); err != nil {
		p.internalError(w, r, err)
		return
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

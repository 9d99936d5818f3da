package api

import (
	"net/http"
	"strconv"

	"maunium.net/go/mautrix/id"

	"github.com/openmeet-team/openmeet-bridge/database"
	"github.com/openmeet-team/openmeet-bridge/ident"
)

type portalRequest struct {
	Name  string `json:"name"`
	Topic string `json:"topic"`
	// Visibility is "public" (joinable by anyone through the alias) or
	// "private" (invite-only); default private.
	Visibility string `json:"visibility"`
	// EnsureRoom asks for the room to be created now rather than when its
	// first member arrives.
	EnsureRoom bool `json:"ensure_room"`
	// Room adopts an existing room (a room ID, or an alias
	// #event-{slug}-{tenant}:{server} / #group-{slug}-{tenant}:{server} of
	// OpenMeet's earlier integration) instead of creating one.
	Room string `json:"room"`
}

type portalResponse struct {
	Tenant     string `json:"tenant"`
	Kind       string `json:"kind"`
	Slug       string `json:"slug"`
	Alias      string `json:"alias"`
	RoomID     string `json:"room_id,omitempty"`
	Name       string `json:"name"`
	Topic      string `json:"topic"`
	Visibility string `json:"visibility"`
	Closed     bool   `json:"closed"`
	State      string `json:"state"`
	LastError  string `json:"last_error,omitempty"`
}

func newPortalResponse(p *database.Portal) *portalResponse {
	state := syncedState
	if !p.Synced() {
		state = pendingState
		if p.LastError != "" {
			state = errorState
		}
	}
	return &portalResponse{
		Tenant: p.Tenant, Kind: p.Kind, Slug: p.Slug, Alias: p.Alias.String(), RoomID: p.RoomID.String(),
		Name: p.Name, Topic: p.Topic, Visibility: p.Visibility, Closed: p.Closed, State: state, LastError: p.LastError,
	}
}

func (p *Provisioning) putPortal(w http.ResponseWriter, r *http.Request) {
	key, ok := portalKey(w, r)
	if !ok {
		return
	}
	var req portalRequest
	if !readJSON(w, r, p.maxBody, &req) {
		return
	}
	if req.Visibility == "" {
		req.Visibility = "private"
	}
	if req.Visibility != "public" && req.Visibility != "private" {
		errInvalid.WithMessage("visibility must be public or private").Write(w)
		return
	}
	if err := checkText("name", req.Name, maxNameBytes, true); err != nil {
		errInvalid.WithMessage("%s", err.Error()).Write(w)
		return
	}
	if err := checkText("topic", req.Topic, maxTopicBytes, false); err != nil {
		errInvalid.WithMessage("%s", err.Error()).Write(w)
		return
	}
	alias, err := p.portals.Namer().Alias(key.Tenant, ident.Kind(key.Kind), key.Slug)
	if err != nil {
		errInvalid.WithMessage("tenant and slug cannot form a room alias: %s", err.Error()).Write(w)
		return
	}
	ctx := r.Context()
	var adopt id.RoomID
	if req.Room != "" {
		var ok bool
		if adopt, ok = p.adoptRoom(w, r, key, req.Room); !ok {
			return
		}
	}
	row := &database.Portal{Tenant: key.Tenant, Kind: key.Kind, Slug: key.Slug, Alias: alias,
		Name: req.Name, Topic: req.Topic, Visibility: req.Visibility}
	if _, err = p.db.Portals.Put(ctx, row); err == nil && req.EnsureRoom {
		_, err = p.db.Portals.RequestRoom(ctx, key)
	}
	if err == nil && adopt != "" {
		// The next sync finds the bot outside the room and takes it over.
		if err = p.db.Portals.SetRoomID(ctx, key, adopt); err == nil {
			err = p.db.Portals.Bump(ctx, key)
		}
	}
	if err != nil {
		p.internalError(w, r, err)
		return
	}
	p.respondPortal(w, r, key)
}

// respondPortal waits for the portal's sync if it lags, then answers with
// its state: 200 when Synapse matches, 202 when it does not yet.
func (p *Provisioning) respondPortal(w http.ResponseWriter, r *http.Request, key database.PortalKey) {
	ctx := r.Context()
	stored, err := p.db.Portals.Get(ctx, key)
	if err != nil {
		p.internalError(w, r, err)
		return
	}
	status := http.StatusOK
	if !stored.Synced() {
		status = syncStatus(p.portals.SyncPortal(ctx, key))
		if stored, err = p.db.Portals.Get(ctx, key); err != nil {
			p.internalError(w, r, err)
			return
		}
		if !stored.Synced() {
			status = http.StatusAccepted
		}
	}
	writeJSON(w, status, newPortalResponse(stored))
}

func (p *Provisioning) getPortal(w http.ResponseWriter, r *http.Request) {
	if stored, ok := p.loadPortal(w, r); ok {
		writeJSON(w, http.StatusOK, newPortalResponse(stored))
	}
}

func (p *Provisioning) deletePortal(w http.ResponseWriter, r *http.Request) {
	stored, ok := p.loadPortal(w, r)
	if !ok {
		return
	}
	if _, err := p.db.Portals.Close(r.Context(), stored.Key()); err != nil {
		p.internalError(w, r, err)
		return
	}
	p.respondPortal(w, r, stored.Key())
}

type portalList struct {
	Portals []*portalResponse `json:"portals"`
	// Next is the cursor of the next page (pass it as ?after=); absent on
	// the last page.
	Next string `json:"next,omitempty"`
}

func (p *Provisioning) listPortals(w http.ResponseWriter, r *http.Request) {
	tenant := pathVar(r, "tenant")
	limit := defaultPage
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxPage {
			errInvalid.WithMessage("limit must be a number from 1 to %d", maxPage).Write(w)
			return
		}
		limit = n
	}
	known, err := p.tenantKnown(r.Context(), tenant)
	if err != nil {
		p.internalError(w, r, err)
		return
	}
	if !known {
		errNotFound.WithMessage("No tenant %q", tenant).Write(w)
		return
	}
	rows, err := p.db.Portals.List(r.Context(), tenant, string(kindOf(r)), r.URL.Query().Get("after"), limit+1)
	if err != nil {
		p.internalError(w, r, err)
		return
	}
	out := portalList{Portals: make([]*portalResponse, 0, len(rows))}
	if len(rows) > limit {
		rows = rows[:limit]
		out.Next = rows[limit-1].Slug
	}
	for _, row := range rows {
		out.Portals = append(out.Portals, newPortalResponse(row))
	}
	writeJSON(w, http.StatusOK, out)
}

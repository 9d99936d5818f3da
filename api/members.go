package api

import (
	"context"
	"net/http"
	"slices"
	"strings"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/openmeet-team/openmeet-bridge/database"
	"github.com/openmeet-team/openmeet-bridge/ident"
)

type memberRequest struct {
	Role string `json:"role"`
}

type memberResponse struct {
	UserSlug   string `json:"user_slug"`
	UserID     string `json:"user_id"`
	Role       string `json:"role"`
	PowerLevel int    `json:"power_level"`
	// Membership is the ghost's membership in the room as Synapse last
	// pushed it (join, invite, leave, ban, knock); absent when it never did.
	Membership string `json:"membership,omitempty"`
}

// reportedMembership is what the member answers show of a pushed
// membership: a Matrix membership, or "" (absent) for anything else.
func reportedMembership(m event.Membership) string {
	switch m {
	case event.MembershipJoin, event.MembershipInvite, event.MembershipLeave, event.MembershipBan, event.MembershipKnock:
		return string(m)
	}
	return ""
}

type batchRequest struct {
	// Set gives members and their roles; Remove takes members out.
	Set []struct {
		UserSlug string `json:"user_slug"`
		Role     string `json:"role"`
	} `json:"set"`
	Remove []string `json:"remove"`
}

type batchResponse struct {
	Portal  *portalResponse `json:"portal"`
	Changed bool            `json:"changed"`
}

func (p *Provisioning) memberResponse(ctx context.Context, portal *database.Portal, m *database.PortalMember) (*memberResponse, error) {
	level, _ := p.portals.Config().Level(ident.Kind(portal.Kind), m.Role)
	resp := &memberResponse{UserSlug: m.UserSlug, UserID: m.UserID.String(), Role: m.Role, PowerLevel: level}
	if portal.RoomID != "" {
		membership, err := p.db.Members.Membership(ctx, portal.RoomID, m.UserID)
		if err != nil {
			return nil, err
		}
		resp.Membership = reportedMembership(membership)
	}
	return resp, nil
}

// checkRole writes 400 and returns false for a role the kind does not have.
func (p *Provisioning) checkRole(w http.ResponseWriter, kind ident.Kind, role string) bool {
	if _, ok := p.portals.Config().Level(kind, role); ok {
		return true
	}
	var roles []string
	for r := range p.portals.Config().PowerLevels[string(kind)] {
		roles = append(roles, r)
	}
	slices.Sort(roles)
	errInvalid.WithMessage("role %q is not one of %s for %ss", role, strings.Join(roles, ", "), kind).Write(w)
	return false
}

// openPortal loads the portal and refuses membership changes once closed.
func (p *Provisioning) openPortal(w http.ResponseWriter, r *http.Request) (*database.Portal, bool) {
	portal, ok := p.loadPortal(w, r)
	if ok && portal.Closed {
		errPortalClosed.WithMessage("The %s is closed; PUT it again to reopen it", portal.Kind).Write(w)
		return nil, false
	}
	return portal, ok
}

// knownUsers returns the ghosts' user IDs of slugs; it writes 404 naming
// the first unknown user and returns false if any of them has no ghost.
func (p *Provisioning) knownUsers(w http.ResponseWriter, r *http.Request, tenant string, slugs []string) ([]id.UserID, bool) {
	userIDs := make([]id.UserID, 0, len(slugs))
	for _, slug := range slugs {
		if err := checkSlug("user slug", slug); err != nil {
			errInvalid.WithMessage("%s", err.Error()).Write(w)
			return nil, false
		}
		g, err := p.db.Ghosts.Get(r.Context(), tenant, slug)
		if err != nil {
			p.internalError(w, r, err)
			return nil, false
		}
		if g == nil {
			errNotFound.WithMessage("No user %q in tenant %q; PUT the user first", slug, tenant).Write(w)
			return nil, false
		}
		userIDs = append(userIDs, g.UserID)
	}
	return userIDs, true
}

func (p *Provisioning) putMember(w http.ResponseWriter, r *http.Request) {
	portal, ok := p.openPortal(w, r)
	if !ok {
		return
	}
	var req memberRequest
	if !readJSON(w, r, p.maxBody, &req) || !p.checkRole(w, ident.Kind(portal.Kind), req.Role) {
		return
	}
	user := pathVar(r, "user")
	userIDs, ok := p.knownUsers(w, r, portal.Tenant, []string{user})
	if !ok {
		return
	}
	p.applyMembers(w, r, portal, []database.MemberChange{{UserSlug: user, Role: req.Role}}, userIDs, func() {
		p.writeMember(w, r, portal, user, http.StatusOK)
	})
}

func (p *Provisioning) deleteMember(w http.ResponseWriter, r *http.Request) {
	portal, ok := p.openPortal(w, r)
	if !ok {
		return
	}
	user := pathVar(r, "user")
	userIDs, ok := p.knownUsers(w, r, portal.Tenant, []string{user})
	if !ok {
		return
	}
	p.applyMembers(w, r, portal, []database.MemberChange{{UserSlug: user}}, userIDs, nil)
}

func (p *Provisioning) batchMembers(w http.ResponseWriter, r *http.Request) {
	portal, ok := p.openPortal(w, r)
	if !ok {
		return
	}
	var req batchRequest
	if !readJSON(w, r, p.maxBody, &req) {
		return
	}
	if n := len(req.Set) + len(req.Remove); n > maxBatch {
		errInvalid.WithMessage("a batch holds at most %d changes, not %d", maxBatch, n).Write(w)
		return
	}
	changes := make([]database.MemberChange, 0, len(req.Set)+len(req.Remove))
	slugs := make([]string, 0, cap(changes))
	seen := make(map[string]bool, cap(changes))
	for _, s := range req.Set {
		if !p.checkRole(w, ident.Kind(portal.Kind), s.Role) {
			return
		}
		changes, slugs = append(changes, database.MemberChange{UserSlug: s.UserSlug, Role: s.Role}), append(slugs, s.UserSlug)
	}
	for _, slug := range req.Remove {
		changes, slugs = append(changes, database.MemberChange{UserSlug: slug}), append(slugs, slug)
	}
	for _, slug := range slugs {
		if seen[slug] {
			errInvalid.WithMessage("user %q appears more than once in the batch", slug).Write(w)
			return
		}
		seen[slug] = true
	}
	userIDs, ok := p.knownUsers(w, r, portal.Tenant, slugs)
	if !ok {
		return
	}
	p.applyMembers(w, r, portal, changes, userIDs, nil)
}

// applyMembers stores the changes in one transaction, waits for the sync,
// and answers: with respond if given (on 200), else with the portal. A 200
// means the change is done for the caller's next call: Synapse has it and
// the bridge's own view of the room, which the client API checks, shows
// each of userIDs joined or not as the portal now wants -- also when the
// stored change was a no-op but an earlier call's pushes are still on
// their way.
func (p *Provisioning) applyMembers(w http.ResponseWriter, r *http.Request, portal *database.Portal, changes []database.MemberChange, userIDs []id.UserID, respond func()) {
	ctx := r.Context()
	changed, err := p.db.PortalMembers.Apply(ctx, portal.Key(), changes)
	if err != nil {
		p.internalError(w, r, err)
		return
	}
	syncErr := p.portals.SyncMembers(ctx, portal.Key(), userIDs)
	stored, err := p.db.Portals.Get(ctx, portal.Key())
	if err != nil {
		p.internalError(w, r, err)
		return
	}
	status := syncStatus(syncErr)
	if !stored.Synced() {
		status = http.StatusAccepted
	}
	if respond != nil && status == http.StatusOK {
		respond()
		return
	}
	resp := newPortalResponse(stored)
	if status == http.StatusAccepted && resp.State == syncedState {
		// Synapse has the change but has not pushed it to the bridge yet.
		resp.State = pendingState
	}
	writeJSON(w, status, batchResponse{Portal: resp, Changed: changed})
}

func (p *Provisioning) writeMember(w http.ResponseWriter, r *http.Request, portal *database.Portal, user string, status int) {
	m, err := p.db.PortalMembers.Get(r.Context(), portal.Key(), user)
	if err != nil {
		p.internalError(w, r, err)
		return
	}
	if m == nil {
		errNotFound.WithMessage("User %q is not a member", user).Write(w)
		return
	}
	if portal, err = p.db.Portals.Get(r.Context(), portal.Key()); err != nil {
		p.internalError(w, r, err)
		return
	}
	resp, err := p.memberResponse(r.Context(), portal, m)
	if err != nil {
		p.internalError(w, r, err)
		return
	}
	writeJSON(w, status, resp)
}

func (p *Provisioning) getMember(w http.ResponseWriter, r *http.Request) {
	if portal, ok := p.loadPortal(w, r); ok {
		p.writeMember(w, r, portal, pathVar(r, "user"), http.StatusOK)
	}
}

func (p *Provisioning) listMembers(w http.ResponseWriter, r *http.Request) {
	portal, ok := p.loadPortal(w, r)
	if !ok {
		return
	}
	members, err := p.db.PortalMembers.List(r.Context(), portal.Key())
	if err != nil {
		p.internalError(w, r, err)
		return
	}
	reported := map[id.UserID]event.Membership{}
	if portal.RoomID != "" {
		rows, err := p.db.Members.List(r.Context(), portal.RoomID)
		if err != nil {
			p.internalError(w, r, err)
			return
		}
		for _, row := range rows {
			reported[row.UserID] = row.Membership
		}
	}
	out := struct {
		Members []*memberResponse `json:"members"`
	}{Members: make([]*memberResponse, 0, len(members))}
	for _, m := range members {
		level, _ := p.portals.Config().Level(ident.Kind(portal.Kind), m.Role)
		resp := &memberResponse{UserSlug: m.UserSlug, UserID: m.UserID.String(), Role: m.Role, PowerLevel: level}
		resp.Membership = reportedMembership(reported[m.UserID])
		out.Members = append(out.Members, resp)
	}
	writeJSON(w, http.StatusOK, out)
}

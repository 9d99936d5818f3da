package api

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/gorilla/mux"
	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"

	"github.com/openmeet-team/openmeet-bridge/database"
	"github.com/openmeet-team/openmeet-bridge/ident"
	"github.com/openmeet-team/openmeet-bridge/portal"
)

// ProvisionPrefix is where the provisioning API is served.
const ProvisionPrefix = "/_openmeet/provision/v1"

// Limits of the provisioning API.
const (
	maxSlugBytes  = 200
	maxNameBytes  = 255
	maxTopicBytes = 4096
	maxBatch      = 10000
	defaultPage   = 100
	maxPage       = 1000
	pendingState  = "pending"
	syncedState   = "synced"
	errorState    = "error"
)

// Provisioning serves the API through which the OpenMeet backend tells the
// bridge which users, events, groups and memberships exist.
type Provisioning struct {
	secret  []byte
	maxBody int64
	db      *database.Database
	portals *portal.Registry
	log     zerolog.Logger
}

// NewProvisioning builds the API; Register mounts it.
func NewProvisioning(secret string, maxBody int64, db *database.Database, portals *portal.Registry, log zerolog.Logger) *Provisioning {
	return &Provisioning{
		secret: []byte(secret), maxBody: maxBody, db: db, portals: portals,
		log: log.With().Str("component", "provisioning").Logger(),
	}
}

// Register mounts the API on r, which must use encoded paths
// (mux.Router.UseEncodedPath) so that slugs may contain "/".
func (p *Provisioning) Register(r *mux.Router) {
	sub := r.PathPrefix(ProvisionPrefix).Subrouter()
	sub.Use(p.authenticate)
	t := "/tenants/{tenant}"
	k := t + "/{kind:events|groups}"
	routes := []struct {
		path    string
		methods map[string]http.HandlerFunc
	}{
		{t + "/users/{slug}", map[string]http.HandlerFunc{"PUT": p.putUser, "GET": p.getUser}},
		{k, map[string]http.HandlerFunc{"GET": p.listPortals}},
		{k + "/{slug}", map[string]http.HandlerFunc{"PUT": p.putPortal, "GET": p.getPortal, "DELETE": p.deletePortal}},
		{k + "/{slug}/members", map[string]http.HandlerFunc{"GET": p.listMembers}},
		{k + "/{slug}/members:batch", map[string]http.HandlerFunc{"POST": p.batchMembers}},
		{k + "/{slug}/members/{user}", map[string]http.HandlerFunc{"PUT": p.putMember, "GET": p.getMember, "DELETE": p.deleteMember}},
	}
	for _, route := range routes {
		for method, handler := range route.methods {
			sub.HandleFunc(route.path, handler).Methods(method)
		}
		// Any other method on a known path: 405, not 404.
		sub.HandleFunc(route.path, MethodNotAllowed)
	}
}

func (p *Provisioning) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := bearer(r)
		if !ok {
			mautrix.MMissingToken.WithMessage("Missing provisioning secret").Write(w)
			return
		}
		if subtle.ConstantTimeCompare([]byte(token), p.secret) != 1 {
			mautrix.MForbidden.WithMessage("Invalid provisioning secret").Write(w)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// pathVar returns a decoded path variable.
func pathVar(r *http.Request, name string) string {
	v, err := url.PathUnescape(mux.Vars(r)[name])
	if err != nil {
		return mux.Vars(r)[name]
	}
	return v
}

// checkSlug validates a tenant or slug; the message names what is wrong.
func checkSlug(what, s string) error {
	switch {
	case s == "":
		return errors.New(what + " must not be empty")
	case len(s) > maxSlugBytes:
		return errors.New(what + " is longer than " + strconv.Itoa(maxSlugBytes) + " bytes")
	case !utf8.ValidString(s):
		return errors.New(what + " is not valid UTF-8")
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		return errors.New(what + " contains control characters")
	}
	return nil
}

// checkText validates a display name, room name or topic.
func checkText(what, s string, maxBytes int, required bool) error {
	switch {
	case required && strings.TrimSpace(s) == "":
		return errors.New(what + " must not be empty")
	case len(s) > maxBytes:
		return errors.New(what + " is longer than " + strconv.Itoa(maxBytes) + " bytes")
	case !utf8.ValidString(s):
		return errors.New(what + " is not valid UTF-8")
	}
	return nil
}

func kindOf(r *http.Request) ident.Kind {
	return ident.Kind(strings.TrimSuffix(mux.Vars(r)["kind"], "s"))
}

// portalKey reads and checks tenant, kind and slug from the path.
func portalKey(w http.ResponseWriter, r *http.Request) (database.PortalKey, bool) {
	key := database.PortalKey{Tenant: pathVar(r, "tenant"), Kind: string(kindOf(r)), Slug: pathVar(r, "slug")}
	if err := errors.Join(checkSlug("tenant", key.Tenant), checkSlug("slug", key.Slug)); err != nil {
		errInvalid.WithMessage("%s", err.Error()).Write(w)
		return key, false
	}
	return key, true
}

// loadPortal returns the portal of the path, writing 404 if there is none.
func (p *Provisioning) loadPortal(w http.ResponseWriter, r *http.Request) (*database.Portal, bool) {
	key, ok := portalKey(w, r)
	if !ok {
		return nil, false
	}
	portal, err := p.db.Portals.Get(r.Context(), key)
	if err != nil {
		p.internalError(w, r, err)
		return nil, false
	}
	if portal == nil {
		errNotFound.WithMessage("No %s %q in tenant %q", key.Kind, key.Slug, key.Tenant).Write(w)
		return nil, false
	}
	return portal, true
}

func (p *Provisioning) internalError(w http.ResponseWriter, r *http.Request, err error) {
	p.log.Err(err).Str("path", r.URL.Path).Msg("Provisioning request failed")
	mautrix.MUnknown.WithMessage("Internal error").Write(w)
}

// tenantKnown reports whether any user or portal of tenant exists.
func (p *Provisioning) tenantKnown(ctx context.Context, tenant string) (bool, error) {
	return p.db.TenantExists(ctx, tenant)
}

// syncStatus turns the result of waiting for a sync into the HTTP status:
// 200 when Synapse has it, 202 when it is stored but not applied yet.
func syncStatus(err error) int {
	if err == nil {
		return http.StatusOK
	}
	return http.StatusAccepted
}

// Package migrate moves an existing OpenMeet deployment onto the bridge: it
// reads a JSON Lines export (tenants, users, events, groups, memberships)
// and applies it through a running bridge's provisioning API, which adopts
// the existing Matrix accounts and rooms. docs/migrate-export.schema.json
// describes the format.
package migrate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Kinds of export lines.
const (
	KindTenant     = "tenant"
	KindUser       = "user"
	KindEvent      = "event"
	KindGroup      = "group"
	KindMembership = "membership"
)

// ErrBadLine is returned for a line that is not a valid export record.
var ErrBadLine = errors.New("invalid export line")

// Record is one line of the export. Which fields apply depends on Kind;
// docs/migrate-export.schema.json is the reference.
type Record struct {
	Kind string `json:"kind"`
	// tenant: its ID; every other kind: the tenant it belongs to.
	ID     string `json:"id,omitempty"`
	Tenant string `json:"tenant,omitempty"`
	// user, event, group: the OpenMeet slug.
	Slug string `json:"slug,omitempty"`
	// user
	Displayname  string `json:"displayname,omitempty"`
	AvatarURL    string `json:"avatar_url,omitempty"`
	MatrixUserID string `json:"matrix_user_id,omitempty"`
	// event, group
	Name       string `json:"name,omitempty"`
	Topic      string `json:"topic,omitempty"`
	Visibility string `json:"visibility,omitempty"`
	Room       string `json:"room,omitempty"`
	// membership
	PortalKind string `json:"portal_kind,omitempty"`
	PortalSlug string `json:"portal_slug,omitempty"`
	UserSlug   string `json:"user_slug,omitempty"`
	Role       string `json:"role,omitempty"`
}

// allowed lists the fields each kind may carry besides "kind".
var allowed = map[string][]string{
	KindTenant:     {"id"},
	KindUser:       {"tenant", "slug", "displayname", "avatar_url", "matrix_user_id"},
	KindEvent:      {"tenant", "slug", "name", "topic", "visibility", "room"},
	KindGroup:      {"tenant", "slug", "name", "topic", "visibility", "room"},
	KindMembership: {"tenant", "portal_kind", "portal_slug", "user_slug", "role"},
}

// ParseLine decodes and checks one line. It refuses unknown fields, fields
// of another kind, and missing required fields.
func ParseLine(line []byte) (*Record, error) {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	var rec Record
	if err := dec.Decode(&rec); err != nil {
		return nil, fmt.Errorf("%w: %s", ErrBadLine, err.Error())
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: more than one JSON value on the line", ErrBadLine)
	}
	var fields map[string]json.RawMessage
	_ = json.Unmarshal(line, &fields)
	ok, known := allowed[rec.Kind]
	if !known {
		return nil, fmt.Errorf("%w: kind %q is not one of tenant, user, event, group, membership", ErrBadLine, rec.Kind)
	}
	for name := range fields {
		if name != "kind" && !contains(ok, name) {
			return nil, fmt.Errorf("%w: a %s line has no field %q", ErrBadLine, rec.Kind, name)
		}
	}
	var missing []string
	need := func(name, value string) {
		if value == "" {
			missing = append(missing, name)
		}
	}
	switch rec.Kind {
	case KindTenant:
		need("id", rec.ID)
	case KindUser:
		need("tenant", rec.Tenant)
		need("slug", rec.Slug)
		need("displayname", rec.Displayname)
	case KindEvent, KindGroup:
		need("tenant", rec.Tenant)
		need("slug", rec.Slug)
		need("name", rec.Name)
		if rec.Visibility != "" && rec.Visibility != "public" && rec.Visibility != "private" {
			return nil, fmt.Errorf("%w: visibility must be public or private, not %q", ErrBadLine, rec.Visibility)
		}
	case KindMembership:
		need("tenant", rec.Tenant)
		need("portal_kind", rec.PortalKind)
		need("portal_slug", rec.PortalSlug)
		need("user_slug", rec.UserSlug)
		need("role", rec.Role)
		if rec.PortalKind != "" && rec.PortalKind != KindEvent && rec.PortalKind != KindGroup {
			return nil, fmt.Errorf("%w: portal_kind must be event or group, not %q", ErrBadLine, rec.PortalKind)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%w: a %s line needs %s", ErrBadLine, rec.Kind, strings.Join(missing, ", "))
	}
	return &rec, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// portalPath is the provisioning path of a portal.
func portalPath(tenant, kind, slug string) string {
	return "/tenants/" + escape(tenant) + "/" + kind + "s/" + escape(slug)
}

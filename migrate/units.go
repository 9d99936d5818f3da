package migrate

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// applyUnit applies one record, or one run of memberships of one portal,
// and returns an outcome per line. It reads first and writes only what
// differs, so a re-run sends no writes for what is already right.
func (m *migration) applyUnit(ctx context.Context, unit []line) []outcome {
	first := unit[0]
	if first.err != nil {
		return []outcome{{line: first.n, kind: "invalid", raw: first.raw, err: first.err}}
	}
	// An export that declares tenants must declare each one it uses; a file
	// of failed lines fed back in declares none and is not checked.
	if first.rec.Kind != KindTenant && len(m.tenants) > 0 && m.tenants[first.rec.Tenant] == nil {
		outs := make([]outcome, len(unit))
		for i, l := range unit {
			outs[i] = outcome{line: l.n, kind: l.rec.Kind, raw: l.raw,
				err: fmt.Errorf("tenant %q is not declared by a tenant line of the export", l.rec.Tenant)}
		}
		return outs
	}
	switch first.rec.Kind {
	case KindTenant:
		// Tenants exist in the bridge through their users and portals.
		return []outcome{{line: first.n, kind: KindTenant, raw: first.raw}}
	case KindUser:
		return []outcome{m.applyUser(ctx, first)}
	case KindEvent, KindGroup:
		return []outcome{m.applyPortal(ctx, first)}
	default:
		return m.applyMemberships(ctx, unit)
	}
}

type userState struct {
	UserID      string `json:"user_id"`
	Displayname string `json:"displayname"`
	AvatarURL   string `json:"avatar_url"`
	State       string `json:"state"`
}

func (m *migration) applyUser(ctx context.Context, l line) outcome {
	rec := l.rec
	o := outcome{line: l.n, kind: KindUser, raw: l.raw}
	path := "/tenants/" + escape(rec.Tenant) + "/users/" + escape(rec.Slug)
	var cur userState
	_, err := m.c.do(ctx, http.MethodGet, path, nil, &cur)
	switch {
	case isNotFound(err):
		o.change = fmt.Sprintf("create user %s/%s", rec.Tenant, rec.Slug)
		if rec.MatrixUserID != "" {
			o.change += " adopting " + rec.MatrixUserID
		}
	case err != nil:
		o.err = err
		return o
	default:
		var diffs []string
		if cur.Displayname != rec.Displayname {
			diffs = append(diffs, "displayname")
		}
		if cur.AvatarURL != rec.AvatarURL {
			diffs = append(diffs, "avatar_url")
		}
		if rec.MatrixUserID != "" && cur.UserID != rec.MatrixUserID {
			diffs = append(diffs, "matrix_user_id "+cur.UserID+" → "+rec.MatrixUserID)
		}
		if cur.State != "synced" {
			diffs = append(diffs, "sync with Synapse (now "+cur.State+")")
		}
		if len(diffs) == 0 {
			return o
		}
		o.change = fmt.Sprintf("update user %s/%s: %s", rec.Tenant, rec.Slug, strings.Join(diffs, ", "))
	}
	o.changed = true
	if m.opts.DryRun {
		return o
	}
	body := map[string]string{"displayname": rec.Displayname, "avatar_url": rec.AvatarURL}
	if rec.MatrixUserID != "" {
		body["matrix_user_id"] = rec.MatrixUserID
	}
	_, o.err = m.c.do(ctx, http.MethodPut, path, body, nil)
	return o
}

type portalState struct {
	RoomID     string `json:"room_id"`
	Name       string `json:"name"`
	Topic      string `json:"topic"`
	Visibility string `json:"visibility"`
	Closed     bool   `json:"closed"`
	State      string `json:"state"`
}

func (m *migration) applyPortal(ctx context.Context, l line) outcome {
	rec := l.rec
	o := outcome{line: l.n, kind: rec.Kind, raw: l.raw}
	path := portalPath(rec.Tenant, rec.Kind, rec.Slug)
	visibility := rec.Visibility
	if visibility == "" {
		visibility = "private"
	}
	var cur portalState
	_, err := m.c.do(ctx, http.MethodGet, path, nil, &cur)
	switch {
	case isNotFound(err):
		o.change = fmt.Sprintf("create %s %s/%s", rec.Kind, rec.Tenant, rec.Slug)
		if rec.Room != "" {
			o.change += " adopting " + rec.Room
		}
	case err != nil:
		o.err = err
		return o
	default:
		var diffs []string
		if cur.Name != rec.Name || cur.Topic != rec.Topic || cur.Visibility != visibility {
			diffs = append(diffs, "name, topic or visibility")
		}
		if cur.Closed {
			diffs = append(diffs, "reopen")
		}
		// A room ID can be compared; an alias only matters while no room is
		// set (once set, the bridge refuses another room anyway).
		if rec.Room != "" && (cur.RoomID == "" || strings.HasPrefix(rec.Room, "!") && cur.RoomID != rec.Room) {
			diffs = append(diffs, "adopt "+rec.Room)
		}
		if cur.State != "synced" {
			diffs = append(diffs, "sync with Synapse (now "+cur.State+")")
		}
		if len(diffs) == 0 {
			return o
		}
		o.change = fmt.Sprintf("update %s %s/%s: %s", rec.Kind, rec.Tenant, rec.Slug, strings.Join(diffs, ", "))
	}
	o.changed = true
	if m.opts.DryRun {
		return o
	}
	body := map[string]any{"name": rec.Name, "topic": rec.Topic, "visibility": visibility}
	if rec.Room != "" {
		body["room"] = rec.Room
	}
	_, o.err = m.c.do(ctx, http.MethodPut, path, body, nil)
	return o
}

type memberList struct {
	Members []struct {
		UserSlug string `json:"user_slug"`
		Role     string `json:"role"`
	} `json:"members"`
}

type memberSet struct {
	UserSlug string `json:"user_slug"`
	Role     string `json:"role"`
}

// applyMemberships applies a run of memberships of one portal: one read
// of the portal's members, then one batch with the lines that differ.
func (m *migration) applyMemberships(ctx context.Context, unit []line) []outcome {
	first := unit[0].rec
	path := portalPath(first.Tenant, first.PortalKind, first.PortalSlug)
	outs := make([]outcome, len(unit))
	for i, l := range unit {
		outs[i] = outcome{line: l.n, kind: KindMembership, raw: l.raw}
	}
	var cur memberList
	_, err := m.c.do(ctx, http.MethodGet, path+"/members", nil, &cur)
	if err != nil && !(isNotFound(err) && m.opts.DryRun) {
		if isNotFound(err) {
			err = fmt.Errorf("%s %s/%s is not provisioned (its line failed or is missing)", first.PortalKind, first.Tenant, first.PortalSlug)
		}
		for i := range outs {
			outs[i].err = err
		}
		return outs
	}
	roles := make(map[string]string, len(cur.Members))
	for _, mem := range cur.Members {
		roles[mem.UserSlug] = mem.Role
	}
	var changed []int
	for i, l := range unit {
		if roles[l.rec.UserSlug] == l.rec.Role {
			continue
		}
		outs[i].changed = true
		outs[i].change = fmt.Sprintf("set %s as %s of %s %s/%s", l.rec.UserSlug, l.rec.Role, first.PortalKind, first.Tenant, first.PortalSlug)
		changed = append(changed, i)
	}
	if len(changed) == 0 || m.opts.DryRun {
		return outs
	}
	// The bridge applies a batch all or nothing and names the first bad
	// user or role in its refusal: the lines it names fail with that
	// reason and the rest is sent again as one batch. Single PUTs instead
	// would apply a portal's members piecemeal, and an adopted room's
	// accounts not yet applied would leave it in between.
	for len(changed) > 0 {
		set := make([]memberSet, len(changed))
		for j, i := range changed {
			set[j] = memberSet{UserSlug: unit[i].rec.UserSlug, Role: unit[i].rec.Role}
		}
		_, err = m.c.do(ctx, http.MethodPost, path+"/members:batch", map[string]any{"set": set}, nil)
		var apiErr *apiError
		if err == nil || !errors.As(err, &apiErr) || !apiErr.permanent() {
			for _, i := range changed {
				outs[i].err = err
			}
			return outs
		}
		var rest []int
		for _, i := range changed {
			rec := unit[i].rec
			if strings.Contains(apiErr.Message, `"`+rec.UserSlug+`"`) || strings.Contains(apiErr.Message, `"`+rec.Role+`"`) {
				outs[i].err = err
			} else {
				rest = append(rest, i)
			}
		}
		if len(rest) == len(changed) {
			// The refusal names no line: none of them was applied.
			for _, i := range changed {
				outs[i].err = err
			}
			return outs
		}
		changed = rest
	}
	return outs
}

package commands

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/openmeet-team/openmeet-bridge/database"
	"github.com/openmeet-team/openmeet-bridge/ident"
	"github.com/openmeet-team/openmeet-bridge/portal"
)

func (p *Processor) cmdVersion(ctx context.Context, req *request) (string, error) {
	return fmt.Sprintf("openmeet-bridge %s", p.cfg.Version), nil
}

func (p *Processor) cmdPing(ctx context.Context, req *request) (string, error) {
	start := time.Now()
	hsErr := error(nil)
	measured, hsErr := p.hs.Ping(ctx)
	hsTook := time.Since(start)
	start = time.Now()
	dbErr := p.db.Ping(ctx)
	dbTook := time.Since(start)
	var b strings.Builder
	if hsErr != nil {
		fmt.Fprintf(&b, "- Synapse → bridge ping: **failed**: %s\n", hsErr)
	} else {
		fmt.Fprintf(&b, "- Synapse → bridge ping: %s (Synapse measured %s)\n", hsTook.Round(time.Millisecond), measured)
	}
	if dbErr != nil {
		fmt.Fprintf(&b, "- database: **failed**: %s\n", dbErr)
	} else {
		fmt.Fprintf(&b, "- database: %s\n", dbTook.Round(time.Microsecond))
	}
	return b.String(), nil
}

func (p *Processor) cmdStatus(ctx context.Context, req *request) (string, error) {
	ghosts, err := p.db.Ghosts.Count(ctx)
	if err != nil {
		return "", err
	}
	portals, err := p.db.Portals.Count(ctx)
	if err != nil {
		return "", err
	}
	unsynced, err := p.db.Portals.Unsynced(ctx)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "- ghosts: %d\n- portals: %d (%d waiting for Synapse)\n", ghosts, portals, len(unsynced))
	txnID, at, ok, err := p.db.EventLog.LastTxn(ctx)
	switch {
	case err != nil:
		return "", err
	case ok:
		fmt.Fprintf(&b, "- last transaction: `%s`, %s ago\n", txnID, time.Since(at).Round(time.Second))
	default:
		b.WriteString("- last transaction: none yet\n")
	}
	if p.cfg.Status != nil {
		for _, line := range p.cfg.Status(ctx) {
			fmt.Fprintf(&b, "- %s\n", line)
		}
	}
	hsErr, _ := p.hs.Status()
	dbErr := p.db.Ping(ctx)
	switch {
	case p.hs.Ready() && dbErr == nil:
		b.WriteString("- ready: yes\n")
	case dbErr != nil:
		fmt.Fprintf(&b, "- ready: **no**, database: %s\n", dbErr)
	default:
		fmt.Fprintf(&b, "- ready: **no**, homeserver: %v\n", hsErr)
	}
	fmt.Fprintf(&b, "- up for %s", time.Since(p.started).Round(time.Second))
	return b.String(), nil
}

func (p *Processor) cmdWhois(ctx context.Context, req *request) (string, error) {
	var g *database.Ghost
	var err error
	if len(req.args) == 1 {
		if !isUserID(req.args[0]) {
			return "", usageError("Give a Matrix user ID, or a tenant and a slug.")
		}
		userID := id.UserID(req.args[0])
		if g, err = p.db.Ghosts.GetByUserID(ctx, userID); err != nil {
			return "", err
		}
		if g == nil {
			if tenant, slug, perr := p.portals.Namer().ParseGhost(userID); perr == nil {
				return fmt.Sprintf("`%s` would be tenant `%s`, user `%s`, but that user is not provisioned.", userID, tenant, slug), nil
			}
			return fmt.Sprintf("`%s` is not a ghost of this bridge.", userID), nil
		}
	} else {
		if g, err = p.db.Ghosts.Get(ctx, req.args[0], req.args[1]); err != nil {
			return "", err
		}
		if g == nil {
			return fmt.Sprintf("No user `%s` in tenant `%s`.", req.args[1], req.args[0]), nil
		}
	}
	portals, err := p.db.PortalMembers.PortalsOf(ctx, g.Tenant, g.Slug)
	if err != nil {
		return "", err
	}
	state := "in sync with Synapse"
	if g.NeedsSync() {
		state = "waiting for Synapse"
	}
	if g.LastError != "" {
		state += "; last error: " + g.LastError
	}
	return fmt.Sprintf("`%s` is tenant `%s`, user `%s`, shown as **%s**; member of %d portals; %s.",
		g.UserID, g.Tenant, g.Slug, g.Displayname, len(portals), state), nil
}

func (p *Processor) cmdPortals(ctx context.Context, req *request) (string, error) {
	args := req.args
	n := 1
	if len(args) > 0 {
		if v, err := strconv.Atoi(args[len(args)-1]); err == nil {
			n, args = v, args[:len(args)-1]
		}
	}
	if len(args) > 1 {
		return "", usageError("Give at most a tenant and a page number.")
	}
	var lines []string
	after := database.PortalKey{}
	for {
		rows, err := p.db.Portals.ListAll(ctx, after, 500)
		if err != nil {
			return "", err
		}
		for _, row := range rows {
			if len(args) == 1 && row.Tenant != args[0] {
				continue
			}
			lines = append(lines, "- "+describePortalLine(row))
		}
		if len(rows) < 500 {
			break
		}
		after = rows[len(rows)-1].Key()
	}
	next := "portals"
	if len(args) == 1 {
		next += " " + args[0]
	}
	return page(lines, n, next), nil
}

func describePortalLine(row *database.Portal) string {
	state := ""
	switch {
	case row.Closed:
		state = " — closed"
	case row.LastError != "":
		state = " — **error**"
	case !row.Synced():
		state = " — waiting for Synapse"
	}
	room := "no room yet"
	if row.RoomID != "" {
		room = row.Alias.String()
	}
	return fmt.Sprintf("`%s %s %s` %q (%s)%s", row.Tenant, row.Kind, row.Slug, row.Name, room, state)
}

// resolvePortal finds the portal named by args (alias, room ID, or tenant
// kind slug), or the portal of the room the command came from.
func (p *Processor) resolvePortal(ctx context.Context, req *request, args []string) (*database.Portal, error) {
	var found *database.Portal
	var err error
	switch {
	case len(args) == 0:
		if found, err = p.db.Portals.GetByRoomID(ctx, req.evt.RoomID); err == nil && found == nil {
			return nil, usageError("This room is not a portal; name one.")
		}
	case len(args) == 1 && strings.HasPrefix(args[0], "#"):
		found, err = p.db.Portals.GetByAlias(ctx, id.RoomAlias(args[0]))
	case len(args) == 1 && strings.HasPrefix(args[0], "!"):
		found, err = p.db.Portals.GetByRoomID(ctx, id.RoomID(args[0]))
	case len(args) == 3:
		kind := ident.Kind(strings.TrimSuffix(args[1], "s"))
		if !kind.Valid() {
			return nil, usageError("The kind is `event` or `group`.")
		}
		found, err = p.db.Portals.Get(ctx, database.PortalKey{Tenant: args[0], Kind: string(kind), Slug: args[2]})
	default:
		return nil, usageError("Name the portal by alias, room ID, or tenant, kind and slug.")
	}
	if err != nil {
		return nil, err
	}
	if found == nil {
		return nil, usageError(fmt.Sprintf("No portal `%s`.", strings.Join(args, " ")))
	}
	return found, nil
}

func (p *Processor) cmdPortal(ctx context.Context, req *request) (string, error) {
	found, err := p.resolvePortal(ctx, req, req.args)
	if err != nil {
		return "", err
	}
	members, err := p.db.PortalMembers.List(ctx, found.Key())
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "**%s** — `%s %s %s`, %s\n\n", found.Name, found.Tenant, found.Kind, found.Slug, found.Visibility)
	fmt.Fprintf(&b, "- alias: `%s`\n", found.Alias)
	if found.RoomID != "" {
		fmt.Fprintf(&b, "- room: `%s`\n", found.RoomID)
	} else {
		b.WriteString("- room: not created yet\n")
	}
	state := "in sync with Synapse"
	switch {
	case !found.Synced() && found.LastError != "":
		state = "failing (retried with backoff)"
	case !found.Synced():
		state = "waiting for Synapse"
	case found.Closed:
		state = "closed"
	}
	fmt.Fprintf(&b, "- state: %s\n", state)
	if found.LastError != "" {
		fmt.Fprintf(&b, "- last error: %s\n", found.LastError)
	}
	fmt.Fprintf(&b, "- members (%d):\n", len(members))
	for i, m := range members {
		if i == 50 {
			fmt.Fprintf(&b, "  - … and %d more\n", len(members)-50)
			break
		}
		level, _ := p.portals.Config().Level(ident.Kind(found.Kind), m.Role)
		membership := ""
		if found.RoomID != "" {
			got, err := p.db.Members.Membership(ctx, found.RoomID, m.UserID)
			if err != nil {
				return "", err
			}
			membership = ", " + describeMembership(string(got))
		}
		fmt.Fprintf(&b, "  - `%s` (%s): %s, level %d%s\n", m.UserSlug, m.UserID, m.Role, level, membership)
	}
	return b.String(), nil
}

func describeMembership(m string) string {
	if m == "" {
		return "not in the room"
	}
	return m
}

func (p *Processor) cmdSyncPortal(ctx context.Context, req *request) (string, error) {
	found, err := p.resolvePortal(ctx, req, req.args)
	if err != nil {
		return "", err
	}
	return p.syncResult(found, p.portals.SyncPortal(ctx, found.Key())), nil
}

func (p *Processor) syncResult(found *database.Portal, err error) string {
	name := fmt.Sprintf("`%s %s %s`", found.Tenant, found.Kind, found.Slug)
	switch {
	case err == nil:
		return fmt.Sprintf("Synced %s.", name)
	case errors.Is(err, portal.ErrPending):
		return fmt.Sprintf("Synapse is slow; %s will be finished in the background.", name)
	}
	return fmt.Sprintf("Syncing %s failed: %s", name, err)
}

func (p *Processor) cmdClosePortal(ctx context.Context, req *request) (string, error) {
	found, err := p.resolvePortal(ctx, req, req.args)
	if err != nil {
		return "", err
	}
	if _, err := p.db.Portals.Close(ctx, found.Key()); err != nil {
		return "", err
	}
	err = p.portals.SyncPortal(ctx, found.Key())
	if err != nil {
		return p.syncResult(found, err), nil
	}
	return fmt.Sprintf("Closed `%s %s %s`.", found.Tenant, found.Kind, found.Slug), nil
}

func (p *Processor) cmdSetPL(ctx context.Context, req *request) (string, error) {
	found, err := p.resolvePortal(ctx, req, nil)
	if err != nil {
		return "", usageError("Run `set-pl` in the portal room whose levels you want to change.")
	}
	if !isUserID(req.args[0]) {
		return "", usageError(fmt.Sprintf("`%s` is not a Matrix user ID.", req.args[0]))
	}
	level, err := strconv.Atoi(req.args[1])
	if err != nil || level < -1000 || level > 1000 {
		return "", usageError("The level is a whole number, usually 0 to 100.")
	}
	userID := id.UserID(req.args[0])
	if err := p.portals.SetPowerLevel(ctx, found.Key(), userID, level); errors.Is(err, portal.ErrCreator) {
		return fmt.Sprintf("Cannot set the power level of `%s`: %s", userID, err), nil
	} else if err != nil {
		return "", err
	}
	reply := fmt.Sprintf("Set the power level of `%s` to %d.", userID, level)
	if _, _, err := p.portals.Namer().ParseGhost(userID); err == nil {
		reply += " Note: this is a ghost, whose level follows its OpenMeet role; the next sync puts that back."
	}
	return reply, nil
}

func (p *Processor) cmdSyncGhost(ctx context.Context, req *request) (string, error) {
	g, err := p.db.Ghosts.Get(ctx, req.args[0], req.args[1])
	if err != nil {
		return "", err
	}
	if g == nil {
		return fmt.Sprintf("No user `%s` in tenant `%s`.", req.args[1], req.args[0]), nil
	}
	switch err := p.portals.SyncGhostFully(ctx, g.Tenant, g.Slug); {
	case err == nil:
		return fmt.Sprintf("Synced `%s` (%s).", g.UserID, g.Displayname), nil
	case errors.Is(err, portal.ErrPending):
		return fmt.Sprintf("Synapse is slow; `%s` will be finished in the background.", g.UserID), nil
	default:
		return fmt.Sprintf("Syncing `%s` failed: %s", g.UserID, err), nil
	}
}

package commands

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/openmeet-team/openmeet-bridge/database"
)

// cmdReconcile compares the desired state of one or all portals with the
// room state Synapse has and lists every difference; with --apply it syncs
// the portals that differ.
func (p *Processor) cmdReconcile(ctx context.Context, req *request) (string, error) {
	args := slices.Clone(req.args)
	apply := slices.Contains(args, "--apply")
	all := slices.Contains(args, "--all")
	args = slices.DeleteFunc(args, func(a string) bool { return a == "--apply" || a == "--all" })
	var portals []*database.Portal
	if all {
		if len(args) > 0 {
			return "", usageError("Name one portal or say --all, not both.")
		}
		after := database.PortalKey{}
		for {
			rows, err := p.db.Portals.ListAll(ctx, after, 500)
			if err != nil {
				return "", err
			}
			portals = append(portals, rows...)
			if len(rows) < 500 {
				break
			}
			after = rows[len(rows)-1].Key()
		}
	} else {
		found, err := p.resolvePortal(ctx, req, args)
		if err != nil {
			return "", err
		}
		portals = []*database.Portal{found}
	}
	var b strings.Builder
	differing := 0
	for _, row := range portals {
		diff, err := p.portals.Diff(ctx, row.Key())
		name := fmt.Sprintf("`%s %s %s`", row.Tenant, row.Kind, row.Slug)
		if err != nil {
			fmt.Fprintf(&b, "%s: could not compare: %s\n", name, err)
			continue
		}
		if len(diff) == 0 {
			continue
		}
		differing++
		fmt.Fprintf(&b, "%s differs from Synapse:\n", name)
		for _, d := range diff {
			fmt.Fprintf(&b, "- %s\n", d)
		}
		if apply {
			fmt.Fprintf(&b, "%s\n", p.syncResult(row, p.portals.SyncPortal(ctx, row.Key())))
		}
		b.WriteString("\n")
	}
	if differing == 0 {
		return fmt.Sprintf("Checked %d portal(s): all match Synapse.", len(portals)), nil
	}
	if !apply {
		b.WriteString("Say the same with `--apply` to fix this.")
	}
	return strings.TrimSpace(b.String()), nil
}

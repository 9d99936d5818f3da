package commands

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"maunium.net/go/mautrix/id"

	"github.com/openmeet-team/openmeet-bridge/database"
)

// request is one command as it arrived.
type request struct {
	p          *Processor
	evt        *database.LoggedEvent
	level      int
	management bool
	args       []string // args[0] is the command name
}

// command is one thing the bot can do.
type command struct {
	name    string
	usage   string // arguments, for the usage line
	summary string
	// changes marks commands that change state: admins only, and logged.
	changes bool
	// changesIf marks argument lists that make a reading command change
	// state (reconcile --apply, outbox retry).
	changesIf func(args []string) bool
	// minArgs and maxArgs bound the arguments after the name (-1: any).
	minArgs, maxArgs int
	run              func(ctx context.Context, req *request) (string, error)
}

func (c *command) usageLine() string {
	return fmt.Sprintf("Usage: `%s`", strings.TrimSpace(c.name+" "+c.usage))
}

func (p *Processor) commandTable() map[string]*command {
	list := []*command{
		{name: "help", usage: "[command]", summary: "list the commands, or explain one", maxArgs: 1, run: p.cmdHelp},
		{name: "version", summary: "show the bridge version", run: p.cmdVersion},
		{name: "ping", summary: "check the round trips to Synapse and to the database", run: p.cmdPing},
		{name: "status", summary: "show ghosts, portals, the last transaction and readiness", run: p.cmdStatus},
		{name: "whois", usage: "<matrix id | tenant slug>", summary: "map a ghost to its OpenMeet user and back", minArgs: 1, maxArgs: 2, run: p.cmdWhois},
		{name: "portals", usage: "[tenant] [page]", summary: "list portals", maxArgs: 2, run: p.cmdPortals},
		{name: "portal", usage: "[alias | room id | tenant kind slug]", summary: "show a portal: members, roles, levels, last error (no argument: this room)", maxArgs: 3, run: p.cmdPortal},
		{name: "sync-portal", usage: "[alias | room id | tenant kind slug]", summary: "re-apply a portal's name, topic, members and power levels", changes: true, maxArgs: 3, run: p.cmdSyncPortal},
		{name: "reconcile", usage: "[alias | room id | tenant kind slug | --all] [--apply]", summary: "compare portals with what Synapse has; with --apply, fix the differences", maxArgs: 4, run: p.cmdReconcile,
			changesIf: func(args []string) bool { return slices.Contains(args, "--apply") }},
		{name: "outbox", usage: "[list | retry <id> | drop <id>]", summary: "messages waiting for Synapse; retry or drop one", maxArgs: 2, run: p.cmdOutbox,
			changesIf: func(args []string) bool { return len(args) > 0 && args[0] != "list" }},
		{name: "set-pl", usage: "<matrix id> <level>", summary: "set a user's power level in this portal room", changes: true, minArgs: 2, maxArgs: 2, run: p.cmdSetPL},
		{name: "close-portal", usage: "[alias | room id | tenant kind slug]", summary: "close a portal: members leave, the alias goes", changes: true, maxArgs: 3, run: p.cmdClosePortal},
		{name: "sync-ghost", usage: "<tenant> <slug>", summary: "re-apply a ghost's name and avatar", changes: true, minArgs: 2, maxArgs: 2, run: p.cmdSyncGhost},
	}
	table := make(map[string]*command, len(list))
	for _, c := range list {
		table[c.name] = c
	}
	return table
}

// dispatch runs a command and returns the reply.
func (p *Processor) dispatch(ctx context.Context, req *request) string {
	if len(req.args) == 0 {
		return "Say `help` for the list of commands."
	}
	name := strings.ToLower(req.args[0])
	cmd, ok := p.commands[name]
	if !ok {
		return fmt.Sprintf("Unknown command `%s`. Say `help` for the list of commands.", name)
	}
	args := req.args[1:]
	changes := cmd.changes || (cmd.changesIf != nil && cmd.changesIf(args))
	if changes && req.level < LevelAdmin {
		return fmt.Sprintf("Sorry, only bridge admins may run `%s`.", name)
	}
	if len(args) < cmd.minArgs || (cmd.maxArgs >= 0 && len(args) > cmd.maxArgs) {
		return cmd.usageLine()
	}
	req.args = args
	if changes {
		p.log.Info().Stringer("sender", req.evt.Sender).Str("command", name).Strs("args", args).
			Stringer("room_id", req.evt.RoomID).Msg("Running state-changing command")
	}
	reply, err := cmd.run(ctx, req)
	if err != nil {
		var usage usageError
		if asUsage(err, &usage) {
			return cmd.usageLine() + "\n\n" + string(usage)
		}
		p.log.Warn().Err(err).Str("command", name).Msg("Command failed")
		return fmt.Sprintf("`%s` failed: %s", name, err)
	}
	return reply
}

// usageError is a problem with the arguments; the reply adds the usage.
type usageError string

func (e usageError) Error() string { return string(e) }

func asUsage(err error, target *usageError) bool {
	u, ok := err.(usageError)
	if ok {
		*target = u
	}
	return ok
}

func (p *Processor) cmdHelp(ctx context.Context, req *request) (string, error) {
	if len(req.args) == 1 {
		cmd, ok := p.commands[strings.ToLower(req.args[0])]
		if !ok {
			return fmt.Sprintf("Unknown command `%s`. Say `help` for the list of commands.", req.args[0]), nil
		}
		admin := ""
		if cmd.changes {
			admin = " (admins only)"
		}
		return fmt.Sprintf("%s\n\n%s%s.", cmd.usageLine(), capitalize(cmd.summary), admin), nil
	}
	names := make([]string, 0, len(p.commands))
	for name := range p.commands {
		names = append(names, name)
	}
	slices.Sort(names)
	var b strings.Builder
	fmt.Fprintf(&b, "**Commands** (in portal rooms, start them with `%s`):\n\n", p.cfg.Prefix)
	for _, name := range names {
		cmd := p.commands[name]
		marker := ""
		if cmd.changes {
			marker = " *(admin)*"
		} else if cmd.changesIf != nil {
			marker = " *(changes: admin)*"
		}
		fmt.Fprintf(&b, "- `%s` — %s%s\n", strings.TrimSpace(cmd.name+" "+cmd.usage), cmd.summary, marker)
	}
	return b.String(), nil
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// page splits lines into pages of pageSize and returns page n (1-based)
// with a footer saying how to get the next one.
func page(lines []string, n int, next string) string {
	const pageSize = 20
	if len(lines) == 0 {
		return "Nothing to show."
	}
	pages := (len(lines) + pageSize - 1) / pageSize
	if n < 1 || n > pages {
		return fmt.Sprintf("There are %d pages.", pages)
	}
	out := strings.Join(lines[(n-1)*pageSize:min(n*pageSize, len(lines))], "\n")
	if n < pages {
		out += fmt.Sprintf("\n\nPage %d of %d; say `%s %d` for more.", n, pages, next, n+1)
	}
	return out
}

func isUserID(s string) bool {
	_, _, err := id.UserID(s).ParseAndValidateRelaxed()
	return strings.HasPrefix(s, "@") && err == nil
}

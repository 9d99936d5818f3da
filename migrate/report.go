package migrate

import (
	"fmt"
	"io"
	"time"
)

// reportKinds is the order kinds are listed in.
var reportKinds = []string{KindTenant, KindUser, KindEvent, KindGroup, KindMembership, "invalid"}

// Print writes the report for people.
func (r *Report) Print(w io.Writer) {
	verb, changed := "applied", "changed"
	if r.DryRun {
		verb, changed = "checked (dry run, nothing changed)", "would change"
	}
	fmt.Fprintf(w, "%s %d of %d lines in %s", verb, r.Done, r.Lines, r.Elapsed.Round(time.Millisecond))
	if r.Resumed > 0 {
		fmt.Fprintf(w, ", resuming after line %d", r.Resumed)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "%-12s %12s %10s %8s\n", "kind", changed, "unchanged", "failed")
	for _, kind := range reportKinds {
		if c := r.Kinds[kind]; c != nil {
			fmt.Fprintf(w, "%-12s %12d %10d %8d\n", kind, c.Changed, c.Unchanged, c.Failed)
		}
	}
	fmt.Fprintf(w, "requests to the bridge in this run: %d reads, %d writes", r.Reads, r.Writes)
	if r.Pending > 0 {
		fmt.Fprintf(w, "; %d answered 202 (stored, Synapse not updated yet: the bridge retries; check with the bot's reconcile --all)", r.Pending)
	}
	fmt.Fprintln(w)
	if r.Failed == 0 {
		return
	}
	fmt.Fprintf(w, "%d lines failed:\n", r.Failed)
	for _, f := range r.Failures {
		fmt.Fprintf(w, "  line %d (%s): %s\n", f.Line, f.Kind, f.Reason)
	}
	if r.Failed > len(r.Failures) {
		fmt.Fprintf(w, "  … and %d more\n", r.Failed-len(r.Failures))
	}
	if !r.DryRun {
		fmt.Fprintf(w, "the failed lines are in %s; fix them (or their cause) and run again with --input %s\n", r.FailedPath, r.FailedPath)
	}
}

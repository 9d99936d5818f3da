// Command testsummary turns `go test -json` into what scripts/test.sh
// shows: the usual package lines (each "ok" line saying how many of its
// tests were skipped), the output of failed tests, and at the end one line
// saying how many tests ran, passed, failed and were skipped, and why, with
// the command that installs what skipped tests need.
//
//	go test -json ./... | testsummary -save pass1.json
//	testsummary -report pass1.json pass2.json
//
// -save copies the JSON it reads into a file for -report; -v prints every
// test's output, as go test -v would.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"
)

// InstallCommand installs everything the skipped tests this program
// recognises need.
const InstallCommand = "./scripts/install-deps.sh"

func main() {
	save := flag.String("save", "", "also write the JSON read from stdin to this file, for -report")
	report := flag.Bool("report", false, "print the summary of the files given as arguments")
	verbose := flag.Bool("v", false, "print the output of every test, not only of failed ones")
	flag.Parse()
	if err := run(*save, *report, *verbose, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "testsummary:", err)
		os.Exit(1)
	}
}

// errFailed says that tests failed; their output has been printed.
var errFailed = errors.New("tests failed")

func run(save string, report, verbose bool, files []string) error {
	if report {
		var results Results
		for _, name := range files {
			f, err := os.Open(name)
			if err != nil {
				return err
			}
			err = results.Read(f, io.Discard, false)
			_ = f.Close()
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
		results.Report(os.Stdout)
		return nil
	}
	var in io.Reader = os.Stdin
	if save != "" {
		f, err := os.Create(save)
		if err != nil {
			return err
		}
		defer f.Close()
		in = io.TeeReader(os.Stdin, f)
	}
	var results Results
	if err := results.Read(in, os.Stdout, verbose); err != nil {
		return err
	}
	if results.Failed > 0 || len(results.failedPackages) > 0 {
		return errFailed
	}
	return nil
}

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action  string
	Package string
	Test    string
	Output  string
	// ImportPath is set on build events.
	ImportPath string
}

// Results counts tests across one or more `go test -json` streams.
type Results struct {
	Passed, Failed, Skipped int
	// skips holds the skipped tests by reason.
	skips          map[string][]string
	failedPackages []string

	output      map[string][]string // package + test -> output lines held back
	pkgSkips    map[string]int
	heldOK      map[string]string // package -> its "ok" line, until its pass event
	sawAnything bool
}

// Read consumes one stream, printing to w as it goes.
func (r *Results) Read(in io.Reader, w io.Writer, verbose bool) error {
	if r.output == nil {
		r.output, r.pkgSkips, r.heldOK, r.skips = map[string][]string{}, map[string]int{}, map[string]string{}, map[string][]string{}
	}
	lines := bufio.NewScanner(in)
	lines.Buffer(make([]byte, 1<<20), 64<<20)
	for lines.Scan() {
		line := lines.Bytes()
		var e event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &e) != nil {
			// Not test2json: go test's own complaints (a package that
			// does not build, say) come through as they are.
			fmt.Fprintln(w, string(line))
			continue
		}
		r.sawAnything = true
		r.handle(e, w, verbose)
	}
	if err := lines.Err(); err != nil {
		return err
	}
	if !r.sawAnything {
		return errors.New("read no go test -json output")
	}
	return nil
}

func (r *Results) handle(e event, w io.Writer, verbose bool) {
	key := e.Package + "\x00" + e.Test
	switch {
	case e.Action == "build-output":
		fmt.Fprint(w, e.Output)
	case e.Action == "build-fail":
		r.failedPackages = append(r.failedPackages, e.ImportPath)
	case e.Test == "":
		r.packageEvent(e, w)
	case e.Action == "output":
		if verbose {
			fmt.Fprint(w, e.Output)
		} else {
			r.output[key] = append(r.output[key], e.Output)
		}
	case e.Action == "pass":
		r.Passed++
		delete(r.output, key)
	case e.Action == "fail":
		r.Failed++
		for _, l := range r.output[key] {
			fmt.Fprint(w, l)
		}
		delete(r.output, key)
	case e.Action == "skip":
		r.Skipped++
		r.pkgSkips[e.Package]++
		reason := skipMessage(r.output[key])
		r.skips[reason] = append(r.skips[reason], shortPackage(e.Package)+" "+e.Test)
		delete(r.output, key)
	}
}

// packageEvent prints a package's own lines; its "ok" line waits for the
// package's result, to say how many tests it skipped.
func (r *Results) packageEvent(e event, w io.Writer) {
	switch e.Action {
	case "output":
		switch {
		case e.Output == "PASS\n" || e.Output == "testing: warning: no tests to run\n":
			// go test -json runs tests verbosely; without -json these
			// lines are not shown.
		case strings.HasPrefix(e.Output, "ok  \t"):
			r.heldOK[e.Package] = strings.TrimSuffix(e.Output, "\n")
		default:
			fmt.Fprint(w, e.Output)
		}
	case "pass", "skip":
		if ok, held := r.heldOK[e.Package]; held {
			if n := r.pkgSkips[e.Package]; n > 0 {
				ok += fmt.Sprintf("\t(%d skipped)", n)
			}
			fmt.Fprintln(w, ok)
			delete(r.heldOK, e.Package)
		}
	case "fail":
		r.failedPackages = append(r.failedPackages, e.Package)
		if ok, held := r.heldOK[e.Package]; held {
			fmt.Fprintln(w, ok)
			delete(r.heldOK, e.Package)
		}
	}
}

var (
	// "    file_test.go:12: message" as the testing package writes it.
	logPrefix  = regexp.MustCompile(`^\s+[\w.-]+\.go:\d+: `)
	testMarker = regexp.MustCompile(`^\s*(=== (RUN|PAUSE|CONT|NAME)\s|--- (SKIP|PASS|FAIL):)`)
)

// skipMessage is the last line a skipped test logged before its "--- SKIP".
func skipMessage(lines []string) string {
	msg := ""
	for _, l := range lines {
		l = strings.TrimRight(l, "\n")
		if strings.TrimSpace(l) == "" || testMarker.MatchString(l) {
			continue
		}
		if logPrefix.MatchString(l) {
			msg = logPrefix.ReplaceAllString(l, "")
		} else if msg != "" {
			msg += " " + strings.TrimSpace(l) // a continuation line of the same message
		}
	}
	if msg == "" {
		return "(no reason given)"
	}
	return msg
}

func shortPackage(pkg string) string {
	if i := strings.Index(pkg, "/openmeet-bridge/"); i >= 0 {
		return "./" + pkg[i+len("/openmeet-bridge/"):]
	}
	if strings.HasSuffix(pkg, "/openmeet-bridge") {
		return "."
	}
	return pkg
}

// need is what a skipped test lacked, read from its skip message.
type need struct {
	// what names it in the summary line.
	what string
	// installable says InstallCommand installs it.
	installable bool
}

var needs = []struct {
	pattern *regexp.Regexp
	need    func(m []string) need
}{
	{regexp.MustCompile(`PostgreSQL is not available`), func([]string) need { return need{"PostgreSQL", true} }},
	{regexp.MustCompile(`Synapse (\d+\.\d+\.\d+)`), func(m []string) need { return need{"Synapse " + m[1], true} }},
	{regexp.MustCompile(`Synapse is not available`), func([]string) need { return need{"Synapse", true} }},
	{regexp.MustCompile(`browser test needs (node|playwright-core|Chromium)`), func(m []string) need { return need{m[1], true} }},
	{regexp.MustCompile(`promtool is not installed`), func([]string) need { return need{"promtool", true} }},
	{regexp.MustCompile(`git is not installed`), func([]string) need { return need{"git", true} }},
}

func needOf(reason string) need {
	for _, n := range needs {
		if m := n.pattern.FindStringSubmatch(reason); m != nil {
			return n.need(m)
		}
	}
	return need{what: clip(reason, 80)}
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// Report prints the skipped tests by reason, then the summary line.
func (r *Results) Report(w io.Writer) {
	byNeed := map[string]int{}
	installable := map[string]bool{}
	reasons := make([]string, 0, len(r.skips))
	for reason := range r.skips {
		reasons = append(reasons, reason)
	}
	sort.Slice(reasons, func(i, j int) bool {
		if a, b := len(r.skips[reasons[i]]), len(r.skips[reasons[j]]); a != b {
			return a > b
		}
		return reasons[i] < reasons[j]
	})
	if len(reasons) > 0 {
		fmt.Fprintln(w, "\nSkipped tests, by reason:")
	}
	for _, reason := range reasons {
		tests := r.skips[reason]
		n := needOf(reason)
		byNeed[n.what] += len(tests)
		installable[n.what] = n.installable
		examples := tests
		if len(examples) > 3 {
			examples = append(examples[:3:3], fmt.Sprintf("and %d more", len(tests)-3))
		}
		fmt.Fprintf(w, "  %4d  %s\n        (%s)\n", len(tests), clip(reason, 300), strings.Join(examples, ", "))
	}
	total := r.Passed + r.Failed + r.Skipped
	noun := "tests"
	if total == 1 {
		noun = "test"
	}
	line := fmt.Sprintf("=== %d %s ran: %d passed, %d failed, %d skipped", total, noun, r.Passed, r.Failed, r.Skipped)
	if len(byNeed) > 0 {
		whats := make([]string, 0, len(byNeed))
		for what := range byNeed {
			whats = append(whats, what)
		}
		sort.Slice(whats, func(i, j int) bool {
			if byNeed[whats[i]] != byNeed[whats[j]] {
				return byNeed[whats[i]] > byNeed[whats[j]]
			}
			return whats[i] < whats[j]
		})
		parts := make([]string, len(whats))
		anyInstallable := false
		for i, what := range whats {
			if installable[what] {
				parts[i] = fmt.Sprintf("%d need %s", byNeed[what], what)
				anyInstallable = true
			} else {
				parts[i] = fmt.Sprintf("%d: %s", byNeed[what], what)
			}
		}
		line += " (" + strings.Join(parts, ", ") + ")"
		if anyInstallable {
			line += "; " + InstallCommand + " installs what they need"
		}
	}
	if len(r.failedPackages) > 0 {
		line += "; failed packages: " + strings.Join(r.failedPackages, ", ")
	}
	fmt.Fprintln(w, line)
}

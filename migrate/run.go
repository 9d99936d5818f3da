package migrate

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// ErrInterrupted is returned by Run when ctx ended before the export was
// done; the checkpoint holds how far it got, and the next run resumes.
var ErrInterrupted = errors.New("interrupted; run again with the same input to resume")

// maxRun is the most consecutive memberships of one portal sent as one
// batch: the provisioning API's limit. A portal's members should arrive in
// one batch: an adopted room's accounts that are not among the members the
// bridge knows of leave it at the next sync.
const maxRun = 10000

// maxLine is the longest export line accepted.
const maxLine = 1 << 20

// Options say what to migrate and how.
type Options struct {
	// Input is the JSON Lines export.
	Input string
	// BridgeURL is the bridge's base URL (http://host:port); Secret is
	// provisioning.shared_secret.
	BridgeURL, Secret string
	// Rate is the most write requests per second sent to the bridge (each
	// becomes a few Synapse requests); 0 means no limit.
	Rate float64
	// Concurrency is how many records are applied at once.
	Concurrency int
	// DryRun only reads: it prints what would change.
	DryRun bool
	// Checkpoint and Failed are the checkpoint file and the file the failed
	// lines are written to; empty means Input + ".checkpoint" / ".failed".
	Checkpoint, Failed string
	// Restart ignores an existing checkpoint.
	Restart bool
	// Progress receives the progress bar or lines; Bar draws a bar (for a
	// terminal) instead of lines every ProgressEvery.
	Progress      io.Writer
	Bar           bool
	ProgressEvery time.Duration
	// Out receives the dry run's changes and the final report.
	Out io.Writer
	// HTTPClient talks to the bridge; nil means a client with a timeout
	// above the bridge's sync wait.
	HTTPClient *http.Client
}

// Counts are the outcomes of one kind of record.
type Counts struct {
	Changed   int `json:"changed"`
	Unchanged int `json:"unchanged"`
	Failed    int `json:"failed"`
}

// Failure is a line that could not be applied, and why.
type Failure struct {
	Line   int    `json:"line"`
	Kind   string `json:"kind"`
	Reason string `json:"reason"`
}

// maxFailures is how many failure reasons the report keeps (every failed
// line still goes to the failed file).
const maxFailures = 1000

// Report is the outcome of a run, including what earlier runs of the same
// input did before an interruption.
type Report struct {
	Lines    int                `json:"lines"`
	Done     int                `json:"done"`
	Kinds    map[string]*Counts `json:"kinds"`
	Failures []Failure          `json:"failures"`
	Failed   int                `json:"failed"`
	// Resumed is the line the run started after (0 when from the start).
	Resumed int `json:"-"`
	// Requests this run sent to the bridge.
	Reads, Writes, Pending int64         `json:"-"`
	Elapsed                time.Duration `json:"-"`
	DryRun                 bool          `json:"-"`
	FailedPath             string        `json:"-"`
}

func (r *Report) count(kind string) *Counts {
	c := r.Kinds[kind]
	if c == nil {
		c = &Counts{}
		r.Kinds[kind] = c
	}
	return c
}

// checkpoint is what survives an interruption.
type checkpoint struct {
	InputSHA256 string `json:"input_sha256"`
	// DoneLine: every line up to it is applied (or failed and written to
	// the failed file, which was FailedBytes long then).
	DoneLine    int     `json:"done_line"`
	FailedBytes int64   `json:"failed_bytes"`
	Report      *Report `json:"report"`
}

// outcome of one line.
type outcome struct {
	line    int
	kind    string
	raw     []byte
	changed bool
	err     error
	// change describes the change (for the dry run).
	change string
}

type line struct {
	n   int
	raw []byte
	rec *Record
	err error
}

// Run applies the export. It returns the report also with an error (such
// as ErrInterrupted).
func Run(ctx context.Context, opts Options) (*Report, error) {
	if opts.Checkpoint == "" {
		opts.Checkpoint = opts.Input + ".checkpoint"
	}
	if opts.Failed == "" {
		opts.Failed = opts.Input + ".failed"
	}
	if opts.Concurrency < 1 {
		opts.Concurrency = 1
	}
	if opts.ProgressEvery <= 0 {
		opts.ProgressEvery = 10 * time.Second
	}
	if opts.Out == nil {
		opts.Out = io.Discard
	}
	if opts.Progress == nil {
		opts.Progress = io.Discard
	}
	sum, total, tenants, err := scan(opts.Input)
	if err != nil {
		return nil, err
	}
	limit := rate.Inf
	if opts.Rate > 0 {
		limit = rate.Limit(opts.Rate)
	}
	httpClient := opts.HTTPClient
	if httpClient == nil {
		httpClient = &http.Client{Timeout: 10 * time.Minute}
	}
	c := &client{base: opts.BridgeURL, secret: opts.Secret, http: httpClient, limiter: rate.NewLimiter(limit, 1)}
	m := &migration{opts: opts, c: c, tenants: tenants, total: total}
	m.report = &Report{Lines: total, Kinds: map[string]*Counts{}, DryRun: opts.DryRun, FailedPath: opts.Failed}
	var failedFile *os.File
	if !opts.DryRun {
		cp, err := m.loadCheckpoint(sum)
		if err != nil {
			return nil, err
		}
		if failedFile, err = openFailed(opts.Failed, cp); err != nil {
			return nil, err
		}
		defer failedFile.Close()
		if cp != nil {
			m.report = cp.Report
			m.report.Resumed = cp.DoneLine
			m.report.FailedPath = opts.Failed
		}
		m.cp = &checkpoint{InputSHA256: sum, DoneLine: m.report.Resumed, Report: m.report}
	}
	m.failedFile = failedFile
	start := time.Now()
	err = m.apply(ctx)
	m.report.Elapsed = time.Since(start)
	m.report.Reads, m.report.Writes, m.report.Pending = c.reads.Load(), c.writes.Load(), c.pending.Load()
	m.progress(true)
	if err == nil && !opts.DryRun {
		// Finished: a later run of the same input starts from the top again
		// (and finds nothing to change).
		if rmErr := os.Remove(opts.Checkpoint); rmErr != nil && !errors.Is(rmErr, os.ErrNotExist) {
			err = fmt.Errorf("failed to remove the checkpoint: %w", rmErr)
		}
	}
	return m.report, err
}

// scan hashes the input, counts its lines and collects the declared
// tenants, so that progress has a total and a resume can tell whether the
// checkpoint belongs to this file.
func scan(path string) (sum string, lines int, tenants map[string][]byte, err error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, nil, fmt.Errorf("failed to open the export: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	tenants = map[string][]byte{}
	r := bufio.NewScanner(io.TeeReader(f, h))
	r.Buffer(make([]byte, 64<<10), maxLine)
	for r.Scan() {
		lines++
		if rec, err := ParseLine(r.Bytes()); err == nil && rec.Kind == KindTenant {
			tenants[rec.ID] = append([]byte(nil), r.Bytes()...)
		}
	}
	if err := r.Err(); err != nil {
		return "", 0, nil, fmt.Errorf("failed to read the export at line %d: %w", lines+1, err)
	}
	// The scanner may stop reading before EOF only on error; drain anyway.
	_, _ = io.Copy(h, f)
	return hex.EncodeToString(h.Sum(nil)), lines, tenants, nil
}

type migration struct {
	opts       Options
	c          *client
	tenants    map[string][]byte
	total      int
	report     *Report
	cp         *checkpoint
	failedFile *os.File

	started      time.Time
	doneThisRun  int
	lastProgress time.Time
	mu           sync.Mutex
}

func (m *migration) loadCheckpoint(sum string) (*checkpoint, error) {
	if m.opts.Restart {
		return nil, nil
	}
	data, err := os.ReadFile(m.opts.Checkpoint)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("failed to read the checkpoint: %w", err)
	}
	var cp checkpoint
	if err := json.Unmarshal(data, &cp); err != nil || cp.Report == nil {
		return nil, fmt.Errorf("the checkpoint %s is damaged; remove it or pass --restart", m.opts.Checkpoint)
	}
	if cp.InputSHA256 != sum {
		return nil, fmt.Errorf("the checkpoint %s belongs to another export (the input changed); remove it or pass --restart", m.opts.Checkpoint)
	}
	if cp.Report.Kinds == nil {
		cp.Report.Kinds = map[string]*Counts{}
	}
	return &cp, nil
}

// openFailed opens the failed-lines file: truncated on a fresh start, cut
// back to what the checkpoint covers on a resume (lines of an unfinished
// window are tried again).
func openFailed(path string, cp *checkpoint) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("failed to open the failed-lines file: %w", err)
	}
	size := int64(0)
	if cp != nil {
		size = cp.FailedBytes
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return nil, fmt.Errorf("failed to prepare the failed-lines file: %w", err)
	}
	if _, err := f.Seek(size, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func (m *migration) saveCheckpoint() error {
	if m.failedFile != nil {
		if err := m.failedFile.Sync(); err != nil {
			return fmt.Errorf("failed to write the failed-lines file: %w", err)
		}
		pos, err := m.failedFile.Seek(0, io.SeekCurrent)
		if err != nil {
			return err
		}
		m.cp.FailedBytes = pos
	}
	data, err := json.Marshal(m.cp)
	if err != nil {
		return err
	}
	tmp := m.opts.Checkpoint + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("failed to write the checkpoint: %w", err)
	}
	if err := os.Rename(tmp, m.opts.Checkpoint); err != nil {
		return fmt.Errorf("failed to write the checkpoint: %w", err)
	}
	return nil
}

// apply reads the export and applies it window by window: a window is a few
// units of one kind applied in parallel, then recorded in the checkpoint.
// A window never mixes kinds, so users exist before their memberships.
func (m *migration) apply(ctx context.Context) error {
	f, err := os.Open(m.opts.Input)
	if err != nil {
		return fmt.Errorf("failed to open the export: %w", err)
	}
	defer f.Close()
	m.started = time.Now()
	m.lastProgress = m.started
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	window := make([][]line, 0, m.windowSize())
	var run []line
	windowKind := ""
	flushRun := func() {
		if len(run) > 0 {
			window = append(window, run)
			run = nil
		}
	}
	n := 0
	for sc.Scan() {
		n++
		if n <= m.report.Resumed {
			continue
		}
		l := line{n: n, raw: append([]byte(nil), sc.Bytes()...)}
		l.rec, l.err = ParseLine(l.raw)
		kind := "invalid"
		if l.err == nil {
			kind = l.rec.Kind
		}
		group := kind
		if kind == KindEvent {
			group = KindGroup // events and groups are independent of each other
		}
		same := kind == KindMembership && len(run) > 0 && samePortal(run[0].rec, l.rec)
		// A user listed twice for one portal: the later line must win, so it
		// goes into a later window.
		repeated := same && hasUser(run, l.rec.UserSlug)
		if !same || repeated || len(run) >= maxRun {
			flushRun()
		}
		if group != windowKind || repeated || len(window) >= m.windowSize() {
			if err := m.runWindow(ctx, window); err != nil {
				return err
			}
			window, windowKind = window[:0], group
		}
		run = append(run, l)
		if kind != KindMembership {
			flushRun()
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("failed to read the export at line %d: %w", n+1, err)
	}
	flushRun()
	return m.runWindow(ctx, window)
}

func (m *migration) windowSize() int { return 4 * m.opts.Concurrency }

func samePortal(a, b *Record) bool {
	return a != nil && b != nil && a.Tenant == b.Tenant && a.PortalKind == b.PortalKind && a.PortalSlug == b.PortalSlug
}

func hasUser(run []line, slug string) bool {
	for _, l := range run {
		if l.rec.UserSlug == slug {
			return true
		}
	}
	return false
}

// runWindow applies the units in parallel, then records their outcomes.
// Requests are not tied to ctx: a window that has started is finished, so
// an interruption never leaves a record half-sent; ctx is checked before.
func (m *migration) runWindow(ctx context.Context, window [][]line) error {
	if len(window) == 0 {
		return nil
	}
	if ctx.Err() != nil {
		return ErrInterrupted
	}
	results := make([][]outcome, len(window))
	sem := make(chan struct{}, m.opts.Concurrency)
	var wg sync.WaitGroup
	for i, unit := range window {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			results[i] = m.applyUnit(context.WithoutCancel(ctx), unit)
		}()
	}
	wg.Wait()
	last := 0
	for _, outs := range results {
		for _, o := range outs {
			m.record(o)
			last = max(last, o.line)
		}
	}
	m.doneThisRun += countLines(window)
	m.report.Done = last
	if m.cp != nil {
		m.cp.DoneLine = last
		if err := m.saveCheckpoint(); err != nil {
			return err
		}
	}
	m.progress(false)
	return nil
}

func countLines(window [][]line) int {
	n := 0
	for _, unit := range window {
		n += len(unit)
	}
	return n
}

func (m *migration) record(o outcome) {
	c := m.report.count(o.kind)
	switch {
	case o.err != nil:
		c.Failed++
		m.report.Failed++
		if len(m.report.Failures) < maxFailures {
			m.report.Failures = append(m.report.Failures, Failure{Line: o.line, Kind: o.kind, Reason: o.err.Error()})
		}
		if m.failedFile != nil {
			m.writeFailed(o.raw)
		}
		if m.opts.DryRun {
			fmt.Fprintf(m.opts.Out, "line %d: would fail: %v\n", o.line, o.err)
		}
	case o.changed:
		c.Changed++
		if m.opts.DryRun {
			fmt.Fprintf(m.opts.Out, "line %d: would %s\n", o.line, o.change)
		}
	default:
		c.Unchanged++
	}
}

// progress writes the progress bar (redrawn in place) or, at most every
// ProgressEvery, a line; final forces one.
func (m *migration) progress(final bool) {
	now := time.Now()
	if !final && !m.opts.Bar && now.Sub(m.lastProgress) < m.opts.ProgressEvery {
		return
	}
	m.lastProgress = now
	done := m.report.Done
	if done < m.report.Resumed {
		done = m.report.Resumed
	}
	elapsed := now.Sub(m.started).Seconds()
	perSec := 0.0
	if elapsed > 0 {
		perSec = float64(m.doneThisRun) / elapsed
	}
	eta := "?"
	if perSec > 0 {
		eta = (time.Duration(float64(m.total-done)/perSec) * time.Second).Round(time.Second).String()
	}
	pct := 100.0
	if m.total > 0 {
		pct = 100 * float64(done) / float64(m.total)
	}
	if m.opts.Bar {
		const width = 30
		filled := int(math.Round(pct / 100 * width))
		bar := fmt.Sprintf("[%s%s]", repeat('#', filled), repeat('.', width-filled))
		fmt.Fprintf(m.opts.Progress, "\r%s %d/%d lines (%.1f%%) %.1f/s ETA %s, %d failed ", bar, done, m.total, pct, perSec, eta, m.report.Failed)
		if final {
			fmt.Fprintln(m.opts.Progress)
		}
		return
	}
	fmt.Fprintf(m.opts.Progress, "progress: %d/%d lines (%.1f%%), %.1f lines/s, ETA %s, %d failed\n", done, m.total, pct, perSec, eta, m.report.Failed)
}

func repeat(c byte, n int) string {
	if n <= 0 {
		return ""
	}
	b := make([]byte, n)
	for i := range b {
		b[i] = c
	}
	return string(b)
}

// writeFailed appends a failed line to the failed file, which starts with
// the export's tenant lines so that it is a complete export to feed back.
func (m *migration) writeFailed(raw []byte) {
	if pos, err := m.failedFile.Seek(0, io.SeekCurrent); err == nil && pos == 0 {
		ids := make([]string, 0, len(m.tenants))
		for id := range m.tenants {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		for _, id := range ids {
			_, _ = m.failedFile.Write(append(m.tenants[id], '\n'))
		}
	}
	_, _ = m.failedFile.Write(append(raw, '\n'))
}

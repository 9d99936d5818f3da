// Package deploy_test checks the monitoring that ships in deploy/: the
// alert rules pass promtool's checks and unit tests, the dashboard's
// queries parse, and every metric a rule or a panel uses is exported by a
// running bridge from its start.
package deploy_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"gopkg.in/yaml.v3"

	"github.com/openmeet-team/openmeet-bridge/appservice"
	"github.com/openmeet-team/openmeet-bridge/bridge"
	"github.com/openmeet-team/openmeet-bridge/internal/harness"
)

const (
	rulesFile     = "prometheus/openmeet-bridge.rules.yml"
	rulesTestFile = "prometheus/openmeet-bridge.rules.test.yml"
	promConfig    = "prometheus/prometheus.example.yml"
	dashboardFile = "grafana/openmeet-bridge.json"
)

// madeByPrometheus are series Prometheus itself makes, not the bridge.
var madeByPrometheus = map[string]bool{"up": true, "ALERTS": true}

// promtool returns the path of promtool, skipping the test when it is
// missing (failing it under CI=true).
func promtool(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		msg := "promtool is not installed (Debian package prometheus)"
		if harness.Required() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return path
}

func runPromtool(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command(promtool(t), args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func TestRulesPassPromtool(t *testing.T) {
	t.Parallel()
	runPromtool(t, ".", "check", "rules", rulesFile)
	runPromtool(t, "prometheus", "test", "rules", filepath.Base(rulesTestFile))
	runPromtool(t, "prometheus", "check", "config", filepath.Base(promConfig))
}

// The dashboard's queries, with Grafana's variables filled in, are valid
// PromQL: promtool checks them as recording rules.
func TestDashboardQueriesParse(t *testing.T) {
	t.Parallel()
	tool := promtool(t)
	var rules []map[string]string
	for i, expr := range dashboardQueries(t) {
		rules = append(rules, map[string]string{"record": fmt.Sprintf("dashboard:query_%d", i), "expr": grafanaToPromQL(expr)})
	}
	data, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "dashboard.rules.yml")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(tool, "check", "rules", file).CombinedOutput(); err != nil {
		t.Fatalf("dashboard queries: %v\n%s", err, out)
	}
}

// grafanaToPromQL fills in the dashboard's variables as Grafana would.
func grafanaToPromQL(expr string) string {
	return strings.NewReplacer("$__rate_interval", "1m", "$job", "openmeet-bridge", "$instance", ".+").Replace(expr)
}

// TestMonitoringUsesExportedMetrics starts a bridge and checks that every
// metric the rules and the dashboard use is on its /metrics before anything
// happened (a series that appears only later makes rules miss the first
// increase and panels show "no data"), and that the dashboard charts every
// openmeet_ metric.
func TestMonitoringUsesExportedMetrics(t *testing.T) {
	t.Parallel()
	exported := scrape(t, startBridge(t))

	used := map[string][]string{} // metric -> where
	for _, expr := range ruleExpressions(t) {
		for _, name := range metricNames(expr) {
			used[name] = append(used[name], rulesFile)
		}
	}
	charted := map[string]bool{}
	for _, expr := range dashboardQueries(t) {
		for _, name := range metricNames(expr) {
			used[name] = append(used[name], dashboardFile)
			charted[strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_count"), "_sum")] = true
		}
	}
	if len(used) < 10 {
		t.Fatalf("found only %d metric names in the rules and the dashboard: %v", len(used), used)
	}
	var missing []string
	for name, where := range used {
		if !exported[name] && !madeByPrometheus[name] {
			slices.Sort(where)
			missing = append(missing, fmt.Sprintf("%s (used in %s)", name, strings.Join(slices.Compact(where), ", ")))
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("metrics used but not exported by a fresh bridge:\n  %s", strings.Join(missing, "\n  "))
	}
	var uncharted []string
	for name := range exported {
		family := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_count"), "_sum")
		if strings.HasPrefix(name, "openmeet_") && !charted[family] {
			uncharted = append(uncharted, family)
		}
	}
	sort.Strings(uncharted)
	if uncharted = slices.Compact(uncharted); len(uncharted) > 0 {
		t.Errorf("openmeet_ metrics no dashboard panel shows: %v", uncharted)
	}
}

// startBridge starts a bridge on SQLite whose homeserver does not answer,
// with metrics on a listener of their own, and returns that address.
func startBridge(t *testing.T) string {
	t.Helper()
	example, err := os.ReadFile("../example-config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := bridge.ParseConfig(example, nil)
	if err != nil {
		t.Fatal(err)
	}
	port, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	_ = closed.Close()
	cfg.Homeserver.Address, cfg.Homeserver.Domain = "http://"+closed.Addr().String(), "openmeet.test"
	cfg.Appservice.Address, cfg.Appservice.Port = fmt.Sprintf("http://127.0.0.1:%d", port), port
	cfg.Appservice.ASToken, cfg.Appservice.HSToken = appservice.NewToken(), appservice.NewToken()
	cfg.Provisioning.SharedSecret = appservice.NewToken()
	cfg.Database.URI = "file:" + filepath.Join(t.TempDir(), "bridge.db") + "?_txlock=immediate"
	cfg.Metrics.Listen = "127.0.0.1:0"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	b := bridge.New(cfg, zerolog.Nop())
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := b.Stop(ctx); err != nil {
			t.Error(err)
		}
	})
	return b.OpsAddr().String()
}

// scrape returns the names of the samples on addr's /metrics.
func scrape(t *testing.T, addr string) map[string]bool {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %d", resp.StatusCode)
	}
	names := map[string]bool{}
	lines := bufio.NewScanner(resp.Body)
	for lines.Scan() {
		line := lines.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if end := strings.IndexAny(line, "{ "); end > 0 {
			names[line[:end]] = true
		}
	}
	if err := lines.Err(); err != nil {
		t.Fatal(err)
	}
	return names
}

// ruleExpressions reads every expr of the rules file.
func ruleExpressions(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Groups []struct {
			Rules []struct {
				Expr string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(data, &file); err != nil {
		t.Fatal(err)
	}
	var exprs []string
	for _, g := range file.Groups {
		for _, r := range g.Rules {
			exprs = append(exprs, r.Expr)
		}
	}
	return exprs
}

// dashboardQueries reads every query of the dashboard: the panels'
// targets (also inside collapsed rows) and the template variables'
// label_values(...) selectors.
func dashboardQueries(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	type panel struct {
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
		Panels []json.RawMessage `json:"panels"`
	}
	var dash struct {
		Panels     []json.RawMessage `json:"panels"`
		Templating struct {
			List []struct {
				Type       string `json:"type"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	var exprs []string
	var walk func([]json.RawMessage)
	walk = func(raw []json.RawMessage) {
		for _, r := range raw {
			var p panel
			if err := json.Unmarshal(r, &p); err != nil {
				t.Fatal(err)
			}
			for _, target := range p.Targets {
				if target.Expr != "" {
					exprs = append(exprs, target.Expr)
				}
			}
			walk(p.Panels)
		}
	}
	walk(dash.Panels)
	labelValues := regexp.MustCompile(`^label_values\((.+),\s*[A-Za-z_][A-Za-z0-9_]*\)$`)
	for _, v := range dash.Templating.List {
		if v.Type != "query" {
			continue
		}
		m := labelValues.FindStringSubmatch(v.Definition)
		if m == nil {
			t.Fatalf("template variable query %q is not label_values(selector, label)", v.Definition)
		}
		exprs = append(exprs, m[1])
	}
	return exprs
}

var (
	promqlStrings   = regexp.MustCompile("\"(?:[^\"\\\\]|\\\\.)*\"|'(?:[^'\\\\]|\\\\.)*'|`[^`]*`")
	promqlMatchers  = regexp.MustCompile(`\{[^{}]*\}`)
	promqlRanges    = regexp.MustCompile(`\[[^\[\]]*\]`)
	promqlGrouping  = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)`)
	promqlIdentRe   = regexp.MustCompile(`[A-Za-z_:][A-Za-z0-9_:]*`)
	promqlOperators = map[string]bool{
		"and": true, "or": true, "unless": true, "bool": true, "offset": true, "by": true, "without": true,
		"on": true, "ignoring": true, "group_left": true, "group_right": true, "inf": true, "nan": true, "atan2": true,
	}
)

// metricNames returns the metric names a PromQL expression selects: what
// is left once strings, label matchers, ranges and grouping labels are
// taken out, without function names (followed by "("), operators and the
// exponents of numbers.
func metricNames(expr string) []string {
	expr = promqlStrings.ReplaceAllString(expr, `""`)
	expr = promqlMatchers.ReplaceAllString(expr, " ")
	expr = promqlRanges.ReplaceAllString(expr, " ")
	expr = promqlGrouping.ReplaceAllString(expr, " ")
	var names []string
	for _, loc := range promqlIdentRe.FindAllStringIndex(expr, -1) {
		name := expr[loc[0]:loc[1]]
		if loc[0] > 0 && strings.ContainsAny(expr[loc[0]-1:loc[0]], "0123456789.$") {
			continue // 1e3, 0.5e-2, a $variable
		}
		if rest := strings.TrimLeft(expr[loc[1]:], " \t\n"); strings.HasPrefix(rest, "(") {
			continue // a function or an aggregation
		}
		if promqlOperators[strings.ToLower(name)] {
			continue
		}
		names = append(names, name)
	}
	slices.Sort(names)
	return slices.Compact(names)
}

func TestMetricNames(t *testing.T) {
	t.Parallel()
	tests := []struct {
		expr string
		want []string
	}{
		{`up{job="openmeet-bridge"} == 0`, []string{"up"}},
		{`absent(up{job="x"})`, []string{"up"}},
		{"(time() - max by (job) (a_seconds{job=\"x\"}) > 900)\nand on (job)\n(sum by (job) (increase(b_total{endpoint=~\"rooms/send/.+|x{1}\"}[15m])) > 0)",
			[]string{"a_seconds", "b_total"}},
		{`histogram_quantile(0.99, sum by (le) (rate(c_bucket{instance=~"$instance"}[$__rate_interval])))`, []string{"c_bucket"}},
		{`sum(rate(d_total[5m])) by (reason) / ignoring(reason) group_left sum(e) * 1e3 + 2.5E-2`, []string{"d_total", "e"}},
		{`f offset 5m unless on(instance) g or bool h`, []string{"f", "g", "h"}},
		{`sum without (le) (i:recorded:rate5m{a="by (x)"})`, []string{"i:recorded:rate5m"}},
		{`max_over_time(j[10m:1m]) > Inf`, []string{"j"}},
	}
	for _, tt := range tests {
		if got := metricNames(tt.expr); !slices.Equal(got, tt.want) {
			t.Errorf("metricNames(%q) = %v, want %v", tt.expr, got, tt.want)
		}
	}
}

// Every rule is an alert with a severity, a summary and a runbook line, and
// the unit tests show each one firing.
func TestEveryAlertHasARunbook(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Groups []struct {
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(data, &file); err != nil {
		t.Fatal(err)
	}
	tested, err := os.ReadFile(rulesTestFile)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, g := range file.Groups {
		for _, r := range g.Rules {
			n++
			if r.Alert == "" {
				t.Errorf("rule %d is not an alert", n)
				continue
			}
			if r.Annotations["runbook"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("%s lacks a summary or a runbook annotation", r.Alert)
			}
			if s := r.Labels["severity"]; s != "critical" && s != "warning" && s != "info" {
				t.Errorf("%s: severity %q", r.Alert, s)
			}
			// Each alert is shown to fire in the unit tests.
			if !bytes.Contains(tested, []byte("alertname: "+r.Alert+"\n        exp_alerts:\n          - exp_labels")) {
				t.Errorf("%s has no unit test in which it fires", r.Alert)
			}
		}
	}
	if n == 0 {
		t.Fatal("no rules")
	}
}

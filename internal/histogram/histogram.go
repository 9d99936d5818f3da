// Package histogram reads a Prometheus histogram from a /metrics page, for
// benchmarks that report what the bridge's own histograms say.
package histogram

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Histogram is the cumulative bucket counts of one histogram without
// labels other than le.
type Histogram struct {
	Bounds []float64 // upper bounds, ascending, the last +Inf
	Counts []float64 // cumulative counts per bound
}

// Scrape reads histogram name from the metrics page at url.
func Scrape(url, name string) (Histogram, error) {
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return Histogram{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Histogram{}, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return Parse(resp.Body, name)
}

// Parse reads histogram name from a page in Prometheus' text format.
func Parse(r io.Reader, name string) (Histogram, error) {
	type bucket struct{ bound, count float64 }
	var buckets []bucket
	prefix := name + `_bucket{le="`
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, prefix)
		if !ok {
			continue
		}
		le, value, ok := strings.Cut(rest, `"} `)
		if !ok {
			return Histogram{}, fmt.Errorf("cannot read %q", line)
		}
		bound, err := strconv.ParseFloat(le, 64)
		if err != nil {
			return Histogram{}, fmt.Errorf("cannot read %q: %w", line, err)
		}
		count, err := strconv.ParseFloat(strings.Fields(value)[0], 64)
		if err != nil {
			return Histogram{}, fmt.Errorf("cannot read %q: %w", line, err)
		}
		buckets = append(buckets, bucket{bound, count})
	}
	if err := sc.Err(); err != nil {
		return Histogram{}, err
	}
	if len(buckets) == 0 {
		return Histogram{}, fmt.Errorf("no histogram %s on the page", name)
	}
	sort.Slice(buckets, func(i, j int) bool { return buckets[i].bound < buckets[j].bound })
	var h Histogram
	for _, b := range buckets {
		h.Bounds = append(h.Bounds, b.bound)
		h.Counts = append(h.Counts, b.count)
	}
	return h, nil
}

// Sub is what was observed between an earlier scrape and this one.
func (h Histogram) Sub(earlier Histogram) Histogram {
	out := Histogram{Bounds: h.Bounds, Counts: make([]float64, len(h.Counts))}
	for i := range h.Counts {
		out.Counts[i] = h.Counts[i]
		if i < len(earlier.Counts) {
			out.Counts[i] -= earlier.Counts[i]
		}
	}
	return out
}

// Count is the number of observations.
func (h Histogram) Count() float64 {
	if len(h.Counts) == 0 {
		return 0
	}
	return h.Counts[len(h.Counts)-1]
}

// Quantile estimates the q-quantile as Prometheus' histogram_quantile does:
// linear within the bucket it falls into (the upper bound of the last
// finite bucket if it falls beyond).
func (h Histogram) Quantile(q float64) time.Duration {
	total := h.Count()
	if total == 0 {
		return 0
	}
	rank := q * total
	lower, below := 0.0, 0.0
	for i, bound := range h.Bounds {
		if h.Counts[i] >= rank {
			if math.IsInf(bound, 1) {
				return seconds(lower)
			}
			in := h.Counts[i] - below
			if in == 0 {
				return seconds(bound)
			}
			return seconds(lower + (bound-lower)*(rank-below)/in)
		}
		lower, below = bound, h.Counts[i]
	}
	return seconds(lower)
}

// Within is the share of observations at or below bound (a bucket bound;
// otherwise the next smaller one counts).
func (h Histogram) Within(bound float64) float64 {
	total := h.Count()
	if total == 0 {
		return 0
	}
	n := 0.0
	for i, b := range h.Bounds {
		if b <= bound {
			n = h.Counts[i]
		}
	}
	return n / total
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// String is a one-line summary: count, p50, p99, share within 2 ms.
func (h Histogram) String() string {
	return fmt.Sprintf("%.0f observed, p50 %v, p99 %v (bucket estimates), %.2f%% within 2 ms",
		h.Count(), h.Quantile(0.5).Round(time.Microsecond), h.Quantile(0.99).Round(time.Microsecond), 100*h.Within(0.002))
}

package histogram

import (
	"strings"
	"testing"
	"time"
)

func TestParseAndQuantiles(t *testing.T) {
	page := `# HELP x_seconds help
# TYPE x_seconds histogram
x_seconds_bucket{le="0.001"} 50
x_seconds_bucket{le="0.002"} 90
x_seconds_bucket{le="0.004"} 100
x_seconds_bucket{le="+Inf"} 100
x_seconds_sum 0.1
x_seconds_count 100
y_seconds_bucket{le="1"} 7
`
	h, err := Parse(strings.NewReader(page), "x_seconds")
	if err != nil {
		t.Fatal(err)
	}
	if h.Count() != 100 {
		t.Fatalf("count %v", h.Count())
	}
	if got := h.Quantile(0.5); got != time.Millisecond {
		t.Fatalf("p50 %v", got)
	}
	if got := h.Quantile(0.99); got != 3800*time.Microsecond {
		t.Fatalf("p99 %v", got)
	}
	if got := h.Within(0.002); got != 0.9 {
		t.Fatalf("within 2 ms %v", got)
	}
	earlier, _ := Parse(strings.NewReader(`x_seconds_bucket{le="0.001"} 50
x_seconds_bucket{le="0.002"} 50
x_seconds_bucket{le="0.004"} 50
x_seconds_bucket{le="+Inf"} 50
`), "x_seconds")
	d := h.Sub(earlier)
	if d.Count() != 50 || d.Within(0.001) != 0 || d.Quantile(0.5) != 1625*time.Microsecond {
		t.Fatalf("difference %+v: p50 %v", d, d.Quantile(0.5))
	}
	if _, err := Parse(strings.NewReader(page), "z_seconds"); err == nil {
		t.Fatal("a missing histogram was read")
	}
}

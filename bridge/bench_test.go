package bridge_test

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/openmeet-team/openmeet-bridge/internal/harness"
)

// cpuSeconds is the user+system CPU time of a process, from /proc.
func cpuSeconds(pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses.
	fields := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	utime, _ := strconv.ParseFloat(fields[11], 64)
	stime, _ := strconv.ParseFloat(fields[12], 64)
	return (utime + stime) / 100 // USER_HZ
}

func selfCPUSeconds() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func diffCounts(after, before map[string]int) map[string]int {
	out := map[string]int{}
	for k, v := range after {
		if d := v - before[k]; d > 0 {
			out[k] = d
		}
	}
	return out
}

func formatCounts(counts map[string]int) string {
	keys := make([]string, 0, len(counts))
	total := 0
	for k, v := range counts {
		keys = append(keys, k)
		total += v
	}
	sort.Strings(keys)
	var b strings.Builder
	fmt.Fprintf(&b, "total %d:", total)
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%d", k, counts[k])
	}
	return b.String()
}

// BenchmarkProvisionLargeEvent provisions an event with 1,000 attendees
// through one batch call against the real Synapse, and reports the wall
// time until Synapse has them all, the homeserver requests it took, and the
// CPU time of the bridge process and of Synapse.
func BenchmarkProvisionLargeEvent(b *testing.B) {
	const attendees = 1000
	hs := harness.SharedSynapse(b)
	br, _ := startOnSynapse(b, hs, b.TempDir())
	tenant := harness.UniqueName("bench-")

	start, hsCPU, selfCPU, before := time.Now(), cpuSeconds(hs.PID()), selfCPUSeconds(), br.HS.RequestCounts()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := range attendees {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			provisionUser(b, br, tenant, fmt.Sprintf("user%04d", i), fmt.Sprintf("Attendee %d", i))
		}()
	}
	wg.Wait()
	b.Logf("provisioning %d users: %s wall, bridge CPU %.2fs, Synapse CPU %.2fs; homeserver requests %s",
		attendees, time.Since(start).Round(time.Millisecond), selfCPUSeconds()-selfCPU, cpuSeconds(hs.PID())-hsCPU,
		formatCounts(diffCounts(br.HS.RequestCounts(), before)))

	set := make([]map[string]string, attendees)
	for i := range set {
		set[i] = map[string]string{"user_slug": fmt.Sprintf("user%04d", i), "role": "attendee"}
	}
	set[0]["role"], set[1]["role"] = "host", "moderator"
	b.ResetTimer()
	for n := range b.N {
		base := fmt.Sprintf("/tenants/%s/events/big-%d", tenant, n)
		if code := provision(b, br, "PUT", base, map[string]any{"name": "Big event", "visibility": "public"}, nil); code != 200 {
			b.Fatalf("PUT event: %d", code)
		}
		start, hsCPU, selfCPU, before = time.Now(), cpuSeconds(hs.PID()), selfCPUSeconds(), br.HS.RequestCounts()
		var p portalOut
		code := provision(b, br, "POST", base+"/members:batch", map[string]any{"set": set}, nil)
		eventually(b, 10*time.Minute, "the event to be synced", func() bool {
			provision(b, br, "GET", base, nil, &p)
			return p.State == "synced"
		})
		wall := time.Since(start)
		bridgeCPU, synapseCPU := selfCPUSeconds()-selfCPU, cpuSeconds(hs.PID())-hsCPU
		counts := diffCounts(br.HS.RequestCounts(), before)
		b.ReportMetric(wall.Seconds(), "wall_s")
		b.ReportMetric(bridgeCPU, "bridge_cpu_s")
		b.ReportMetric(synapseCPU, "synapse_cpu_s")
		b.Logf("batch of %d (HTTP %d): %s wall, bridge CPU %.2fs (%.1f%% of Synapse's %.2fs); homeserver requests %s",
			attendees, code, wall.Round(time.Millisecond), bridgeCPU, 100*bridgeCPU/synapseCPU, synapseCPU, formatCounts(counts))
	}
}

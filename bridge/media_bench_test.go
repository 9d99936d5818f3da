package bridge_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/openmeet-team/openmeet-bridge/internal/harness"
)

// BenchmarkMedia moves an 8 MiB file through the bridge (upload as a
// ghost, download by signed URL) and, in the same run, straight to and
// from Synapse as a Matrix user, for the bridge's overhead. B/op shows that
// the bridge streams: it stays far below the file's size.
//
//	go test -run '^$' -bench BenchmarkMedia -benchtime 10x -count 5 ./bridge/
func BenchmarkMedia(b *testing.B) {
	hs := harness.SharedSynapse(b)
	br := startBridge(b, clientConfig(b, hs))
	eventually(b, 60*time.Second, "the bridge to be ready", func() bool { return br.HS.Ready() })
	ada, alice, _ := mediaRoom(b, hs, br)
	ctx := context.Background()
	file := make([]byte, 8<<20)
	_, _ = rand.Read(file)
	var up uploaded
	if code := uploadFile(b, br, ada, "/rooms/events/meetup/upload/bench-seed?filename=seed.zip", "application/zip", file, &up); code != 200 {
		b.Fatalf("seed upload: %d", code)
	}
	seedMXC, err := alice.Upload(ctx, "application/zip", "seed.zip", file)
	if err != nil {
		b.Fatal(err)
	}
	bench := func(name string, op func(i int)) {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(file)))
			b.ReportAllocs()
			durations := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := range b.N {
				start := time.Now()
				op(i)
				durations = append(durations, time.Since(start))
			}
			b.StopTimer()
			sort.Slice(durations, func(i, j int) bool { return durations[i] < durations[j] })
			b.ReportMetric(float64(durations[len(durations)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(durations[len(durations)*9/10].Microseconds())/1000, "p90-ms")
		})
	}
	run := fmt.Sprint(time.Now().UnixNano())
	// Each upload a new txn id, also when -count runs the sub-benchmark again.
	seq := 0
	bench("upload/bridge", func(int) {
		seq++
		var out uploaded
		if code := uploadFile(b, br, ada, fmt.Sprintf("/rooms/events/meetup/upload/bench-%s-%d?filename=f.zip", run, seq), "application/zip", file, &out); code != 200 || out.ContentURI == "" {
			b.Fatalf("upload: %d %+v", code, out)
		}
	})
	bench("upload/synapse-direct", func(int) {
		if _, err := alice.Upload(ctx, "application/zip", "f.zip", file); err != nil {
			b.Fatal(err)
		}
	})
	bench("download/bridge", func(int) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+br.Addr().String()+up.URL, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != 200 || n != int64(len(file)) {
			b.Fatalf("download: %d, %d bytes", resp.StatusCode, n)
		}
	})
	bench("download/synapse-direct", func(int) {
		req, _ := http.NewRequest(http.MethodGet, hs.URL+"/_matrix/client/v1/media/download/"+strings.TrimPrefix(seedMXC, "mxc://"), nil)
		req.Header.Set("Authorization", "Bearer "+alice.AccessToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != 200 || n != int64(len(file)) {
			b.Fatalf("direct download: %d, %d bytes", resp.StatusCode, n)
		}
	})
}

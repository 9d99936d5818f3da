package bridge_test

import (
	"context"
	"flag"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/openmeet-team/openmeet-bridge/bridge"
	"github.com/openmeet-team/openmeet-bridge/internal/harness"
	"github.com/openmeet-team/openmeet-bridge/internal/histogram"
)

var (
	deliveryRooms    = flag.Int("delivery.rooms", 20, "BenchmarkStreamDeliveryOnSynapse: portals, each with one OpenMeet user whose stream is open")
	deliveryRate     = flag.Float64("delivery.rate", 20, "BenchmarkStreamDeliveryOnSynapse: messages per second the Matrix client sends, over all rooms")
	deliveryMessages = flag.Int("delivery.messages", 400, "BenchmarkStreamDeliveryOnSynapse: messages per iteration")
)

// BenchmarkStreamDeliveryOnSynapse measures a message's way from a Matrix
// client to a browser's stream on the real Synapse of the harness: an
// ordinary Matrix user in delivery.rooms portals sends delivery.messages
// messages, round robin, at delivery.rate a second (each send on its own,
// at most 16 at a time); each is timed from just before the client's send
// until the stream of the room's OpenMeet user has read its frame. Beside
// that end-to-end figure, the bridge's own share from its histogram
// openmeet_stream_delivery_seconds (Synapse's push arriving → the frame
// written), read from /metrics before and after.
//
//	go test -run XXX -bench StreamDeliveryOnSynapse -benchtime 1x ./bridge/ [-delivery.rate 20 -delivery.rooms 20 -delivery.messages 400]
func BenchmarkStreamDeliveryOnSynapse(b *testing.B) {
	hs := harness.SharedSynapse(b)
	// Quiet: the benchmark's report is what it logs.
	br := bridge.New(clientConfig(b, hs), zerolog.Nop())
	if err := br.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { stopBridge(b, br) })
	eventually(b, 60*time.Second, "the bridge to be ready", func() bool { return br.HS.Ready() })
	tenant := harness.UniqueName("lat-")
	rooms := *deliveryRooms
	sender := hs.NewUser(b, "sender")
	streams := make([]*eventStream, rooms)
	roomIDs := make([]string, rooms)
	for r := range rooms {
		slug := fmt.Sprintf("u%03d", r)
		provisionUser(b, br, tenant, slug, "User "+slug)
		base := fmt.Sprintf("/tenants/%s/events/room%03d", tenant, r)
		provision(b, br, "PUT", base, map[string]any{"name": "Room " + slug, "visibility": "public"}, nil)
		var batch struct {
			Portal portalOut `json:"portal"`
		}
		provision(b, br, "POST", base+"/members:batch", map[string]any{"set": []map[string]string{{"user_slug": slug, "role": "host"}}}, &batch)
		token := mintJWT(b, jwtSecret, tenant, slug, time.Hour)
		eventually(b, 60*time.Second, "the user to be in the room", func() bool {
			var mine struct {
				Rooms []map[string]any `json:"rooms"`
			}
			call(b, br, token, "GET", "/rooms", nil, &mine)
			return len(mine.Rooms) == 1
		})
		roomID, err := sender.Join(context.Background(), batch.Portal.Alias)
		if err != nil {
			b.Fatal(err)
		}
		roomIDs[r] = roomID
		var code int
		if streams[r], code = openStream(b, br, token, "", ""); code != 200 {
			b.Fatalf("stream: %d", code)
		}
	}
	// Warm up: one message in each room, read.
	for r := range rooms {
		sendAs(b, sender, roomIDs[r], "warm-"+strconv.Itoa(r))
		streams[r].waitFor(b, "the warm-up message", isMessage("warm-"+strconv.Itoa(r)))
	}
	metricsURL := "http://" + br.Addr().String() + "/metrics"
	b.ResetTimer()
	for n := range b.N {
		deliveryRun(b, br, sender, streams, roomIDs, metricsURL, n)
	}
}

func sendAs(b *testing.B, sender *harness.MatrixUser, roomID, body string) {
	if _, err := sender.SendText(context.Background(), roomID, body); err != nil {
		b.Error(err)
	}
}

func deliveryRun(b *testing.B, br *bridge.Bridge, sender *harness.MatrixUser, streams []*eventStream, roomIDs []string, metricsURL string, run int) {
	messages, rooms := *deliveryMessages, len(streams)
	before, err := histogram.Scrape(metricsURL, "openmeet_stream_delivery_seconds")
	if err != nil {
		b.Fatal(err)
	}
	txnBefore, err := histogram.Scrape(metricsURL, "openmeet_appservice_transaction_seconds")
	if err != nil {
		b.Fatal(err)
	}
	sent := make([]time.Time, messages)
	read := make([]time.Time, messages)
	prefix := fmt.Sprintf("run%d-", run)
	var readers sync.WaitGroup
	for r, s := range streams {
		want := (messages - r + rooms - 1) / rooms // messages r, r+rooms, …
		readers.Add(1)
		go func() {
			defer readers.Done()
			timeout := time.After(2 * time.Minute)
			for got := 0; got < want; {
				select {
				case evt, ok := <-s.events:
					if !ok {
						b.Error("a stream ended")
						return
					}
					body := bodyOf(evt)
					if evt.Event != "m.room.message" || !strings.HasPrefix(body, prefix) {
						continue
					}
					i, err := strconv.Atoi(strings.TrimPrefix(body, prefix))
					if err != nil || i < 0 || i >= messages || !read[i].IsZero() {
						b.Errorf("unexpected message %q", body)
						return
					}
					read[i] = time.Now()
					got++
				case <-timeout:
					b.Errorf("stream %d read %d of %d messages", r, got, want)
					return
				}
			}
		}()
	}
	interval := time.Duration(float64(time.Second) / *deliveryRate)
	sem := make(chan struct{}, 16)
	var senders sync.WaitGroup
	start := time.Now()
	for i := range messages {
		time.Sleep(time.Until(start.Add(time.Duration(i) * interval)))
		sem <- struct{}{}
		senders.Add(1)
		go func() {
			defer func() { <-sem; senders.Done() }()
			sent[i] = time.Now()
			sendAs(b, sender, roomIDs[i%rooms], prefix+strconv.Itoa(i))
		}()
	}
	senders.Wait()
	readers.Wait()
	elapsed := time.Since(start)
	if b.Failed() {
		b.FailNow()
	}
	after, err := histogram.Scrape(metricsURL, "openmeet_stream_delivery_seconds")
	if err != nil {
		b.Fatal(err)
	}
	share := after.Sub(before)
	txnAfter, err := histogram.Scrape(metricsURL, "openmeet_appservice_transaction_seconds")
	if err != nil {
		b.Fatal(err)
	}
	txns := txnAfter.Sub(txnBefore)
	e2e := make([]time.Duration, messages)
	for i := range messages {
		e2e[i] = read[i].Sub(sent[i])
	}
	slices.Sort(e2e)
	p50, p99 := e2e[messages/2], e2e[min(messages-1, messages*99/100)]
	b.ReportMetric(float64(p50.Microseconds())/1000, "e2e_p50_ms")
	b.ReportMetric(float64(p99.Microseconds())/1000, "e2e_p99_ms")
	b.ReportMetric(float64(share.Quantile(0.5).Microseconds())/1000, "bridge_p50_ms")
	b.ReportMetric(float64(share.Quantile(0.99).Microseconds())/1000, "bridge_p99_ms")
	b.ReportMetric(100*share.Within(0.002), "bridge_within_2ms_%")
	b.Logf("%d messages over %d rooms in %s (%.1f/s, Synapse %s): end to end (client send → frame read) p50 %v, p99 %v, max %v; the bridge's share (openmeet_stream_delivery_seconds): %s; of which storing and answering the %.0f transactions (openmeet_appservice_transaction_seconds): p50 %v, p99 %v",
		messages, rooms, elapsed.Round(time.Millisecond), float64(messages)/elapsed.Seconds(), harness.SynapseVersion(),
		p50.Round(10*time.Microsecond), p99.Round(10*time.Microsecond), e2e[messages-1].Round(10*time.Microsecond), share,
		txns.Count(), txns.Quantile(0.5).Round(time.Microsecond), txns.Quantile(0.99).Round(time.Microsecond))
}

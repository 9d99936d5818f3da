package bridge

import (
	"context"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/openmeet-team/openmeet-bridge/api"
	"github.com/openmeet-team/openmeet-bridge/database"
	"github.com/openmeet-team/openmeet-bridge/sse"
)

// The metrics the bridge exports beside those of the appservice endpoints
// (appservice/metrics.go). deploy/prometheus and deploy/grafana use them;
// a test checks that every name they use is exported from the start.

// outboxSendEndpoints are the homeserver endpoints the outbox sends
// through. Their request counters exist from the start, so that the first
// send after a restart is an increase and rules can rely on the series.
var outboxSendEndpoints = []string{"rooms/send/m.room.message", "rooms/send/m.reaction", "rooms/redact"}

// registerMetrics registers everything operators watch; call it once the
// components are wired.
func (b *Bridge) registerMetrics() {
	b.metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	b.metrics.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "openmeet_build_info",
		Help:        "Always 1; the labels say which build runs.",
		ConstLabels: prometheus.Labels{"version": Version, "go_version": runtime.Version()},
	}, func() float64 { return 1 }))

	hsRequests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "openmeet_homeserver_requests_total",
		Help: "Requests the bridge sent to the homeserver, by method and endpoint.",
	}, []string{"method", "endpoint"})
	for _, endpoint := range outboxSendEndpoints {
		hsRequests.WithLabelValues("PUT", endpoint)
	}
	b.metrics.MustRegister(hsRequests)
	b.HS.ObserveRequests(func(method, endpoint string) { hsRequests.WithLabelValues(method, endpoint).Inc() })
	b.metrics.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "openmeet_homeserver_reachable",
		Help: "1 when the last check of the homeserver (the bot's appservice ping, every 30 s) passed, else 0.",
	}, func() float64 { return boolGauge(b.HS.Ready()) }))

	delivery := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "openmeet_outbox_delivery_seconds",
		Help:    "Time from the client API accepting a message until Synapse had it (its answer or its echo).",
		Buckets: prometheus.ExponentialBuckets(0.025, 2, 18), // 25 ms to about 55 minutes
	})
	b.metrics.MustRegister(delivery)
	b.DB.Outbox.OnDelivered(func(waited time.Duration) { delivery.Observe(waited.Seconds()) })

	b.metrics.MustRegister(newDatabaseCollector(b.DB))
	b.registerStreamMetrics()
	b.registerLimitMetrics()
}

// registerLimitMetrics counts the client API requests refused by a
// per-user limit. Every series exists from the start, at zero.
func (b *Bridge) registerLimitMetrics() {
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "openmeet_client_refused_total",
		Help: "Client API requests refused with 429 by a per-user limit (client_api.limits), by action and reason: rate (the action's bucket) or outbox_full (max_pending_outbox).",
	}, []string{"action", "reason"})
	for _, action := range api.LimitedActions {
		refused.WithLabelValues(string(action), api.RefusedRate)
		if action.FillsOutbox() {
			refused.WithLabelValues(string(action), api.RefusedOutboxFull)
		}
	}
	b.metrics.MustRegister(refused)
	if b.Client != nil {
		b.Client.ObserveRefusals(func(action api.Action, reason string) { refused.WithLabelValues(string(action), reason).Inc() })
	}
}

// registerStreamMetrics exports the event stream hub's state; with the
// client API off, the series exist and stay at zero.
func (b *Bridge) registerStreamMetrics() {
	stats := func() sse.Stats {
		if b.Hub == nil {
			return sse.Stats{}
		}
		return b.Hub.Stats()
	}
	b.metrics.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "openmeet_sse_connections",
		Help: "Open event streams on this replica.",
	}, func() float64 {
		if b.Hub == nil {
			return 0
		}
		return float64(b.Hub.Connections())
	}))
	refused := map[string]func(sse.Stats) uint64{
		"user_rate":    func(s sse.Stats) uint64 { return s.UserRate },
		"address_rate": func(s sse.Stats) uint64 { return s.AddressRate },
		"bridge_rate":  func(s sse.Stats) uint64 { return s.BridgeRate },
		"user_streams": func(s sse.Stats) uint64 { return s.UserStreams },
	}
	for reason, count := range refused {
		b.metrics.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "openmeet_sse_refused_total",
			Help:        "New event streams refused by a limit: user_rate, address_rate (429), bridge_rate, user_streams (503).",
			ConstLabels: prometheus.Labels{"reason": reason},
		}, func() float64 { return float64(count(stats())) }))
	}
	b.metrics.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "openmeet_sse_cut_off_total",
		Help: "Event streams cut off because client_api.stream.buffer events waited for them (they resume and lose nothing).",
	}, func() float64 { return float64(stats().CutOffSlow) }))
	b.metrics.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "openmeet_sse_hub_restarts_total",
		Help: "Times the event stream hub could not follow the event log (the database failed) and tried again; streams are refused meanwhile.",
	}, func() float64 { return float64(stats().Restarts) }))
	b.metrics.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "openmeet_sse_hub_running",
		Help: "1 while the event stream hub follows the event log (0 with the client API off).",
	}, func() float64 {
		if b.Hub != nil && b.Hub.Running() {
			return 1
		}
		return 0
	}))
	delivery := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "openmeet_stream_delivery_seconds",
		Help: "The bridge's share of a message's way to a browser: from Synapse's transaction request arriving until the event's frame was written to a stream's connection, per stream.",
		// 2 ms is a bound: the share of deliveries within it is exact.
		Buckets: []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5},
	})
	b.metrics.MustRegister(delivery)
	if b.Hub != nil {
		b.Hub.ObserveDelivery(func(d time.Duration) { delivery.Observe(d.Seconds()) })
	}
}

func boolGauge(ok bool) float64 {
	if ok {
		return 1
	}
	return 0
}

// scrapeTimeout bounds the database reads of one scrape.
const scrapeTimeout = 2 * time.Second

// databaseCollector reads, at each scrape, what only the database knows,
// so every replica reports the same numbers: whether it answers, portals
// by state, and the outbox's backlog. A failed read leaves its series out
// of that scrape rather than failing the scrape, so the rest stays visible
// and openmeet_database_up says what is wrong.
type databaseCollector struct {
	db                        *database.Database
	up, portals, pending, age *prometheus.Desc
}

func newDatabaseCollector(db *database.Database) *databaseCollector {
	return &databaseCollector{
		db: db,
		up: prometheus.NewDesc("openmeet_database_up",
			"1 when the database answered a ping within 2 s at this scrape, else 0.", nil, nil),
		portals: prometheus.NewDesc("openmeet_portals",
			"Portals by state: synced, pending (Synapse not caught up yet), error (the last attempt failed; retried with backoff), closed.",
			[]string{"state"}, nil),
		pending: prometheus.NewDesc("openmeet_outbox_pending",
			"Messages accepted from the client API and not yet delivered to Synapse.", nil, nil),
		age: prometheus.NewDesc("openmeet_outbox_oldest_pending_seconds",
			"How long the oldest message waiting in the outbox has waited; 0 when none waits.", nil, nil),
	}
}

func (c *databaseCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.up
	ch <- c.portals
	ch <- c.pending
	ch <- c.age
}

func (c *databaseCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	if err := c.db.Ping(ctx); err != nil {
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 1)
	if counts, err := c.db.Portals.CountByState(ctx); err == nil {
		for _, state := range database.PortalStates {
			ch <- prometheus.MustNewConstMetric(c.portals, prometheus.GaugeValue, float64(counts[state]), state)
		}
	}
	if n, oldest, err := c.db.Outbox.Backlog(ctx); err == nil {
		ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(n))
		age := 0.0
		if !oldest.IsZero() {
			age = max(time.Since(oldest).Seconds(), 0)
		}
		ch <- prometheus.MustNewConstMetric(c.age, prometheus.GaugeValue, age)
	}
}

var _ prometheus.Collector = (*databaseCollector)(nil)

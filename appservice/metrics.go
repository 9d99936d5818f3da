package appservice

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type serverMetrics struct {
	transactions *prometheus.CounterVec
	logged       prometheus.Counter
	rejected     *prometheus.CounterVec
	duration     prometheus.Histogram
	lastTxn      prometheus.Gauge
}

// txnResults are the values of openmeet_appservice_transactions_total's
// result label, each exported from the start so that its first
// occurrence is an increase alerting rules see.
var txnResults = []string{"applied", "duplicate", "db_error", "bad_json", "too_large", "read_error", "bad_txn_id"}

func newServerMetrics(reg prometheus.Registerer) (*serverMetrics, error) {
	m := &serverMetrics{
		transactions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "openmeet_appservice_transactions_total",
			Help: "Transactions pushed by the homeserver, by result.",
		}, []string{"result"}),
		logged: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "openmeet_appservice_events_logged_total",
			Help: "Timeline events written to the event log.",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "openmeet_appservice_events_rejected_total",
			Help: "Malformed events skipped in applied transactions (the rest was logged), by reason.",
		}, []string{"reason"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "openmeet_appservice_transaction_seconds",
			Help:    "Time from receiving an applied transaction to answering it.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		lastTxn: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "openmeet_appservice_last_transaction_timestamp_seconds",
			Help: "Unix time of the newest transaction the homeserver pushed to this replica (applied, or a retry of one applied before); from the database at start-up, 0 if there was none.",
		}),
	}
	for _, reason := range rejectReasons {
		m.rejected.WithLabelValues(reason)
	}
	for _, result := range txnResults {
		m.transactions.WithLabelValues(result)
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.transactions, m.logged, m.rejected, m.duration, m.lastTxn} {
		if err := reg.Register(c); err != nil {
			var already prometheus.AlreadyRegisteredError
			if !errors.As(err, &already) {
				return nil, err
			}
		}
	}
	return m, nil
}

func (m *serverMetrics) txnResult(result string) {
	m.transactions.WithLabelValues(result).Inc()
}

func (m *serverMetrics) txnDone(logged int, took time.Duration) {
	m.transactions.WithLabelValues("applied").Inc()
	m.logged.Add(float64(logged))
	m.duration.Observe(took.Seconds())
	m.seen(time.Now())
}

// seen records that the homeserver pushed a transaction at t.
func (m *serverMetrics) seen(t time.Time) {
	m.lastTxn.Set(float64(t.UnixMilli()) / 1000)
}

func (m *serverMetrics) eventRejected(reason string) {
	m.rejected.WithLabelValues(reason).Inc()
}

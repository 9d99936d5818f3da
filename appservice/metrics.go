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
}

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
	}
	for _, reason := range rejectReasons {
		m.rejected.WithLabelValues(reason)
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.transactions, m.logged, m.rejected, m.duration} {
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
}

func (m *serverMetrics) eventRejected(reason string) {
	m.rejected.WithLabelValues(reason).Inc()
}

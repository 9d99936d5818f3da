package bridge

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/openmeet-team/openmeet-bridge/database"
)

// portalStates exposes how many portals are in each state, read from the
// database at each scrape, so every replica reports the same numbers and a
// portal stuck in error shows up on a dashboard without anyone asking the
// bot.
type portalStates struct {
	db   *database.Database
	desc *prometheus.Desc
}

func newPortalStates(db *database.Database) *portalStates {
	return &portalStates{db: db, desc: prometheus.NewDesc("openmeet_portals",
		"Portals by state: synced, pending (Synapse not caught up yet), error (the last attempt failed; retried with backoff), closed.",
		[]string{"state"}, nil)}
}

func (c *portalStates) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *portalStates) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	counts, err := c.db.Portals.CountByState(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.desc, err)
		return
	}
	for _, state := range database.PortalStates {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(counts[state]), state)
	}
}

var _ prometheus.Collector = (*portalStates)(nil)

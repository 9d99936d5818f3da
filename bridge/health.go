package bridge

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/openmeet-team/openmeet-bridge/api"
)

// opsServer is the listener of metrics.listen, serving /metrics and the
// health endpoints apart from what Synapse and browsers reach.
type opsServer struct {
	server   *http.Server
	listener net.Listener
	// dbFailing remembers the last readiness check's database result, so
	// that a failing database is logged when it starts and stops failing,
	// not at every probe.
	dbFailing atomic.Bool
}

// registerLive mounts the liveness probe, which tells nothing but that the
// process serves HTTP.
func (b *Bridge) registerLive(r *mux.Router) {
	r.HandleFunc("/_matrix/mau/live", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
	}).Methods(http.MethodGet)
}

// registerOps mounts the readiness probe and /metrics.
func (b *Bridge) registerOps(r *mux.Router) {
	r.HandleFunc("/_matrix/mau/ready", b.ready).Methods(http.MethodGet)
	// A collector that fails (the database, say) leaves out its series and
	// the rest is still served: a failed scrape would look like the bridge
	// being down and hide what is wrong.
	r.Handle("/metrics", promhttp.HandlerFor(b.metrics, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})).
		Methods(http.MethodGet)
}

// ready answers 200 when the homeserver and the database work and the
// event stream hub follows the log, 503 otherwise, with which of them
// works as booleans. The reasons are logged
// (the homeserver's by its connection loop, the database's here, when it
// starts and stops failing), never sent: the probe needs no
// authentication, and error texts can name hosts, users and paths.
func (b *Bridge) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	dbErr := b.DB.Ping(ctx)
	if was := b.ops.dbFailing.Swap(dbErr != nil); dbErr != nil && !was {
		b.Log.Warn().Err(dbErr).Msg("Readiness: database ping failed")
	} else if dbErr == nil && was {
		b.Log.Info().Msg("Readiness: database answers again")
	}
	hsOK := b.HS.Ready()
	// Without a running hub, streams are refused: not ready, so that a
	// balancer sends them elsewhere while the hub tries again.
	streamsOK := b.Hub == nil || b.Hub.Running()
	ok := hsOK && dbErr == nil && streamsOK
	code := http.StatusOK
	if !ok {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, map[string]bool{"ready": ok, "homeserver": hsOK, "database": dbErr == nil, "streams": streamsOK})
}

// listenOps opens the metrics.listen listener, if one is configured.
func (b *Bridge) listenOps() error {
	if b.Config.Metrics.Listen == "" {
		return nil
	}
	l, err := net.Listen("tcp", b.Config.Metrics.Listen)
	if err != nil {
		return fmt.Errorf("failed to listen on metrics.listen %s: %w", b.Config.Metrics.Listen, err)
	}
	r := mux.NewRouter()
	r.NotFoundHandler = http.HandlerFunc(api.NotFound)
	r.MethodNotAllowedHandler = http.HandlerFunc(api.MethodNotAllowed)
	b.registerLive(r)
	b.registerOps(r)
	b.ops.listener = l
	b.ops.server = &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second}
	return nil
}

// serveOps serves the metrics.listen listener until Stop; call it after
// listenOps succeeded.
func (b *Bridge) serveOps() {
	if b.ops.server == nil {
		return
	}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		if err := b.ops.server.Serve(b.ops.listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
			b.Log.Err(err).Msg("Metrics server failed")
		}
	}()
	b.Log.Info().Str("address", b.ops.listener.Addr().String()).Msg("Serving metrics and health")
}

// stopOps shuts the metrics.listen listener down within ctx.
func (b *Bridge) stopOps(ctx context.Context) error {
	if b.ops.server == nil {
		return nil
	}
	if err := b.ops.server.Shutdown(ctx); err != nil {
		_ = b.ops.server.Close()
		return fmt.Errorf("failed to shut down metrics server: %w", err)
	}
	return nil
}

// OpsAddr is the address of the metrics.listen listener, or nil when
// metrics are served on the appservice listener.
func (b *Bridge) OpsAddr() net.Addr {
	if b.ops.listener == nil {
		return nil
	}
	return b.ops.listener.Addr()
}

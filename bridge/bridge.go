// Package bridge wires the bridge together and runs it: config, logging,
// the HTTP listener, the database and the homeserver connection.
package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	mxas "maunium.net/go/mautrix/appservice"
	"maunium.net/go/mautrix/id"

	"github.com/openmeet-team/openmeet-bridge/api"
	"github.com/openmeet-team/openmeet-bridge/appservice"
	"github.com/openmeet-team/openmeet-bridge/bridge/commands"
	"github.com/openmeet-team/openmeet-bridge/database"
	"github.com/openmeet-team/openmeet-bridge/portal"
	"github.com/openmeet-team/openmeet-bridge/sse"
	"github.com/openmeet-team/openmeet-bridge/web"
)

// Version is the bridge's version; main sets it from build information.
var Version = "dev"

// Bridge is one running bridge process.
type Bridge struct {
	Config       *Config
	Log          zerolog.Logger
	DB           *database.Database
	HS           *appservice.Homeserver
	AS           *appservice.Server
	Portals      *portal.Registry
	Commands     *commands.Processor
	Hub          *sse.Hub
	Outbox       *portal.Outbox
	Client       *api.Client
	Provisioning *api.Provisioning

	metrics  *prometheus.Registry
	server   *http.Server
	listener net.Listener
	ops      opsServer
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	stopOnce sync.Once
	stopErr  error
}

// NewLogger builds the process logger from the logging section.
func NewLogger(cfg LoggingConfig, w io.Writer) zerolog.Logger {
	if cfg.Format == "pretty" {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.DateTime}
	}
	level, err := zerolog.ParseLevel(cfg.Level)
	if err != nil {
		level = zerolog.InfoLevel
	}
	return zerolog.New(w).Level(level).With().Timestamp().Logger()
}

// LoadRegistration reads the registration file and checks it against cfg.
func LoadRegistration(path string, cfg *Config) (*mxas.Registration, error) {
	reg, err := mxas.LoadRegistration(path)
	if err != nil {
		return nil, fmt.Errorf("failed to read registration %s: %w", path, err)
	}
	if err := appservice.CheckRegistration(reg, &cfg.Appservice, cfg.Homeserver.Domain); err != nil {
		return nil, fmt.Errorf("registration %s does not match the config: %w", path, err)
	}
	return reg, nil
}

// New builds a bridge from a validated config. Nothing runs until Start.
func New(cfg *Config, log zerolog.Logger) *Bridge {
	return &Bridge{Config: cfg, Log: log, metrics: prometheus.NewRegistry()}
}

// Start opens and migrates the database, starts listening and begins
// connecting to the homeserver. It returns once the listener is up; the
// homeserver may still be unreachable, which /_matrix/mau/ready reports.
func (b *Bridge) Start(ctx context.Context) error {
	var err error
	b.DB, err = database.Open(b.Config.Database, b.Log)
	if err != nil {
		return err
	}
	if err = b.DB.Upgrade(ctx); err != nil {
		_ = b.DB.Close()
		return err
	}
	if err = b.wire(); err != nil {
		_ = b.DB.Close()
		return err
	}
	if err = b.checkRoomVersion(ctx); err != nil {
		_ = b.DB.Close()
		return err
	}
	if err = b.AS.LoadLastTransaction(ctx); err != nil {
		b.Log.Warn().Err(err).Msg("Could not read the last transaction for the metrics")
	}
	b.listener, err = net.Listen("tcp", b.Config.Appservice.ListenAddress())
	if err != nil {
		_ = b.DB.Close()
		return fmt.Errorf("failed to listen on %s: %w", b.Config.Appservice.ListenAddress(), err)
	}
	if err = b.listenOps(); err != nil {
		_ = b.listener.Close()
		_ = b.DB.Close()
		return err
	}
	b.server = &http.Server{
		Handler:           b.router(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
	}
	b.Portals.Start()
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	b.HS.OnReady(func() {
		b.Outbox.Resume(runCtx)
		b.Portals.Resume(runCtx)
	})
	b.cancel = cancel
	b.wg.Add(5)
	go func() {
		defer b.wg.Done()
		b.Commands.Run(runCtx)
	}()
	go func() {
		defer b.wg.Done()
		b.runJanitor(runCtx)
	}()
	go func() {
		defer b.wg.Done()
		b.Outbox.Run(runCtx)
	}()
	if b.DB.IsPostgres() {
		// Other replicas' new log rows wake this one's streams and bot.
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			b.DB.ListenPositions(runCtx, b.Config.Database.URI, b.Log, func(upTo int64) {
				b.Commands.Announced(upTo)
				if b.Hub != nil {
					b.Hub.Announced(upTo)
				}
			})
		}()
	}
	if b.Hub != nil {
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			if err := b.Hub.Run(runCtx); err != nil {
				b.Log.Err(err).Msg("Event stream hub failed")
			}
		}()
	}
	go func() {
		defer b.wg.Done()
		if err := b.server.Serve(b.listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
			b.Log.Err(err).Msg("HTTP server failed")
		}
	}()
	go func() {
		defer b.wg.Done()
		b.HS.Run(runCtx)
	}()
	b.serveOps()
	b.Log.Info().Str("address", b.listener.Addr().String()).Str("version", Version).Msg("Bridge started")
	return nil
}

// checkRoomVersion refuses to start when portals.room_version names a
// version the homeserver does not offer. An unreachable homeserver is no
// reason not to start: room creation checks again before each room.
func (b *Bridge) checkRoomVersion(ctx context.Context) error {
	if b.Config.Portals.RoomVersion == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err := b.Portals.CheckRoomVersion(ctx)
	switch {
	case errors.Is(err, portal.ErrRoomVersionUnsupported):
		return err
	case err != nil:
		b.Log.Warn().Err(err).Msg("Could not check portals.room_version against the homeserver; checking again before each room is created")
	}
	return nil
}

// wire builds the components on top of the open database.
func (b *Bridge) wire() error {
	var err error
	b.HS, err = appservice.NewHomeserver(&b.Config.Appservice, &b.Config.Homeserver, b.Log)
	if err != nil {
		return err
	}
	b.AS, err = appservice.NewServer(&b.Config.Appservice, b.Config.Homeserver.Domain, b.DB, b.Log, b.metrics)
	if err != nil {
		return err
	}
	namer, err := b.Config.Appservice.Namer(b.Config.Homeserver.Domain)
	if err != nil {
		return err
	}
	botID := b.Config.Appservice.BotUserID(b.Config.Homeserver.Domain)
	b.Portals = portal.NewRegistry(b.DB, b.HS, namer, botID, &b.Config.Portals, b.Log)
	b.AS.Users, b.AS.Aliases = b.Portals, b.Portals
	b.Outbox = portal.NewOutbox(b.DB, b.HS, b.Log)
	if b.Config.ClientAPI.Enabled {
		b.Hub = sse.NewHub(b.DB, b.Config.ClientAPI.Stream, b.Log)
		hub := b.Hub
		b.Portals.OnMembersRecorded(func(roomID id.RoomID, users []id.UserID) {
			if n := hub.Restart(users); n > 0 {
				b.Log.Info().Stringer("room_id", roomID).Int("streams", n).Msg("Restarted streams of members recorded from an adopted room's state")
			}
		})
		if b.Client, err = api.NewClient(&b.Config.ClientAPI, b.DB, b.Portals, b.Outbox, b.Hub, b.Log); err != nil {
			return err
		}
		if b.Config.ClientAPI.Media.Enabled {
			svc := b.mediaService()
			b.Client.SetMedia(svc)
			b.Hub.SetMediaSigner(svc.Signer)
			b.Outbox.SetPreparer(svc)
		}
	}
	b.Commands = commands.New(commands.Config{
		Prefix:      b.Config.Appservice.Bot.CommandPrefix,
		Permissions: b.Config.Permissions,
		Version:     Version,
		Status:      b.statusLines,
	}, b.DB, b.HS, b.Portals, b.Outbox, botID, b.Log)
	b.AS.Sink = &eventSink{commands: b.Commands, hub: b.Hub}
	b.registerMetrics()
	b.Provisioning = api.NewProvisioning(b.Config.Provisioning.SharedSecret, b.Config.Provisioning.MaxBodyBytes, b.DB, b.Portals, b.Log)
	return nil
}

// Addr is the address the bridge listens on (useful with port 0 in tests).
func (b *Bridge) Addr() net.Addr { return b.listener.Addr() }

func (b *Bridge) router() http.Handler {
	// Encoded paths keep an escaped "/" inside a slug from splitting it.
	// Paths are never cleaned by a redirect: CanonicalPaths answers a Matrix
	// error to "//", "." and ".." instead.
	r := mux.NewRouter().UseEncodedPath().SkipClean(true)
	r.NotFoundHandler = http.HandlerFunc(api.NotFound)
	r.MethodNotAllowedHandler = http.HandlerFunc(api.MethodNotAllowed)
	b.AS.Register(r)
	b.Provisioning.Register(r)
	r.HandleFunc("/_openmeet/openapi.yaml", api.ServeOpenAPI).Methods(http.MethodGet)
	if b.Client != nil {
		b.Client.Register(r)
	}
	if b.Config.Web.Enabled {
		r.PathPrefix(web.Prefix).Handler(web.Handler())
		r.Handle(strings.TrimSuffix(web.Prefix, "/"), http.RedirectHandler(web.Prefix, http.StatusFound))
		r.Handle("/favicon.ico", web.Favicon()).Methods(http.MethodGet, http.MethodHead)
	}
	b.registerLive(r)
	if b.Config.Metrics.Listen == "" {
		b.registerOps(r)
	}
	return stampReceived(api.CanonicalPaths(r))
}

// Stop stops accepting requests, lets running ones finish, stops the
// homeserver loop and closes the database, all within ctx's deadline. It is
// safe to call more than once.
func (b *Bridge) Stop(ctx context.Context) error {
	b.stopOnce.Do(func() {
		var errs []error
		// Background work stops first: the hub closing its streams is what
		// lets the HTTP server's shutdown finish.
		if b.cancel != nil {
			b.cancel()
		}
		if b.server != nil {
			if err := b.server.Shutdown(ctx); err != nil {
				errs = append(errs, fmt.Errorf("failed to shut down HTTP server: %w", err))
				_ = b.server.Close()
			}
		}
		if err := b.stopOps(ctx); err != nil {
			errs = append(errs, err)
		}
		// Sends already begun may finish within ctx; their results are
		// recorded before the database closes, also when ctx cuts them off.
		if b.Outbox != nil {
			b.Outbox.Stop(ctx)
		}
		b.wg.Wait()
		if b.Portals != nil {
			b.Portals.Stop()
		}
		if b.DB != nil {
			if err := b.DB.Close(); err != nil {
				errs = append(errs, fmt.Errorf("failed to close database: %w", err))
			}
		}
		b.stopErr = errors.Join(errs...)
		b.Log.Info().Msg("Bridge stopped")
	})
	return b.stopErr
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// statusLines adds what only the wiring knows to the bot's status command.
func (b *Bridge) statusLines(ctx context.Context) []string {
	var lines []string
	if b.Hub != nil {
		lines = append(lines, fmt.Sprintf("open SSE connections: %d", b.Hub.Connections()))
	} else {
		lines = append(lines, "open SSE connections: 0 (client API disabled)")
	}
	if depth, err := b.DB.Outbox.Depth(ctx); err == nil {
		lines = append(lines, fmt.Sprintf("outbox: %d waiting", depth))
	}
	return lines
}

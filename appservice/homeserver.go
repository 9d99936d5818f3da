package appservice

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	mxas "maunium.net/go/mautrix/appservice"
	"maunium.net/go/mautrix/id"
)

// Homeserver is the bridge's client side: it acts on Synapse as the bot or
// as a ghost, and tracks whether Synapse is reachable.
type Homeserver struct {
	as       *mxas.AppService
	cfg      *Config
	hsCfg    *HomeserverConfig
	log      zerolog.Logger
	ready    atomic.Bool
	requests *requestCounter

	mu      sync.Mutex
	lastErr error
	lastOK  time.Time
	onReady []func()
}

// OnReady registers fn to run (in its own goroutine) each time the
// homeserver becomes reachable again after being down. Register before Run.
func (h *Homeserver) OnReady(fn func()) { h.onReady = append(h.onReady, fn) }

// Check intervals of the connection loop.
const (
	minBackoff     = time.Second
	maxBackoff     = time.Minute
	healthInterval = 30 * time.Second
)

// NewHomeserver prepares the client; it makes no request.
func NewHomeserver(cfg *Config, hs *HomeserverConfig, log zerolog.Logger) (*Homeserver, error) {
	reg := &mxas.Registration{
		ID:              cfg.ID,
		URL:             cfg.Address,
		AppToken:        cfg.ASToken,
		ServerToken:     cfg.HSToken,
		SenderLocalpart: cfg.Bot.Username,
	}
	as, err := mxas.CreateFull(mxas.CreateOpts{
		Registration:     reg,
		HomeserverDomain: hs.Domain,
		HomeserverURL:    hs.Address,
	})
	if err != nil {
		return nil, fmt.Errorf("failed to create homeserver client: %w", err)
	}
	log = log.With().Str("component", "homeserver").Logger()
	as.Log = log
	// The bridge retries at its own level (portal syncs, the outbox), so a
	// request only gets a couple of quick retries of its own.
	as.DefaultHTTPRetries = 2
	counter := &requestCounter{next: http.DefaultTransport, counts: make(map[string]int)}
	as.HTTPClient = &http.Client{Timeout: 60 * time.Second, Transport: counter}
	// mautrix makes the bot's intent and client lazily, without a lock;
	// make them now, before any other goroutine can ask for them.
	as.BotClient()
	as.BotIntent()
	return &Homeserver{as: as, cfg: cfg, hsCfg: hs, log: log, requests: counter}, nil
}

// RequestCounts returns how many requests the bridge has sent to the
// homeserver, by "METHOD endpoint".
func (h *Homeserver) RequestCounts() map[string]int { return h.requests.snapshot() }

// ObserveRequests calls fn for every request to the homeserver (for
// metrics). Set it before the bridge starts.
func (h *Homeserver) ObserveRequests(fn func(method, endpoint string)) { h.requests.observe = fn }

// Ready reports whether the last check of the homeserver connection passed.
func (h *Homeserver) Ready() bool { return h.ready.Load() }

// Status returns the last connection error (nil when ready) and the time of
// the last successful check.
func (h *Homeserver) Status() (lastErr error, lastOK time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lastErr, h.lastOK
}

// Bot is the bot's intent.
func (h *Homeserver) Bot() *mxas.IntentAPI { return h.as.BotIntent() }

// Intent acts as userID, which must be in our namespace.
func (h *Homeserver) Intent(userID id.UserID) *mxas.IntentAPI { return h.as.Intent(userID) }

// EnsureRegistered registers a ghost (or the bot) if the homeserver does not
// know it yet; M_USER_IN_USE counts as done.
func (h *Homeserver) EnsureRegistered(ctx context.Context, userID id.UserID) error {
	intent := h.as.Intent(userID)
	if intent == nil {
		return fmt.Errorf("user %s is not on this homeserver", userID)
	}
	// Not intent.EnsureRegistered: it reads the intent's flag without a
	// lock, which races when two requests register one ghost at once.
	if ok, err := h.as.StateStore.IsRegistered(ctx, userID); err == nil && ok {
		return nil
	}
	if err := intent.Register(ctx); err != nil && !errors.Is(err, mautrix.MUserInUse) {
		return fmt.Errorf("failed to register %s: %w", userID, err)
	}
	h.MarkRegistered(ctx, userID)
	return nil
}

// Ping asks the homeserver to ping the bridge back through the appservice
// API, which also makes Synapse retry any backlog at once. It returns the
// round trip Synapse measured.
func (h *Homeserver) Ping(ctx context.Context) (time.Duration, error) {
	bot := h.as.BotIntent()
	resp, err := bot.AppservicePing(ctx, h.cfg.ID, bot.TxnID())
	if err != nil {
		return 0, fmt.Errorf("failed to ping homeserver: %w", err)
	}
	return time.Duration(resp.DurationMS) * time.Millisecond, nil
}

// setUpBot registers the bot and sets its profile.
func (h *Homeserver) setUpBot(ctx context.Context) error {
	bot := h.as.BotIntent()
	if err := bot.EnsureRegistered(ctx); err != nil {
		return fmt.Errorf("failed to register bot: %w", err)
	}
	if err := bot.SetDisplayName(ctx, h.cfg.Bot.Displayname); err != nil {
		return fmt.Errorf("failed to set bot display name: %w", err)
	}
	if h.cfg.Bot.Avatar != "" {
		uri, _ := id.ParseContentURI(h.cfg.Bot.Avatar)
		if err := bot.SetAvatarURL(ctx, uri); err != nil {
			return fmt.Errorf("failed to set bot avatar: %w", err)
		}
	}
	return nil
}

// Run sets up the bot and pings the homeserver, retrying with backoff while
// it is unreachable, then keeps checking it so that readiness follows the
// homeserver's state. It returns when ctx ends. The appservice endpoints must
// already be served, or Synapse's ping back fails.
func (h *Homeserver) Run(ctx context.Context) {
	backoff := minBackoff
	botDone := false
	for {
		err := h.check(ctx, &botDone)
		h.record(err)
		wait := healthInterval
		if err != nil {
			wait, backoff = backoff, min(backoff*2, maxBackoff)
			h.log.Warn().Err(err).Dur("retry_in", wait).Msg("Homeserver not ready")
		} else {
			backoff = minBackoff
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

func (h *Homeserver) check(ctx context.Context, botDone *bool) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ctx = h.log.WithContext(ctx)
	if !*botDone {
		if err := h.setUpBot(ctx); err != nil {
			return err
		}
		*botDone = true
		h.log.Info().Stringer("bot", h.as.BotMXID()).Msg("Bot registered")
	}
	took, err := h.Ping(ctx)
	if err != nil {
		return err
	}
	if !h.ready.Load() {
		h.log.Info().Dur("round_trip", took).Msg("Homeserver connection works")
	}
	return nil
}

func (h *Homeserver) record(err error) {
	h.mu.Lock()
	h.lastErr = err
	if err == nil {
		h.lastOK = time.Now()
	}
	h.mu.Unlock()
	if was := h.ready.Swap(err == nil); !was && err == nil {
		for _, fn := range h.onReady {
			go fn()
		}
	}
}

var _ UserRegistrar = (*Homeserver)(nil)

// MarkRegistered records that the homeserver already knows userID, so no
// registration request is sent for it.
func (h *Homeserver) MarkRegistered(ctx context.Context, userID id.UserID) {
	// Only the state store: the intent's own flag is not safe to write from
	// several goroutines, and EnsureRegistered consults the store anyway.
	_ = h.as.StateStore.MarkRegistered(ctx, userID)
}

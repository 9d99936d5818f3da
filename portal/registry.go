package portal

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/openmeet-team/openmeet-bridge/appservice"
	"github.com/openmeet-team/openmeet-bridge/database"
	"github.com/openmeet-team/openmeet-bridge/ident"
)

// ErrPending is returned by the Sync methods when Synapse did not finish
// within the wait: the change is stored and will be applied in the
// background.
var ErrPending = errors.New("change stored; homeserver not updated yet")

// ghostKey identifies a ghost in the ghost queue.
type ghostKey struct{ Tenant, Slug string }

// Registry owns the portals and ghosts: it applies their desired state to
// the homeserver through one queue per portal and one per ghost, retries
// what failed, and creates rooms on demand when Synapse asks for an alias.
type Registry struct {
	db    *database.Database
	hs    *appservice.Homeserver
	namer *ident.Namer
	cfg   *Config
	botID id.UserID
	log   zerolog.Logger

	portals *queue[database.PortalKey]
	ghosts  *queue[ghostKey]
	avatars *avatarFetcher
	// versions caches the room versions the homeserver offers.
	versions roomVersions

	cancel context.CancelFunc
	wg     sync.WaitGroup

	retryMu sync.Mutex
	retries map[any]retryState

	locksMu sync.Mutex
	locks   map[database.PortalKey]*sync.Mutex

	// membersRecorded, when set, is told who was recorded as joined to a
	// room from its state (see OnMembersRecorded).
	membersRecorded func(roomID id.RoomID, users []id.UserID)
}

// OnMembersRecorded sets fn to be called after members of an adopted room
// were recorded from its state rather than from member events, with the
// users recorded as joined: their open streams do not follow the room yet.
// Call it before the registry starts.
func (r *Registry) OnMembersRecorded(fn func(roomID id.RoomID, users []id.UserID)) {
	r.membersRecorded = fn
}

type retryState struct {
	next    time.Time
	backoff time.Duration
	// lastErr is the previous failure's text: a repeat is logged quietly.
	lastErr string
}

// NewRegistry builds a registry; Start begins background work.
func NewRegistry(db *database.Database, hs *appservice.Homeserver, namer *ident.Namer, botID id.UserID, cfg *Config, log zerolog.Logger) *Registry {
	return &Registry{
		db: db, hs: hs, namer: namer, cfg: cfg, botID: botID,
		log:     log.With().Str("component", "portals").Logger(),
		avatars: newAvatarFetcher(cfg.Avatars),
		retries: make(map[any]retryState),
		locks:   make(map[database.PortalKey]*sync.Mutex),
	}
}

// Namer is the identifier mapping the registry uses.
func (r *Registry) Namer() *ident.Namer { return r.namer }

// Config is the portals config.
func (r *Registry) Config() *Config { return r.cfg }

// Start starts the queues and the loop that retries unsynced portals and
// ghosts (including those left over from before a restart).
func (r *Registry) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	ctx = r.log.WithContext(ctx)
	r.portals = newQueue(ctx, r.syncPortal)
	r.ghosts = newQueue(ctx, r.syncGhost)
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.retryLoop(ctx)
	}()
}

// Stop stops background work and waits for running syncs to end.
func (r *Registry) Stop() {
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.wg.Wait()
	r.portals.wait()
	r.ghosts.wait()
}

// SyncPortal applies the portal's desired state and waits up to the
// configured time. It returns ErrPending when Synapse is slower than that.
// For a change of members, SyncMembers also waits for Synapse's pushes.
func (r *Registry) SyncPortal(ctx context.Context, key database.PortalKey) error {
	return r.wait(ctx, r.portals.request(key, true), time.Now().Add(r.cfg.SyncWait))
}

// SyncGhost applies the ghost's desired profile, waiting like SyncPortal.
func (r *Registry) SyncGhost(ctx context.Context, tenant, slug string) error {
	return r.wait(ctx, r.ghosts.request(ghostKey{tenant, slug}, true), time.Now().Add(r.cfg.SyncWait))
}

// wait returns the result of a queued run, or ErrPending when the deadline
// passes or ctx ends first.
func (r *Registry) wait(ctx context.Context, ch <-chan error, deadline time.Time) error {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case err := <-ch:
		return err
	case <-timer.C:
		return ErrPending
	case <-ctx.Done():
		return ErrPending
	}
}

// retryLoop requests syncs of everything that lags behind its desired
// state, with a per-item exponential backoff after failures.
func (r *Registry) retryLoop(ctx context.Context) {
	const interval = 5 * time.Second
	for {
		r.requestUnsynced(ctx)
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
	}
}

func (r *Registry) requestUnsynced(ctx context.Context) {
	portals, err := r.db.Portals.Unsynced(ctx)
	if err != nil {
		if ctx.Err() == nil {
			r.log.Warn().Err(err).Msg("Failed to list unsynced portals")
		}
		return
	}
	for _, p := range portals {
		if r.due(p.Key()) {
			r.portals.request(p.Key(), false)
		}
	}
	ghosts, err := r.db.Ghosts.Unsynced(ctx)
	if err != nil {
		return
	}
	for _, g := range ghosts {
		if key := (ghostKey{g.Tenant, g.Slug}); r.due(key) {
			r.ghosts.request(key, false)
		}
	}
}

// Resume forgets every backoff and retries what lags behind, now: the
// homeserver is back.
func (r *Registry) Resume(ctx context.Context) {
	r.retryMu.Lock()
	clear(r.retries)
	r.retryMu.Unlock()
	r.requestUnsynced(ctx)
}

// due reports whether a retry of key may run now.
func (r *Registry) due(key any) bool {
	r.retryMu.Lock()
	defer r.retryMu.Unlock()
	st, ok := r.retries[key]
	return !ok || time.Now().After(st.next)
}

// maxRetryBackoff caps the wait between retries of one failing item.
const maxRetryBackoff = 5 * time.Minute

// noteResult updates key's backoff after a sync. It reports whether a
// failure is news (the first, or different from the last), so that a
// portal failing the same way every few minutes logs it once.
func (r *Registry) noteResult(key any, err error) (news bool) {
	r.retryMu.Lock()
	defer r.retryMu.Unlock()
	if err == nil {
		delete(r.retries, key)
		return false
	}
	st := r.retries[key]
	news = st.lastErr != err.Error()
	st.backoff = min(max(st.backoff*2, 2*time.Second), maxRetryBackoff)
	st.next = time.Now().Add(st.backoff)
	st.lastErr = err.Error()
	r.retries[key] = st
	return news
}

// ResolveAlias implements appservice.AliasResolver: when someone resolves
// the alias of a portal whose room does not exist yet, the room is created
// before Synapse is answered.
func (r *Registry) ResolveAlias(ctx context.Context, alias id.RoomAlias) (bool, error) {
	p, err := r.db.Portals.GetByAlias(ctx, alias)
	if err != nil {
		return false, fmt.Errorf("failed to look up portal: %w", err)
	}
	if p == nil || p.Closed {
		return false, nil
	}
	if p.RoomID == "" {
		if _, err := r.db.Portals.RequestRoom(ctx, p.Key()); err != nil {
			return false, fmt.Errorf("failed to request room: %w", err)
		}
		if err := r.SyncPortal(ctx, p.Key()); err != nil && !errors.Is(err, ErrPending) {
			return false, err
		}
		if p, err = r.db.Portals.GetByAlias(ctx, alias); err != nil || p == nil {
			return false, err
		}
	}
	return p.RoomID != "", nil
}

// EnsureRegistered implements appservice.UserRegistrar: only provisioned
// ghosts and the bot exist.
func (r *Registry) EnsureRegistered(ctx context.Context, userID id.UserID) error {
	if userID == r.botID {
		return r.hs.EnsureRegistered(ctx, userID)
	}
	g, err := r.db.Ghosts.GetByUserID(ctx, userID)
	if err != nil {
		return err
	}
	if g == nil {
		return appservice.ErrUnknownUser
	}
	return r.registerGhost(ctx, g)
}

var (
	_ appservice.AliasResolver = (*Registry)(nil)
	_ appservice.UserRegistrar = (*Registry)(nil)
)

// lockPortal serialises everything that writes one portal's room: the
// queue's syncs and set-pl in this process, and on PostgreSQL those of other
// replicas too. Power levels are replaced as a whole, so two writers must
// never interleave. Across replicas it holds the portal's lease (waiting
// for it) and returns the lease's context, which ends when the lease is
// lost: the caller must make its requests with it, so that it stops
// before another replica can take the lease over, and a write it began
// has the rest of the lease (LeaseTiming's Duration - GiveUp) to land.
//
// A lease rather than a session advisory lock: PostgreSQL frees an
// advisory lock the moment its session dies (a killed connection, a
// partition), and another replica takes it at once while the holder,
// which learns of it only at its next query on that connection, is still
// writing to the homeserver, where nothing can be fenced. A check of the
// lock before each write would leave the same gap between the check and
// the write. A lease passes on only after it expired, which the holder
// sees coming by its own clock.
func (r *Registry) lockPortal(ctx context.Context, key database.PortalKey) (context.Context, func(), error) {
	r.locksMu.Lock()
	l, ok := r.locks[key]
	if !ok {
		l = &sync.Mutex{}
		r.locks[key] = l
	}
	r.locksMu.Unlock()
	l.Lock()
	held, err := r.db.Leases.Hold(ctx, portalLeaseName(key))
	if err != nil {
		l.Unlock()
		return nil, nil, err
	}
	return held.Context(), func() { held.Release(); l.Unlock() }, nil
}

// portalLeaseName is the name of a portal's lease; quoting keeps the
// names of different portals apart whatever their slugs hold.
func portalLeaseName(key database.PortalKey) string {
	return fmt.Sprintf("portal %q %q %q", key.Tenant, key.Kind, key.Slug)
}

// SetPowerLevel sets one user's level in a portal's room, reading and
// writing the power levels under the portal's lock.
func (r *Registry) SetPowerLevel(ctx context.Context, key database.PortalKey, userID id.UserID, level int) error {
	p, err := r.db.Portals.Get(ctx, key)
	if err != nil || p == nil || p.RoomID == "" {
		return errors.Join(err, errors.New("the portal has no room"))
	}
	ctx, unlock, err := r.lockPortal(ctx, key)
	if err != nil {
		return err
	}
	defer unlock()
	bot := r.hs.Bot().Client
	levels, err := r.PowerLevels(ctx, p.RoomID)
	if err != nil {
		return err
	}
	if roomCreators(levels.CreateEvent)[userID] {
		return fmt.Errorf("%w: %s created room %s, whose version (%s) gives its creators unlimited power; they cannot be given a level",
			ErrCreator, userID, p.RoomID, roomVersionOf(levels.CreateEvent))
	}
	levels.SetUserLevel(userID, level)
	if _, err := bot.SendStateEvent(ctx, p.RoomID, event.StatePowerLevels, "", levels); err != nil {
		return fmt.Errorf("failed to set power levels: %w", err)
	}
	return nil
}

// SyncGhostFully sends a ghost's whole profile again, even what the bridge
// believes the homeserver already has.
func (r *Registry) SyncGhostFully(ctx context.Context, tenant, slug string) error {
	if err := r.db.Ghosts.ClearApplied(ctx, tenant, slug); err != nil {
		return err
	}
	return r.SyncGhost(ctx, tenant, slug)
}

// Messages reads a room's history from Synapse as userID's ghost, so
// Synapse's visibility rules decide what the user may see.
func (r *Registry) Messages(ctx context.Context, userID id.UserID, roomID id.RoomID, from string, limit int) (*mautrix.RespMessages, error) {
	r.hs.MarkRegistered(ctx, userID)
	return r.hs.Intent(userID).Client.Messages(ctx, roomID, from, "", mautrix.DirectionBackward, nil, limit)
}

// PowerLevels reads a portal room's power levels as the bot, with the
// create event attached, so that a v12 room's creators count as having
// unlimited power.
func (r *Registry) PowerLevels(ctx context.Context, roomID id.RoomID) (*event.PowerLevelsEventContent, error) {
	bot := r.hs.Bot().Client
	var levels event.PowerLevelsEventContent
	if err := bot.StateEvent(ctx, roomID, event.StatePowerLevels, "", &levels); err != nil {
		return nil, fmt.Errorf("failed to read power levels: %w", err)
	}
	create, err := r.createEvent(ctx, roomID)
	if err != nil {
		return nil, err
	}
	levels.CreateEvent = create
	return &levels, nil
}

// Typing sets userID's typing state in a room (best effort, not queued).
func (r *Registry) Typing(ctx context.Context, userID id.UserID, roomID id.RoomID, typing bool, timeout time.Duration) error {
	r.hs.MarkRegistered(ctx, userID)
	_, err := r.hs.Intent(userID).Client.UserTyping(ctx, roomID, typing, timeout)
	return err
}

// MarkRead moves userID's read receipt and read marker to eventID.
func (r *Registry) MarkRead(ctx context.Context, userID id.UserID, roomID id.RoomID, eventID id.EventID) error {
	r.hs.MarkRegistered(ctx, userID)
	return r.hs.Intent(userID).Client.SetReadMarkers(ctx, roomID, &mautrix.ReqSetReadMarkers{Read: eventID, FullyRead: eventID})
}

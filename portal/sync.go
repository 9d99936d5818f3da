package portal

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/openmeet-team/openmeet-bridge/database"
	"github.com/openmeet-team/openmeet-bridge/ident"
)

// botLevel is the bot's power level in every portal room.
const botLevel = 100

// syncPortal is the portal queue's work: make one room match its row.
func (r *Registry) syncPortal(ctx context.Context, key database.PortalKey) error {
	p, err := r.db.Portals.Get(ctx, key)
	if err != nil || p == nil {
		return err
	}
	log := r.log.With().Str("tenant", key.Tenant).Str("kind", key.Kind).Str("slug", key.Slug).Logger()
	ctx = log.WithContext(ctx)
	locked, unlock, err := r.lockPortal(ctx, key)
	if err != nil {
		return err
	}
	// Re-read under the lock: another replica may have just synced it.
	if p, err = r.db.Portals.Get(locked, key); err == nil {
		err = r.applyPortal(locked, p)
	}
	if err != nil && ctx.Err() == nil && locked.Err() != nil {
		err = fmt.Errorf("%w: %w", context.Cause(locked), err)
	}
	unlock()
	news := r.noteResult(key, err)
	if err != nil {
		if ctx.Err() == nil {
			level := zerolog.DebugLevel
			if news {
				level = zerolog.WarnLevel
			}
			log.WithLevel(level).Err(err).Msg("Failed to sync portal")
			if dbErr := r.db.Portals.SetError(ctx, key, err.Error()); dbErr != nil {
				log.Err(dbErr).Msg("Failed to record portal error")
			}
		}
		return err
	}
	if err = r.db.Portals.MarkSynced(ctx, key, p.DesiredVersion); err != nil {
		return fmt.Errorf("failed to record sync: %w", err)
	}
	log.Debug().Int64("version", p.DesiredVersion).Msg("Portal synced")
	return nil
}

// desiredMember is a ghost that should be in the room, at a level.
type desiredMember struct {
	*database.PortalMember
	level int
}

func (r *Registry) applyPortal(ctx context.Context, p *database.Portal) error {
	desired, err := r.desiredMembers(ctx, p)
	if err != nil {
		return err
	}
	if p.RoomID == "" {
		if p.Closed || (len(desired) == 0 && !p.RoomRequested) {
			return nil // lazily: no room until someone needs it
		}
		if err = r.createRoom(ctx, p, desired); err != nil {
			return err
		}
	}
	state, err := r.readState(ctx, p, desired)
	if err != nil {
		return err
	}
	pl, err := r.makePlan(p, desired, state)
	if err != nil {
		return err
	}
	return pl.run(ctx, r)
}

// desiredMembers loads the portal's members with their levels.
func (r *Registry) desiredMembers(ctx context.Context, p *database.Portal) (map[id.UserID]desiredMember, error) {
	members, err := r.db.PortalMembers.List(ctx, p.Key())
	if err != nil {
		return nil, fmt.Errorf("failed to load members: %w", err)
	}
	desired := make(map[id.UserID]desiredMember, len(members))
	for _, m := range members {
		level, ok := r.cfg.Level(ident.Kind(p.Kind), m.Role)
		if !ok {
			// The role was valid when stored but the config has changed.
			return nil, fmt.Errorf("role %q of %s is not configured for %ss", m.Role, m.UserSlug, p.Kind)
		}
		desired[m.UserID] = desiredMember{m, level}
	}
	return desired, nil
}

// Diff lists what the homeserver lacks of the portal's desired state,
// without changing anything; nil means the room matches.
func (r *Registry) Diff(ctx context.Context, key database.PortalKey) ([]string, error) {
	p, err := r.db.Portals.Get(ctx, key)
	if err != nil || p == nil {
		return nil, err
	}
	desired, err := r.desiredMembers(ctx, p)
	if err != nil {
		return nil, err
	}
	if p.RoomID == "" {
		if !p.Closed && (len(desired) > 0 || p.RoomRequested) {
			return []string{"create the room"}, nil
		}
		return nil, nil
	}
	state, err := r.hs.Bot().Client.State(ctx, p.RoomID)
	if err != nil {
		return nil, fmt.Errorf("failed to read room state: %w", err)
	}
	pl, err := r.makePlan(p, desired, state)
	if err != nil {
		return nil, err
	}
	return pl.Descriptions(), nil
}

func (r *Registry) joinGhost(ctx context.Context, p *database.Portal, m *database.PortalMember, current event.Membership) error {
	ghost := &database.Ghost{Tenant: m.Tenant, Slug: m.UserSlug, UserID: m.UserID, Registered: m.Registered}
	if err := r.registerGhost(ctx, ghost); err != nil {
		return err
	}
	if p.Visibility != "public" && current != event.MembershipInvite {
		_, err := r.hs.Bot().Client.InviteUser(ctx, p.RoomID, &mautrix.ReqInviteUser{UserID: m.UserID})
		if err != nil {
			return fmt.Errorf("failed to invite %s: %w", m.UserID, err)
		}
	}
	if _, err := r.hs.Intent(m.UserID).Client.JoinRoomByID(ctx, p.RoomID); err != nil {
		return fmt.Errorf("failed to join %s: %w", m.UserID, err)
	}
	return nil
}

// removeGhost makes a ghost leave (or decline its invite): nicer for the
// room than a kick, and the ghost is ours to move.
func (r *Registry) removeGhost(ctx context.Context, roomID id.RoomID, userID id.UserID) error {
	r.hs.MarkRegistered(ctx, userID)
	if _, err := r.hs.Intent(userID).Client.LeaveRoom(ctx, roomID); err != nil {
		return fmt.Errorf("failed to remove %s: %w", userID, err)
	}
	return nil
}

// parallel runs work with at most cfg.Concurrency in flight and returns
// every error joined; one failure does not stop the rest.
func (r *Registry) parallel(ctx context.Context, work []func(context.Context) error) error {
	sem := make(chan struct{}, r.cfg.Concurrency)
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for _, fn := range work {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := fn(ctx); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(errs) > 3 {
		return fmt.Errorf("%w (and %d more errors)", errors.Join(errs[:3]...), len(errs)-3)
	}
	return errors.Join(errs...)
}

// isGhost reports whether the bridge moves userID in and out of rooms: one
// of its ghosts or an adopted (legacy namespace) account.
func (r *Registry) isGhost(userID id.UserID) bool { return r.namer.Managed(userID) }

func stateContent(state mautrix.RoomStateMap, evtType event.Type) *event.Content {
	evt := state[evtType][""]
	if evt == nil {
		return nil
	}
	return &evt.Content
}

func setDirectoryVisibility(ctx context.Context, cli *mautrix.Client, roomID id.RoomID, visibility string) error {
	url := cli.BuildClientURL("v3", "directory", "list", "room", roomID)
	if _, err := cli.MakeRequest(ctx, "PUT", url, map[string]string{"visibility": visibility}, nil); err != nil {
		return fmt.Errorf("failed to set directory visibility: %w", err)
	}
	return nil
}

// isAliasExists recognises Synapse's answer to creating an alias that
// already points somewhere.
func isAliasExists(err error) bool {
	var httpErr mautrix.HTTPError
	return errors.As(err, &httpErr) && httpErr.IsStatus(409)
}

func aliasLocalpart(alias id.RoomAlias) string {
	local, _, _ := strings.Cut(strings.TrimPrefix(string(alias), "#"), ":")
	return local
}

func joinSorted(items []string) string {
	slices.Sort(items)
	return strings.Join(items, ", ")
}

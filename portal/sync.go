package portal

import (
	"context"
	"errors"
	"fmt"
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
	err = r.applyPortal(ctx, p)
	r.noteResult(key, err)
	if err != nil {
		if ctx.Err() == nil {
			log.Warn().Err(err).Msg("Failed to sync portal")
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
	members, err := r.db.PortalMembers.List(ctx, p.Key())
	if err != nil {
		return fmt.Errorf("failed to load members: %w", err)
	}
	desired := make(map[id.UserID]desiredMember, len(members))
	for _, m := range members {
		level, ok := r.cfg.Level(ident.Kind(p.Kind), m.Role)
		if !ok {
			// The role was valid when stored but the config has changed.
			return fmt.Errorf("role %q of %s is not configured for %ss", m.Role, m.UserSlug, p.Kind)
		}
		desired[m.UserID] = desiredMember{m, level}
	}
	if p.Closed {
		return r.closeRoom(ctx, p)
	}
	created := false
	if p.RoomID == "" && len(desired) == 0 && !p.RoomRequested {
		return nil // lazily: no room until someone needs it
	}
	if p.RoomID == "" {
		if err = r.createRoom(ctx, p, desired); err != nil {
			return err
		}
		created = true
	}
	state, err := r.hs.Bot().Client.State(ctx, p.RoomID)
	if err != nil {
		return fmt.Errorf("failed to read room state: %w", err)
	}
	if !created {
		if err = r.applySettings(ctx, p, state); err != nil {
			return err
		}
	}
	if err = r.applyMembers(ctx, p, desired, state); err != nil {
		return err
	}
	return r.applyPowerLevels(ctx, p, desired, state)
}

// createRoom creates the portal's room with its alias, name, topic, join
// rules, history visibility and power levels in the one request.
func (r *Registry) createRoom(ctx context.Context, p *database.Portal, desired map[id.UserID]desiredMember) error {
	bot := r.hs.Bot()
	users := map[id.UserID]int{r.botID: botLevel}
	for userID, m := range desired {
		if m.level != 0 {
			users[userID] = m.level
		}
	}
	req := &mautrix.ReqCreateRoom{
		Visibility:    "private",
		RoomAliasName: aliasLocalpart(p.Alias),
		Name:          p.Name,
		Topic:         p.Topic,
		Preset:        "private_chat",
		InitialState: []*event.Event{{
			Type:    event.StateHistoryVisibility,
			Content: event.Content{Parsed: &event.HistoryVisibilityEventContent{HistoryVisibility: event.HistoryVisibility(r.cfg.HistoryVisibility)}},
		}},
		PowerLevelOverride: &event.PowerLevelsEventContent{Users: users},
	}
	if p.Visibility == "public" {
		req.Preset = "public_chat"
		if r.cfg.PublishPublic {
			req.Visibility = "public"
		}
	}
	resp, err := bot.Client.CreateRoom(ctx, req)
	if errors.Is(err, mautrix.MRoomInUse) {
		// A room made by an earlier attempt that crashed before storing it.
		resolved, rerr := bot.Client.ResolveAlias(ctx, p.Alias)
		if rerr != nil {
			return fmt.Errorf("alias %s is taken and cannot be resolved: %w", p.Alias, rerr)
		}
		p.RoomID = resolved.RoomID
	} else if err != nil {
		return fmt.Errorf("failed to create room: %w", err)
	} else {
		p.RoomID = resp.RoomID
	}
	if err := r.db.Portals.SetRoomID(ctx, p.Key(), p.RoomID); err != nil {
		return fmt.Errorf("failed to store room ID: %w", err)
	}
	zerolog.Ctx(ctx).Info().Stringer("room_id", p.RoomID).Msg("Created portal room")
	return nil
}

// applySettings brings name, topic, join rules and alias in line.
func (r *Registry) applySettings(ctx context.Context, p *database.Portal, state mautrix.RoomStateMap) error {
	bot := r.hs.Bot().Client
	send := func(evtType event.Type, content any) error {
		_, err := bot.SendStateEvent(ctx, p.RoomID, evtType, "", content)
		if err != nil {
			return fmt.Errorf("failed to set %s: %w", evtType.Type, err)
		}
		return nil
	}
	if name := stateContent(state, event.StateRoomName); name == nil || name.AsRoomName().Name != p.Name {
		if err := send(event.StateRoomName, &event.RoomNameEventContent{Name: p.Name}); err != nil {
			return err
		}
	}
	if topic := stateContent(state, event.StateTopic); (topic == nil && p.Topic != "") || (topic != nil && topic.AsTopic().Topic != p.Topic) {
		if err := send(event.StateTopic, &event.TopicEventContent{Topic: p.Topic}); err != nil {
			return err
		}
	}
	wantRule := event.JoinRuleInvite
	if p.Visibility == "public" {
		wantRule = event.JoinRulePublic
	}
	if rules := stateContent(state, event.StateJoinRules); rules == nil || rules.AsJoinRules().JoinRule != wantRule {
		if err := send(event.StateJoinRules, &event.JoinRulesEventContent{JoinRule: wantRule}); err != nil {
			return err
		}
		if r.cfg.PublishPublic {
			visibility := "private"
			if wantRule == event.JoinRulePublic {
				visibility = "public"
			}
			if err := setDirectoryVisibility(ctx, bot, p.RoomID, visibility); err != nil {
				return err
			}
		}
	}
	if canonical := stateContent(state, event.StateCanonicalAlias); canonical == nil || canonical.AsCanonicalAlias().Alias != p.Alias {
		// A reopened portal whose alias was deleted on close.
		if _, err := bot.CreateAlias(ctx, p.Alias, p.RoomID); err != nil && !isAliasExists(err) {
			return fmt.Errorf("failed to create alias: %w", err)
		}
		if err := send(event.StateCanonicalAlias, &event.CanonicalAliasEventContent{Alias: p.Alias}); err != nil {
			return err
		}
	}
	return nil
}

// applyMembers joins the ghosts that should be in the room and takes out
// the ghosts that should not. Users who are not ghosts are left alone.
func (r *Registry) applyMembers(ctx context.Context, p *database.Portal, desired map[id.UserID]desiredMember, state mautrix.RoomStateMap) error {
	membership := func(userID id.UserID) event.Membership {
		if evt := state[event.StateMember][userID.String()]; evt != nil {
			return evt.Content.AsMember().Membership
		}
		return ""
	}
	var work []func(context.Context) error
	for userID, m := range desired {
		current := membership(userID)
		if current == event.MembershipJoin {
			continue
		}
		work = append(work, func(ctx context.Context) error { return r.joinGhost(ctx, p, m.PortalMember, current) })
	}
	for stateKey, evt := range state[event.StateMember] {
		userID := id.UserID(stateKey)
		m := evt.Content.AsMember().Membership
		if _, want := desired[userID]; want || !r.isGhost(userID) || (m != event.MembershipJoin && m != event.MembershipInvite) {
			continue
		}
		work = append(work, func(ctx context.Context) error { return r.removeGhost(ctx, p.RoomID, userID) })
	}
	return r.parallel(ctx, work)
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

// applyPowerLevels sets each desired ghost's level and drops the entries of
// ghosts that are no longer members, in at most one state event. Entries of
// other users and every other key are kept as they are.
func (r *Registry) applyPowerLevels(ctx context.Context, p *database.Portal, desired map[id.UserID]desiredMember, state mautrix.RoomStateMap) error {
	content := stateContent(state, event.StatePowerLevels)
	if content == nil {
		return errors.New("room has no power levels")
	}
	pl := content.AsPowerLevels()
	if pl.Users == nil {
		pl.Users = make(map[id.UserID]int)
	}
	changed := false
	set := func(userID id.UserID, level int) {
		current, has := pl.Users[userID]
		switch {
		case level == pl.UsersDefault && has && userID != r.botID:
			delete(pl.Users, userID)
			changed = true
		case level != pl.UsersDefault && (!has || current != level):
			pl.Users[userID] = level
			changed = true
		}
	}
	set(r.botID, botLevel)
	for userID, m := range desired {
		set(userID, m.level)
	}
	for userID := range pl.Users {
		if _, want := desired[userID]; !want && userID != r.botID && r.isGhost(userID) {
			delete(pl.Users, userID)
			changed = true
		}
	}
	if !changed {
		return nil
	}
	if _, err := r.hs.Bot().Client.SendStateEvent(ctx, p.RoomID, event.StatePowerLevels, "", pl); err != nil {
		return fmt.Errorf("failed to set power levels: %w", err)
	}
	return nil
}

// closeRoom takes the ghosts out, deletes the alias and makes the room
// invite-only, as configured. The bot stays, so the history is kept.
func (r *Registry) closeRoom(ctx context.Context, p *database.Portal) error {
	if p.RoomID == "" {
		return nil
	}
	bot := r.hs.Bot().Client
	state, err := bot.State(ctx, p.RoomID)
	if err != nil {
		return fmt.Errorf("failed to read room state: %w", err)
	}
	if r.cfg.Close.RemoveMembers {
		if err := r.applyMembers(ctx, p, nil, state); err != nil {
			return err
		}
	}
	if r.cfg.Close.DeleteAlias {
		if _, err := bot.DeleteAlias(ctx, p.Alias); err != nil && !errors.Is(err, mautrix.MNotFound) {
			return fmt.Errorf("failed to delete alias: %w", err)
		}
		if canonical := stateContent(state, event.StateCanonicalAlias); canonical != nil && canonical.AsCanonicalAlias().Alias == p.Alias {
			if _, err := bot.SendStateEvent(ctx, p.RoomID, event.StateCanonicalAlias, "", &event.CanonicalAliasEventContent{}); err != nil {
				return fmt.Errorf("failed to clear canonical alias: %w", err)
			}
		}
	}
	if rules := stateContent(state, event.StateJoinRules); rules == nil || rules.AsJoinRules().JoinRule != event.JoinRuleInvite {
		if _, err := bot.SendStateEvent(ctx, p.RoomID, event.StateJoinRules, "", &event.JoinRulesEventContent{JoinRule: event.JoinRuleInvite}); err != nil {
			return fmt.Errorf("failed to close join rules: %w", err)
		}
		if r.cfg.PublishPublic {
			if err := setDirectoryVisibility(ctx, bot, p.RoomID, "private"); err != nil {
				return err
			}
		}
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

func (r *Registry) isGhost(userID id.UserID) bool {
	_, _, err := r.namer.ParseGhost(userID)
	return err == nil
}

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

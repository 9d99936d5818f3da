package portal

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/openmeet-team/openmeet-bridge/database"
)

// action is one change the homeserver needs, with a line for people.
type action struct {
	desc string
	do   func(ctx context.Context) error
}

// plan is what it takes to make a room match its portal: settings first,
// then memberships (independent of each other, so run in parallel), then
// at most one power level event. Reconciling shows it; syncing runs it.
type plan struct {
	settings []action
	// demotions are power level changes that ghosts make to themselves
	// before they leave: see planDemotions.
	demotions   []action
	members     []action
	powerLevels *action
	// levels is the content powerLevels sends.
	levels *event.PowerLevelsEventContent
}

// Descriptions lists the plan's changes, in the order they would run.
func (pl *plan) Descriptions() []string {
	var out []string
	for _, a := range slices.Concat(pl.settings, pl.demotions, pl.members) {
		out = append(out, a.desc)
	}
	if pl.powerLevels != nil {
		out = append(out, pl.powerLevels.desc)
	}
	return out
}

func (pl *plan) run(ctx context.Context, r *Registry) error {
	for _, a := range slices.Concat(pl.settings, pl.demotions) {
		if err := a.do(ctx); err != nil {
			return err
		}
	}
	work := make([]func(context.Context) error, len(pl.members))
	for i, a := range pl.members {
		work[i] = a.do
	}
	if err := r.parallel(ctx, work); err != nil {
		return err
	}
	if pl.powerLevels != nil {
		return pl.powerLevels.do(ctx)
	}
	return nil
}

// makePlan compares a portal's desired state with the room state.
func (r *Registry) makePlan(p *database.Portal, desired map[id.UserID]desiredMember, state mautrix.RoomStateMap) (*plan, error) {
	pl := &plan{}
	if p.Closed {
		r.planClose(pl, p, state)
		return pl, nil
	}
	r.planSettings(pl, p, state)
	r.planMembers(pl, p, desired, state, len(desired) > 0)
	return pl, r.planPowerLevels(pl, p, desired, state)
}

func (r *Registry) sendState(roomID id.RoomID, evtType event.Type, content any) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		if _, err := r.hs.Bot().Client.SendStateEvent(ctx, roomID, evtType, "", content); err != nil {
			return fmt.Errorf("failed to set %s: %w", evtType.Type, err)
		}
		return nil
	}
}

// planSettings brings name, topic, join rules and alias in line.
func (r *Registry) planSettings(pl *plan, p *database.Portal, state mautrix.RoomStateMap) {
	if name := stateContent(state, event.StateRoomName); name == nil || name.AsRoomName().Name != p.Name {
		pl.settings = append(pl.settings, action{fmt.Sprintf("set the room name to %q", p.Name),
			r.sendState(p.RoomID, event.StateRoomName, &event.RoomNameEventContent{Name: p.Name})})
	}
	if topic := stateContent(state, event.StateTopic); (topic == nil && p.Topic != "") || (topic != nil && topic.AsTopic().Topic != p.Topic) {
		pl.settings = append(pl.settings, action{fmt.Sprintf("set the topic to %q", p.Topic),
			r.sendState(p.RoomID, event.StateTopic, &event.TopicEventContent{Topic: p.Topic})})
	}
	wantRule := event.JoinRuleInvite
	if p.Visibility == "public" {
		wantRule = event.JoinRulePublic
	}
	if rules := stateContent(state, event.StateJoinRules); rules == nil || rules.AsJoinRules().JoinRule != wantRule {
		pl.settings = append(pl.settings, r.joinRuleAction(p.RoomID, wantRule))
	}
	// Only a missing history visibility is set: createRoom always sets one,
	// so none means a creation that failed part-way.
	if stateContent(state, event.StateHistoryVisibility) == nil {
		pl.settings = append(pl.settings, action{fmt.Sprintf("set the history visibility to %s", r.cfg.HistoryVisibility),
			r.sendState(p.RoomID, event.StateHistoryVisibility, &event.HistoryVisibilityEventContent{
				HistoryVisibility: event.HistoryVisibility(r.cfg.HistoryVisibility)})})
	}
	if canonical := stateContent(state, event.StateCanonicalAlias); canonical == nil || canonical.AsCanonicalAlias().Alias != p.Alias {
		pl.settings = append(pl.settings, action{fmt.Sprintf("restore the alias %s", p.Alias), func(ctx context.Context) error {
			if _, err := r.hs.Bot().Client.CreateAlias(ctx, p.Alias, p.RoomID); err != nil && !isAliasExists(err) {
				return fmt.Errorf("failed to create alias: %w", err)
			}
			content := keepOldAliases(canonical, p.Alias)
			err := r.sendState(p.RoomID, event.StateCanonicalAlias, content)(ctx)
			if err != nil && len(content.AltAliases) > 0 {
				// Synapse refuses alternatives that no longer point to the room.
				err = r.sendState(p.RoomID, event.StateCanonicalAlias, &event.CanonicalAliasEventContent{Alias: p.Alias})(ctx)
			}
			return err
		}})
	}
}

func (r *Registry) joinRuleAction(roomID id.RoomID, rule event.JoinRule) action {
	return action{fmt.Sprintf("set the join rule to %s", rule), func(ctx context.Context) error {
		if err := r.sendState(roomID, event.StateJoinRules, &event.JoinRulesEventContent{JoinRule: rule})(ctx); err != nil {
			return err
		}
		if !r.cfg.PublishPublic {
			return nil
		}
		visibility := "private"
		if rule == event.JoinRulePublic {
			visibility = "public"
		}
		err := setDirectoryVisibility(ctx, r.hs.Bot().Client, roomID, visibility)
		var httpErr mautrix.HTTPError
		if errors.As(err, &httpErr) && httpErr.IsStatus(http.StatusForbidden) {
			// Synapse refuses publication unless its room_list_publication_rules
			// allow it (by default nobody may publish), as createRoom quietly
			// does too: the room works, it is just not listed.
			zerolog.Ctx(ctx).Warn().Err(err).Stringer("room_id", roomID).
				Msg("Homeserver does not allow publishing the room in its directory")
			return nil
		}
		return err
	}}
}

// planMembers joins the ghosts that should be in the room and takes out the
// ghosts that should not. Users who are not ghosts are left alone.
//
// Adopted accounts (the legacy namespace) are taken out only when
// removeAdopted is set: a room taken over with no members provisioned yet
// keeps its members until the portal's member list arrives.
func (r *Registry) planMembers(pl *plan, p *database.Portal, desired map[id.UserID]desiredMember, state mautrix.RoomStateMap, removeAdopted bool) {
	for userID, m := range desired {
		current := membershipIn(state, userID)
		if current == event.MembershipJoin {
			continue
		}
		desc := fmt.Sprintf("join %s (now %s)", userID, describeMembership(current))
		pl.members = append(pl.members, action{desc, func(ctx context.Context) error {
			return r.joinGhost(ctx, p, m.PortalMember, current)
		}})
	}
	for stateKey, evt := range state[event.StateMember] {
		userID := id.UserID(stateKey)
		m := evt.Content.AsMember().Membership
		if _, want := desired[userID]; want || !r.isGhost(userID) || (m != event.MembershipJoin && m != event.MembershipInvite) ||
			(!removeAdopted && !r.isOwnGhost(userID)) {
			continue
		}
		pl.members = append(pl.members, action{fmt.Sprintf("remove %s (now %s)", userID, m), func(ctx context.Context) error {
			return r.removeGhost(ctx, p.RoomID, userID)
		}})
	}
}

// planPowerLevels sets each desired ghost's level and drops the entries of
// ghosts that are no longer members, in at most one state event. Entries of
// other users and every other key are kept as they are. The room's
// creators, where its version gives them unlimited power (v12), are never
// written into `users`: the auth rules refuse that, and they need no level.
// A room without power levels (left half-made by a failed creation) gets
// the ones createRoom would have set.
func (r *Registry) planPowerLevels(pl *plan, p *database.Portal, desired map[id.UserID]desiredMember, state mautrix.RoomStateMap) error {
	creators := roomCreators(state[event.StateCreate][""])
	var levels *event.PowerLevelsEventContent
	var changes []string
	if content := stateContent(state, event.StatePowerLevels); content != nil {
		levels = content.AsPowerLevels()
	} else {
		if !creators[r.botID] && creatorOf(state) != r.botID {
			return fmt.Errorf("room %s has no power levels and was not created by the bot, which therefore cannot set them", p.RoomID)
		}
		levels = defaultPowerLevels(p.Visibility, roomVersionOf(state[event.StateCreate][""]))
		changes = append(changes, "create the power levels")
	}
	if levels.Users == nil {
		levels.Users = make(map[id.UserID]int)
	}
	before := levels.Clone()
	set := func(userID id.UserID, level int) {
		if creators[userID] {
			return
		}
		current, has := levels.Users[userID]
		switch {
		case level == levels.UsersDefault && has && userID != r.botID:
			delete(levels.Users, userID)
			changes = append(changes, fmt.Sprintf("%s %d→%d", userID, current, level))
		case level != levels.UsersDefault && (!has || current != level):
			levels.Users[userID] = level
			if !has {
				current = levels.UsersDefault
			}
			changes = append(changes, fmt.Sprintf("%s %d→%d", userID, current, level))
		}
	}
	set(r.botID, botLevel)
	for userID, m := range desired {
		set(userID, m.level)
	}
	for userID, level := range levels.Users {
		// As with memberships: an adopted room's admins keep their levels
		// until the portal's member list arrives.
		if len(desired) == 0 && !r.isOwnGhost(userID) {
			continue
		}
		if _, want := desired[userID]; !want && userID != r.botID && r.isGhost(userID) {
			delete(levels.Users, userID)
			changes = append(changes, fmt.Sprintf("%s %d→(removed)", userID, level))
		}
	}
	if len(changes) > 0 {
		if !creators[r.botID] {
			r.planDemotions(pl, p.RoomID, before, levels)
		}
		pl.levels = levels
		pl.powerLevels = &action{"set power levels: " + joinSorted(changes),
			r.sendState(p.RoomID, event.StatePowerLevels, levels)}
	}
	return nil
}

// planDemotions lets each ghost whose level is at least the bot's lower
// it itself: the auth rules let nobody but a creator (v12) lower a level
// equal to their own, yet anyone may lower their own. Each runs before
// memberships change (a ghost that has left can send nothing), builds on
// the one before, and the bot's event then sets the rest.
func (r *Registry) planDemotions(pl *plan, roomID id.RoomID, before, after *event.PowerLevelsEventContent) {
	botPower := before.Users[r.botID]
	var demoted []id.UserID
	for userID, old := range before.Users {
		if userID == r.botID || old < botPower || !r.isGhost(userID) {
			continue
		}
		if level, has := after.Users[userID]; !has && after.UsersDefault < old || has && level < old {
			demoted = append(demoted, userID)
		}
	}
	slices.Sort(demoted)
	current := before
	for _, userID := range demoted {
		current = current.Clone()
		if level, has := after.Users[userID]; has {
			current.Users[userID] = level
		} else {
			delete(current.Users, userID)
		}
		content := current
		pl.demotions = append(pl.demotions, action{fmt.Sprintf("%s lowers its own level", userID), func(ctx context.Context) error {
			r.hs.MarkRegistered(ctx, userID)
			if _, err := r.hs.Intent(userID).Client.SendStateEvent(ctx, roomID, event.StatePowerLevels, "", content); err != nil {
				return fmt.Errorf("failed to have %s lower its own power level: %w", userID, err)
			}
			return nil
		}})
	}
}

// defaultPowerLevels are the power levels Synapse's private_chat and
// public_chat presets give a new room of that version (the bot's own entry
// is added by the plan), for a room that was left without any.
func defaultPowerLevels(visibility string, version id.RoomVersion) *event.PowerLevelsEventContent {
	fifty, hundred := 50, 100
	invite, tombstone := 0, 100
	events := map[string]int{
		event.StateRoomName.Type:          50,
		event.StateRoomAvatar.Type:        50,
		event.StateCanonicalAlias.Type:    50,
		event.StatePowerLevels.Type:       100,
		event.StateHistoryVisibility.Type: 100,
		event.StateServerACL.Type:         100,
		event.StateEncryption.Type:        100,
	}
	if visibility == "public" {
		invite = 50
		events[event.CallInvite.Type] = 50
	}
	if version.PrivilegedRoomCreators() {
		tombstone = 150 // above every level but the creators'
	}
	events[event.StateTombstone.Type] = tombstone
	return &event.PowerLevelsEventContent{
		Users:           map[id.UserID]int{},
		Events:          events,
		StateDefaultPtr: &fifty,
		InvitePtr:       &invite,
		KickPtr:         &fifty,
		BanPtr:          &fifty,
		RedactPtr:       &fifty,
		Notifications:   &event.NotificationPowerLevels{RoomPtr: &hundred},
	}
}

// creatorOf is the sender of the room's create event, or "".
func creatorOf(state mautrix.RoomStateMap) id.UserID {
	if create := state[event.StateCreate][""]; create != nil {
		return create.Sender
	}
	return ""
}

// planClose takes the ghosts out, deletes the alias and makes the room
// invite-only, as configured. The bot stays, so the history is kept.
func (r *Registry) planClose(pl *plan, p *database.Portal, state mautrix.RoomStateMap) {
	if r.cfg.Close.RemoveMembers {
		r.planMembers(pl, p, nil, state, true)
	}
	if r.cfg.Close.DeleteAlias {
		if canonical := stateContent(state, event.StateCanonicalAlias); canonical != nil && canonical.AsCanonicalAlias().Alias == p.Alias {
			pl.settings = append(pl.settings, action{fmt.Sprintf("delete the alias %s", p.Alias), func(ctx context.Context) error {
				if _, err := r.hs.Bot().Client.DeleteAlias(ctx, p.Alias); err != nil && !errors.Is(err, mautrix.MNotFound) {
					return fmt.Errorf("failed to delete alias: %w", err)
				}
				return r.sendState(p.RoomID, event.StateCanonicalAlias, &event.CanonicalAliasEventContent{})(ctx)
			}})
		}
	}
	if rules := stateContent(state, event.StateJoinRules); rules == nil || rules.AsJoinRules().JoinRule != event.JoinRuleInvite {
		pl.settings = append(pl.settings, r.joinRuleAction(p.RoomID, event.JoinRuleInvite))
	}
}

func membershipIn(state mautrix.RoomStateMap, userID id.UserID) event.Membership {
	if evt := state[event.StateMember][userID.String()]; evt != nil {
		return evt.Content.AsMember().Membership
	}
	return ""
}

func describeMembership(m event.Membership) string {
	if m == "" {
		return "never joined"
	}
	return string(m)
}

// keepOldAliases makes alias the canonical one and keeps the aliases the
// room had (an adopted room's #event-… alias) as alternatives, so links and
// clients that use them keep working.
func keepOldAliases(current *event.Content, alias id.RoomAlias) *event.CanonicalAliasEventContent {
	out := &event.CanonicalAliasEventContent{Alias: alias}
	if current == nil {
		return out
	}
	old := current.AsCanonicalAlias()
	for _, a := range append([]id.RoomAlias{old.Alias}, old.AltAliases...) {
		if a != "" && a != alias && !slices.Contains(out.AltAliases, a) {
			out.AltAliases = append(out.AltAliases, a)
		}
	}
	return out
}

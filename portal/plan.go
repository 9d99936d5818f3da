package portal

import (
	"context"
	"errors"
	"fmt"

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
	settings    []action
	members     []action
	powerLevels *action
}

// Descriptions lists the plan's changes, in the order they would run.
func (pl *plan) Descriptions() []string {
	var out []string
	for _, a := range append(append([]action{}, pl.settings...), pl.members...) {
		out = append(out, a.desc)
	}
	if pl.powerLevels != nil {
		out = append(out, pl.powerLevels.desc)
	}
	return out
}

func (pl *plan) run(ctx context.Context, r *Registry) error {
	for _, a := range pl.settings {
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
	r.planMembers(pl, p, desired, state)
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
	if canonical := stateContent(state, event.StateCanonicalAlias); canonical == nil || canonical.AsCanonicalAlias().Alias != p.Alias {
		pl.settings = append(pl.settings, action{fmt.Sprintf("restore the alias %s", p.Alias), func(ctx context.Context) error {
			if _, err := r.hs.Bot().Client.CreateAlias(ctx, p.Alias, p.RoomID); err != nil && !isAliasExists(err) {
				return fmt.Errorf("failed to create alias: %w", err)
			}
			return r.sendState(p.RoomID, event.StateCanonicalAlias, &event.CanonicalAliasEventContent{Alias: p.Alias})(ctx)
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
		return setDirectoryVisibility(ctx, r.hs.Bot().Client, roomID, visibility)
	}}
}

// planMembers joins the ghosts that should be in the room and takes out the
// ghosts that should not. Users who are not ghosts are left alone.
func (r *Registry) planMembers(pl *plan, p *database.Portal, desired map[id.UserID]desiredMember, state mautrix.RoomStateMap) {
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
		if _, want := desired[userID]; want || !r.isGhost(userID) || (m != event.MembershipJoin && m != event.MembershipInvite) {
			continue
		}
		pl.members = append(pl.members, action{fmt.Sprintf("remove %s (now %s)", userID, m), func(ctx context.Context) error {
			return r.removeGhost(ctx, p.RoomID, userID)
		}})
	}
}

// planPowerLevels sets each desired ghost's level and drops the entries of
// ghosts that are no longer members, in at most one state event. Entries of
// other users and every other key are kept as they are.
func (r *Registry) planPowerLevels(pl *plan, p *database.Portal, desired map[id.UserID]desiredMember, state mautrix.RoomStateMap) error {
	content := stateContent(state, event.StatePowerLevels)
	if content == nil {
		return errors.New("room has no power levels")
	}
	levels := content.AsPowerLevels()
	if levels.Users == nil {
		levels.Users = make(map[id.UserID]int)
	}
	var changes []string
	set := func(userID id.UserID, level int) {
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
		if _, want := desired[userID]; !want && userID != r.botID && r.isGhost(userID) {
			delete(levels.Users, userID)
			changes = append(changes, fmt.Sprintf("%s %d→(removed)", userID, level))
		}
	}
	if len(changes) > 0 {
		pl.powerLevels = &action{"set power levels: " + joinSorted(changes),
			r.sendState(p.RoomID, event.StatePowerLevels, levels)}
	}
	return nil
}

// planClose takes the ghosts out, deletes the alias and makes the room
// invite-only, as configured. The bot stays, so the history is kept.
func (r *Registry) planClose(pl *plan, p *database.Portal, state mautrix.RoomStateMap) {
	if r.cfg.Close.RemoveMembers {
		r.planMembers(pl, p, nil, state)
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

package portal

import (
	"context"
	"errors"
	"fmt"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/openmeet-team/openmeet-bridge/database"
)

// createRoom creates the portal's room with its alias, name, topic, join
// rules, history visibility and power levels in the one request. When the
// alias already points to a room (an earlier attempt that failed or crashed
// part-way), that room is inspected and adopted only if the bot can
// complete it; the plan that runs next fills in what it lacks.
func (r *Registry) createRoom(ctx context.Context, p *database.Portal, desired map[id.UserID]desiredMember) error {
	version, err := r.creationVersion(ctx)
	if err != nil {
		return err
	}
	users := map[id.UserID]int{}
	if !version.PrivilegedRoomCreators() {
		users[r.botID] = botLevel // from v12 the creator has unlimited power and must not be listed
	}
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
		RoomVersion:   version,
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
	resp, err := r.hs.Bot().Client.CreateRoom(ctx, req)
	switch {
	case errors.Is(err, mautrix.MRoomInUse):
		if p.RoomID, err = r.adoptLeftover(ctx, p); err != nil {
			return err
		}
	case err != nil:
		return fmt.Errorf("failed to create room: %w", err)
	default:
		p.RoomID = resp.RoomID
	}
	if err := r.db.Portals.SetRoomID(ctx, p.Key(), p.RoomID); err != nil {
		return fmt.Errorf("failed to store room ID: %w", err)
	}
	zerolog.Ctx(ctx).Info().Stringer("room_id", p.RoomID).Str("room_version", string(version)).Msg("Created portal room")
	return nil
}

// adoptLeftover inspects the room the portal's alias already points to and
// returns it if the bot can make it a working portal: the bot is (or can
// become) a member and can set power levels, join rules and the rest. It
// never returns a room the bot cannot complete; the error says why.
func (r *Registry) adoptLeftover(ctx context.Context, p *database.Portal) (id.RoomID, error) {
	bot := r.hs.Bot().Client
	resolved, err := bot.ResolveAlias(ctx, p.Alias)
	if err != nil {
		return "", fmt.Errorf("the alias %s is reported taken but cannot be resolved: %w", p.Alias, err)
	}
	roomID := resolved.RoomID
	state, err := bot.State(ctx, roomID)
	joined := false
	if errors.Is(err, mautrix.MForbidden) {
		// Not a member: a leftover of ours that the bot left, or someone
		// else's room. Joining is the only way to look inside.
		if _, joinErr := bot.JoinRoomByID(ctx, roomID); joinErr != nil {
			return "", fmt.Errorf("the alias %s points to room %s, which the bot is not in and cannot join (%w); delete the alias or invite the bot",
				p.Alias, roomID, joinErr)
		}
		joined = true
		state, err = bot.State(ctx, roomID)
	}
	if err == nil {
		err = r.canComplete(state)
	}
	if err != nil {
		if joined {
			// Not ours to keep: do not linger in someone else's room.
			_, _ = bot.LeaveRoom(ctx, roomID)
		}
		return "", fmt.Errorf("the alias %s points to room %s, which the bridge cannot adopt: %w", p.Alias, roomID, err)
	}
	zerolog.Ctx(ctx).Warn().Stringer("room_id", roomID).Stringer("alias", p.Alias).
		Msg("Adopting the room an earlier creation left behind")
	return roomID, nil
}

// canComplete reports why the bot could not make the room a portal: it is
// not joined, or it lacks the power to set the power levels.
func (r *Registry) canComplete(state mautrix.RoomStateMap) error {
	create := state[event.StateCreate][""]
	if create == nil {
		return errors.New("it has no create event")
	}
	if m := membershipIn(state, r.botID); m != event.MembershipJoin {
		return fmt.Errorf("the bot's membership is %q", describeMembership(m))
	}
	if roomCreators(create)[r.botID] {
		return nil
	}
	content := stateContent(state, event.StatePowerLevels)
	if content == nil {
		if create.Sender == r.botID {
			return nil // without power levels the creator has 100
		}
		return fmt.Errorf("it has no power levels and was created by %s, not the bot", create.Sender)
	}
	levels := content.AsPowerLevels()
	if have, need := levels.GetUserLevel(r.botID), levels.GetEventLevel(event.StatePowerLevels); have < need {
		return fmt.Errorf("the bot's power level is %d, setting power levels needs %d", have, need)
	}
	return nil
}

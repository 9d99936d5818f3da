package portal

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/openmeet-team/openmeet-bridge/database"
	"github.com/openmeet-team/openmeet-bridge/ident"
)

// Errors of taking over an existing room.
var (
	// ErrBadRoomRef is returned by ResolveRoom when the reference is neither a
	// room ID nor an alias of OpenMeet's earlier integration.
	ErrBadRoomRef = errors.New("not a room ID or a legacy room alias")
	// ErrRoomNotFound is returned by ResolveRoom when the alias points nowhere.
	ErrRoomNotFound = errors.New("no such room")
	// ErrCannotTakeOver is returned when the bot cannot get into a room with
	// the power to manage it.
	ErrCannotTakeOver = errors.New("the bridge cannot take charge of the room")
)

// ResolveRoom turns what the backend names as a portal's existing room (a
// room ID, or an alias #event-{slug}-{tenant} / #group-{slug}-{tenant} on
// this server) into a room ID. Aliases are checked against the portal
// they are offered for, so one tenant cannot name another's room by alias.
func (r *Registry) ResolveRoom(ctx context.Context, key database.PortalKey, ref string) (id.RoomID, error) {
	switch {
	case strings.HasPrefix(ref, "!"):
		if len(ref) > ident.MaxIDLength || strings.ContainsAny(ref, " \t\n/") || len(ref) < 2 {
			return "", fmt.Errorf("%w: %q", ErrBadRoomRef, ref)
		}
		return id.RoomID(ref), nil
	case strings.HasPrefix(ref, "#"):
		kind, _, tenant, domain, err := ident.ParseLegacyAlias(id.RoomAlias(ref))
		if err != nil {
			return "", fmt.Errorf("%w: %s", ErrBadRoomRef, err.Error())
		}
		if domain != r.namer.Domain() || string(kind) != key.Kind || tenant != key.Tenant {
			return "", fmt.Errorf("%w: %s is not an alias of a %s of tenant %q on %s", ErrBadRoomRef, ref, key.Kind, key.Tenant, r.namer.Domain())
		}
		resolved, err := r.hs.Bot().Client.ResolveAlias(ctx, id.RoomAlias(ref))
		if errors.Is(err, mautrix.MNotFound) {
			return "", fmt.Errorf("%w: the alias %s points to no room", ErrRoomNotFound, ref)
		} else if err != nil {
			return "", fmt.Errorf("failed to resolve %s: %w", ref, err)
		}
		return resolved.RoomID, nil
	}
	return "", fmt.Errorf("%w: %q", ErrBadRoomRef, ref)
}

// readState reads the room's state as the bot; when the bot is not in the
// room (a room being adopted), it takes the room over first.
func (r *Registry) readState(ctx context.Context, p *database.Portal, desired map[id.UserID]desiredMember) (mautrix.RoomStateMap, error) {
	state, err := r.hs.Bot().Client.State(ctx, p.RoomID)
	if errors.Is(err, mautrix.MForbidden) {
		if err = r.takeOver(ctx, p, desired); err != nil {
			return nil, err
		}
		state, err = r.hs.Bot().Client.State(ctx, p.RoomID)
	}
	if err != nil {
		return nil, fmt.Errorf("failed to read room state: %w", err)
	}
	if r.canComplete(state) != nil {
		// In the room but without power: an adopted member may raise it.
		err = r.raiseBot(ctx, p.RoomID, desired)
		if err != nil && r.hs.HasAdminToken() {
			err = r.hs.AdminMakeRoomAdmin(ctx, p.RoomID, r.botID)
		}
		if err == nil {
			state, err = r.hs.Bot().Client.State(ctx, p.RoomID)
		}
		if err != nil {
			return nil, err
		}
	}
	if err = r.canComplete(state); err != nil {
		return nil, fmt.Errorf("%w %s: %s", ErrCannotTakeOver, p.RoomID, err.Error())
	}
	if err = r.backfillMembers(ctx, p.RoomID, state); err != nil {
		return nil, err
	}
	return state, nil
}

// takeOver gets the bot into an existing room with the power to manage it.
// In order: the bot joins by itself (a public room); a member the bridge
// may act as (an adopted account or a ghost) with enough power invites the
// bot and raises it to its own level; Synapse's admin API, when
// homeserver.admin_token is set, joins the bot and makes it room admin.
func (r *Registry) takeOver(ctx context.Context, p *database.Portal, desired map[id.UserID]desiredMember) error {
	log := zerolog.Ctx(ctx).With().Stringer("room_id", p.RoomID).Logger()
	bot := r.hs.Bot().Client
	if _, err := bot.JoinRoomByID(ctx, p.RoomID); err == nil {
		log.Info().Msg("Bot joined the room to adopt")
		err = r.raiseBot(ctx, p.RoomID, desired)
		if err != nil && r.hs.HasAdminToken() {
			err = r.hs.AdminMakeRoomAdmin(ctx, p.RoomID, r.botID)
		}
		return err
	}
	if err := r.takeOverAsMember(ctx, p.RoomID, desired); err == nil {
		log.Info().Msg("An adopted member let the bot into the room to adopt")
		return nil
	} else if !r.hs.HasAdminToken() {
		return fmt.Errorf("%w %s: the bot is not in it and %s; invite the bot and give it power level 100, or set homeserver.admin_token",
			ErrCannotTakeOver, p.RoomID, err.Error())
	}
	// make_room_admin has the room's strongest local member raise the bot
	// and, in a room not open to all, invite it too.
	if err := r.hs.AdminMakeRoomAdmin(ctx, p.RoomID, r.botID); err != nil {
		return fmt.Errorf("%w %s: %w", ErrCannotTakeOver, p.RoomID, err)
	}
	if _, err := bot.JoinRoomByID(ctx, p.RoomID); err != nil {
		if err = r.hs.AdminJoin(ctx, p.RoomID, r.botID); err != nil {
			return fmt.Errorf("%w %s: %w", ErrCannotTakeOver, p.RoomID, err)
		}
	}
	log.Info().Msg("Synapse's admin API let the bot into the room to adopt")
	return nil
}

// takeOverAsMember finds a joined member the bridge may act as whose level
// lets it invite and set power levels, and has it invite the bot, which
// then joins and is raised.
func (r *Registry) takeOverAsMember(ctx context.Context, roomID id.RoomID, desired map[id.UserID]desiredMember) error {
	state, err := r.stateAsMember(ctx, roomID, desired)
	if err != nil {
		return err
	}
	admin, err := r.strongestManaged(state)
	if err != nil {
		return err
	}
	r.hs.MarkRegistered(ctx, admin)
	if _, err = r.hs.Intent(admin).Client.InviteUser(ctx, roomID, &mautrix.ReqInviteUser{UserID: r.botID}); err != nil &&
		membershipIn(state, r.botID) != event.MembershipInvite {
		return fmt.Errorf("%s could not invite the bot: %w", admin, err)
	}
	if _, err = r.hs.Bot().Client.JoinRoomByID(ctx, roomID); err != nil {
		return fmt.Errorf("the bot could not join after %s invited it: %w", admin, err)
	}
	return r.raiseBotAs(ctx, roomID, admin, state)
}

// stateAsMember reads the room's state as the first desired member that is
// in it.
func (r *Registry) stateAsMember(ctx context.Context, roomID id.RoomID, desired map[id.UserID]desiredMember) (mautrix.RoomStateMap, error) {
	candidates := make([]id.UserID, 0, len(desired))
	for userID := range desired {
		candidates = append(candidates, userID)
	}
	slices.Sort(candidates)
	for _, userID := range candidates {
		r.hs.MarkRegistered(ctx, userID)
		if state, err := r.hs.Intent(userID).Client.State(ctx, roomID); err == nil {
			return state, nil
		}
	}
	return nil, errors.New("none of the portal's members can read the room")
}

// strongestManaged is the joined member the bridge may act as with the
// highest power, if that power is enough to invite and to set power levels.
func (r *Registry) strongestManaged(state mautrix.RoomStateMap) (id.UserID, error) {
	creators := roomCreators(state[event.StateCreate][""])
	levels := &event.PowerLevelsEventContent{}
	if content := stateContent(state, event.StatePowerLevels); content != nil {
		levels = content.AsPowerLevels()
	}
	var best id.UserID
	bestLevel := -1 << 62
	for stateKey, evt := range state[event.StateMember] {
		userID := id.UserID(stateKey)
		if evt.Content.AsMember().Membership != event.MembershipJoin || !r.namer.Managed(userID) {
			continue
		}
		level := levels.GetUserLevel(userID)
		if creators[userID] {
			level = 1 << 62
		}
		if level > bestLevel || level == bestLevel && userID < best {
			best, bestLevel = userID, level
		}
	}
	if best == "" {
		return "", errors.New("no member the bridge may act as is joined")
	}
	if bestLevel < levels.Invite() || bestLevel < levels.GetEventLevel(event.StatePowerLevels) {
		return "", fmt.Errorf("its strongest adopted member %s has level %d, too low to invite the bot and set power levels", best, bestLevel)
	}
	return best, nil
}

// raiseBot has the strongest managed member raise the bot, unless the bot
// can already set power levels.
func (r *Registry) raiseBot(ctx context.Context, roomID id.RoomID, desired map[id.UserID]desiredMember) error {
	state, err := r.hs.Bot().Client.State(ctx, roomID)
	if err != nil {
		return fmt.Errorf("failed to read room state: %w", err)
	}
	if r.canComplete(state) == nil {
		return nil
	}
	admin, err := r.strongestManaged(state)
	if err != nil {
		return fmt.Errorf("%w %s: the bot joined but %s", ErrCannotTakeOver, roomID, err.Error())
	}
	return r.raiseBotAs(ctx, roomID, admin, state)
}

// raiseBotAs has admin set the bot's level to botLevel, or to admin's own
// level when that is lower (nobody may grant more than they have).
func (r *Registry) raiseBotAs(ctx context.Context, roomID id.RoomID, admin id.UserID, state mautrix.RoomStateMap) error {
	content := stateContent(state, event.StatePowerLevels)
	if content == nil {
		return nil // without power levels the creator decides; canComplete will say
	}
	levels := content.AsPowerLevels().Clone()
	target := botLevel
	if !roomCreators(state[event.StateCreate][""])[admin] {
		target = min(target, levels.GetUserLevel(admin))
	}
	if levels.GetUserLevel(r.botID) >= target {
		return nil
	}
	if levels.Users == nil {
		levels.Users = map[id.UserID]int{}
	}
	levels.Users[r.botID] = target
	if _, err := r.hs.Intent(admin).Client.SendStateEvent(ctx, roomID, event.StatePowerLevels, "", levels); err != nil {
		return fmt.Errorf("%s could not raise the bot: %w", admin, err)
	}
	return nil
}

// backfillMembers records the joined and invited members of a room that
// Synapse never pushed to the bridge (they joined before the bridge was
// interested in the room), so that the client API lets them in. The rows
// carry position 0: any member event pushed later replaces them.
func (r *Registry) backfillMembers(ctx context.Context, roomID id.RoomID, state mautrix.RoomStateMap) error {
	known, err := r.db.Members.List(ctx, roomID)
	if err != nil {
		return fmt.Errorf("failed to load the room's members: %w", err)
	}
	have := make(map[id.UserID]bool, len(known))
	for _, m := range known {
		have[m.UserID] = true
	}
	var rows []database.BackfilledMember
	for stateKey, evt := range state[event.StateMember] {
		m := evt.Content.AsMember()
		if have[id.UserID(stateKey)] || m.Membership != event.MembershipJoin && m.Membership != event.MembershipInvite {
			continue
		}
		rows = append(rows, database.BackfilledMember{
			UserID: id.UserID(stateKey), Membership: m.Membership, Displayname: m.Displayname, EventID: evt.ID,
		})
	}
	if err := r.db.Members.Backfill(ctx, roomID, rows); err != nil {
		return fmt.Errorf("failed to record the room's members: %w", err)
	}
	var joined []id.UserID
	for _, m := range rows {
		if m.Membership == event.MembershipJoin {
			joined = append(joined, m.UserID)
		}
	}
	if len(joined) > 0 && r.membersRecorded != nil {
		r.membersRecorded(roomID, joined)
	}
	return nil
}

// ErrNoAccount is returned by CheckAccount when the homeserver has no such
// user (or refuses to let the bridge act as it).
var ErrNoAccount = errors.New("the homeserver does not let the bridge act as this account")

// CheckAccount asks the homeserver, as userID, who it is: it succeeds only
// when the account exists and the appservice may act as it.
func (r *Registry) CheckAccount(ctx context.Context, userID id.UserID) error {
	resp, err := r.hs.Intent(userID).Client.Whoami(ctx)
	var respErr mautrix.RespError
	switch {
	case errors.As(err, &respErr) && respErr.StatusCode >= 400 && respErr.StatusCode < 500:
		return fmt.Errorf("%w: %s", ErrNoAccount, respErr.Err)
	case err != nil:
		return fmt.Errorf("failed to ask the homeserver about %s: %w", userID, err)
	case resp.UserID != userID:
		return fmt.Errorf("%w: the homeserver answered as %s", ErrNoAccount, resp.UserID)
	}
	r.hs.MarkRegistered(ctx, userID)
	return nil
}

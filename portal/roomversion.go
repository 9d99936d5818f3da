package portal

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// SupportedRoomVersions are the room versions portal rooms may be created
// in: the ones whose auth rules the power-level plan knows (v12 gives the
// room's creators unlimited power and keeps them out of `users`).
var SupportedRoomVersions = []string{"10", "11", "12"}

// ErrRoomVersionUnsupported is returned when portals.room_version names a
// version the homeserver does not offer.
var ErrRoomVersionUnsupported = errors.New("room version not offered by the homeserver")

// ErrCreator is returned by SetPowerLevel for a creator of a room whose
// version gives creators unlimited power: no level can be set for them.
var ErrCreator = errors.New("user is a creator of the room")

// capabilitiesTTL is how long the homeserver's room versions are trusted
// before they are asked for again (a Synapse upgrade may change the default).
const capabilitiesTTL = 10 * time.Minute

// roomVersions caches the homeserver's m.room_versions capability.
type roomVersions struct {
	mu      sync.Mutex
	caps    *mautrix.CapRoomVersions
	fetched time.Time
}

func (rv *roomVersions) get(ctx context.Context, cli *mautrix.Client) (*mautrix.CapRoomVersions, error) {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	if rv.caps != nil && time.Since(rv.fetched) < capabilitiesTTL {
		return rv.caps, nil
	}
	resp, err := cli.Capabilities(ctx)
	if err != nil {
		return nil, fmt.Errorf("failed to read the homeserver's capabilities: %w", err)
	}
	if resp == nil || resp.RoomVersions == nil || resp.RoomVersions.Default == "" {
		return nil, errors.New("the homeserver's capabilities name no default room version")
	}
	rv.caps, rv.fetched = resp.RoomVersions, time.Now()
	return rv.caps, nil
}

// CheckRoomVersion asks the homeserver whether it offers the configured
// room version; with none configured it only checks that it can be asked.
func (r *Registry) CheckRoomVersion(ctx context.Context) error {
	_, err := r.creationVersion(ctx)
	return err
}

// creationVersion is the version a new portal room gets: the configured
// one, or the homeserver's default. It is always passed to createRoom
// explicitly, so the power levels planned for the room and the room's
// actual version cannot disagree.
func (r *Registry) creationVersion(ctx context.Context) (id.RoomVersion, error) {
	caps, err := r.versions.get(ctx, r.hs.Bot().Client)
	if err != nil {
		return "", err
	}
	if r.cfg.RoomVersion == "" {
		return id.RoomVersion(caps.Default), nil
	}
	if _, ok := caps.Available[r.cfg.RoomVersion]; !ok {
		offered := make([]string, 0, len(caps.Available))
		for v := range caps.Available {
			offered = append(offered, v)
		}
		slices.Sort(offered)
		return "", fmt.Errorf("%w: portals.room_version is %q, the homeserver offers %s",
			ErrRoomVersionUnsupported, r.cfg.RoomVersion, strings.Join(offered, ", "))
	}
	return id.RoomVersion(r.cfg.RoomVersion), nil
}

// roomCreators lists who created a room whose version gives creators
// unlimited power (the create event's sender and its additional_creators);
// nil for older versions, where creators are ordinary users.
func roomCreators(create *event.Event) map[id.UserID]bool {
	if create == nil {
		return nil
	}
	content, ok := create.Content.Parsed.(*event.CreateEventContent)
	if !ok || !content.SupportsCreatorPower() {
		return nil
	}
	creators := map[id.UserID]bool{create.Sender: true}
	for _, userID := range content.AdditionalCreators {
		creators[userID] = true
	}
	return creators
}

// roomVersionOf is the version a create event declares ("1" when absent,
// as the spec says).
func roomVersionOf(create *event.Event) id.RoomVersion {
	if create != nil {
		if content, ok := create.Content.Parsed.(*event.CreateEventContent); ok && content.RoomVersion != "" {
			return content.RoomVersion
		}
	}
	return id.RoomV1
}

// createEvent reads a room's create event whole: its sender is the creator,
// which the state endpoint's usual content-only answer does not tell.
func (r *Registry) createEvent(ctx context.Context, roomID id.RoomID) (*event.Event, error) {
	cli := r.hs.Bot().Client
	url := cli.BuildURLWithQuery(mautrix.ClientURLPath{"v3", "rooms", roomID, "state", event.StateCreate.Type, ""},
		map[string]string{"format": "event"})
	var create event.Event
	if _, err := cli.MakeRequest(ctx, http.MethodGet, url, nil, &create); err != nil {
		return nil, fmt.Errorf("failed to read the create event: %w", err)
	}
	if create.Type.Type != event.StateCreate.Type {
		return nil, fmt.Errorf("the homeserver answered a %q event for room %s's create event", create.Type.Type, roomID)
	}
	if err := create.Content.ParseRaw(event.StateCreate); err != nil && !errors.Is(err, event.ErrContentAlreadyParsed) {
		return nil, fmt.Errorf("failed to parse the create event: %w", err)
	}
	return &create, nil
}

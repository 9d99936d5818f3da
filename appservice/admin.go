package appservice

import (
	"context"
	"errors"
	"fmt"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"
)

// ErrNoAdminToken is returned by the admin API calls when homeserver.admin_token
// is not configured.
var ErrNoAdminToken = errors.New("homeserver.admin_token is not configured")

// adminClient is a client with the server admin's token, or nil.
func (h *Homeserver) adminClient() (*mautrix.Client, error) {
	if h.hsCfg == nil || h.hsCfg.AdminToken == "" {
		return nil, ErrNoAdminToken
	}
	cli, err := mautrix.NewClient(h.hsCfg.Address, "", h.hsCfg.AdminToken)
	if err != nil {
		return nil, fmt.Errorf("failed to make admin client: %w", err)
	}
	cli.Client = h.as.HTTPClient
	cli.Log = h.log
	cli.DefaultHTTPRetries = 2
	return cli, nil
}

// HasAdminToken reports whether Synapse's admin API may be used.
func (h *Homeserver) HasAdminToken() bool { return h.hsCfg != nil && h.hsCfg.AdminToken != "" }

// AdminJoin has Synapse join userID (a local user) to roomID through the
// admin API (POST /_synapse/admin/v1/join/{room}), which needs a local
// member already in the room.
func (h *Homeserver) AdminJoin(ctx context.Context, roomID id.RoomID, userID id.UserID) error {
	cli, err := h.adminClient()
	if err != nil {
		return err
	}
	url := cli.BuildURL(mautrix.SynapseAdminURLPath{"v1", "join", roomID.String()})
	if _, err = cli.MakeRequest(ctx, "POST", url, map[string]string{"user_id": userID.String()}, nil); err != nil {
		return fmt.Errorf("failed to join %s through the admin API: %w", userID, err)
	}
	return nil
}

// AdminMakeRoomAdmin gives userID the highest power a local member of
// roomID has, through the admin API
// (POST /_synapse/admin/v1/rooms/{room}/make_room_admin).
func (h *Homeserver) AdminMakeRoomAdmin(ctx context.Context, roomID id.RoomID, userID id.UserID) error {
	cli, err := h.adminClient()
	if err != nil {
		return err
	}
	url := cli.BuildURL(mautrix.SynapseAdminURLPath{"v1", "rooms", roomID.String(), "make_room_admin"})
	if _, err = cli.MakeRequest(ctx, "POST", url, map[string]string{"user_id": userID.String()}, nil); err != nil {
		return fmt.Errorf("failed to make %s room admin through the admin API: %w", userID, err)
	}
	return nil
}

package portal

import (
	"context"
	"fmt"
	"strings"

	"maunium.net/go/mautrix/id"

	"github.com/openmeet-team/openmeet-bridge/database"
)

// syncGhost is the ghost queue's work: make the homeserver's profile of one
// ghost match its row.
func (r *Registry) syncGhost(ctx context.Context, key ghostKey) error {
	g, err := r.db.Ghosts.Get(ctx, key.Tenant, key.Slug)
	if err != nil || g == nil {
		return err
	}
	err = r.applyGhost(ctx, g)
	r.noteResult(key, err)
	if err != nil && ctx.Err() == nil {
		r.log.Warn().Err(err).Stringer("user_id", g.UserID).Msg("Failed to sync ghost")
		if dbErr := r.db.Ghosts.SetError(ctx, g, err.Error()); dbErr != nil {
			r.log.Err(dbErr).Msg("Failed to record ghost error")
		}
	}
	return err
}

func (r *Registry) applyGhost(ctx context.Context, g *database.Ghost) error {
	if err := r.registerGhost(ctx, g); err != nil {
		return err
	}
	mxc := g.AvatarMXC
	if g.AvatarSource != "" && mxc == "" {
		var err error
		if mxc, err = r.uploadAvatar(ctx, g.AvatarSource); err != nil {
			return err
		}
		if err = r.db.Ghosts.SetAvatarMXC(ctx, g, g.AvatarSource, mxc); err != nil {
			return fmt.Errorf("failed to store avatar: %w", err)
		}
	}
	client := r.hs.Intent(g.UserID).Client
	if g.DisplaynameApplied == nil && !r.isOwnGhost(g.UserID) {
		// An adopted account already has a profile: setting the same name
		// again would still send a member event into each of its rooms.
		if profile, err := client.GetProfile(ctx, g.UserID); err == nil {
			g.DisplaynameApplied = &profile.DisplayName
			if g.AvatarApplied == nil && profile.AvatarURL.String() == mxc {
				g.AvatarApplied = &mxc
			}
		}
	}
	if g.DisplaynameApplied == nil || *g.DisplaynameApplied != g.Displayname {
		if err := client.SetDisplayName(ctx, g.Displayname); err != nil {
			return fmt.Errorf("failed to set display name: %w", err)
		}
	}
	// A new ghost has no avatar, so "none" needs no request.
	if (g.AvatarApplied == nil && mxc != "") || (g.AvatarApplied != nil && *g.AvatarApplied != mxc) {
		uri, _ := id.ParseContentURI(mxc)
		if err := client.SetAvatarURL(ctx, uri); err != nil {
			return fmt.Errorf("failed to set avatar: %w", err)
		}
	}
	if err := r.db.Ghosts.SetApplied(ctx, g, g.Displayname, mxc); err != nil {
		return fmt.Errorf("failed to record ghost profile: %w", err)
	}
	return nil
}

// registerGhost makes sure the homeserver knows the ghost, asking it only
// once per ghost over the bridge's lifetime.
func (r *Registry) registerGhost(ctx context.Context, g *database.Ghost) error {
	if g.Registered {
		r.hs.MarkRegistered(ctx, g.UserID)
		return nil
	}
	if err := r.hs.EnsureRegistered(ctx, g.UserID); err != nil {
		return err
	}
	g.Registered = true
	if err := r.db.Ghosts.MarkRegistered(ctx, g.UserID); err != nil {
		return fmt.Errorf("failed to record registration: %w", err)
	}
	return nil
}

// uploadAvatar returns source itself when it is an mxc:// URI, otherwise
// downloads it within the configured limits and uploads it.
func (r *Registry) uploadAvatar(ctx context.Context, source string) (string, error) {
	if strings.HasPrefix(source, "mxc://") {
		return source, nil
	}
	data, contentType, err := r.avatars.fetch(ctx, source)
	if err != nil {
		return "", err
	}
	resp, err := r.hs.Bot().UploadBytes(ctx, data, contentType)
	if err != nil {
		return "", fmt.Errorf("failed to upload avatar: %w", err)
	}
	return resp.ContentURI.String(), nil
}

// isOwnGhost reports whether userID is a ghost the bridge created (as
// opposed to an adopted account).
func (r *Registry) isOwnGhost(userID id.UserID) bool {
	_, _, err := r.namer.ParseGhost(userID)
	return err == nil
}

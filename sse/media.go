package sse

import (
	"context"
	"net/url"

	"github.com/hashicorp/golang-lru/v2/expirable"
	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// MediaSigner makes the browser-usable URL of an mxc URI seen in a room
// (media.Signer); "" for a URI it cannot sign.
type MediaSigner interface {
	URL(kind string, roomID id.RoomID, mxc string, extra url.Values) string
}

// MediaURLs are the URLs a page loads an event's files from, signed for
// the event's room: a browser has no Matrix token, and mxc:// URIs mean
// nothing to it.
type MediaURLs struct {
	// URL is the file of an m.image, m.file, m.video or m.audio message.
	URL string `json:"url,omitempty"`
	// ThumbnailURL is the message's own thumbnail, or for an image one
	// Synapse makes of it.
	ThumbnailURL string `json:"thumbnail_url,omitempty"`
	// AvatarURL is the avatar a member event sets.
	AvatarURL string `json:"avatar_url,omitempty"`
	// SenderAvatarURL is the sender's avatar in the room now.
	SenderAvatarURL string `json:"sender_avatar_url,omitempty"`
}

// Thumbnail size asked for images that carry no thumbnail of their own.
var thumbnailSize = url.Values{"width": {"800"}, "height": {"600"}, "method": {"scale"}}

// SetMediaSigner makes payloads carry media URLs. Call it before Run.
func (h *Hub) SetMediaSigner(s MediaSigner) {
	h.fmt.media = s
	h.fmt.avatars = expirable.NewLRU[[2]string, string](50000, nil, cacheTTL)
}

// mediaURLs are the URLs of what an event shows; nil when it shows none.
func (f *formatter) mediaURLs(ctx context.Context, evt payloadSource) (*MediaURLs, error) {
	m := &MediaURLs{}
	content := gjson.GetBytes(evt.raw, "content")
	switch evt.eventType {
	case event.EventMessage.Type:
		if mxc := content.Get("url"); mxc.Type == gjson.String {
			m.URL = f.media.URL("download", evt.roomID, mxc.Str, nil)
			if thumb := content.Get("info.thumbnail_url"); thumb.Type == gjson.String {
				m.ThumbnailURL = f.media.URL("download", evt.roomID, thumb.Str, nil)
			} else if content.Get("msgtype").Str == string(event.MsgImage) {
				m.ThumbnailURL = f.media.URL("thumbnail", evt.roomID, mxc.Str, thumbnailSize)
			}
		}
	case event.StateMember.Type:
		// The member's avatar may have changed: read it afresh next time.
		// (Not set from here: history formats old member events too.)
		f.avatars.Remove([2]string{string(evt.roomID), gjson.GetBytes(evt.raw, "state_key").Str})
		if mxc := content.Get("avatar_url"); mxc.Type == gjson.String {
			m.AvatarURL = f.media.URL("thumbnail", evt.roomID, mxc.Str, avatarSize)
		}
	}
	avatar, err := f.avatar(ctx, evt.roomID, evt.sender)
	if err != nil {
		return nil, err
	}
	if avatar != "" {
		m.SenderAvatarURL = f.media.URL("thumbnail", evt.roomID, avatar, avatarSize)
	}
	if *m == (MediaURLs{}) {
		return nil, nil
	}
	return m, nil
}

// Avatars are shown small.
var avatarSize = url.Values{"width": {"96"}, "height": {"96"}, "method": {"crop"}}

type payloadSource struct {
	roomID    id.RoomID
	sender    id.UserID
	eventType string
	raw       []byte
}

// avatar is a user's avatar mxc URI in a room: a ghost's from its profile,
// anyone else's from the member event that made their membership.
func (f *formatter) avatar(ctx context.Context, roomID id.RoomID, userID id.UserID) (string, error) {
	key := [2]string{string(roomID), string(userID)}
	if mxc, ok := f.avatars.Get(key); ok {
		return mxc, nil
	}
	var mxc string
	ghost, err := f.db.Ghosts.GetByUserID(ctx, userID)
	if err != nil {
		return "", err
	}
	if ghost != nil {
		mxc = ghost.AvatarMXC
	} else {
		member, err := f.db.Members.Get(ctx, roomID, userID)
		if err != nil {
			return "", err
		}
		if member != nil && member.EventID != "" {
			logged, err := f.db.EventLog.Get(ctx, member.EventID)
			if err != nil {
				return "", err
			}
			if logged != nil {
				mxc = gjson.GetBytes(logged.Raw, "content.avatar_url").Str
			}
		}
	}
	f.avatars.Add(key, mxc)
	return mxc, nil
}

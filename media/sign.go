package media

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"hash"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/openmeet-team/openmeet-bridge/database"
)

// Errors of Verify; the client API answers 403 to both.
var (
	// ErrBadSignature is a URL whose signature does not match: forged, or
	// changed after signing (another room, another file).
	ErrBadSignature = errors.New("media URL signature does not match")
	// ErrExpired is a correctly signed URL past its expiry.
	ErrExpired = errors.New("media URL has expired")
)

// Prefix is where the client API serves media.
const Prefix = "/_openmeet/client/v1/media"

// Signer makes and checks media URLs. A URL names a file (server and
// media ID), the room in whose events the bridge saw it, and an expiry; its
// signature proves that the bridge handed it out to a member of that room
// (the stream and history carry them only to members). Anyone holding the
// URL can load the file until it expires, as with any signed URL: it is a
// capability, so that an <img> tag can load it without a token.
type Signer struct {
	key       []byte
	macs      sync.Pool // of HMAC-SHA256 with key: set up once, reset per URL
	ttl       time.Duration
	publicURL string
	// Now is the clock; tests may set it.
	Now func() time.Time
}

// NewSigner signs with key. Expiries are rounded up to half the ttl, so a
// URL stays the same for a while and browsers can cache what it loads.
func NewSigner(key []byte, ttl time.Duration, publicURL string) *Signer {
	s := &Signer{key: key, ttl: ttl, publicURL: strings.TrimSuffix(publicURL, "/"), Now: time.Now}
	s.macs.New = func() any { return hmac.New(sha256.New, key) }
	return s
}

// DeriveKey makes a signing key from a secret the replicas share, for one
// purpose only.
func DeriveKey(secret string) []byte {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte("openmeet-bridge media URL signing key v1"))
	return mac.Sum(nil)
}

// Kinds of media URL.
const (
	Download  = "download"
	Thumbnail = "thumbnail"
)

// ParseMXC splits an mxc:// URI; ok is false for anything else.
func ParseMXC(uri string) (server, mediaID string, ok bool) {
	rest, found := strings.CutPrefix(uri, "mxc://")
	if !found {
		return "", "", false
	}
	server, mediaID, found = strings.Cut(rest, "/")
	if !found || !ValidPart(server) || !ValidPart(mediaID) || strings.Contains(mediaID, ":") {
		return "", "", false
	}
	return server, mediaID, true
}

// ValidPart reports whether s may be a server name or media ID: 1 to 255
// of [A-Za-z0-9._:[]-] (the spec allows [A-Za-z0-9_-] in media IDs, and
// server names are host[:port]). The event log records references to
// files by the same rule.
func ValidPart(s string) bool { return database.ValidMXCPart(s) }

func (s *Signer) mac(kind string, roomID id.RoomID, server, mediaID string, exp int64) string {
	msg := make([]byte, 0, 512)
	for _, part := range []string{kind, string(roomID), server, mediaID} {
		msg = append(msg, part...)
		msg = append(msg, 0)
	}
	msg = strconv.AppendInt(msg, exp, 10)
	msg = append(msg, 0)
	mac := s.macs.Get().(hash.Hash)
	mac.Reset()
	mac.Write(msg)
	var sum [sha256.Size]byte
	out := base64.RawURLEncoding.EncodeToString(mac.Sum(sum[:0]))
	s.macs.Put(mac)
	return out
}

// URL is the signed URL of an mxc URI seen in roomID, for a download or a
// thumbnail (extra carries the thumbnail's size, unsigned); "" when the
// URI is not a valid mxc URI.
func (s *Signer) URL(kind string, roomID id.RoomID, mxc string, extra url.Values) string {
	server, mediaID, ok := ParseMXC(mxc)
	if !ok {
		return ""
	}
	half := max(int64(s.ttl/time.Second)/2, 1)
	exp := (s.Now().Unix()/half+1)*half + int64(s.ttl/time.Second)
	var b strings.Builder
	b.Grow(len(s.publicURL) + len(Prefix) + len(kind) + len(server) + len(mediaID) + len(roomID) + 100)
	b.WriteString(s.publicURL)
	b.WriteString(Prefix)
	b.WriteByte('/')
	b.WriteString(kind)
	b.WriteByte('/')
	b.WriteString(server)
	b.WriteByte('/')
	b.WriteString(mediaID)
	b.WriteString("?exp=")
	b.WriteString(strconv.FormatInt(exp, 10))
	if len(extra) > 0 {
		b.WriteByte('&')
		b.WriteString(extra.Encode())
	}
	b.WriteString("&room=")
	b.WriteString(url.QueryEscape(string(roomID)))
	b.WriteString("&sig=")
	b.WriteString(s.mac(kind, roomID, server, mediaID, exp))
	return b.String()
}

// Verify checks a URL's signature and expiry; it returns the room the URL
// was signed for and how long it stays valid.
func (s *Signer) Verify(kind, server, mediaID string, q url.Values) (id.RoomID, time.Duration, error) {
	roomID := id.RoomID(q.Get("room"))
	exp, err := strconv.ParseInt(q.Get("exp"), 10, 64)
	if err != nil || roomID == "" {
		return "", 0, ErrBadSignature
	}
	want := s.mac(kind, roomID, server, mediaID, exp)
	if !hmac.Equal([]byte(want), []byte(q.Get("sig"))) {
		return "", 0, ErrBadSignature
	}
	left := time.Unix(exp, 0).Sub(s.Now())
	if left <= 0 {
		return "", 0, ErrExpired
	}
	return roomID, left, nil
}

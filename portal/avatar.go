package portal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
)

// ErrBadAvatarURL is returned for an avatar URL the bridge will not fetch.
var ErrBadAvatarURL = errors.New("avatar URL must be mxc:// or https://")

// avatarFetcher downloads avatars from the URLs the backend gives, bounded
// in size and time.
type avatarFetcher struct {
	cfg    AvatarConfig
	client *http.Client
}

func newAvatarFetcher(cfg AvatarConfig) *avatarFetcher {
	return &avatarFetcher{cfg: cfg, client: &http.Client{Timeout: cfg.Timeout}}
}

// CheckAvatarURL tells whether the bridge accepts source as an avatar.
func (c *Config) CheckAvatarURL(source string) error {
	if source == "" {
		return nil
	}
	u, err := url.Parse(source)
	if err != nil || u.Host == "" {
		return ErrBadAvatarURL
	}
	switch {
	case u.Scheme == "mxc" && len(strings.Trim(u.Path, "/")) > 0:
		return nil
	case u.Scheme == "https", u.Scheme == "http" && c.Avatars.AllowHTTP:
		return nil
	}
	return ErrBadAvatarURL
}

func (f *avatarFetcher) fetch(ctx context.Context, source string) ([]byte, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, source, nil)
	if err != nil {
		return nil, "", fmt.Errorf("bad avatar URL: %w", err)
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, "", fmt.Errorf("failed to download avatar: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, "", fmt.Errorf("failed to download avatar: HTTP %d", resp.StatusCode)
	}
	contentType, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if !strings.HasPrefix(contentType, "image/") {
		return nil, "", fmt.Errorf("avatar is %q, not an image", contentType)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, f.cfg.MaxBytes+1))
	if err != nil {
		return nil, "", fmt.Errorf("failed to download avatar: %w", err)
	}
	if int64(len(data)) > f.cfg.MaxBytes {
		return nil, "", fmt.Errorf("avatar is larger than %d bytes", f.cfg.MaxBytes)
	}
	return data, contentType, nil
}

// IsMXC reports whether source is an mxc:// URI, which needs no upload.
func IsMXC(source string) bool { return strings.HasPrefix(source, "mxc://") }

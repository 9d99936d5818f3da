// Package media moves files between browsers and Synapse's media
// repository: uploads streamed to Synapse as the user's ghost, downloads
// fetched from Synapse's authenticated media API, and the signed URLs that
// let an <img> tag load them without a token.
package media

import (
	"errors"
	"fmt"
	"mime"
	"strings"
	"time"
)

// Config is the client_api.media section.
type Config struct {
	Enabled bool `yaml:"enabled"`
	// MaxUploadBytes is the bridge's own limit on one file; the smaller of
	// it and Synapse's m.upload.size applies.
	MaxUploadBytes int64 `yaml:"max_upload_bytes"`
	// AllowedTypes are the media types an upload may have: "image/png",
	// or "image/*" for a whole top-level type.
	AllowedTypes []string `yaml:"allowed_types"`
	// URLTTL is how long a signed media URL is valid at least.
	URLTTL time.Duration `yaml:"url_ttl"`
	// SigningKey signs media URLs; empty derives one from the appservice's
	// as_token, which every replica shares.
	SigningKey string `yaml:"signing_key"`
	// PublicURL is the bridge's address as browsers reach it (such as
	// https://chat.example.org); media URLs in the stream and history are
	// absolute with it, relative to the bridge without it.
	PublicURL string `yaml:"public_url"`
	// SpoolMaxBytes bounds the files kept in the database while Synapse
	// is unreachable, all together; 0 answers 503 instead of keeping any.
	SpoolMaxBytes int64 `yaml:"spool_max_bytes"`
}

// Validate checks the section; errors name the key.
func (c *Config) Validate() error {
	if !c.Enabled {
		return nil
	}
	var errs []error
	if c.MaxUploadBytes <= 0 {
		errs = append(errs, errors.New("client_api.media.max_upload_bytes: must be positive"))
	}
	if c.SpoolMaxBytes < 0 {
		errs = append(errs, errors.New("client_api.media.spool_max_bytes: must not be negative"))
	}
	if c.URLTTL < time.Minute {
		errs = append(errs, errors.New("client_api.media.url_ttl: must be at least 1m"))
	}
	for i, t := range c.AllowedTypes {
		if !validPattern(t) {
			errs = append(errs, fmt.Errorf("client_api.media.allowed_types[%d]: %q is not a media type such as image/png or image/*", i, t))
		}
	}
	if c.SigningKey != "" && len(c.SigningKey) < 32 {
		errs = append(errs, errors.New("client_api.media.signing_key: must be at least 32 characters"))
	}
	if c.PublicURL != "" && !strings.HasPrefix(c.PublicURL, "http://") && !strings.HasPrefix(c.PublicURL, "https://") {
		errs = append(errs, errors.New("client_api.media.public_url: must start with http:// or https://"))
	}
	return errors.Join(errs...)
}

func validPattern(p string) bool {
	top, sub, ok := strings.Cut(p, "/")
	return ok && top != "" && top != "*" && sub != "" && strings.ToLower(p) == p && !strings.ContainsAny(p, " ;,")
}

// Allowed reports whether a media type (already lower case, without
// parameters) may be uploaded.
func (c *Config) Allowed(mediaType string) bool {
	top, _, _ := strings.Cut(mediaType, "/")
	for _, p := range c.AllowedTypes {
		if p == mediaType || p == top+"/*" {
			return true
		}
	}
	return false
}

// ParseType reads a Content-Type header: the media type in lower case,
// without parameters; "" when it is not one.
func ParseType(header string) string {
	t, _, err := mime.ParseMediaType(header)
	if err != nil || !strings.Contains(t, "/") {
		return ""
	}
	return t
}

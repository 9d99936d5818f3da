// Package appservice is the Matrix side of the bridge: the endpoints Synapse
// calls, their token checks, the registration file, and the bridge's own
// calls to the homeserver as the bot or as a ghost.
package appservice

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"maunium.net/go/mautrix/id"

	"github.com/openmeet-team/openmeet-bridge/ident"
)

// Placeholder is the value of a secret in the example config that has not
// been generated yet.
const Placeholder = "generate"

// MinTokenLength is the shortest as_token or hs_token accepted.
const MinTokenLength = 32

// HomeserverConfig is the homeserver section of the config.
type HomeserverConfig struct {
	Address string `yaml:"address"`
	Domain  string `yaml:"domain"`
	// AdminToken is the access token of a Synapse server admin, used only to
	// take over existing rooms the bot cannot get into otherwise; empty for
	// none.
	AdminToken string `yaml:"admin_token"`
}

// BotConfig describes the bridge bot.
type BotConfig struct {
	Username      string `yaml:"username"`
	Displayname   string `yaml:"displayname"`
	Avatar        string `yaml:"avatar"`
	CommandPrefix string `yaml:"command_prefix"`
}

// Config is the appservice section of the config.
type Config struct {
	Address       string    `yaml:"address"`
	Hostname      string    `yaml:"hostname"`
	Port          int       `yaml:"port"`
	ID            string    `yaml:"id"`
	ASToken       string    `yaml:"as_token"`
	HSToken       string    `yaml:"hs_token"`
	Bot           BotConfig `yaml:"bot"`
	GhostTemplate string    `yaml:"ghost_template"`
	AliasTemplate string    `yaml:"alias_template"`
	MaxBodyBytes  int64     `yaml:"max_body_bytes"`
	// LegacyUsers names the tenants whose existing Matrix accounts
	// (@{slug}_{tenant}) the bridge may adopt.
	LegacyUsers LegacyUsersConfig `yaml:"legacy_users"`

	// HSTokenInQuery also accepts the hs_token as ?access_token=, for
	// homeservers that send nothing else; off, only the Authorization
	// header is.
	HSTokenInQuery bool `yaml:"hs_token_in_query"`
}

// LegacyUsersConfig is appservice.legacy_users.
type LegacyUsersConfig struct {
	Tenants []string `yaml:"tenants"`
}

// serverNameRegex is the server name grammar of the Matrix specification:
// a DNS name or an IP literal, with an optional port.
var serverNameRegex = regexp.MustCompile(`^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?$`)

// placeholderDomains are the example values operators forget to replace.
var placeholderDomains = map[string]bool{"example.com": true, "example.org": true, "example.net": true}

// Validate checks the homeserver section; errors name the key.
func (h *HomeserverConfig) Validate() error {
	var errs []error
	if err := checkHTTPURL(h.Address); err != nil {
		errs = append(errs, fmt.Errorf("homeserver.address: %w", err))
	}
	switch {
	case h.Domain == "":
		errs = append(errs, errors.New("homeserver.domain: must be set to Synapse's server_name"))
	case placeholderDomains[h.Domain]:
		errs = append(errs, fmt.Errorf("homeserver.domain: %q is the example placeholder; set Synapse's server_name", h.Domain))
	case !serverNameRegex.MatchString(h.Domain):
		errs = append(errs, fmt.Errorf("homeserver.domain: %q is not a server name", h.Domain))
	}
	return errors.Join(errs...)
}

// Validate checks the appservice section; domain is the homeserver's.
func (c *Config) Validate(domain string) error {
	var errs []error
	if err := checkHTTPURL(c.Address); err != nil {
		errs = append(errs, fmt.Errorf("appservice.address: %w", err))
	}
	if c.Hostname == "" {
		errs = append(errs, errors.New("appservice.hostname: must be set, e.g. 127.0.0.1 or 0.0.0.0"))
	}
	if c.Port < 1 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("appservice.port: %d is not a TCP port", c.Port))
	}
	if c.ID == "" {
		errs = append(errs, errors.New("appservice.id: must be set"))
	}
	errs = append(errs, checkToken("appservice.as_token", c.ASToken), checkToken("appservice.hs_token", c.HSToken))
	if c.ASToken == c.HSToken && c.ASToken != Placeholder && c.ASToken != "" {
		errs = append(errs, errors.New("appservice.hs_token: must differ from as_token"))
	}
	if c.MaxBodyBytes < 1<<16 {
		errs = append(errs, fmt.Errorf("appservice.max_body_bytes: %d is too small for one Matrix event (65536)", c.MaxBodyBytes))
	}
	namer, err := ident.NewNamer(domainOr(domain), c.GhostTemplate, c.AliasTemplate)
	if err != nil {
		errs = append(errs, fmt.Errorf("appservice.ghost_template/alias_template: %w", err))
	}
	if namer != nil {
		if _, err := namer.WithLegacyTenants(c.LegacyUsers.Tenants); err != nil {
			errs = append(errs, fmt.Errorf("appservice.legacy_users.tenants: %w", err))
		}
	}
	if err := id.ValidateUserLocalpart(c.Bot.Username); err != nil || c.Bot.Username == "" {
		errs = append(errs, fmt.Errorf("appservice.bot.username: %q is not a valid Matrix localpart", c.Bot.Username))
	} else if namer != nil {
		if _, _, err := namer.ParseGhost(id.NewUserID(c.Bot.Username, domainOr(domain))); err == nil {
			errs = append(errs, fmt.Errorf("appservice.bot.username: %q lies inside the ghost namespace", c.Bot.Username))
		}
	}
	if c.Bot.CommandPrefix == "" || strings.ContainsAny(c.Bot.CommandPrefix, " \t\n") {
		errs = append(errs, fmt.Errorf("appservice.bot.command_prefix: %q must be one word, such as !om", c.Bot.CommandPrefix))
	}
	if c.Bot.Avatar != "" {
		if _, err := id.ParseContentURI(c.Bot.Avatar); err != nil {
			errs = append(errs, fmt.Errorf("appservice.bot.avatar: %q is not an mxc:// URI", c.Bot.Avatar))
		}
	}
	return errors.Join(errs...)
}

// Namer returns the identifier mapping this config describes.
func (c *Config) Namer(domain string) (*ident.Namer, error) {
	namer, err := ident.NewNamer(domain, c.GhostTemplate, c.AliasTemplate)
	if err != nil {
		return nil, err
	}
	return namer.WithLegacyTenants(c.LegacyUsers.Tenants)
}

// BotUserID is the bot's Matrix ID.
func (c *Config) BotUserID(domain string) id.UserID {
	return id.NewUserID(c.Bot.Username, domain)
}

// ListenAddress is host:port for the listener.
func (c *Config) ListenAddress() string {
	return fmt.Sprintf("%s:%d", c.Hostname, c.Port)
}

func domainOr(domain string) string {
	if domain == "" {
		return "localhost"
	}
	return domain
}

func checkToken(key, token string) error {
	switch {
	case token == "" || token == Placeholder:
		return fmt.Errorf("%s: not generated; run openmeet-bridge -g to create the registration and tokens", key)
	case len(token) < MinTokenLength:
		return fmt.Errorf("%s: must be at least %d characters", key, MinTokenLength)
	}
	return nil
}

func checkHTTPURL(raw string) error {
	if raw == "" {
		return errors.New("must be set")
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an http(s) URL", raw)
	}
	return nil
}

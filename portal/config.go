package portal

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/openmeet-team/openmeet-bridge/ident"
)

// Config is the portals section of the bridge config.
type Config struct {
	// PowerLevels maps kind (event, group) → role → power level.
	PowerLevels       map[string]map[string]int `yaml:"power_levels"`
	HistoryVisibility string                    `yaml:"history_visibility"`
	// RoomVersion is the version of new portal rooms; empty means the
	// homeserver's default. A set value must be one the bridge supports and
	// the homeserver offers (checked against its capabilities).
	RoomVersion string `yaml:"room_version"`
	// PublishPublic lists public portals in the homeserver's room directory.
	PublishPublic bool         `yaml:"publish_public"`
	Close         CloseConfig  `yaml:"close"`
	Avatars       AvatarConfig `yaml:"avatars"`
	// SyncWait is how long a provisioning call waits for Synapse before it
	// answers 202 and leaves the rest to the background.
	SyncWait time.Duration `yaml:"sync_wait"`
	// Concurrency is how many homeserver requests one portal sync may have
	// in flight (joins of different ghosts).
	Concurrency int `yaml:"concurrency"`
}

// CloseConfig says what closing a portal does to its room.
type CloseConfig struct {
	RemoveMembers bool `yaml:"remove_members"`
	DeleteAlias   bool `yaml:"delete_alias"`
}

// AvatarConfig limits avatar downloads from URLs the backend gives.
type AvatarConfig struct {
	MaxBytes int64         `yaml:"max_bytes"`
	Timeout  time.Duration `yaml:"timeout"`
	// AllowHTTP also accepts plain http:// URLs (for development only).
	AllowHTTP bool `yaml:"allow_http"`
	// AllowPrivateAddresses lets downloads connect to loopback, private,
	// link-local and other non-public addresses (for development and
	// tests only: it lets whoever provisions users make the bridge fetch
	// from internal hosts).
	AllowPrivateAddresses bool `yaml:"allow_private_addresses"`
}

var historyVisibilities = map[string]bool{"invited": true, "joined": true, "shared": true, "world_readable": true}

// Validate checks the section; errors name the key.
func (c *Config) Validate() error {
	var errs []error
	for _, kind := range []ident.Kind{ident.KindEvent, ident.KindGroup} {
		roles := c.PowerLevels[string(kind)]
		if len(roles) == 0 {
			errs = append(errs, fmt.Errorf("portals.power_levels.%s: needs at least one role", kind))
		}
		for role, level := range roles {
			if level < 0 || level > 100 {
				errs = append(errs, fmt.Errorf("portals.power_levels.%s.%s: %d is outside 0–100", kind, role, level))
			}
		}
	}
	for kind := range c.PowerLevels {
		if !ident.Kind(kind).Valid() {
			errs = append(errs, fmt.Errorf("portals.power_levels.%s: unknown kind (event or group)", kind))
		}
	}
	if !historyVisibilities[c.HistoryVisibility] {
		errs = append(errs, fmt.Errorf("portals.history_visibility: %q is not invited, joined, shared or world_readable", c.HistoryVisibility))
	}
	if c.RoomVersion != "" && !slices.Contains(SupportedRoomVersions, c.RoomVersion) {
		errs = append(errs, fmt.Errorf("portals.room_version: %q is not a room version the bridge supports (%s, or empty for the homeserver's default)",
			c.RoomVersion, strings.Join(SupportedRoomVersions, ", ")))
	}
	if c.Avatars.MaxBytes <= 0 {
		errs = append(errs, errors.New("portals.avatars.max_bytes: must be positive"))
	}
	if c.Avatars.Timeout <= 0 {
		errs = append(errs, errors.New("portals.avatars.timeout: must be positive"))
	}
	if c.SyncWait <= 0 {
		errs = append(errs, errors.New("portals.sync_wait: must be positive"))
	}
	if c.Concurrency < 1 || c.Concurrency > 64 {
		errs = append(errs, fmt.Errorf("portals.concurrency: %d is outside 1–64", c.Concurrency))
	}
	return errors.Join(errs...)
}

// Level returns the power level of role in a portal of kind, and whether
// the role exists.
func (c *Config) Level(kind ident.Kind, role string) (int, bool) {
	level, ok := c.PowerLevels[string(kind)][role]
	return level, ok
}

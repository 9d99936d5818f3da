package bridge

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"gopkg.in/yaml.v3"
	"maunium.net/go/mautrix/id"

	"github.com/openmeet-team/openmeet-bridge/api"
	"github.com/openmeet-team/openmeet-bridge/appservice"
	"github.com/openmeet-team/openmeet-bridge/database"
	"github.com/openmeet-team/openmeet-bridge/portal"
	"github.com/openmeet-team/openmeet-bridge/sse"
)

// Config is the whole bridge configuration. The embedded example config
// holds every default; a user's file is decoded over it.
type Config struct {
	Homeserver   appservice.HomeserverConfig `yaml:"homeserver"`
	Appservice   appservice.Config           `yaml:"appservice"`
	Database     database.Config             `yaml:"database"`
	Provisioning ProvisioningConfig          `yaml:"provisioning"`
	Portals      portal.Config               `yaml:"portals"`
	ClientAPI    api.ClientConfig            `yaml:"client_api"`
	Web          WebConfig                   `yaml:"web"`
	Permissions  map[string]string           `yaml:"permissions"`
	Logging      LoggingConfig               `yaml:"logging"`
	Metrics      MetricsConfig               `yaml:"metrics"`
}

// MetricsConfig is the metrics section.
type MetricsConfig struct {
	// Listen is host:port of a listener of its own for /metrics and the
	// health endpoints; empty serves them on the appservice listener.
	Listen string `yaml:"listen"`
}

// ProvisioningConfig is the provisioning section.
type ProvisioningConfig struct {
	SharedSecret string `yaml:"shared_secret"`
	MaxBodyBytes int64  `yaml:"max_body_bytes"`
}

// WebConfig is the web section: the demo chat page.
type WebConfig struct {
	Enabled bool `yaml:"enabled"`
}

// LoggingConfig is the logging section.
type LoggingConfig struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
}

// Permission levels of the permissions map.
const (
	PermissionAdmin = "admin"
	PermissionUser  = "user"
)

// ParseConfig decodes data over the defaults in example. Unknown keys and
// values of the wrong kind are errors naming their key path. It does not
// validate.
func ParseConfig(example, data []byte) (*Config, error) {
	cfg := &Config{}
	if err := checkKeys(example, reflect.TypeOf(cfg)); err != nil {
		return nil, fmt.Errorf("the example config is invalid:\n%w", err)
	}
	if err := checkKeys(data, reflect.TypeOf(cfg)); err != nil {
		return nil, err
	}
	if err := decodeStrict(example, cfg); err != nil {
		return nil, fmt.Errorf("embedded example config is invalid: %w", err)
	}
	// A map decoded over a map merges; the user's maps replace the defaults
	// instead, so a role can be removed.
	defaults, defaultLevels := cfg.Permissions, cfg.Portals.PowerLevels
	cfg.Permissions, cfg.Portals.PowerLevels = nil, nil
	if err := decodeStrict(data, cfg); err != nil {
		return nil, err
	}
	if cfg.Permissions == nil {
		cfg.Permissions = defaults
	}
	if cfg.Portals.PowerLevels == nil {
		cfg.Portals.PowerLevels = defaultLevels
	}
	return cfg, nil
}

func decodeStrict(data []byte, into any) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(into); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// LoadConfig reads the config file at path over the defaults and validates it.
func LoadConfig(example []byte, path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("failed to read config: %w", err)
	}
	cfg, err := ParseConfig(example, data)
	if err != nil {
		return nil, fmt.Errorf("failed to parse config %s:\n%w", path, err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid config %s:\n%w", path, err)
	}
	return cfg, nil
}

// Validate checks every section and reports all problems at once, each
// naming its key.
func (c *Config) Validate() error {
	errs := []error{
		c.Homeserver.Validate(),
		c.Appservice.Validate(c.Homeserver.Domain),
		c.Database.Validate(),
		c.Portals.Validate(),
		validateClientAPI(&c.ClientAPI),
	}
	switch s := c.Provisioning.SharedSecret; {
	case s == "" || s == appservice.Placeholder:
		errs = append(errs, errors.New("provisioning.shared_secret: not generated; run openmeet-bridge -g or set a secret of at least 32 characters"))
	case len(s) < appservice.MinTokenLength:
		errs = append(errs, fmt.Errorf("provisioning.shared_secret: must be at least %d characters", appservice.MinTokenLength))
	}
	if c.Web.Enabled && !c.ClientAPI.Enabled {
		errs = append(errs, errors.New("web.enabled: the demo page needs client_api.enabled"))
	}
	if c.Provisioning.MaxBodyBytes < 1024 {
		errs = append(errs, fmt.Errorf("provisioning.max_body_bytes: %d is too small", c.Provisioning.MaxBodyBytes))
	}
	namer, _ := c.Appservice.Namer(c.Homeserver.Domain) // its errors are the appservice section's
	for who, level := range c.Permissions {
		if level != PermissionAdmin && level != PermissionUser {
			errs = append(errs, fmt.Errorf("permissions.%s: %q is neither %q nor %q", who, level, PermissionAdmin, PermissionUser))
		}
		if strings.HasPrefix(who, "@") {
			if _, _, err := id.UserID(who).ParseAndValidateRelaxed(); err != nil {
				errs = append(errs, fmt.Errorf("permissions.%s: not a valid Matrix user ID", who))
			} else if namer != nil && namer.InGhostNamespace(id.UserID(who)) {
				errs = append(errs, fmt.Errorf("permissions.%s: in the bridge's ghost namespace; only the bridge sends as these users, and the bot takes no commands from them", who))
			}
		} else if who == "" || strings.ContainsAny(who, "@#!/ ") {
			errs = append(errs, fmt.Errorf("permissions.%s: neither a user ID nor a server name", who))
		}
	}
	if _, err := zerolog.ParseLevel(c.Logging.Level); err != nil || c.Logging.Level == "" {
		errs = append(errs, fmt.Errorf("logging.level: %q is not one of trace, debug, info, warn, error", c.Logging.Level))
	}
	if err := c.Metrics.validate(c.Appservice.ListenAddress()); err != nil {
		errs = append(errs, err)
	}
	if c.Logging.Format != "json" && c.Logging.Format != "pretty" {
		errs = append(errs, fmt.Errorf("logging.format: %q is neither json nor pretty", c.Logging.Format))
	}
	return errors.Join(errs...)
}

// validateClientAPI checks the client_api section when it is enabled.
func validateClientAPI(c *api.ClientConfig) error {
	if !c.Enabled {
		return nil
	}
	var errs []error
	if _, err := api.NewVerifier(c.JWT); err != nil {
		errs = append(errs, err)
	}
	if c.TicketTTL <= 0 || c.TicketTTL > 10*time.Minute {
		errs = append(errs, errors.New("client_api.ticket_ttl: must be between 0 and 10m"))
	}
	if c.SendWait <= 0 {
		errs = append(errs, errors.New("client_api.send_wait: must be positive"))
	}
	if c.MaxBodyBytes < 1024 {
		errs = append(errs, errors.New("client_api.max_body_bytes: must be at least 1024"))
	}
	errs = append(errs, c.Media.Validate(), c.Limits.Validate())
	s := c.Stream
	if s.Heartbeat <= 0 || s.Heartbeat > 30*time.Second {
		errs = append(errs, errors.New("client_api.stream.heartbeat: must be between 0 and 30s"))
	}
	if s.Retention < time.Hour {
		errs = append(errs, errors.New("client_api.stream.retention: must be at least 1h"))
	}
	if s.Park && (s.Writers < 1 || s.Writers > 256) {
		errs = append(errs, errors.New("client_api.stream.writers: must be from 1 to 256"))
	}
	if s.Buffer < 1 || s.MaxPerUser < 1 || s.ConnectRate <= 0 || s.ConnectBurst < 1 {
		errs = append(errs, errors.New("client_api.stream: buffer, max_per_user, connect_rate and connect_burst must be positive"))
	}
	if s.ConnectRatePerUser < 0 || (s.ConnectRatePerUser > 0 && s.ConnectBurstPerUser < 1) {
		errs = append(errs, errors.New("client_api.stream.connect_rate_per_user: must not be negative, and with a rate connect_burst_per_user must be positive"))
	}
	if s.ConnectRatePerAddress < 0 || (s.ConnectRatePerAddress > 0 && s.ConnectBurstPerAddress < 1) {
		errs = append(errs, errors.New("client_api.stream.connect_rate_per_address: must not be negative, and with a rate connect_burst_per_address must be positive"))
	}
	if err := sse.ValidateTrustedProxies(s.TrustedProxies); err != nil {
		errs = append(errs, fmt.Errorf("client_api.stream.trusted_proxies: %w", err))
	}
	for _, origin := range c.AllowedOrigins {
		if origin == "*" || !strings.Contains(origin, "://") {
			errs = append(errs, fmt.Errorf("client_api.allowed_origins: %q must be a full origin such as https://openmeet.net", origin))
		}
	}
	return errors.Join(errs...)
}

func (m *MetricsConfig) validate(appserviceAddress string) error {
	if m.Listen == "" {
		return nil
	}
	host, port, err := net.SplitHostPort(m.Listen)
	if n, perr := strconv.Atoi(port); err != nil || perr != nil || n < 0 || n > 65535 {
		return fmt.Errorf("metrics.listen: %q is not host:port, such as 127.0.0.1:29341", m.Listen)
	}
	if m.Listen == appserviceAddress || (host == "" && strings.HasSuffix(appserviceAddress, ":"+port)) {
		return fmt.Errorf("metrics.listen: %q is the appservice listener's address; leave it empty to serve metrics there", m.Listen)
	}
	return nil
}

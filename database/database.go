// Package database holds the bridge's storage: schema, migrations and one
// file of queries per table. It runs on SQLite (the embedded default) and on
// PostgreSQL through pgx, with one schema for both.
package database

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/rs/zerolog"
	"go.mau.fi/util/dbutil"
)

//go:embed upgrades/*.sql
var upgrades embed.FS

// Types are the accepted values of database.type.
var Types = []string{"sqlite3-fk-wal", "sqlite3-fk-wal-fullsync", "postgres"}

// Config is the database section of the bridge config.
type Config struct {
	Type            string `yaml:"type"`
	URI             string `yaml:"uri"`
	MaxOpenConns    int    `yaml:"max_open_conns"`
	MaxIdleConns    int    `yaml:"max_idle_conns"`
	ConnMaxIdleTime string `yaml:"conn_max_idle_time"`
	ConnMaxLifetime string `yaml:"conn_max_lifetime"`
	// LeaseDuration is how long a replica's lease on a job lasts without
	// renewal (see LeaseTiming); empty means DefaultLeaseTiming.
	LeaseDuration string `yaml:"lease_duration"`
}

// minLeaseDuration keeps renewals (every sixth of a lease) from being
// more frequent than a few per second.
const minLeaseDuration = time.Second

// leaseTiming is the timing the section asks for.
func (c *Config) leaseTiming() LeaseTiming {
	d, err := time.ParseDuration(c.LeaseDuration)
	if c.LeaseDuration == "" || err != nil {
		return DefaultLeaseTiming
	}
	return TimingFor(d)
}

// Validate checks the section; errors name the key.
func (c *Config) Validate() error {
	var errs []error
	known := false
	for _, t := range Types {
		known = known || c.Type == t
	}
	if !known {
		errs = append(errs, fmt.Errorf("database.type: %q is not one of %v", c.Type, Types))
	}
	if c.URI == "" {
		errs = append(errs, errors.New("database.uri: must be set"))
	} else if c.Type == "postgres" {
		if _, err := pgx.ParseConfig(c.URI); err != nil {
			errs = append(errs, fmt.Errorf("database.uri: not a PostgreSQL connection string: %w", err))
		}
	}
	for key, v := range map[string]string{"conn_max_idle_time": c.ConnMaxIdleTime, "conn_max_lifetime": c.ConnMaxLifetime} {
		if v == "" {
			continue
		}
		if _, err := time.ParseDuration(v); err != nil {
			errs = append(errs, fmt.Errorf("database.%s: %q is not a duration such as 5m", key, v))
		}
	}
	if c.LeaseDuration != "" {
		if d, err := time.ParseDuration(c.LeaseDuration); err != nil {
			errs = append(errs, fmt.Errorf("database.lease_duration: %q is not a duration such as 30s", c.LeaseDuration))
		} else if d < minLeaseDuration {
			errs = append(errs, fmt.Errorf("database.lease_duration: %s is shorter than %s", d, minLeaseDuration))
		}
	}
	if c.MaxOpenConns < 0 || c.MaxIdleConns < 0 {
		errs = append(errs, errors.New("database.max_open_conns, max_idle_conns: must not be negative"))
	}
	return errors.Join(errs...)
}

// Database is the bridge's storage.
type Database struct {
	*dbutil.Database
	stopCheckpointer context.CancelFunc
	checkpointerDone chan struct{}

	EventLog      *EventLogQuery
	Members       *RoomMemberQuery
	Ghosts        *GhostQuery
	Portals       *PortalQuery
	PortalMembers *PortalMemberQuery
	Bot           *BotQuery
	Outbox        *OutboxQuery
	Tickets       *TicketQuery
	ReadMarkers   *ReadMarkerQuery
	MediaSpool    *MediaSpoolQuery
	Leases        *LeaseQuery
}

// Open connects to the database described by cfg. It does not migrate; call
// Upgrade for that.
func Open(cfg Config, log zerolog.Logger) (*Database, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var raw *dbutil.Database
	var err error
	if cfg.Type == "postgres" {
		pgCfg, perr := pgx.ParseConfig(cfg.URI)
		if perr != nil {
			return nil, fmt.Errorf("failed to parse database.uri: %w", perr)
		}
		raw, err = dbutil.NewWithDB(stdlib.OpenDB(*pgCfg), "postgres")
	} else {
		var sqlDB *sql.DB
		if sqlDB, err = sql.Open(sqliteDrivers[cfg.Type], sqliteDSN(cfg.URI)); err == nil {
			raw, err = dbutil.NewWithDB(sqlDB, cfg.Type)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("failed to open database: %w", err)
	}
	raw.Owner = "openmeet-bridge"
	raw.Log = dbutil.ZeroLogger(log.With().Str("component", "database").Logger())
	maxOpen, maxIdle := cfg.MaxOpenConns, cfg.MaxIdleConns
	if maxOpen == 0 && cfg.Type != "postgres" {
		maxOpen = 5
	}
	// No idle connections would mean a new connection per transaction.
	if maxIdle == 0 {
		maxIdle = 2
	}
	err = raw.Configure(dbutil.Config{PoolConfig: dbutil.PoolConfig{
		Type: cfg.Type, URI: cfg.URI,
		MaxOpenConns: maxOpen, MaxIdleConns: maxIdle,
		ConnMaxIdleTime: cfg.ConnMaxIdleTime, ConnMaxLifetime: cfg.ConnMaxLifetime,
	}})
	if err != nil {
		_ = raw.Close()
		return nil, fmt.Errorf("failed to configure database pool: %w", err)
	}
	raw.UpgradeTable = dbutil.BuildUpgradeTable().WithFSPath(upgrades, "upgrades").Finish()
	db := wrap(raw)
	db.Leases.Timing = cfg.leaseTiming()
	if raw.Dialect == dbutil.SQLite {
		ctx, cancel := context.WithCancel(context.Background())
		db.stopCheckpointer, db.checkpointerDone = cancel, make(chan struct{})
		go func() {
			defer close(db.checkpointerDone)
			db.runCheckpointer(ctx, log)
		}()
	}
	return db, nil
}

// Close stops background work and closes the connection pool. On SQLite the
// WAL is checkpointed in full first, so the file is complete on its own.
func (db *Database) Close() error {
	if db.stopCheckpointer != nil {
		db.stopCheckpointer()
		<-db.checkpointerDone
		_, _ = db.RawDB.Exec("PRAGMA wal_checkpoint(TRUNCATE)")
	}
	return db.Database.Close()
}

func wrap(raw *dbutil.Database) *Database {
	portals := &PortalQuery{db: raw}
	delivered := new(deliveredHook)
	return &Database{
		Database:      raw,
		EventLog:      &EventLogQuery{db: raw, delivered: delivered},
		Members:       &RoomMemberQuery{db: raw},
		Ghosts:        &GhostQuery{db: raw},
		Portals:       portals,
		PortalMembers: &PortalMemberQuery{db: raw, portals: portals},
		Bot:           &BotQuery{db: raw},
		Outbox:        &OutboxQuery{db: raw, delivered: delivered},
		Tickets:       &TicketQuery{db: raw},
		ReadMarkers:   &ReadMarkerQuery{db: raw},
		MediaSpool:    &MediaSpoolQuery{db: raw},
		Leases:        newLeaseQuery(raw),
	}
}

// Upgrade runs the embedded migrations.
func (db *Database) Upgrade(ctx context.Context) error {
	if err := db.Database.Upgrade(ctx); err != nil {
		return fmt.Errorf("failed to migrate database: %w", err)
	}
	return nil
}

// Ping checks that the database answers.
func (db *Database) Ping(ctx context.Context) error {
	return db.RawDB.PingContext(ctx)
}

package database

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/rs/zerolog"
	"go.mau.fi/util/dbutil"
)

// Jobs that only one replica may do at a time (the bot, the janitor, a
// portal's sync) hold a lease: a row of the lease table naming the holder,
// a token and when it expires. Unlike a PostgreSQL session lock, whose loss
// (a killed connection, a partition) the holder cannot see, a lease ends
// only when it expires, a time its holder knows in advance by its own
// clock: the holder stops before anyone else can take over. Every change
// of holder raises the token, and what a holder writes under its lease is
// committed only while its token is current (Fenced), so a holder that
// stopped too late (a paused process) writes nothing.
//
// Expiry is measured with the database's clock, the one clock all
// replicas share; each holder measures its own deadline with its own
// monotonic clock from before it asked, which is never later than the
// database's idea of it.

var (
	// ErrLeaseHeld is returned by TryHold when another holder's lease has
	// not expired.
	ErrLeaseHeld = errors.New("lease held by another replica")
	// ErrLeaseLost is returned by Renew and Fenced, and is the cause of a
	// held lease's context ending, when the caller's lease expired or
	// another holder took it over: nothing was written.
	ErrLeaseLost = errors.New("lease lost")
	// errLeaseReleased is the cause of a held lease's context ending when
	// its holder released it.
	errLeaseReleased = errors.New("lease released")
)

// LeaseTiming sets how long leases last and how their holders keep them.
type LeaseTiming struct {
	// Duration is how long a lease lasts after it was taken or last
	// renewed. A replica that dies leaves its jobs undone this long.
	Duration time.Duration
	// Renew is how often a holder renews.
	Renew time.Duration
	// GiveUp is how long after the start of its last successful renewal
	// a holder that cannot renew stops (its context ends). Duration -
	// GiveUp is the time left for what it began before to land (a request
	// to the homeserver already on its way) before another may take over.
	GiveUp time.Duration
	// Retry is how often Lead tries to take a lease someone else holds.
	Retry time.Duration
}

// DefaultLeaseTiming (database.lease_duration): 30 s leases, renewed every 5 s. A holder keeps going
// through three failed renewals (a database restart, a failover) and
// stops 20 s after its last success, 10 s before the lease can pass to
// another replica: the bridge's requests to the homeserver are bounded by
// that. A dead replica's jobs are taken over within 35 s.
var DefaultLeaseTiming = TimingFor(30 * time.Second)

// TimingFor is the timing of leases lasting d, in DefaultLeaseTiming's
// proportions: renewed every sixth of d, given up after two thirds.
func TimingFor(d time.Duration) LeaseTiming {
	return LeaseTiming{Duration: d, Renew: d / 6, GiveUp: d * 2 / 3, Retry: d / 6}
}

// Lease is a lease as its holder knows it.
type Lease struct {
	Name   string
	Holder string
	Token  int64
}

// LeaseQuery takes, keeps and gives up leases.
type LeaseQuery struct {
	db *dbutil.Database
	// holder names this process in the rows of the leases it holds.
	holder string
	// Timing is DefaultLeaseTiming (see WithTiming).
	Timing LeaseTiming
}

// The database's clock in milliseconds.
const (
	nowPostgres = `(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT`
	nowSQLite   = `CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)`
)

const (
	// Taking a lease takes over an expired one in the same statement,
	// raising its token; the token never goes back (a released lease's
	// row stays), so an old holder's token never becomes current again.
	acquireLeaseQuery = `
		INSERT INTO lease (name, holder, token, expires_at) VALUES ($1, $2, 1, %[1]s + $3)
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, token = lease.token + 1, expires_at = excluded.expires_at
		WHERE lease.expires_at <= %[1]s
		RETURNING token`
	renewLeaseQuery   = `UPDATE lease SET expires_at = %[1]s + $3 WHERE name = $1 AND token = $2 AND expires_at > %[1]s`
	releaseLeaseQuery = `UPDATE lease SET expires_at = 0 WHERE name = $1 AND token = $2`
	// On PostgreSQL the fence also locks the row until the fenced
	// transaction ends, so that no one takes the lease over between the
	// check and the commit. On SQLite transactions run one at a time.
	fenceLeaseQuery = `SELECT 1 FROM lease WHERE name = $1 AND token = $2 AND expires_at > %[1]s %[2]s`
)

type leaseQueries struct{ acquire, renew, release, fence string }

var (
	leasePostgres = leaseQueries{
		acquire: fmt.Sprintf(acquireLeaseQuery, nowPostgres),
		renew:   fmt.Sprintf(renewLeaseQuery, nowPostgres),
		release: releaseLeaseQuery,
		fence:   fmt.Sprintf(fenceLeaseQuery, nowPostgres, "FOR SHARE"),
	}
	leaseSQLite = leaseQueries{
		acquire: fmt.Sprintf(acquireLeaseQuery, nowSQLite),
		renew:   fmt.Sprintf(renewLeaseQuery, nowSQLite),
		release: releaseLeaseQuery,
		fence:   fmt.Sprintf(fenceLeaseQuery, nowSQLite, ""),
	}
)

func newLeaseQuery(db *dbutil.Database) *LeaseQuery {
	host, _ := os.Hostname()
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	return &LeaseQuery{
		db:     db,
		holder: fmt.Sprintf("%s:%d:%s", host, os.Getpid(), hex.EncodeToString(suffix)),
		Timing: DefaultLeaseTiming,
	}
}

// WithTiming is a copy of q with other timing.
func (q *LeaseQuery) WithTiming(t LeaseTiming) *LeaseQuery {
	c := *q
	c.Timing = t
	return &c
}

func (q *LeaseQuery) queries() *leaseQueries {
	if q.db.Dialect == dbutil.Postgres {
		return &leasePostgres
	}
	return &leaseSQLite
}

// Acquire takes the lease name for Timing.Duration unless another holder's
// has not expired (ErrLeaseHeld). It does not renew it; see TryHold.
func (q *LeaseQuery) Acquire(ctx context.Context, name string) (*Lease, error) {
	l := &Lease{Name: name, Holder: q.holder}
	err := q.db.QueryRow(ctx, q.queries().acquire, name, q.holder, q.Timing.Duration.Milliseconds()).Scan(&l.Token)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrLeaseHeld
	} else if err != nil {
		return nil, fmt.Errorf("failed to take lease %s: %w", name, err)
	}
	return l, nil
}

// Renew extends l to Timing.Duration from now; ErrLeaseLost when it
// expired or passed to another holder.
func (q *LeaseQuery) Renew(ctx context.Context, l *Lease) error {
	ok, err := affected(q.db.Exec(ctx, q.queries().renew, l.Name, l.Token, q.Timing.Duration.Milliseconds()))
	if err != nil {
		return fmt.Errorf("failed to renew lease %s: %w", l.Name, err)
	} else if !ok {
		return ErrLeaseLost
	}
	return nil
}

// Release ends l at once, so that another replica need not wait for it to
// expire; ErrLeaseLost when it was no longer the caller's.
func (q *LeaseQuery) Release(ctx context.Context, l *Lease) error {
	ok, err := affected(q.db.Exec(ctx, q.queries().release, l.Name, l.Token))
	if err != nil {
		return fmt.Errorf("failed to release lease %s: %w", l.Name, err)
	} else if !ok {
		return ErrLeaseLost
	}
	return nil
}

// Fenced runs fn in a transaction that commits only while l is current
// (not expired, not taken over); otherwise nothing fn wrote is kept and it
// returns ErrLeaseLost.
func (q *LeaseQuery) Fenced(ctx context.Context, l *Lease, fn func(ctx context.Context) error) error {
	return q.db.DoTxn(ctx, nil, func(ctx context.Context) error {
		var one int
		err := q.db.QueryRow(ctx, q.queries().fence, l.Name, l.Token).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrLeaseLost
		} else if err != nil {
			return fmt.Errorf("failed to check lease %s: %w", l.Name, err)
		}
		return fn(ctx)
	})
}

// HeldLease is a lease kept by a goroutine that renews it until it is
// released or lost.
type HeldLease struct {
	Lease
	q      *LeaseQuery
	ctx    context.Context
	cancel context.CancelCauseFunc
	done   chan struct{}
}

// TryHold takes the lease name (ErrLeaseHeld when another holds it) and
// keeps renewing it. The returned lease's Context ends when ctx does, when
// the lease is released, and when it is lost: when a renewal finds another
// holder, or when none succeeded for Timing.GiveUp. Work done as the
// holder must use that context and stop when it ends.
func (q *LeaseQuery) TryHold(ctx context.Context, name string) (*HeldLease, error) {
	started := time.Now()
	l, err := q.Acquire(ctx, name)
	if err != nil {
		return nil, err
	}
	h := &HeldLease{Lease: *l, q: q, done: make(chan struct{})}
	h.ctx, h.cancel = context.WithCancelCause(ctx)
	go h.keep(started.Add(q.Timing.GiveUp))
	return h, nil
}

// Hold is TryHold that waits for the lease until ctx ends.
func (q *LeaseQuery) Hold(ctx context.Context, name string) (*HeldLease, error) {
	wait := 20 * time.Millisecond
	for {
		h, err := q.TryHold(ctx, name)
		if !errors.Is(err, ErrLeaseHeld) {
			return h, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("failed to take lease %s: %w", name, context.Cause(ctx))
		case <-time.After(wait):
		}
		wait = min(wait*2, time.Second)
	}
}

// Context ends when the lease does (see TryHold).
func (h *HeldLease) Context() context.Context { return h.ctx }

// Lost reports whether the lease ended without its holder releasing it.
func (h *HeldLease) Lost() bool { return errors.Is(context.Cause(h.ctx), ErrLeaseLost) }

// Release stops renewing and ends the lease, unless it was lost. It is
// safe to call more than once.
func (h *HeldLease) Release() {
	h.cancel(errLeaseReleased)
	<-h.done
	if h.Lost() {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(h.ctx), 5*time.Second)
	defer cancel()
	if err := h.q.Release(ctx, &h.Lease); err != nil && !errors.Is(err, ErrLeaseLost) {
		// It expires by itself.
		zerolog.Ctx(h.ctx).Warn().Err(err).Str("lease", h.Name).Msg("Failed to release lease")
	}
}

// keep renews the lease until it ends; giveUp is when the holder stops
// unless a renewal succeeds first.
func (h *HeldLease) keep(giveUp time.Time) {
	defer close(h.done)
	log := zerolog.Ctx(h.ctx).With().Str("lease", h.Name).Int64("token", h.Token).Logger()
	ticker := time.NewTicker(h.q.Timing.Renew)
	defer ticker.Stop()
	deadline := time.NewTimer(time.Until(giveUp))
	defer deadline.Stop()
	for {
		select {
		case <-h.ctx.Done():
			return
		case <-deadline.C:
			log.Warn().Msg("Lease not renewed in time; stopping its work")
			h.cancel(fmt.Errorf("%w: not renewed in time", ErrLeaseLost))
			return
		case <-ticker.C:
		}
		started := time.Now()
		ctx, cancel := context.WithDeadline(h.ctx, giveUp)
		err := h.q.Renew(ctx, &h.Lease)
		cancel()
		switch {
		case errors.Is(err, ErrLeaseLost):
			log.Warn().Msg("Lease taken over by another replica; stopping its work")
			h.cancel(err)
			return
		case err != nil:
			if h.ctx.Err() == nil {
				log.Warn().Err(err).Msg("Failed to renew lease")
			}
		default:
			giveUp = started.Add(h.q.Timing.GiveUp)
			deadline.Reset(time.Until(giveUp))
		}
	}
}

// Lead runs work whenever this replica holds the lease name, until ctx
// ends: it tries to take the lease every Timing.Retry, runs work with the
// lease's context, and when work returns (the lease was lost, or ctx
// ended) releases the lease and, unless ctx ended, tries again.
func (q *LeaseQuery) Lead(ctx context.Context, name string, work func(ctx context.Context, l *Lease)) {
	log := zerolog.Ctx(ctx).With().Str("lease", name).Logger()
	for ctx.Err() == nil {
		h, err := q.TryHold(ctx, name)
		switch {
		case err == nil:
			log.Info().Int64("token", h.Token).Msg("Took lease")
			work(h.Context(), &h.Lease)
			h.Release()
		case !errors.Is(err, ErrLeaseHeld) && ctx.Err() == nil:
			log.Warn().Err(err).Msg("Failed to try to take lease")
		}
		select {
		case <-ctx.Done():
		case <-time.After(q.Timing.Retry):
		}
	}
}

package api

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
	"golang.org/x/time/rate"
	"maunium.net/go/mautrix"
)

// Action names a kind of request the client API limits per user. The
// names are those of client_api.limits and of the refusal metric's label.
type Action string

// The limited actions.
const (
	ActionSend    Action = "send"
	ActionEdit    Action = "edit"
	ActionReact   Action = "react"
	ActionRedact  Action = "redact"
	ActionUpload  Action = "upload"
	ActionTyping  Action = "typing"
	ActionReceipt Action = "receipt"
	ActionTicket  Action = "ticket"
)

// LimitedActions lists every action, in config order.
var LimitedActions = []Action{ActionSend, ActionEdit, ActionReact, ActionRedact, ActionUpload, ActionTyping, ActionReceipt, ActionTicket}

// Why a request was refused, the refusal metric's other label.
const (
	// RefusedRate: the user's token bucket for the action was empty.
	RefusedRate = "rate"
	// RefusedOutboxFull: the user already had max_pending_outbox entries
	// waiting for Synapse.
	RefusedOutboxFull = "outbox_full"
)

// FillsOutbox reports whether an action adds an outbox entry, and so is
// also held to max_pending_outbox.
func (a Action) FillsOutbox() bool {
	switch a {
	case ActionSend, ActionEdit, ActionReact, ActionRedact, ActionUpload:
		return true
	}
	return false
}

// RateLimit is a token bucket: Rate requests per second on average, and up
// to Burst at once after a quiet while.
type RateLimit struct {
	Rate  float64 `yaml:"rate"`
	Burst int     `yaml:"burst"`
}

// LimitsConfig is client_api.limits: a bucket per user and action, and a
// cap on each user's undelivered outbox entries. There is no "unlimited":
// a missing key keeps its default, and 0 is refused by Validate.
type LimitsConfig struct {
	Send    RateLimit `yaml:"send"`
	Edit    RateLimit `yaml:"edit"`
	React   RateLimit `yaml:"react"`
	Redact  RateLimit `yaml:"redact"`
	Upload  RateLimit `yaml:"upload"`
	Typing  RateLimit `yaml:"typing"`
	Receipt RateLimit `yaml:"receipt"`
	Ticket  RateLimit `yaml:"ticket"`
	// MaxPendingOutbox bounds the entries of one user (all rooms) that
	// wait for Synapse; counted in the database, so it holds across
	// replicas.
	MaxPendingOutbox int `yaml:"max_pending_outbox"`
}

// Of returns the limit of an action.
func (l *LimitsConfig) Of(a Action) RateLimit {
	switch a {
	case ActionSend:
		return l.Send
	case ActionEdit:
		return l.Edit
	case ActionReact:
		return l.React
	case ActionRedact:
		return l.Redact
	case ActionUpload:
		return l.Upload
	case ActionTyping:
		return l.Typing
	case ActionReceipt:
		return l.Receipt
	case ActionTicket:
		return l.Ticket
	}
	panic("unknown action " + string(a))
}

// maxBurst keeps a mistyped burst from amounting to no limit at all.
const maxBurst = 100_000

// Validate checks every limit, naming its key.
func (l *LimitsConfig) Validate() error {
	var errs []error
	for _, a := range LimitedActions {
		lim := l.Of(a)
		if math.IsNaN(lim.Rate) || math.IsInf(lim.Rate, 0) || lim.Rate <= 0 {
			errs = append(errs, fmt.Errorf("client_api.limits.%s.rate: %v is not a positive number of requests per second (0 does not turn the limit off; raise it to allow more)", a, lim.Rate))
		}
		if lim.Burst < 1 || lim.Burst > maxBurst {
			errs = append(errs, fmt.Errorf("client_api.limits.%s.burst: %d must be from 1 to %d", a, lim.Burst, maxBurst))
		}
	}
	if l.MaxPendingOutbox < 1 {
		errs = append(errs, fmt.Errorf("client_api.limits.max_pending_outbox: %d must be at least 1 (0 does not turn the cap off; raise it to allow more)", l.MaxPendingOutbox))
	}
	return errors.Join(errs...)
}

// maxLimitedUsers bounds the users whose buckets are remembered per
// action; beyond it the least recently seen are forgotten and start again
// with a full bucket.
const maxLimitedUsers = 100_000

// outboxFullRetry is the retry hint when a user's outbox is full: its
// entries leave it only as fast as Synapse takes them.
const outboxFullRetry = 10 * time.Second

// userKey is the authenticated user a bucket belongs to; never an address
// or a header, which a client chooses.
type userKey struct{ tenant, slug string }

// userLimiter is a token bucket per user for one action. A user unseen for
// as long as the bucket takes to fill again would have a full bucket
// anyway, so it is forgotten then.
type userLimiter struct {
	limit rate.Limit
	burst int

	mu      sync.Mutex
	buckets *expirable.LRU[userKey, *rate.Limiter]
}

func newUserLimiter(l RateLimit) *userLimiter {
	refill := time.Duration(float64(l.Burst) / l.Rate * float64(time.Second))
	return &userLimiter{
		limit:   rate.Limit(l.Rate),
		burst:   l.Burst,
		buckets: expirable.NewLRU[userKey, *rate.Limiter](maxLimitedUsers, nil, max(refill, time.Second)),
	}
}

// wait takes a token and returns 0, or takes none and returns how long
// until one is there.
func (u *userLimiter) wait(key userKey, now time.Time) time.Duration {
	u.mu.Lock()
	defer u.mu.Unlock()
	bucket, ok := u.buckets.Get(key)
	if !ok {
		bucket = rate.NewLimiter(u.limit, u.burst)
	}
	// Adding again keeps a bucket in use from expiring.
	u.buckets.Add(key, bucket)
	r := bucket.ReserveN(now, 1)
	delay := r.DelayFrom(now)
	if delay > 0 {
		r.CancelAt(now)
	}
	return delay
}

// limiters holds the buckets of every action. They live in this replica's
// memory: with several replicas behind a load balancer, a user gets up to
// that many times the rate. The outbox cap is counted in the database.
type limiters struct {
	byAction   map[Action]*userLimiter
	maxPending int
	onRefused  func(action Action, reason string)
}

func newLimiters(cfg LimitsConfig) *limiters {
	l := &limiters{byAction: make(map[Action]*userLimiter, len(LimitedActions)), maxPending: cfg.MaxPendingOutbox}
	for _, a := range LimitedActions {
		l.byAction[a] = newUserLimiter(cfg.Of(a))
	}
	return l
}

// ObserveRefusals registers fn to be called for every request refused by
// a limit, with the action and RefusedRate or RefusedOutboxFull. Call it
// before serving.
func (c *Client) ObserveRefusals(fn func(action Action, reason string)) { c.limits.onRefused = fn }

// limited applies an action's limits to an authenticated request: the
// user's bucket, then, for actions that add an outbox entry, the cap on
// the user's pending entries.
func (c *Client) limited(action Action, next http.HandlerFunc) http.HandlerFunc {
	bucket := c.limits.byAction[action]
	return func(w http.ResponseWriter, r *http.Request) {
		who := callerOf(r)
		if wait := bucket.wait(userKey{who.tenant, who.slug}, time.Now()); wait > 0 {
			c.refuse(w, r, action, RefusedRate, wait, "Too many "+string(action)+" requests from this user; retry after retry_after_ms")
			return
		}
		if action.FillsOutbox() && !c.outboxHasRoom(w, r, action) {
			return
		}
		next(w, r)
	}
}

// outboxHasRoom refuses a request that would add an entry to a user's
// outbox while max_pending_outbox of theirs wait already. A txn id already
// stored adds nothing and goes on, so a client repeating a request gets
// its answer. Two simultaneous requests (on two replicas) may both pass
// at the cap: it is exceeded by at most the requests under way at once.
func (c *Client) outboxHasRoom(w http.ResponseWriter, r *http.Request, action Action) bool {
	who := callerOf(r)
	n, err := c.db.Outbox.PendingOf(r.Context(), who.userID, c.limits.maxPending)
	if err != nil {
		c.internalError(w, r, err)
		return false
	}
	if n < c.limits.maxPending {
		return true
	}
	if txnID := pathVar(r, "txnId"); txnID != "" {
		stored, err := c.db.Outbox.ByTxn(r.Context(), who.userID, txnID)
		if err != nil {
			c.internalError(w, r, err)
			return false
		}
		if stored != nil {
			return true
		}
	}
	c.refuse(w, r, action, RefusedOutboxFull, outboxFullRetry,
		fmt.Sprintf("%d of your messages are still waiting for the homeserver; retry after retry_after_ms", n))
	return false
}

// refuse answers 429 M_LIMIT_EXCEEDED saying when to retry, in Retry-After
// (whole seconds, rounded up) and retry_after_ms (which a page reads more
// easily; CORS exposes Retry-After too).
func (c *Client) refuse(w http.ResponseWriter, r *http.Request, action Action, reason string, wait time.Duration, msg string) {
	if c.limits.onRefused != nil {
		c.limits.onRefused(action, reason)
	}
	ms := max(wait.Milliseconds(), 1)
	// Debug: an abusive loop would flood the log; the metric counts them.
	c.log.Debug().Str("action", string(action)).Str("reason", reason).
		Str("user_id", callerOf(r).userID.String()).Int64("retry_after_ms", ms).Msg("Client API request refused by a limit")
	w.Header().Set("Retry-After", strconv.FormatInt((ms+999)/1000, 10))
	mautrix.MLimitExceeded.WithMessage("%s", msg).WithStatus(http.StatusTooManyRequests).WithExtraField("retry_after_ms", ms).Write(w)
}

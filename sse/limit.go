package sse

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
	"golang.org/x/time/rate"
	"maunium.net/go/mautrix/id"
)

// maxLimiterKeys bounds the users and addresses whose connect rate is
// remembered; beyond it the least recently seen are forgotten (they start
// again with a full bucket, and the bridge-wide limit still holds).
const maxLimiterKeys = 100_000

// connectLimits decides whether a new stream may open: per user and per
// client address first, so that one client reconnecting in a loop spends
// its own budget rather than everyone's, then bridge-wide.
type connectLimits struct {
	global  *rate.Limiter
	user    *keyedLimiter
	address *keyedLimiter
	proxies []netip.Prefix
	// Refusals by limit, for Hub.Stats.
	userRefused, addressRefused, bridgeRefused atomic.Uint64
}

func newConnectLimits(cfg Config) *connectLimits {
	l := &connectLimits{
		global:  rate.NewLimiter(rate.Limit(cfg.ConnectRate), cfg.ConnectBurst),
		user:    newKeyedLimiter(cfg.ConnectRatePerUser, cfg.ConnectBurstPerUser),
		address: newKeyedLimiter(cfg.ConnectRatePerAddress, cfg.ConnectBurstPerAddress),
	}
	for _, p := range cfg.TrustedProxies {
		if prefix, err := parsePrefix(p); err == nil {
			l.proxies = append(l.proxies, prefix)
		}
	}
	return l
}

// ValidateTrustedProxies checks client_api.stream.trusted_proxies: each an
// address or a CIDR prefix.
func ValidateTrustedProxies(proxies []string) error {
	var errs []error
	for _, p := range proxies {
		if _, err := parsePrefix(p); err != nil {
			errs = append(errs, fmt.Errorf("%q is not an address or CIDR prefix", p))
		}
	}
	return errors.Join(errs...)
}

// parsePrefix reads a CIDR prefix or a single address.
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// Why a new stream was refused.
type refusal int

const (
	admitted refusal = iota
	// overKeyLimit: the user or the address opened too many streams
	// lately (429, with when to retry).
	overKeyLimit
	// overGlobalLimit: the bridge as a whole is opening too many (503).
	overGlobalLimit
)

// admit takes a token from each limit that applies, or from none.
func (l *connectLimits) admit(userID id.UserID, address string, now time.Time) (refusal, time.Duration) {
	user := l.user.reserve(string(userID), now)
	addr := l.address.reserve(address, now)
	cancel := func() {
		user.cancel(now)
		addr.cancel(now)
	}
	if wait := max(user.delay, addr.delay); wait > 0 {
		cancel()
		if user.delay > 0 {
			l.userRefused.Add(1)
		} else {
			l.addressRefused.Add(1)
		}
		return overKeyLimit, wait
	}
	if !l.global.AllowN(now, 1) {
		cancel()
		l.bridgeRefused.Add(1)
		return overGlobalLimit, time.Second
	}
	return admitted, 0
}

// clientAddress is the address a request comes from: the peer, or, when
// the peer is a trusted proxy, the nearest untrusted address that the
// proxies named in X-Forwarded-For. IPv6 addresses count by their /64,
// which one client commonly has whole.
func (l *connectLimits) clientAddress(r *http.Request) string {
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	addr := peer.Addr().Unmap()
	if l.trusted(addr) {
		hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
		for i := len(hops) - 1; i >= 0; i-- {
			hop, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
			if err != nil {
				break
			}
			addr = hop.Unmap()
			if !l.trusted(addr) {
				break
			}
		}
	}
	if addr.Is6() {
		p, _ := addr.Prefix(64)
		return p.String()
	}
	return addr.String()
}

func (l *connectLimits) trusted(addr netip.Addr) bool {
	for _, p := range l.proxies {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// keyedLimiter is a token bucket per key, remembered while it matters: a
// key unseen for as long as its bucket takes to fill again would have a
// full bucket anyway, so it is forgotten then.
type keyedLimiter struct {
	limit rate.Limit
	burst int

	mu      sync.Mutex
	buckets *expirable.LRU[string, *rate.Limiter]
}

// newKeyedLimiter returns nil (no limit) when perSecond is not positive.
func newKeyedLimiter(perSecond float64, burst int) *keyedLimiter {
	if perSecond <= 0 || burst < 1 {
		return nil
	}
	refill := time.Duration(float64(burst) / perSecond * float64(time.Second))
	return &keyedLimiter{
		limit:   rate.Limit(perSecond),
		burst:   burst,
		buckets: expirable.NewLRU[string, *rate.Limiter](maxLimiterKeys, nil, max(refill, time.Second)),
	}
}

type reservation struct {
	r     *rate.Reservation
	delay time.Duration
}

func (r reservation) cancel(now time.Time) {
	if r.r != nil {
		r.r.CancelAt(now)
	}
}

func (k *keyedLimiter) reserve(key string, now time.Time) reservation {
	if k == nil {
		return reservation{}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	bucket, ok := k.buckets.Get(key)
	if !ok {
		bucket = rate.NewLimiter(k.limit, k.burst)
	}
	// Adding again keeps a bucket in use from expiring.
	k.buckets.Add(key, bucket)
	r := bucket.ReserveN(now, 1)
	return reservation{r: r, delay: r.DelayFrom(now)}
}

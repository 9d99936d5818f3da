package portal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"
)

var (
	// ErrBadAvatarURL is returned for an avatar URL the bridge will not fetch.
	ErrBadAvatarURL = errors.New("avatar URL must be mxc:// or https://")
	// ErrAvatarDownload is returned for every failed avatar download. It
	// is what the provisioning API shows: the reason (refused address,
	// connection error, HTTP status, size, type) is only logged, so that
	// the API cannot be used to probe hosts the bridge can reach.
	ErrAvatarDownload = errors.New("avatar could not be downloaded")
	// errForbiddenAddress is the dialer's refusal of an address outside
	// the public internet.
	errForbiddenAddress = errors.New("address is not a public internet address")
)

// maxAvatarRedirects is how many redirects one avatar download follows.
const maxAvatarRedirects = 3

// forbiddenPrefixes are the ranges avatar downloads never connect to
// (unless allow_private_addresses is set): this host, private networks,
// link-local (cloud metadata at 169.254.169.254 and fe80::), shared CGNAT
// space (100.64/10, where some clouds put metadata too), unique local IPv6
// (fc00::/7, e.g. fd00:ec2::254), multicast, reserved and documentation
// ranges, and the IPv6 ranges that embed an IPv4 address (NAT64, 6to4,
// Teredo, IPv4-compatible), which could lead back into the ranges above.
// IPv4-mapped IPv6 addresses are unmapped before the check.
var forbiddenPrefixes = func() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range []string{
		"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
		"172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16",
		"198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
		"::/96", "::ffff:0:0/96", "64:ff9b::/96", "64:ff9b:1::/48", "100::/64",
		"2001::/32", "2001:2::/48", "2001:db8::/32", "2002::/16", "fc00::/7",
		"fe80::/10", "fec0::/10", "ff00::/8",
	} {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}()

// publicAddress reports whether addr is on the public internet.
func publicAddress(addr netip.Addr) bool {
	addr = addr.WithZone("").Unmap()
	if !addr.IsValid() {
		return false
	}
	for _, p := range forbiddenPrefixes {
		if p.Contains(addr) {
			return false
		}
	}
	return true
}

// avatarFetcher downloads avatars from the URLs the backend gives, bounded
// in size and time, from public addresses only.
type avatarFetcher struct {
	cfg    AvatarConfig
	client *http.Client
	// public decides which addresses may be connected to (tests replace
	// it to let one loopback address stand for an internet host).
	public func(netip.Addr) bool
}

func newAvatarFetcher(cfg AvatarConfig) *avatarFetcher {
	f := &avatarFetcher{cfg: cfg, public: publicAddress}
	dialer := &net.Dialer{Timeout: cfg.Timeout}
	if !cfg.AllowPrivateAddresses {
		// The address is checked where the connection is made, after DNS
		// resolution and for every address tried: a name that resolves to
		// an internal address, at once or on a second lookup (DNS
		// rebinding), is refused all the same.
		dialer.Control = func(network, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil || !f.public(ap.Addr()) {
				return fmt.Errorf("%w: %s", errForbiddenAddress, address)
			}
			return nil
		}
	}
	transport := &http.Transport{
		// Never through a proxy from the environment: the proxy would make
		// the connection, and the address check above would see only it.
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   cfg.Timeout,
		ResponseHeaderTimeout: cfg.Timeout,
		MaxIdleConns:          4,
		IdleConnTimeout:       30 * time.Second,
	}
	f.client = &http.Client{Timeout: cfg.Timeout, Transport: transport, CheckRedirect: f.checkRedirect}
	return f
}

// checkRedirect re-checks every redirect as if it were the URL given: no
// downgrade from https to http (unless allow_http), no other schemes, and
// at most maxAvatarRedirects of them. The address is checked when dialing.
func (f *avatarFetcher) checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) > maxAvatarRedirects {
		return fmt.Errorf("more than %d redirects", maxAvatarRedirects)
	}
	if !f.schemeAllowed(req.URL) {
		return fmt.Errorf("redirect to a %q URL", req.URL.Scheme)
	}
	return nil
}

func (f *avatarFetcher) schemeAllowed(u *url.URL) bool {
	return u.Host != "" && (u.Scheme == "https" || u.Scheme == "http" && f.cfg.AllowHTTP)
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

// fetch downloads source. Any failure is logged with its reason and
// returned as ErrAvatarDownload.
func (f *avatarFetcher) fetch(ctx context.Context, source string) ([]byte, string, error) {
	data, contentType, err := f.download(ctx, source)
	if err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Str("avatar_url", source).Msg("Failed to download avatar")
		return nil, "", ErrAvatarDownload
	}
	return data, contentType, nil
}

func (f *avatarFetcher) download(ctx context.Context, source string) ([]byte, string, error) {
	u, err := url.Parse(source)
	if err != nil || !f.schemeAllowed(u) {
		return nil, "", ErrBadAvatarURL
	}
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
	if resp.ContentLength > f.cfg.MaxBytes {
		return nil, "", fmt.Errorf("avatar is larger than %d bytes", f.cfg.MaxBytes)
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

package portal

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestPublicAddress(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		addr   string
		public bool
	}{
		{"127.0.0.1", false}, {"127.255.255.254", false}, {"0.0.0.0", false}, {"0.1.2.3", false},
		{"10.0.0.1", false}, {"172.16.0.1", false}, {"172.31.255.255", false}, {"192.168.1.1", false},
		{"100.64.0.1", false}, {"100.127.255.255", false}, {"100.100.100.200", false},
		{"169.254.169.254", false}, {"169.254.0.1", false}, {"224.0.0.1", false}, {"255.255.255.255", false},
		{"192.0.0.170", false}, {"198.18.0.1", false},
		{"::", false}, {"::1", false}, {"::ffff:127.0.0.1", false}, {"::ffff:10.0.0.1", false},
		{"::ffff:169.254.169.254", false}, {"::127.0.0.1", false}, {"fc00::1", false},
		{"fd00:ec2::254", false}, {"fe80::1", false}, {"fe80::1%eth0", false}, {"ff02::1", false},
		{"64:ff9b::7f00:1", false}, {"2002:7f00:1::", false}, {"2001:db8::1", false}, {"2001:0:4136:e378::1", false},
		{"8.8.8.8", true}, {"1.1.1.1", true}, {"100.63.255.255", true}, {"100.128.0.0", true},
		{"172.32.0.1", true}, {"::ffff:8.8.8.8", true}, {"2606:4700:4700::1111", true}, {"2a00:1450:4001::1", true},
	} {
		if got := publicAddress(netip.MustParseAddr(tc.addr)); got != tc.public {
			t.Errorf("publicAddress(%s) = %v, want %v", tc.addr, got, tc.public)
		}
	}
	if publicAddress(netip.Addr{}) {
		t.Error("the zero address is public")
	}
}

// countingServer counts the requests that reach h.
func countingServer(t *testing.T, listenOn string, tlsServer bool, h http.HandlerFunc) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		h(w, r)
	}))
	l, err := net.Listen("tcp", listenOn+":0")
	if err != nil {
		t.Skipf("cannot listen on %s: %v", listenOn, err)
	}
	srv.Listener.Close()
	srv.Listener = l
	if tlsServer {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return srv, &hits
}

func serveImage(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "image/png")
	_, _ = w.Write([]byte("\x89PNG\r\n\x1a\n"))
}

func testAvatarConfig() AvatarConfig {
	return AvatarConfig{MaxBytes: 1 << 20, Timeout: 10 * time.Second}
}

// standIn is the loopback address the tests treat as an internet host;
// 127.0.0.1 stays what it is, an internal one.
var standIn = netip.MustParseAddr("127.0.0.2")

// fetcherWithStandIn returns a fetcher that may connect to standIn and
// trusts the TLS test certificates of servers.
func fetcherWithStandIn(cfg AvatarConfig, servers ...*httptest.Server) *avatarFetcher {
	f := newAvatarFetcher(cfg)
	f.public = func(a netip.Addr) bool { return a == standIn || publicAddress(a) }
	for _, srv := range servers {
		if srv.TLS != nil {
			// The test certificate names 127.0.0.1 and example.com, not
			// the stand-in address.
			f.client.Transport.(*http.Transport).TLSClientConfig = &tls.Config{
				RootCAs: srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs, ServerName: "example.com",
			}
		}
	}
	return f
}

// wantRefused checks that a fetch failed with nothing but the generic
// error.
func wantRefused(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, ErrAvatarDownload) || err.Error() != "avatar could not be downloaded" {
		t.Fatalf("error %v, want exactly %q", err, ErrAvatarDownload)
	}
}

func TestAvatarRefusesLoopback(t *testing.T) {
	t.Parallel()
	srv, hits := countingServer(t, "127.0.0.1", false, serveImage)
	cfg := testAvatarConfig()
	cfg.AllowHTTP = true
	f := newAvatarFetcher(cfg)
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	for _, source := range []string{
		srv.URL + "/a.png",
		// A name is checked after it is resolved.
		"http://localhost:" + strconv.Itoa(port) + "/a.png",
		"http://[::ffff:127.0.0.1]:" + strconv.Itoa(port) + "/a.png",
		"http://0.0.0.0:" + strconv.Itoa(port) + "/a.png",
	} {
		_, _, err := f.fetch(context.Background(), source)
		wantRefused(t, err)
		_, _, err = f.download(context.Background(), source)
		if !errors.Is(err, errForbiddenAddress) {
			t.Errorf("%s: %v, want a refused address", source, err)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("%d requests reached the loopback server", n)
	}

	// With the opt-in, the same server is fine.
	cfg.AllowPrivateAddresses = true
	data, contentType, err := newAvatarFetcher(cfg).fetch(context.Background(), srv.URL+"/a.png")
	if err != nil || contentType != "image/png" || len(data) == 0 {
		t.Fatalf("with allow_private_addresses: %v %q %d bytes", err, contentType, len(data))
	}
}

func TestAvatarRedirectToLoopbackRefused(t *testing.T) {
	t.Parallel()
	internal, internalHits := countingServer(t, "127.0.0.1", false, serveImage)
	external, _ := countingServer(t, standIn.String(), false, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ok.png" {
			serveImage(w, r)
			return
		}
		http.Redirect(w, r, internal.URL+"/secret.png", http.StatusFound)
	})
	cfg := testAvatarConfig()
	cfg.AllowHTTP = true
	f := fetcherWithStandIn(cfg)
	// The stand-in itself is reachable...
	if _, _, err := f.fetch(context.Background(), external.URL+"/ok.png"); err != nil {
		t.Fatalf("fetch from the stand-in host: %v", err)
	}
	// ...but not what it redirects to.
	_, _, err := f.fetch(context.Background(), external.URL+"/redirect.png")
	wantRefused(t, err)
	if _, _, err := f.download(context.Background(), external.URL+"/redirect.png"); !errors.Is(err, errForbiddenAddress) {
		t.Fatalf("redirect to loopback: %v, want a refused address", err)
	}
	if n := internalHits.Load(); n != 0 {
		t.Fatalf("%d requests reached the internal server", n)
	}
}

func TestAvatarRedirectHTTPSToHTTPRefused(t *testing.T) {
	t.Parallel()
	plain, plainHits := countingServer(t, standIn.String(), false, serveImage)
	secure, _ := countingServer(t, standIn.String(), true, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ok.png" {
			serveImage(w, r)
			return
		}
		http.Redirect(w, r, plain.URL+"/a.png", http.StatusMovedPermanently)
	})
	f := fetcherWithStandIn(testAvatarConfig(), secure)
	if _, _, err := f.fetch(context.Background(), secure.URL+"/ok.png"); err != nil {
		t.Fatalf("fetch over https: %v", err)
	}
	_, _, err := f.fetch(context.Background(), secure.URL+"/down.png")
	wantRefused(t, err)
	if _, _, err := f.download(context.Background(), secure.URL+"/down.png"); err == nil || !strings.Contains(err.Error(), `redirect to a "http" URL`) {
		t.Fatalf("https → http: %v", err)
	}
	if n := plainHits.Load(); n != 0 {
		t.Fatalf("%d requests reached the http server", n)
	}
	// Without a redirect, http:// is refused the same way.
	_, _, err = f.fetch(context.Background(), plain.URL+"/a.png")
	wantRefused(t, err)

	// allow_http permits the downgrade (development setups).
	cfg := testAvatarConfig()
	cfg.AllowHTTP = true
	if _, _, err := fetcherWithStandIn(cfg, secure).fetch(context.Background(), secure.URL+"/down.png"); err != nil {
		t.Fatalf("https → http with allow_http: %v", err)
	}
}

func TestAvatarRedirectsCapped(t *testing.T) {
	t.Parallel()
	// /r/N redirects N times before it serves the image.
	srv, _ := countingServer(t, standIn.String(), false, func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/r/"))
		if err != nil || n == 0 {
			serveImage(w, r)
			return
		}
		http.Redirect(w, r, "/r/"+strconv.Itoa(n-1), http.StatusFound)
	})
	cfg := testAvatarConfig()
	cfg.AllowHTTP = true
	f := fetcherWithStandIn(cfg)
	if _, _, err := f.fetch(context.Background(), srv.URL+"/r/"+strconv.Itoa(maxAvatarRedirects)); err != nil {
		t.Fatalf("%d redirects: %v", maxAvatarRedirects, err)
	}
	_, _, err := f.fetch(context.Background(), srv.URL+"/r/"+strconv.Itoa(maxAvatarRedirects+1))
	wantRefused(t, err)
	if _, _, err := f.download(context.Background(), srv.URL+"/r/100"); err == nil || !strings.Contains(err.Error(), "redirects") {
		t.Fatalf("redirect loop: %v", err)
	}
}

func TestAvatarIgnoresProxyEnvironment(t *testing.T) {
	t.Parallel()
	f := newAvatarFetcher(testAvatarConfig())
	if tr, ok := f.client.Transport.(*http.Transport); !ok || tr.Proxy != nil {
		t.Fatal("the avatar transport may use a proxy from the environment")
	}
}

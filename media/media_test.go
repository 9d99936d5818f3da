package media

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestByteRange(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		header, ifRange      string
		start, length        int64
		partial, satisfiable bool
	}{
		{"", "", 0, 100, false, true},
		{"bytes=0-9", "", 0, 10, true, true},
		{"bytes=90-", "", 90, 10, true, true},
		{"bytes=90-500", "", 90, 10, true, true},
		{"bytes=-10", "", 90, 10, true, true},
		{"bytes=-500", "", 0, 100, true, true},
		{"bytes=100-", "", 0, 0, false, false},
		{"bytes=-0", "", 0, 0, false, false},
		{"bytes=5-2", "", 0, 100, false, true},
		{"bytes=0-1,5-6", "", 0, 100, false, true},
		{"items=0-1", "", 0, 100, false, true},
		{"bytes=x-1", "", 0, 100, false, true},
		{"bytes=0-9", `"other"`, 0, 100, false, true},
		{"bytes=0-9", `"abc"`, 0, 10, true, true},
	} {
		r, _ := http.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Range", tc.header)
		if tc.ifRange != "" {
			r.Header.Set("If-Range", tc.ifRange)
		}
		start, length, partial, ok := byteRange(r, `"abc"`, 100)
		if start != tc.start || length != tc.length || partial != tc.partial || ok != tc.satisfiable {
			t.Errorf("%q: %d %d %v %v", tc.header, start, length, partial, ok)
		}
	}
}

func TestCleanFilename(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"cat.png":             "cat.png",
		"../../etc/passwd":    "passwd",
		`C:\Users\x\evil.exe`: "evil.exe",
		"a\r\nb\x00c.txt":     "abc.txt",
		"\u202egnp.exe":       "gnp.exe",
		`"quoted".png`:        "quoted.png",
		"":                    "file.png",
		"..":                  "file.png",
		"   ":                 "file.png",
	} {
		if got := CleanFilename(in, "image/png"); got != want {
			t.Errorf("%q: %q, want %q", in, got, want)
		}
	}
	long := CleanFilename(strings.Repeat("é", 150), "text/plain")
	if len(long) > 200 || !utf8.ValidString(long) {
		t.Errorf("long name: %d bytes", len(long))
	}
}

func TestSignedURLs(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_800_000_000, 0)
	s := NewSigner([]byte("0123456789abcdef0123456789abcdef"), time.Hour, "https://chat.example.org/")
	s.Now = func() time.Time { return now }
	raw := s.URL(Download, "!room:example.org", "mxc://example.org/abc_DEF-1", nil)
	u, err := url.Parse(raw)
	if err != nil || u.Host != "chat.example.org" || u.Path != Prefix+"/download/example.org/abc_DEF-1" {
		t.Fatalf("URL %q", raw)
	}
	roomID, left, err := s.Verify(Download, "example.org", "abc_DEF-1", u.Query())
	if err != nil || roomID != "!room:example.org" || left < time.Hour || left > 90*time.Minute {
		t.Fatalf("verify: %v %s %s", err, roomID, left)
	}
	// The same URL for a while, so browsers can cache what it loads.
	s.Now = func() time.Time { return now.Add(time.Minute) }
	if again := s.URL(Download, "!room:example.org", "mxc://example.org/abc_DEF-1", nil); again != raw {
		t.Errorf("URL changed within a minute: %q, %q", raw, again)
	}
	if _, _, err := s.Verify(Thumbnail, "example.org", "abc_DEF-1", u.Query()); err != ErrBadSignature {
		t.Errorf("as a thumbnail: %v", err)
	}
	if _, _, err := s.Verify(Download, "example.org", "abc_DEF-2", u.Query()); err != ErrBadSignature {
		t.Errorf("another file: %v", err)
	}
	s.Now = func() time.Time { return now.Add(2 * time.Hour) }
	if _, _, err := s.Verify(Download, "example.org", "abc_DEF-1", u.Query()); err != ErrExpired {
		t.Errorf("later: %v", err)
	}
	for _, bad := range []string{"", "http://x/y", "mxc://", "mxc://server", "mxc://server/", "mxc://se rver/id", "mxc://server/a/b", "mxc://server/id?x", "mxc://server/a:b"} {
		if s.URL(Download, "!r:x", bad, nil) != "" {
			t.Errorf("signed %q", bad)
		}
	}
}

func TestWebPSize(t *testing.T) {
	t.Parallel()
	// VP8X header of a 640x480 image.
	b := []byte("RIFF\x00\x00\x00\x00WEBPVP8X\x0a\x00\x00\x00\x00\x00\x00\x00\x7f\x02\x00\xdf\x01\x00")
	if w, h, ok := webpSize(b); !ok || w != 640 || h != 480 {
		t.Errorf("VP8X: %d %d %v", w, h, ok)
	}
	if _, _, ok := webpSize([]byte("RIFF\x00\x00\x00\x00WEBPJUNKxxxxxxxxxxxxxxxxxxxxxx")); ok {
		t.Error("junk read as WebP")
	}
}

func TestAllowed(t *testing.T) {
	t.Parallel()
	c := &Config{AllowedTypes: []string{"image/*", "application/pdf"}}
	for typ, want := range map[string]bool{"image/png": true, "image/svg+xml": true, "application/pdf": true, "text/html": false, "": false} {
		if c.Allowed(typ) != want {
			t.Errorf("%q: %v", typ, !want)
		}
	}
	if ParseType("Image/PNG; charset=x") != "image/png" || ParseType("nonsense") != "" {
		t.Error("ParseType")
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	good := Config{Enabled: true, MaxUploadBytes: 1, URLTTL: time.Hour, AllowedTypes: []string{"image/*", "application/pdf"}}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, change := range map[string]func(*Config){
		"max_upload_bytes": func(c *Config) { c.MaxUploadBytes = 0 },
		"url_ttl":          func(c *Config) { c.URLTTL = time.Second },
		"allowed_types[1]": func(c *Config) { c.AllowedTypes = []string{"image/png", "*/*"} },
		"allowed_types[0]": func(c *Config) { c.AllowedTypes = []string{"Image/PNG"} },
		"signing_key":      func(c *Config) { c.SigningKey = "short" },
		"public_url":       func(c *Config) { c.PublicURL = "chat.example.org" },
		"spool_max_bytes":  func(c *Config) { c.SpoolMaxBytes = -1 },
	} {
		c := good
		c.AllowedTypes = append([]string(nil), good.AllowedTypes...)
		change(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "client_api.media."+name) {
			t.Errorf("%s: %v", name, err)
		}
	}
	off := Config{}
	if err := off.Validate(); err != nil {
		t.Errorf("disabled: %v", err)
	}
}

// BenchmarkSignURL: the cost of one signed URL in a stream payload.
//
//	go test -run '^$' -bench BenchmarkSignURL -count 5 ./media/
func BenchmarkSignURL(b *testing.B) {
	s := NewSigner(DeriveKey("as-token-0123456789abcdef0123456789"), time.Hour, "")
	b.ReportAllocs()
	for range b.N {
		if s.URL(Download, "!room:example.org", "mxc://example.org/abcdefghijklmnopqrstuvwx", nil) == "" {
			b.Fatal("not signed")
		}
	}
}

package media

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"
)

// FuzzMXCAndURLs: whatever an event names as its file, a URL is signed
// only for a valid mxc URI, and that URL verifies for exactly that file.
func FuzzMXCAndURLs(f *testing.F) {
	for _, seed := range []string{"mxc://hs/abc", "mxc://hs:8448/a_b-c", "mxc://[::1]/x", "mxc://hs/a/b", "mxc://hs/%2e%2e", "mxc://hs/\u202e", "mxc:///x", ""} {
		f.Add(seed)
	}
	s := NewSigner([]byte("0123456789abcdef0123456789abcdef"), time.Hour, "")
	f.Fuzz(func(t *testing.T, mxc string) {
		raw := s.URL(Download, "!r:hs", mxc, nil)
		server, mediaID, ok := ParseMXC(mxc)
		if !ok {
			if raw != "" {
				t.Fatalf("signed %q", mxc)
			}
			return
		}
		if mxc != "mxc://"+server+"/"+mediaID {
			t.Fatalf("%q split into %q %q", mxc, server, mediaID)
		}
		u, err := url.Parse(raw)
		if err != nil || u.Path != Prefix+"/download/"+server+"/"+mediaID {
			t.Fatalf("URL %q of %q: %v", raw, mxc, err)
		}
		if room, _, err := s.Verify(Download, server, mediaID, u.Query()); err != nil || room != "!r:hs" {
			t.Fatalf("%q does not verify: %v", raw, err)
		}
	})
}

// FuzzCleanFilename: a cleaned name is safe in a header and on a disk.
func FuzzCleanFilename(f *testing.F) {
	for _, seed := range []string{"cat.png", "../../x", "a\r\nb", "\xff\xfe", `"`, strings.Repeat("é", 300), "\u202egnp.exe"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, name string) {
		got := CleanFilename(name, "image/png")
		if got == "" || len(got) > 200 || !utf8.ValidString(got) || strings.ContainsAny(got, "/\\\"") || got == "." || got == ".." {
			t.Fatalf("%q cleaned to %q", name, got)
		}
		for _, r := range got {
			if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
				t.Fatalf("%q cleaned to %q with %U", name, got, r)
			}
		}
	})
}

// FuzzByteRange: a range served never reaches past the file.
func FuzzByteRange(f *testing.F) {
	for _, seed := range []string{"bytes=0-9", "bytes=-5", "bytes=5-", "bytes=9999999999999999999-", "bytes=-0", "bytes=3-1", "bytes= 1-2"} {
		f.Add(seed, int64(100))
	}
	f.Fuzz(func(t *testing.T, header string, total int64) {
		if total < 0 {
			total = -total
		}
		if total < 0 { // math.MinInt64
			return
		}
		r, _ := http.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Range", header)
		start, length, partial, ok := byteRange(r, `"e"`, total)
		if !ok {
			return
		}
		if start < 0 || length < 0 || start+length > total || !partial && (start != 0 || length != total) || partial && length == 0 {
			t.Fatalf("%q of %d: start %d length %d partial %v", header, total, start, length, partial)
		}
	})
}

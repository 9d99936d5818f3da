package web

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
)

func get(t *testing.T, h http.Handler, path string, header ...string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

// The page's files and the client module are served from the binary with
// types a browser accepts for module scripts, revalidated by ETag.
func TestFilesAreServed(t *testing.T) {
	t.Parallel()
	h := Handler()
	committed, err := os.ReadFile("../clients/typescript/dist/bridge-client.js")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		path, contentType string
		body              []byte
	}{
		{Prefix + ModuleName, "text/javascript; charset=utf-8", committed},
		{Prefix + "app.js", "text/javascript; charset=utf-8", nil},
		{Prefix, "text/html; charset=utf-8", nil},
		{Prefix + "index.html", "text/html; charset=utf-8", nil},
		{Prefix + "style.css", "text/css; charset=utf-8", nil},
		{Prefix + "favicon.ico", "image/x-icon", nil},
	} {
		resp := get(t, h, tt.path)
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != tt.contentType || len(body) == 0 {
			t.Fatalf("%s: %d %q (%d bytes)", tt.path, resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
		}
		if tt.body != nil && !bytes.Equal(body, tt.body) {
			t.Fatalf("%s is not the committed dist/bridge-client.js", tt.path)
		}
		etag := resp.Header.Get("ETag")
		if etag == "" || resp.Header.Get("Cache-Control") != "no-cache" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Fatalf("%s: caching headers %v", tt.path, resp.Header)
		}
		if again := get(t, h, tt.path, "If-None-Match", etag); again.StatusCode != http.StatusNotModified {
			t.Fatalf("%s with its ETag: %d, want 304", tt.path, again.StatusCode)
		}
	}
	if resp := get(t, h, Prefix+"nope.js"); resp.StatusCode != 404 {
		t.Fatalf("unknown file: %d", resp.StatusCode)
	}
	if resp := get(t, h, Prefix); !strings.Contains(resp.Header.Get("Content-Security-Policy"), "script-src 'self'") {
		t.Fatalf("page without its CSP: %v", resp.Header)
	}
	if resp := get(t, Favicon(), "/favicon.ico"); resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/x-icon" {
		t.Fatalf("/favicon.ico: %d %v", resp.StatusCode, resp.Header)
	}
}

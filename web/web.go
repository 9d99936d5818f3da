// Package web serves the demo chat page: plain HTML, CSS and JavaScript,
// embedded, no build step. The page runs on @openmeet/bridge-client (the
// compiled ES module of clients/typescript, served next to it), signs in
// with an OpenMeet JWT and talks to the client API like the OpenMeet
// frontend would.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/openmeet-team/openmeet-bridge/clients/typescript"
)

// Prefix is where the page is served.
const Prefix = "/_openmeet/web/"

// ModuleName is the client module's file name under Prefix; the page
// imports it by this name.
const ModuleName = "bridge-client.js"

//go:embed static
var static embed.FS

// file is one embedded file, ready to serve.
type file struct {
	name        string
	body        []byte
	contentType string
	etag        string
}

func newFile(name string, body []byte) *file {
	sum := sha256.Sum256(body)
	ct := mime.TypeByExtension(path.Ext(name))
	switch path.Ext(name) {
	case ".js":
		// Module scripts must be served with a JavaScript type; the
		// system's MIME table is not to be trusted with that.
		ct = "text/javascript; charset=utf-8"
	case ".ico":
		ct = "image/x-icon"
	}
	if ct == "" {
		ct = "application/octet-stream"
	}
	return &file{name: name, body: body, contentType: ct, etag: `"` + hex.EncodeToString(sum[:16]) + `"`}
}

// serve answers with the file. Files change only with the binary, so they
// carry a content hash as ETag and are revalidated on every use (no-cache):
// a page never runs a stale copy of the module after an upgrade, and an
// unchanged one costs a 304.
func (f *file) serve(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", f.contentType)
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", f.etag)
	h.Set("X-Content-Type-Options", "nosniff")
	http.ServeContent(w, r, f.name, time.Time{}, bytes.NewReader(f.body))
}

// files maps paths under Prefix to the embedded files; "" is index.html.
func files() map[string]*file {
	out := map[string]*file{ModuleName: newFile(ModuleName, typescript.Module)}
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := static.ReadFile(p)
		if err != nil {
			return err
		}
		name := strings.TrimPrefix(p, "static/")
		out[name] = newFile(name, body)
		return nil
	})
	if err != nil {
		panic("web: embedded files unreadable: " + err.Error()) // cannot happen: they are compiled in
	}
	out[""] = out["index.html"]
	return out
}

// Handler serves the page's files and the client module under Prefix.
func Handler() http.Handler {
	byPath := files()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		f, ok := byPath[strings.TrimPrefix(r.URL.Path, Prefix)]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self'; script-src 'self'")
		f.serve(w, r)
	})
}

// Favicon serves the page's icon, for browsers that ask for /favicon.ico.
func Favicon() http.Handler {
	f := files()["favicon.ico"]
	return http.HandlerFunc(f.serve)
}

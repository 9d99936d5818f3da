// Package web serves the demo chat page: plain HTML, CSS and JavaScript,
// embedded, no build step. It signs in with an OpenMeet JWT and talks to
// the client API like the OpenMeet frontend would.
package web

import (
	"embed"
	"io/fs"
	"net/http"
)

// Prefix is where the page is served.
const Prefix = "/_openmeet/web/"

//go:embed static
var static embed.FS

// Handler serves the page's files.
func Handler() http.Handler {
	files, _ := fs.Sub(static, "static")
	fileServer := http.StripPrefix(Prefix, http.FileServer(http.FS(files)))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self'; script-src 'self'")
		fileServer.ServeHTTP(w, r)
	})
}

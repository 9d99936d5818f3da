package api

import (
	"net/http"
	"net/url"
	"strings"

	"maunium.net/go/mautrix"
)

// CanonicalPaths answers 404 M_UNRECOGNIZED to a request whose path is not
// canonical: one with an empty segment ("//"), or a "." or ".." segment,
// written plainly or percent-encoded. gorilla/mux (and net/http's ServeMux)
// would answer such a path with a 301 redirect to its cleaned form, which
// is no Matrix error and sends clients somewhere they did not ask to go;
// wrap the whole router in this so that no path reaches them uncleaned. A
// trailing "/" is left alone: it is a path of its own.
func CanonicalPaths(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !canonicalPath(r.URL.EscapedPath()) {
			mautrix.MUnrecognized.WithMessage("Unrecognized request: the path has an empty, '.' or '..' segment").Write(w)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// canonicalPath reports whether the escaped path p starts with "/" and has
// no empty segment except a last one, and no "." or ".." segment.
func canonicalPath(p string) bool {
	if !strings.HasPrefix(p, "/") {
		return false
	}
	segments := strings.Split(p[1:], "/")
	for i, seg := range segments {
		if seg == "" {
			if i != len(segments)-1 {
				return false
			}
			continue
		}
		if strings.IndexByte(seg, '.') < 0 && !strings.Contains(seg, "%") {
			continue
		}
		decoded, err := url.PathUnescape(seg)
		if err != nil || decoded == "." || decoded == ".." {
			return false
		}
	}
	return true
}

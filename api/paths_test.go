package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestCanonicalPath(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		path string
		ok   bool
	}{
		{"/", true}, {"/_openmeet/web/", true}, {"/_openmeet/provision/v1/tenants/a/users/b", true},
		{"/_openmeet/provision/v1/tenants/a/users/a%2Fb", true}, {"/_openmeet/provision/v1/tenants/a/users/a%2F..%2Fb", true},
		{"/_openmeet/provision/v1/tenants/a/users/...", true}, {"/_openmeet/provision/v1/tenants/a/users/.b", true},
		{"/_openmeet/provision/v1/tenants/a/users/%2e%2e%2e", true},
		{"", false}, {"*", false}, {"_openmeet/provision/v1", false}, {"//", false},
		{"/_openmeet/provision/v1//tenants", false}, {"//_openmeet/provision/v1", false},
		{"/_openmeet/provision/v1/./tenants", false}, {"/_openmeet/provision/v1/../v1", false},
		{"/_openmeet/provision/v1/tenants/.", false}, {"/_openmeet/provision/v1/tenants/..", false},
		{"/_openmeet/provision/v1/tenants/%2e", false}, {"/_openmeet/provision/v1/tenants/%2E%2E", false},
		{"/_openmeet/provision/v1/tenants/.%2e/users/b", false}, {"/_openmeet/provision/v1/tenants/%zz", false},
		{"/_matrix/app/v1/users/../ping", false}, {"/_openmeet/client/v1//whoami", false},
	} {
		if got := canonicalPath(tc.path); got != tc.ok {
			t.Errorf("canonicalPath(%q) = %v, want %v", tc.path, got, tc.ok)
		}
	}
}

func TestCanonicalPathsAnswersMatrixError(t *testing.T) {
	t.Parallel()
	reached := false
	h := CanonicalPaths(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached = true }))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/_openmeet/provision/v1/tenants/%2e%2e/users/x", nil))
	if reached || rec.Code != http.StatusNotFound || rec.Header().Get("Location") != "" ||
		!jsonHasErrcode(rec.Body.Bytes(), "M_UNRECOGNIZED") {
		t.Fatalf("%d %q (handler reached: %v)", rec.Code, rec.Body, reached)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/_openmeet/provision/v1/tenants/a/users/x", nil))
	if !reached {
		t.Fatal("a canonical path did not reach the handler")
	}
}

func jsonHasErrcode(raw []byte, errcode string) bool {
	var body struct{ Errcode, Error string }
	return json.Unmarshal(raw, &body) == nil && body.Errcode == errcode && body.Error != ""
}

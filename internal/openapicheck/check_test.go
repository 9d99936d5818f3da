package openapicheck

import (
	"strings"
	"testing"

	"github.com/openmeet-team/openmeet-bridge/api"
)

func TestDescriptionLoadsAndChecks(t *testing.T) {
	t.Parallel()
	spec, err := Load(api.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	good := `{"tenant":"t","kind":"event","slug":"s","alias":"#a:b","name":"n","topic":"","visibility":"public","closed":false,"state":"synced"}`
	if err := spec.Check("GET", "/_openmeet/provision/v1/tenants/t/events/s", 200, []byte(good)); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		method, path string
		status       int
		body, want   string
	}{
		{"GET", "/_openmeet/provision/v1/tenants/t/events/s", 200, `{"tenant":"t"}`, "required"},
		{"GET", "/_openmeet/provision/v1/tenants/t/events/s", 200, strings.Replace(good, `"synced"`, `"weird"`, 1), "not one of"},
		{"GET", "/_openmeet/provision/v1/tenants/t/events/s", 200, strings.Replace(good, `false`, `"no"`, 1), "boolean"},
		{"GET", "/_openmeet/provision/v1/tenants/t/events/s", 418, `{}`, "status 418"},
		{"GET", "/_openmeet/nothing", 200, `{}`, "path not in"},
		{"GET", "/_openmeet/provision/v1/tenants/t/users/u", 404, `{"errcode":"M_NOT_FOUND"}`, "error"},
	} {
		if err := spec.Check(tt.method, tt.path, tt.status, []byte(tt.body)); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s %s %d %s: got %v, want an error about %q", tt.method, tt.path, tt.status, tt.body, err, tt.want)
		}
	}
	// "users" is literal, so it wins over {kind}.
	if p, _ := spec.match("/_openmeet/provision/v1/tenants/t/users/u"); !strings.Contains(p, "/users/") {
		t.Fatalf("matched %s", p)
	}
}

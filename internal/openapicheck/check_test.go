package openapicheck

import (
	"fmt"
	"maps"
	"regexp"
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
		// allOf: both parts hold.
		{"GET", "/_openmeet/client/v1/rooms/events/s", 200, `{"kind":"event","slug":"s","name":"n","topic":"","alias":"#a:b","room_id":"!r:b","unread":0,"power_level":0}`, "redact_level"},
		{"GET", "/_openmeet/client/v1/rooms/events/s", 200, `{"kind":"event","slug":"s","name":"n","topic":"","alias":"#a:b","room_id":"!r:b","power_level":0,"redact_level":50}`, "unread"},
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

// TestDescriptionIsWhatGeneratorsNeed: client generators (openapi-typescript
// for clients/typescript) need every path parameter declared, and $refs
// that name a component, not a place inside one.
func TestDescriptionIsWhatGeneratorsNeed(t *testing.T) {
	t.Parallel()
	spec, err := Load(api.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	paths := spec.root["paths"].(map[string]any)
	for path, node := range paths {
		item := node.(map[string]any)
		declared := map[string]bool{}
		addParams := func(list any) {
			for _, p := range asList(list) {
				param, _ := spec.resolve(p).(map[string]any)
				if param["in"] == "path" {
					if param["required"] != true {
						t.Errorf("%s: path parameter %v is not required", path, param["name"])
					}
					declared[param["name"].(string)] = true
				}
			}
		}
		addParams(item["parameters"])
		for method, op := range item {
			if method == "parameters" {
				continue
			}
			opDeclared := maps.Clone(declared)
			for _, p := range asList(op.(map[string]any)["parameters"]) {
				if param, _ := spec.resolve(p).(map[string]any); param["in"] == "path" {
					opDeclared[param["name"].(string)] = true
				}
			}
			for _, m := range regexp.MustCompile(`\{(\w+)\}`).FindAllStringSubmatch(path, -1) {
				if !opDeclared[m[1]] {
					t.Errorf("%s %s: path parameter %q is not declared", method, path, m[1])
				}
			}
		}
	}
	var walk func(node any, at string)
	walk = func(node any, at string) {
		switch v := node.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok {
				if !regexp.MustCompile(`^#/components/(schemas|responses|parameters)/\w+$`).MatchString(ref) {
					t.Errorf("%s: $ref %q does not name a component", at, ref)
				} else if spec.resolve(map[string]any{"$ref": ref}) == nil {
					t.Errorf("%s: $ref %q names nothing", at, ref)
				}
			}
			for k, child := range v {
				walk(child, at+"/"+k)
			}
		case []any:
			for i, child := range v {
				walk(child, fmt.Sprintf("%s/%d", at, i))
			}
		}
	}
	walk(spec.root, "#")
}

func asList(v any) []any { list, _ := v.([]any); return list }

// Package openapicheck checks real HTTP responses against the bridge's
// OpenAPI description, so tests prove the description true. It knows the
// parts of OpenAPI 3.1 / JSON Schema the description uses: paths with
// parameters, $ref, type, required, properties, additionalProperties,
// items, enum, allOf and anyOf.
package openapicheck

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Spec is a loaded description.
type Spec struct {
	root  map[string]any
	paths []string
}

// Load parses a description.
func Load(data []byte) (*Spec, error) {
	var root map[string]any
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, err
	}
	paths, _ := root["paths"].(map[string]any)
	if len(paths) == 0 {
		return nil, errors.New("description has no paths")
	}
	s := &Spec{root: root}
	for p := range paths {
		s.paths = append(s.paths, p)
	}
	slices.Sort(s.paths)
	return s, nil
}

// match finds the described path for a request path, preferring the one
// with the most literal segments.
func (s *Spec) match(path string) (string, bool) {
	got := strings.Split(strings.Trim(path, "/"), "/")
	best, bestScore := "", -1
	for _, p := range s.paths {
		want := strings.Split(strings.Trim(p, "/"), "/")
		if len(want) != len(got) {
			continue
		}
		score := 0
		for i := range want {
			switch {
			case strings.HasPrefix(want[i], "{") && strings.HasSuffix(want[i], "}"):
				if got[i] == "" {
					score = -1
				}
			case want[i] == got[i]:
				score++
			default:
				score = -1
			}
			if score < 0 {
				break
			}
		}
		if score > bestScore {
			best, bestScore = p, score
		}
	}
	return best, bestScore >= 0
}

// Check verifies that the description has the operation, documents the
// status, and that a JSON body matches the documented schema.
func (s *Spec) Check(method, path string, status int, body []byte) error {
	p, ok := s.match(path)
	if !ok {
		return fmt.Errorf("%s %s: path not in the description", method, path)
	}
	ops, _ := s.root["paths"].(map[string]any)[p].(map[string]any)
	op, ok := ops[strings.ToLower(method)].(map[string]any)
	if !ok {
		if status == 405 || status == 404 || status == 401 {
			return nil // routing and auth answers, before any operation
		}
		return fmt.Errorf("%s %s: method not in the description", method, p)
	}
	responses, _ := op["responses"].(map[string]any)
	resp, ok := s.resolve(responses[strconv.Itoa(status)]).(map[string]any)
	if !ok {
		return fmt.Errorf("%s %s: status %d not in the description", method, p, status)
	}
	content, _ := resp["content"].(map[string]any)
	media, _ := content["application/json"].(map[string]any)
	if media == nil {
		return nil
	}
	var value any
	if err := json.Unmarshal(body, &value); err != nil {
		return fmt.Errorf("%s %s %d: body is not JSON: %w", method, p, status, err)
	}
	if err := s.validate(media["schema"], value, "body"); err != nil {
		return fmt.Errorf("%s %s %d: %w", method, p, status, err)
	}
	return nil
}

// resolve follows a local $ref.
func (s *Spec) resolve(node any) any {
	for {
		m, ok := node.(map[string]any)
		if !ok {
			return node
		}
		ref, ok := m["$ref"].(string)
		if !ok {
			return node
		}
		var cur any = s.root
		for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
			m, _ := cur.(map[string]any)
			cur = m[strings.ReplaceAll(strings.ReplaceAll(part, "~1", "/"), "~0", "~")]
		}
		node = cur
	}
}

func (s *Spec) validate(schemaNode any, value any, at string) error {
	schema, _ := s.resolve(schemaNode).(map[string]any)
	if schema == nil {
		return nil
	}
	if parts, ok := schema["allOf"].([]any); ok {
		for _, part := range parts {
			if err := s.validate(part, value, at); err != nil {
				return err
			}
		}
	}
	if alts, ok := schema["anyOf"].([]any); ok {
		var errs []error
		for _, alt := range alts {
			err := s.validate(alt, value, at)
			if err == nil {
				return nil
			}
			errs = append(errs, err)
		}
		return fmt.Errorf("%s matches none of anyOf: %w", at, errors.Join(errs...))
	}
	if enum, ok := schema["enum"].([]any); ok && !slices.Contains(enum, value) {
		return fmt.Errorf("%s: %v is not one of %v", at, value, enum)
	}
	switch schema["type"] {
	case "object":
		obj, ok := value.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: want an object, got %T", at, value)
		}
		props, _ := schema["properties"].(map[string]any)
		for _, req := range asStrings(schema["required"]) {
			if _, ok := obj[req]; !ok {
				return fmt.Errorf("%s: required %q missing", at, req)
			}
		}
		for key, v := range obj {
			prop, known := props[key]
			if !known {
				if schema["additionalProperties"] == false {
					return fmt.Errorf("%s: %q is not described", at, key)
				}
				continue
			}
			if err := s.validate(prop, v, at+"."+key); err != nil {
				return err
			}
		}
	case "array":
		arr, ok := value.([]any)
		if !ok {
			return fmt.Errorf("%s: want an array, got %T", at, value)
		}
		for i, item := range arr {
			if err := s.validate(schema["items"], item, fmt.Sprintf("%s[%d]", at, i)); err != nil {
				return err
			}
		}
	case "string":
		if _, ok := value.(string); !ok {
			return fmt.Errorf("%s: want a string, got %T", at, value)
		}
	case "integer":
		if f, ok := value.(float64); !ok || f != float64(int64(f)) {
			return fmt.Errorf("%s: want an integer, got %v", at, value)
		}
	case "number":
		if _, ok := value.(float64); !ok {
			return fmt.Errorf("%s: want a number, got %T", at, value)
		}
	case "boolean":
		if _, ok := value.(bool); !ok {
			return fmt.Errorf("%s: want a boolean, got %T", at, value)
		}
	}
	return nil
}

func asStrings(v any) []string {
	list, _ := v.([]any)
	out := make([]string, 0, len(list))
	for _, item := range list {
		if s, ok := item.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

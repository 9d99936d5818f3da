package bridge

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// checkKeys walks a config document against the Go type it is decoded
// into and reports every unknown key and every value of the wrong kind by
// its dotted key path ("appservice.adress: unknown key"), which yaml.v3's
// own errors do not: they name a line and a Go type. Anything it lets
// through is left to the strict decode that follows.
func checkKeys(data []byte, into reflect.Type) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return err
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil
	}
	var errs []error
	walkKeys(doc.Content[0], into, "", &errs)
	return errors.Join(errs...)
}

var durationType = reflect.TypeOf(time.Duration(0))

func walkKeys(node *yaml.Node, t reflect.Type, path string, errs *[]error) {
	if node.Kind == yaml.AliasNode && node.Alias != nil {
		node = node.Alias
	}
	if isNull(node) {
		return // a key with no value keeps the default
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t.Kind() == reflect.Struct:
		if !expectKind(node, yaml.MappingNode, path, "a mapping of keys", errs) {
			return
		}
		fields := yamlFields(t)
		for i := 0; i+1 < len(node.Content); i += 2 {
			key, value := node.Content[i], node.Content[i+1]
			if key.Value == "<<" { // merge key: its mappings hold keys of this section
				walkKeys(value, t, path, errs)
				continue
			}
			field, ok := fields[key.Value]
			if !ok {
				*errs = append(*errs, unknownKey(join(path, key.Value), key.Line, fields))
				continue
			}
			walkKeys(value, field, join(path, key.Value), errs)
		}
	case t.Kind() == reflect.Map:
		if !expectKind(node, yaml.MappingNode, path, "a mapping", errs) {
			return
		}
		for i := 0; i+1 < len(node.Content); i += 2 {
			walkKeys(node.Content[i+1], t.Elem(), join(path, node.Content[i].Value), errs)
		}
	case t.Kind() == reflect.Slice:
		if !expectKind(node, yaml.SequenceNode, path, "a list", errs) {
			return
		}
		for i, item := range node.Content {
			walkKeys(item, t.Elem(), path+"["+strconv.Itoa(i)+"]", errs)
		}
	default:
		if !expectKind(node, yaml.ScalarNode, path, "a single value", errs) {
			return
		}
		if err := node.Decode(reflect.New(t).Interface()); err != nil {
			*errs = append(*errs, fmt.Errorf("%s: %q is not %s (line %d)", path, node.Value, describeType(t), node.Line))
		}
	}
}

func isNull(node *yaml.Node) bool {
	return node.Kind == yaml.ScalarNode && node.Tag == "!!null"
}

func expectKind(node *yaml.Node, kind yaml.Kind, path, want string, errs *[]error) bool {
	if node.Kind == kind {
		return true
	}
	got := map[yaml.Kind]string{yaml.MappingNode: "a mapping", yaml.SequenceNode: "a list", yaml.ScalarNode: fmt.Sprintf("%q", node.Value)}[node.Kind]
	if path == "" {
		path = "config"
	}
	*errs = append(*errs, fmt.Errorf("%s: must be %s, not %s (line %d)", path, want, got, node.Line))
	return false
}

// describeType says in an operator's words what a value must be.
func describeType(t reflect.Type) string {
	if t == durationType {
		return "a duration such as 30s, 5m or 2h"
	}
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	}
	return "a valid value"
}

// yamlFields maps the keys of a struct section to their field types.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	fields := make(map[string]reflect.Type, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		fields[name] = f.Type
	}
	return fields
}

func unknownKey(path string, line int, known map[string]reflect.Type) error {
	last := path[strings.LastIndex(path, ".")+1:]
	best, bestDist := "", 3
	names := make([]string, 0, len(known))
	for name := range known {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if d := editDistance(last, name); d < bestDist {
			best, bestDist = name, d
		}
	}
	if best != "" {
		return fmt.Errorf("%s: unknown key (line %d); did you mean %s?", path, line, best)
	}
	return fmt.Errorf("%s: unknown key (line %d)", path, line)
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// editDistance is the Levenshtein distance of a and b, for suggesting the
// key a typo meant.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// OverlayExample returns the example config with the values of overlay in
// place of its own, comments kept: the defaults of an installation that
// differs from the example in a few keys (the container image's listen
// address and paths), for -g to write and for keys a config leaves out.
// The overlay's keys are checked like a config's.
func OverlayExample(example, overlay []byte) ([]byte, error) {
	if err := checkKeys(overlay, reflect.TypeOf(&Config{})); err != nil {
		return nil, err
	}
	var doc, over yaml.Node
	if err := yaml.Unmarshal(example, &doc); err != nil {
		return nil, fmt.Errorf("the example config is invalid: %w", err)
	}
	if err := yaml.Unmarshal(overlay, &over); err != nil {
		return nil, err
	}
	if len(over.Content) == 0 {
		return example, nil
	}
	overlayNode(doc.Content[0], over.Content[0], reflect.TypeOf(Config{}))
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(4)
	if err := enc.Encode(&doc); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// overlayNode puts src's values into dst. Sections (structs) are merged key
// by key; anything else, maps such as permissions included, is replaced
// whole, as a config's own value replaces the default.
func overlayNode(dst, src *yaml.Node, t reflect.Type) {
	if src.Kind == yaml.AliasNode && src.Alias != nil {
		src = src.Alias
	}
	if t.Kind() != reflect.Struct || dst.Kind != yaml.MappingNode || src.Kind != yaml.MappingNode {
		comment := dst.LineComment
		*dst = *src
		dst.HeadComment, dst.FootComment = "", ""
		if dst.LineComment == "" {
			dst.LineComment = comment
		}
		return
	}
	fields := yamlFields(t)
	for i := 0; i+1 < len(src.Content); i += 2 {
		key, value := src.Content[i], src.Content[i+1]
		field, ok := fields[key.Value]
		if !ok {
			continue // a merge key; checkKeys has refused anything else
		}
		found := false
		for j := 0; j+1 < len(dst.Content); j += 2 {
			if dst.Content[j].Value == key.Value {
				overlayNode(dst.Content[j+1], value, field)
				found = true
				break
			}
		}
		if !found {
			dst.Content = append(dst.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: key.Value}, value)
		}
	}
}

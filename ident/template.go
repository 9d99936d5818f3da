package ident

import (
	"fmt"
	"regexp"
	"strings"
)

// template is a parsed localpart template such as "openmeet_{tenant}_{slug}":
// literal pieces around a fixed sequence of placeholders. Because escaped
// parts never contain "_", a template whose separators each contain "_" can
// always be split back into its parts.
type template struct {
	raw    string
	names  []string // placeholder names in order
	pieces []string // len(names)+1 literal pieces: prefix, separators, suffix
}

func parseTemplate(raw string, want ...string) (*template, error) {
	t := &template{raw: raw}
	rest := raw
	for {
		open := strings.IndexByte(rest, '{')
		if open < 0 {
			t.pieces = append(t.pieces, rest)
			break
		}
		end := strings.IndexByte(rest[open:], '}')
		if end < 0 {
			return nil, fmt.Errorf("unclosed placeholder in %q", raw)
		}
		t.pieces = append(t.pieces, rest[:open])
		t.names = append(t.names, rest[open+1:open+end])
		rest = rest[open+end+1:]
	}
	if strings.Join(t.names, ",") != strings.Join(want, ",") {
		return nil, fmt.Errorf("template %q must contain the placeholders {%s} once each, in that order",
			raw, strings.Join(want, "}, {"))
	}
	for i, piece := range t.pieces {
		for j := 0; j < len(piece); j++ {
			if c := piece[j]; !literal(c) && c != '_' {
				return nil, fmt.Errorf("template %q contains %q; only a-z, 0-9, '.', '-' and '_' may stand outside placeholders", raw, c)
			}
		}
		if i > 0 && i < len(t.pieces)-1 && !strings.Contains(piece, "_") {
			return nil, fmt.Errorf("template %q must separate {%s} and {%s} with text containing '_'",
				raw, t.names[i-1], t.names[i])
		}
	}
	if t.pieces[0] == "" {
		return nil, fmt.Errorf("template %q must start with a fixed prefix such as \"openmeet_\"", raw)
	}
	return t, nil
}

func (t *template) format(values ...string) string {
	var b strings.Builder
	b.WriteString(t.pieces[0])
	for i, v := range values {
		b.WriteString(Escape(v))
		b.WriteString(t.pieces[i+1])
	}
	return b.String()
}

// parse splits a localpart made by format back into its unescaped values.
func (t *template) parse(localpart string) ([]string, error) {
	last := t.pieces[len(t.pieces)-1]
	if !strings.HasPrefix(localpart, t.pieces[0]) || !strings.HasSuffix(localpart, last) ||
		len(localpart) < len(t.pieces[0])+len(last) {
		return nil, ErrNotOurs
	}
	rest := localpart[len(t.pieces[0]) : len(localpart)-len(last)]
	values := make([]string, 0, len(t.names))
	for i := range t.names {
		var part string
		if i == len(t.names)-1 {
			part, rest = rest, ""
		} else {
			sep := t.pieces[i+1]
			// The first "_" left in rest belongs to this separator.
			under := strings.IndexByte(rest, '_')
			start := under - strings.IndexByte(sep, '_')
			if under < 0 || start < 0 || !strings.HasPrefix(rest[start:], sep) {
				return nil, fmt.Errorf("%w: %q does not match %q", ErrNotOurs, localpart, t.raw)
			}
			part, rest = rest[:start], rest[start+len(sep):]
		}
		value, err := Unescape(part)
		if err != nil {
			return nil, err
		}
		values = append(values, value)
	}
	return values, nil
}

// namespaceRegex matches every localpart the template can produce, and more:
// the whole prefix…suffix range is claimed, so no one else can take a name
// that looks like one of ours.
func (t *template) namespaceRegex() string {
	return regexp.QuoteMeta(t.pieces[0]) + ".*" + regexp.QuoteMeta(t.pieces[len(t.pieces)-1])
}

// Package ident maps OpenMeet identities (tenant, slug) to Matrix user IDs and
// room aliases and back.
//
// The mapping must be injective and reversible for every input: the
// predecessor split localparts on "-" and confused hyphenated tenants with
// slugs. Here every part is escaped so that its encoding never contains "_",
// which leaves "_" free to separate the parts. The escaping follows the
// spirit of the Matrix specification's appendix on mapping other character
// sets: characters that are safe in a localpart stand for themselves, every
// other byte of the UTF-8 encoding becomes "=" followed by two lower-case hex
// digits.
package ident

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxIDLength is the longest user ID or room alias the Matrix specification
// allows, in bytes, sigil and server name included.
const MaxIDLength = 255

var (
	// ErrTooLong is returned when an encoded identifier would exceed
	// MaxIDLength; the mapping refuses it rather than truncating, which would
	// make two inputs collide.
	ErrTooLong = errors.New("identifier longer than 255 bytes")
	// ErrNotOurs is returned when a Matrix identifier is outside the bridge's
	// namespace, so it has no OpenMeet identity.
	ErrNotOurs = errors.New("identifier outside the bridge namespace")
	// ErrBadEscape is returned when a localpart is inside the namespace but is
	// not the canonical encoding of any input.
	ErrBadEscape = errors.New("invalid escape in identifier")
	// ErrInvalidUTF8 is returned when an input to be encoded is not valid
	// UTF-8, which no OpenMeet slug can be.
	ErrInvalidUTF8 = errors.New("identifier part is not valid UTF-8")
)

// literal reports whether b stands for itself in an encoded part. "_" and "="
// are excluded: "_" separates parts, "=" starts an escape.
func literal(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= '0' && b <= '9' || b == '-' || b == '.'
}

const hexDigits = "0123456789abcdef"

// Escape encodes one part (a tenant, a slug) so that it contains only
// [a-z0-9.=-]. It is injective; Unescape reverses it.
func Escape(s string) string {
	n := len(s)
	for i := 0; i < len(s); i++ {
		if !literal(s[i]) {
			n += 2
		}
	}
	if n == len(s) {
		return s
	}
	var b strings.Builder
	b.Grow(n)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if literal(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('=')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&0xf])
	}
	return b.String()
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// Unescape reverses Escape. It accepts only canonical encodings: an escape
// of a literal character, upper-case hex, or a character that should have
// been escaped is an error, so that no two localparts decode to one input.
func Unescape(s string) (string, error) {
	if !strings.Contains(s, "=") {
		for i := 0; i < len(s); i++ {
			if !literal(s[i]) {
				return "", fmt.Errorf("%w: unexpected %q", ErrBadEscape, s[i])
			}
		}
		return s, nil
	}
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if literal(c) {
			out = append(out, c)
			continue
		}
		if c != '=' || i+2 >= len(s) {
			return "", fmt.Errorf("%w: unexpected %q at %d", ErrBadEscape, c, i)
		}
		hi, ok1 := unhex(s[i+1])
		lo, ok2 := unhex(s[i+2])
		v := hi<<4 | lo
		if !ok1 || !ok2 || literal(v) {
			return "", fmt.Errorf("%w: %q at %d", ErrBadEscape, s[i:i+3], i)
		}
		out = append(out, v)
		i += 2
	}
	if !utf8.Valid(out) {
		return "", ErrInvalidUTF8
	}
	return string(out), nil
}

func utf8Valid(s string) bool { return utf8.ValidString(s) }

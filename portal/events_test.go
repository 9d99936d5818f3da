package portal

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/id"

	"github.com/openmeet-team/openmeet-bridge/appservice"
)

func TestCheckEventID(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		id string
		ok bool
	}{
		{"$" + strings.Repeat("A", 43), true},
		{"$abc:example.org", true}, // room versions 1 and 2
		{"$" + strings.Repeat("a", 254), true},
		{"$" + strings.Repeat("a", 255), false},
		{"", false},
		{"$", false},
		{"abc", false},
		{"!room:example.org", false},
		{"$a\x00b", false},
		{"$a\nb", false},
		{"$a b", false},
		{"$a\u2028b", false},
		{"$a\x7fb", false},
		{"$\xff\xfe", false},
	} {
		if err := CheckEventID(tt.id); (err == nil) != tt.ok {
			t.Errorf("CheckEventID(%q) = %v, want ok %v", tt.id, err, tt.ok)
		}
	}
}

// TestEventDistrustsTheHomeserver: whatever the homeserver answers to an
// event lookup, Event returns a checked event or an error, never a panic
// and never an event of another room or ID. (A real Synapse does not send
// malformed answers on demand, so this one is a plain HTTP server.)
func TestEventDistrustsTheHomeserver(t *testing.T) {
	t.Parallel()
	const room, user = "!room:example.org", "@openmeet_acme_ada:example.org"
	var mu sync.Mutex
	answers := map[string]answer{} // by event ID
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("user_id") != user || r.Header.Get("Authorization") != "Bearer as-token" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		prefix := "/_matrix/client/v3/rooms/" + room + "/event/"
		mu.Lock()
		a, ok := answers[strings.TrimPrefix(r.URL.Path, prefix)]
		mu.Unlock()
		if !strings.HasPrefix(r.URL.Path, prefix) || !ok {
			w.WriteHeader(http.StatusTeapot)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(a.status)
		_, _ = w.Write([]byte(a.body))
	}))
	defer srv.Close()
	hs, err := appservice.NewHomeserver(&appservice.Config{ID: "openmeet", ASToken: "as-token", HSToken: "hs-token",
		Address: "http://127.0.0.1:1", Bot: appservice.BotConfig{Username: "openmeetbot"}},
		&appservice.HomeserverConfig{Address: srv.URL, Domain: "example.org"}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	r := &Registry{hs: hs, cfg: &Config{}}
	// $event in a body stands for the event ID asked for.
	good := `{"event_id":"$event","room_id":"!room:example.org","sender":"@bob:example.org","type":"m.room.message","origin_server_ts":5,"content":{}}`
	for i, tt := range []struct {
		name   string
		status int
		body   string
		want   error // nil: a good event; errAny: some error
	}{
		{"good", 200, good, nil},
		{"bad content is not our business", 200, strings.Replace(good, `"content":{}`, `"content":{"body":5,"m.relates_to":"x"}`, 1), nil},
		{"not found", 404, `{"errcode":"M_NOT_FOUND","error":"Event not found."}`, ErrNoSuchEvent},
		{"forbidden", 403, `{"errcode":"M_FORBIDDEN","error":"not in room"}`, ErrNoSuchEvent},
		{"other room", 200, strings.Replace(good, room, "!other:example.org", 1), ErrNoSuchEvent},
		{"other event", 200, strings.Replace(good, "$event", "$other", 1), ErrMalformedEvent},
		{"no event id", 200, strings.Replace(good, `"event_id":"$event",`, "", 1), ErrMalformedEvent},
		{"no type", 200, strings.Replace(good, `"type":"m.room.message",`, "", 1), ErrMalformedEvent},
		{"huge type", 200, strings.Replace(good, `"m.room.message"`, `"`+strings.Repeat("t", 300)+`"`, 1), ErrMalformedEvent},
		{"no sender", 200, strings.Replace(good, `"sender":"@bob:example.org",`, "", 1), ErrMalformedEvent},
		{"bad sender", 200, strings.Replace(good, "@bob:example.org", "bob", 1), ErrMalformedEvent},
		{"sender of wrong type", 200, strings.Replace(good, `"@bob:example.org"`, `5`, 1), errAny},
		{"not JSON", 200, `<html>`, errAny},
		{"JSON null", 200, `null`, ErrMalformedEvent},
		{"array", 200, `[1,2]`, errAny},
		{"empty", 200, ``, errAny},
	} {
		evt := id.EventID(fmt.Sprintf("$case%d", i))
		mu.Lock()
		answers[evt.String()] = answer{tt.status, strings.ReplaceAll(tt.body, "$event", evt.String())}
		mu.Unlock()
		got, err := r.Event(context.Background(), user, room, evt)
		switch {
		case tt.want == nil:
			if err != nil || got == nil || got.ID != evt || got.RoomID != room || got.Sender != "@bob:example.org" || got.Type != "m.room.message" || got.OriginTS != 5 {
				t.Errorf("%s: %+v %v", tt.name, got, err)
			}
		case tt.want == errAny:
			if err == nil || got != nil {
				t.Errorf("%s: %+v %v, want an error", tt.name, got, err)
			}
		default:
			if !errors.Is(err, tt.want) || got != nil {
				t.Errorf("%s: %+v %v, want %v", tt.name, got, err, tt.want)
			}
		}
	}
	if _, err := r.Event(context.Background(), user, room, "$a\x00b"); !errors.Is(err, ErrBadEventID) {
		t.Errorf("a bad event ID reached the homeserver: %v", err)
	}
}

var errAny = errors.New("any error")

type answer struct {
	status int
	body   string
}

package portal

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/openmeet-team/openmeet-bridge/database"
	"github.com/openmeet-team/openmeet-bridge/ident"
)

const testBot = id.UserID("@openmeetbot:example.org")

func testRegistry(t *testing.T) *Registry {
	t.Helper()
	namer, err := ident.NewNamer("example.org", ident.DefaultGhostTemplate, ident.DefaultAliasTemplate)
	if err != nil {
		t.Fatal(err)
	}
	return &Registry{namer: namer, botID: testBot, cfg: &Config{HistoryVisibility: "shared"}, retries: map[any]retryState{}}
}

// stateEvent builds a parsed state event as the state endpoint gives it.
func stateEvent(t *testing.T, evtType event.Type, sender id.UserID, content string) *event.Event {
	t.Helper()
	evt := &event.Event{Type: evtType, Sender: sender, StateKey: new(string)}
	if err := json.Unmarshal([]byte(content), &evt.Content); err != nil {
		t.Fatal(err)
	}
	if err := evt.Content.ParseRaw(evtType); err != nil {
		t.Fatal(err)
	}
	return evt
}

func roomState(t *testing.T, version string, creator id.UserID, levels string, extra ...string) mautrix.RoomStateMap {
	t.Helper()
	create := `{"room_version":"` + version + `"`
	if len(extra) > 0 {
		create += `,"additional_creators":["` + strings.Join(extra, `","`) + `"]`
	}
	state := mautrix.RoomStateMap{event.StateCreate: {"": stateEvent(t, event.StateCreate, creator, create+"}")}}
	if levels != "" {
		state[event.StatePowerLevels] = map[string]*event.Event{"": stateEvent(t, event.StatePowerLevels, creator, levels)}
	}
	return state
}

func ghost(t *testing.T, r *Registry, slug string) id.UserID {
	t.Helper()
	userID, err := r.namer.GhostID("acme", slug)
	if err != nil {
		t.Fatal(err)
	}
	return userID
}

// TestPowerLevelPlanByRoomVersion: up to v11 the bot is listed at 100; in
// v12 the creators (the bot and any additional creator) are never written
// into users and their absence is no drift.
func TestPowerLevelPlanByRoomVersion(t *testing.T) {
	t.Parallel()
	r := testRegistry(t)
	host := ghost(t, r, "hilda")
	extra := ghost(t, r, "cocreator")
	p := &database.Portal{RoomID: "!room", Visibility: "public"}
	desired := map[id.UserID]desiredMember{
		host:  {&database.PortalMember{UserID: host}, 100},
		extra: {&database.PortalMember{UserID: extra}, 50},
	}
	tests := []struct {
		name, version, levels string
		extra                 []string
		wantUsers             map[id.UserID]int
		wantChange            bool
	}{
		{"v10 fresh", "10", `{"users":{"@openmeetbot:example.org":100}}`, nil,
			map[id.UserID]int{testBot: 100, host: 100, extra: 50}, true},
		{"v10 in sync", "10", `{"users":{"@openmeetbot:example.org":100,"` + string(host) + `":100,"` + string(extra) + `":50}}`, nil,
			nil, false},
		{"v11 bot missing", "11", `{"users":{"` + string(host) + `":100,"` + string(extra) + `":50}}`, nil,
			map[id.UserID]int{testBot: 100, host: 100, extra: 50}, true},
		{"v12 fresh", "12", `{}`, nil, map[id.UserID]int{host: 100, extra: 50}, true},
		{"v12 in sync", "12", `{"users":{"` + string(host) + `":100,"` + string(extra) + `":50}}`, nil, nil, false},
		{"v12 additional creator", "12", `{"users":{"` + string(host) + `":100}}`, []string{string(extra)}, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pl := &plan{}
			if err := r.planPowerLevels(pl, p, desired, roomState(t, tt.version, testBot, tt.levels, tt.extra...)); err != nil {
				t.Fatal(err)
			}
			if (pl.powerLevels != nil) != tt.wantChange {
				t.Fatalf("plan %v, want a change: %v", pl.Descriptions(), tt.wantChange)
			}
			if pl.powerLevels == nil {
				return
			}
			if got := pl.levels.Users; len(got) != len(tt.wantUsers) {
				t.Fatalf("users %v, want %v", got, tt.wantUsers)
			}
			for userID, level := range tt.wantUsers {
				if got, ok := pl.levels.Users[userID]; !ok || got != level {
					t.Errorf("users %v, want %v", pl.levels.Users, tt.wantUsers)
				}
			}
		})
	}
}

// TestPlanCompletesRoomWithoutPowerLevels: a room the bot created but that
// has no power levels (a creation refused part-way) gets Synapse's preset
// levels; one created by someone else cannot be completed.
func TestPlanCompletesRoomWithoutPowerLevels(t *testing.T) {
	t.Parallel()
	r := testRegistry(t)
	host := ghost(t, r, "hilda")
	desired := map[id.UserID]desiredMember{host: {&database.PortalMember{UserID: host}, 100}}
	for _, version := range SupportedRoomVersions {
		pl := &plan{}
		p := &database.Portal{RoomID: "!room", Visibility: "private", Name: "N", Alias: "#a:example.org"}
		state := roomState(t, version, testBot, "")
		if err := r.planPowerLevels(pl, p, desired, state); err != nil || pl.powerLevels == nil {
			t.Fatalf("v%s: %v %v", version, pl.Descriptions(), err)
		}
		desc := pl.powerLevels.desc
		if !strings.Contains(desc, "create the power levels") || strings.Contains(desc, string(testBot)) == (version == "12") {
			t.Errorf("v%s: %q", version, desc)
		}
		r.planSettings(pl, p, state)
		if !strings.Contains(strings.Join(pl.Descriptions(), "\n"), "history visibility") {
			t.Errorf("v%s: no history visibility in %v", version, pl.Descriptions())
		}
		foreign := roomState(t, version, "@someone:example.org", "")
		if err := r.planPowerLevels(&plan{}, p, desired, foreign); err == nil {
			t.Errorf("v%s: planned power levels for a room the bot did not create", version)
		}
	}
}

func TestCanComplete(t *testing.T) {
	t.Parallel()
	r := testRegistry(t)
	joined := func(state mautrix.RoomStateMap) mautrix.RoomStateMap {
		state[event.StateMember] = map[string]*event.Event{string(testBot): stateEvent(t, event.StateMember, testBot, `{"membership":"join"}`)}
		return state
	}
	tests := []struct {
		name  string
		state mautrix.RoomStateMap
		want  string // "" when the room can be completed
	}{
		{"v12 creator, no levels", joined(roomState(t, "12", testBot, "")), ""},
		{"v10 creator, no levels", joined(roomState(t, "10", testBot, "")), ""},
		{"v10 someone else's, no levels", joined(roomState(t, "10", "@x:example.org", "")), "no power levels"},
		{"v10 bot at 100", joined(roomState(t, "10", "@x:example.org", `{"users":{"@openmeetbot:example.org":100}}`)), ""},
		{"v12 bot at 50", joined(roomState(t, "12", "@x:example.org", `{"users":{"@openmeetbot:example.org":50},"events":{"m.room.power_levels":100}}`)), "power level is 50"},
		{"not joined", roomState(t, "12", testBot, ""), "membership"},
	}
	for _, tt := range tests {
		err := r.canComplete(tt.state)
		if (err == nil) != (tt.want == "") || (err != nil && !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
	}
}

// TestRepeatedFailureIsNotNews: the same error again is retried quietly
// with a growing, capped backoff; a different one is logged again.
func TestRepeatedFailureIsNotNews(t *testing.T) {
	t.Parallel()
	r := testRegistry(t)
	key := database.PortalKey{Tenant: "t", Kind: "event", Slug: "s"}
	fail := errors.New("M_FORBIDDEN: no")
	if !r.noteResult(key, fail) {
		t.Fatal("first failure not news")
	}
	for range 20 {
		if r.noteResult(key, fail) {
			t.Fatal("repeated failure is news")
		}
	}
	if got := r.retries[key].backoff; got != maxRetryBackoff {
		t.Fatalf("backoff %s, want the cap %s", got, maxRetryBackoff)
	}
	if !r.noteResult(key, errors.New("M_UNKNOWN: other")) {
		t.Fatal("a different failure is not news")
	}
	r.noteResult(key, nil)
	if !r.noteResult(key, fail) {
		t.Fatal("a failure after a success is not news")
	}
}

// TestDemotionsUpToV11: the bot (100) cannot lower a ghost at 100, so that
// ghost lowers itself first; in v12 the bot, as creator, needs no help.
func TestDemotionsUpToV11(t *testing.T) {
	t.Parallel()
	r := testRegistry(t)
	host, mod := ghost(t, r, "hilda"), ghost(t, r, "mo")
	p := &database.Portal{RoomID: "!room", Visibility: "public"}
	desired := map[id.UserID]desiredMember{mod: {&database.PortalMember{UserID: mod}, 0}}
	levels := `{"users":{"@openmeetbot:example.org":100,"` + string(host) + `":100,"` + string(mod) + `":100}}`
	pl := &plan{}
	if err := r.planPowerLevels(pl, p, desired, roomState(t, "10", testBot, levels)); err != nil {
		t.Fatal(err)
	}
	if len(pl.demotions) != 2 || !strings.Contains(pl.demotions[0].desc, string(host)) || !strings.Contains(pl.demotions[1].desc, string(mod)) {
		t.Fatalf("demotions %v", pl.Descriptions())
	}
	v12 := `{"users":{"` + string(host) + `":100,"` + string(mod) + `":100}}`
	pl = &plan{}
	if err := r.planPowerLevels(pl, p, desired, roomState(t, "12", testBot, v12)); err != nil {
		t.Fatal(err)
	}
	if len(pl.demotions) != 0 || pl.powerLevels == nil {
		t.Fatalf("v12 plan %v", pl.Descriptions())
	}
}

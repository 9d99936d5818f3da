package main

import (
	"encoding/json"
	"math/rand/v2"
	"strconv"
	"strings"
)

// generator makes the soak's random traffic.
type generator struct {
	o   options
	rng *rand.Rand
	// What was generated so far.
	txns, events, ephemeral int
	bytes                   int64
}

func (g *generator) room() string {
	return roomID(g.rng.IntN(g.o.rooms))
}

// user is one of the senders: ghosts of the bridge's namespace and users
// of other servers.
func (g *generator) user() string {
	n := g.rng.IntN(g.o.senders)
	if n%2 == 0 {
		return "@openmeet_soak_u" + strconv.Itoa(n) + ":" + domain
	}
	return "@user" + strconv.Itoa(n) + ":remote" + strconv.Itoa(n%97) + ".test"
}

const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 "

func (g *generator) text(min, max int) string {
	b := make([]byte, min+g.rng.IntN(max-min+1))
	for i := range b {
		b[i] = letters[g.rng.IntN(len(letters))]
	}
	return string(b)
}

// transaction is a body as Synapse sends it: 1 to 50 timeline events, some
// of them invalid (-invalid percent), and often typing notices and
// receipts.
func (g *generator) transaction() []byte {
	var events []json.RawMessage
	for i := range 1 + g.rng.IntN(50) {
		evt := g.event(i)
		if g.rng.IntN(100) < g.o.invalid {
			evt = g.spoil(evt)
		}
		events = append(events, evt)
	}
	body := map[string]any{"events": events}
	if g.rng.IntN(2) == 0 {
		var eph []any
		for range 1 + g.rng.IntN(4) {
			eph = append(eph, g.ephemeralEvent())
		}
		if g.rng.IntN(100) < g.o.invalid {
			eph = append(eph, map[string]any{"type": "m.typing", "room_id": "not a room", "content": map[string]any{}})
		}
		g.ephemeral += len(eph)
		key := "ephemeral"
		if g.rng.IntN(2) == 0 {
			key = "de.sorunome.msc2409.ephemeral"
		}
		body[key] = eph
	}
	g.events += len(events)
	raw, _ := json.Marshal(body)
	return raw
}

func (g *generator) event(i int) json.RawMessage {
	sender := g.user()
	evt := map[string]any{
		"event_id":         "$soak" + strconv.Itoa(g.txns) + "_" + strconv.Itoa(i) + "_" + g.text(20, 20),
		"room_id":          g.room(),
		"sender":           sender,
		"origin_server_ts": 1764000000000 + int64(g.txns),
		"unsigned":         map[string]any{"age": g.rng.IntN(1000)},
	}
	evt["event_id"] = strings.ReplaceAll(evt["event_id"].(string), " ", "_")
	switch r := g.rng.IntN(100); {
	case r < 10:
		membership := []string{"join", "leave", "invite", "ban"}[g.rng.IntN(4)]
		evt["type"], evt["state_key"] = "m.room.member", sender
		evt["content"] = map[string]any{"membership": membership, "displayname": g.text(3, 40)}
	case r < 20:
		evt["type"] = "m.reaction"
		evt["content"] = map[string]any{"m.relates_to": map[string]any{"rel_type": "m.annotation", "event_id": "$x" + g.text(10, 10), "key": "👍"}}
	case r < 23:
		evt["type"], evt["state_key"] = "m.room.topic", ""
		evt["content"] = map[string]any{"topic": g.text(10, 200)}
	default:
		evt["type"] = "m.room.message"
		evt["content"] = map[string]any{"msgtype": "m.text", "body": g.text(16, 4000)}
	}
	raw, _ := json.Marshal(evt)
	return raw
}

// spoil makes an event invalid in one of the ways a hostile server or a
// broken one might.
func (g *generator) spoil(raw json.RawMessage) json.RawMessage {
	var evt map[string]any
	_ = json.Unmarshal(raw, &evt)
	switch g.rng.IntN(9) {
	case 0:
		evt["event_id"] = evt["event_id"].(string) + "\x00tail"
	case 1:
		evt["event_id"] = "$" + strings.Repeat("x", 300)
	case 2:
		delete(evt, "room_id")
	case 3:
		evt["origin_server_ts"] = "yesterday"
	case 4:
		evt["sender"] = "not a user"
	case 5:
		evt["type"] = strings.Repeat("t", 256)
	case 6:
		evt["room_id"] = "!room\x00:" + domain
	case 7:
		evt["content"] = "not an object"
	case 8:
		return json.RawMessage(`"just a string"`)
	}
	out, _ := json.Marshal(evt)
	return out
}

func (g *generator) ephemeralEvent() any {
	room := g.room()
	if g.rng.IntN(2) == 0 {
		var users []string
		for range 1 + g.rng.IntN(5) {
			users = append(users, g.user())
		}
		return map[string]any{"type": "m.typing", "room_id": room, "content": map[string]any{"user_ids": users}}
	}
	readers := map[string]any{}
	for range 1 + g.rng.IntN(3) {
		readers[g.user()] = map[string]any{"ts": 1764000000000 + int64(g.txns)}
	}
	return map[string]any{"type": "m.receipt", "room_id": room, "content": map[string]any{
		"$read" + g.text(10, 10): map[string]any{"m.read": readers},
	}}
}

// brokenBody is a body that is not a transaction at all: 400.
func (g *generator) brokenBody() []byte {
	switch g.rng.IntN(3) {
	case 0:
		return []byte(`{"events":[` + g.text(10, 100))
	case 1:
		return []byte(`{"events":{"not":"a list"}}`)
	default:
		return []byte(`[1,2,3]`)
	}
}

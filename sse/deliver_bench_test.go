package sse

import (
	"fmt"
	"testing"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// BenchmarkDeliver is the hub's share of the live path: one logged event
// handed to the 16 goroutine streams of its room (a message, and someone
// else's membership change), the frame already formatted.
func BenchmarkDeliver(b *testing.B) {
	for _, kind := range []string{"message", "member"} {
		b.Run(kind, func(b *testing.B) {
			h := NewHub(nil, Config{Buffer: 64, MaxPerUser: 1}, zerolog.Nop())
			var subs []*subscriber
			h.mu.Lock()
			for i := range 16 {
				sub, err := h.registerLocked(id.UserID(fmt.Sprintf("@u%d:test", i)), map[id.RoomID]struct{}{"!r": {}}, 0, nil)
				if err != nil {
					b.Fatal(err)
				}
				subs = append(subs, sub)
			}
			h.mu.Unlock()
			evt := message("!r", "hello")
			if kind == "member" {
				evt = membership("!r", "@other:test", event.MembershipJoin)
			}
			frame := outFrame{b: []byte("data: {}\n\n")}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				e := *evt
				e.Position = int64(i + 1)
				var ready readyBatch
				h.deliver(&e, frame, nil, &ready)
				for _, sub := range subs {
					select {
					case <-sub.frames:
					default:
					}
				}
			}
		})
	}
}

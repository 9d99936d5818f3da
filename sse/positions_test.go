package sse

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"maunium.net/go/mautrix/event"
)

// positionOf fails unless fr is a position frame whose id and data agree,
// and returns that position.
func positionOf(t *testing.T, fr frame) string {
	t.Helper()
	var data struct {
		StreamPos *int64 `json:"stream_pos"`
	}
	if fr.event != EventPosition || fr.id == "" || json.Unmarshal([]byte(fr.data), &data) != nil || data.StreamPos == nil || fmt.Sprint(*data.StreamPos) != fr.id {
		t.Fatalf("got %+v, want a position frame", fr)
	}
	return fr.id
}

func TestPositionFrameIsWellFormed(t *testing.T) {
	t.Parallel()
	for _, pos := range []int64{1, 42, 1 << 53} {
		if got := checkFrame(t, positionFrame(pos), pos); got["stream_pos"] != float64(pos) {
			t.Fatalf("position frame of %d carries %v", pos, got)
		}
	}
	events, rest := parseSSE(positionFrame(0))
	if len(events) != 1 || len(rest) != 0 || !events[0].hasID || events[0].id != "0" || events[0].data != `{"stream_pos":0}` {
		t.Fatalf("position frame of 0 reads as %+v", events)
	}
}

// TestNewStreamStartsWithItsPosition: the first frame of a new stream is
// its position, also on an empty log, before any live event.
func TestNewStreamStartsWithItsPosition(t *testing.T) {
	bothModes(t, func(t *testing.T, cfg Config) {
		f := newHubFixture(t, cfg)
		frames, _ := f.openAll(t, "@u:test", "")
		if got := positionOf(t, next(t, frames)); got != "0" {
			t.Fatalf("a stream on an empty log starts at %s, want 0", got)
		}
		written := f.push(t, membership("!a", "@u:test", event.MembershipJoin), message("!x", "not mine"))
		frames, _ = f.openAll(t, "@u:test", "")
		if got, want := positionOf(t, next(t, frames)), fmt.Sprint(written[1].Position); got != want {
			t.Fatalf("a new stream starts at %s, want %s (the end of the log)", got, want)
		}
		expectNone(t, frames)
	})
}

// TestCutBeforeAnyLiveEvent is the freshly opened page of issue 12: its
// stream is cut before any live event arrived, messages are sent
// meanwhile, and it resumes from the position of its first frame: every
// message arrives, once.
func TestCutBeforeAnyLiveEvent(t *testing.T) {
	bothModes(t, func(t *testing.T, cfg Config) {
		f := newHubFixture(t, cfg)
		f.push(t, membership("!a", "@u:test", event.MembershipJoin), message("!a", "before"))
		frames, resp := f.openAll(t, "@u:test", "")
		pos := positionOf(t, next(t, frames))
		_ = resp.Body.Close()
		f.push(t, message("!a", "during 1"), message("!a", "during 2"))
		frames, _ = f.openAll(t, "@u:test", pos)
		if got := positionOf(t, next(t, frames)); got != pos {
			t.Fatalf("the resumed stream starts at %s, want %s (where it resumes from)", got, pos)
		}
		for _, want := range []string{"during 1", "during 2"} {
			if got := next(t, frames); got.event != "m.room.message" || !strings.Contains(got.data, want) {
				t.Fatalf("resume gave %+v, want %q", got, want)
			}
		}
		positionOf(t, next(t, frames))
		f.push(t, message("!a", "live"))
		if got := next(t, frames); !strings.Contains(got.data, "live") {
			t.Fatalf("live after resume gave %+v", got)
		}
		expectNone(t, frames)
	})
}

// TestResumeEndsWithThePosition: after the catch-up a resumed stream gets
// the position it goes on from, past events of rooms the user is not in,
// so a cut right after the catch-up does not read them again.
func TestResumeEndsWithThePosition(t *testing.T) {
	bothModes(t, func(t *testing.T, cfg Config) {
		f := newHubFixture(t, cfg)
		written := f.push(t, membership("!a", "@u:test", event.MembershipJoin))
		from := fmt.Sprint(written[0].Position)
		written = f.push(t, message("!a", "missed"), message("!x", "not mine 1"), message("!x", "not mine 2"))
		frames, _ := f.openAll(t, "@u:test", from)
		if got := positionOf(t, next(t, frames)); got != from {
			t.Fatalf("resume starts at %s, want %s", got, from)
		}
		if got := next(t, frames); got.id != fmt.Sprint(written[0].Position) || !strings.Contains(got.data, "missed") {
			t.Fatalf("resume gave %+v, want the missed message", got)
		}
		if got, want := positionOf(t, next(t, frames)), fmt.Sprint(written[2].Position); got != want {
			t.Fatalf("after the catch-up the position is %s, want %s (past the other room's events)", got, want)
		}
		expectNone(t, frames)

		// Resuming from where the stream stands: one position frame.
		frames, _ = f.openAll(t, "@u:test", fmt.Sprint(written[2].Position))
		positionOf(t, next(t, frames))
		expectNone(t, frames)
	})
}

// TestResetComesFirst: a position the log does not hold gets a reset as
// the first frame, with no position frame before it that a client cut off
// at once would resume from without reloading.
func TestResetComesFirst(t *testing.T) {
	bothModes(t, func(t *testing.T, cfg Config) {
		f := newHubFixture(t, cfg)
		frames, _ := f.openAll(t, "@u:test", "7")
		if got := next(t, frames); got.event != EventReset || got.id != "0" {
			t.Fatalf("a made-up position on an empty log gave %+v, want a reset at 0", got)
		}
		written := f.push(t, membership("!a", "@u:test", event.MembershipJoin))
		frames, _ = f.openAll(t, "@u:test", "999")
		if got := next(t, frames); got.event != EventReset || got.id != fmt.Sprint(written[0].Position) {
			t.Fatalf("a position from the future gave %+v, want a reset at %d", got, written[0].Position)
		}
		expectNone(t, frames)
	})
}

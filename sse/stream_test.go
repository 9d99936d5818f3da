package sse

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tidwall/gjson"
	"golang.org/x/sys/unix"
	"maunium.net/go/mautrix/event"

	"github.com/openmeet-team/openmeet-bridge/database"
)

// TestMembershipChangedWhileAStreamOpens: joins and leaves logged (and
// handed out by the hub) after a new stream read where it starts, but
// before it registered, are applied to it: the user sees the room it
// joined and nothing more of the room it left. Caught up from the hub's
// record of recent member events when it reaches back far enough (ring
// default), else from the log, read without the hub's lock and again while
// the hub keeps moving (ring 1: two changes at each of two attempts).
func TestMembershipChangedWhileAStreamOpens(t *testing.T) {
	for _, tc := range []struct {
		name       string
		perAttempt int
		ring       int
		fromLog    bool
	}{
		{"memory", 4, recentMemberEvents, false},
		{"log", 2, 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bothModes(t, func(t *testing.T, cfg Config) {
				var f *hubFixture
				changes := [][]string{{"!a", "leave"}, {"!c", "join"}, {"!d", "join"}, {"!b", "leave"}}
				rounds := len(changes) / tc.perAttempt
				errs := make(chan error, rounds)
				var attempts atomic.Int64
				f = newHubFixture(t, cfg, func(h *Hub, _ *httptest.Server) {
					h.recent.size = tc.ring
					h.hooks.beforeRegister = func(attempt int) {
						attempts.Store(int64(attempt))
						if attempt > rounds {
							return
						}
						var events []*database.LoggedEvent
						for _, c := range changes[(attempt-1)*tc.perAttempt : attempt*tc.perAttempt] {
							events = append(events, membership(c[0], "@u:test", event.Membership(c[1])))
						}
						// A message in each room joined so far: logged
						// while the stream registers, it must reach it
						// once, through the catch-up or live.
						for _, c := range changes[:attempt*tc.perAttempt] {
							if c[1] == "join" {
								events = append(events, message(c[0], fmt.Sprintf("during %d in %s", attempt, c[0])))
							}
						}
						_, err := f.pushErr(events...)
						errs <- err
					}
				})
				joined := f.push(t, membership("!a", "@u:test", event.MembershipJoin), membership("!b", "@u:test", event.MembershipJoin))
				frames, _ := f.open(t, "@u:test", fmt.Sprint(joined[1].Position))
				for range rounds {
					if err := <-errs; err != nil {
						t.Fatal(err)
					}
				}
				if got := attempts.Load(); (got > 1) != tc.fromLog {
					t.Fatalf("registered at attempt %d; from the log: %v", got, tc.fromLog)
				}
				for _, room := range []string{"!a", "!b", "!c", "!d"} {
					f.push(t, message(room, "in "+room))
				}
				// Own membership, the messages logged while it registered,
				// then the live ones of the rooms it is in, each once.
				var want []string
				for k := 1; k <= rounds; k++ {
					for _, c := range changes[(k-1)*tc.perAttempt : k*tc.perAttempt] {
						want = append(want, c[1]+" "+c[0])
					}
					for _, c := range changes[:k*tc.perAttempt] {
						if c[1] == "join" {
							want = append(want, fmt.Sprintf("during %d in %s", k, c[0]))
						}
					}
				}
				want = append(want, "in !c", "in !d")
				for _, w := range want {
					got := next(t, frames)
					var desc string
					if got.event == "m.room.member" {
						var p Payload
						_ = json.Unmarshal([]byte(got.data), &p)
						desc = gjsonString(p.Event, "content.membership") + " " + p.RoomID.String()
					} else {
						desc = gjsonString([]byte(got.data), "event.content.body")
					}
					if desc != w {
						t.Fatalf("got %q (%+v), want %q (lost, repeated, or a left room leaked?)", desc, got, w)
					}
				}
				expectNone(t, frames)
			})
		})
	}
}

// TestResumeOnALaggingReplica: two replicas on one database; the second
// one's hub has not read the newest rows yet. A client that saw them
// through the first replica and resumes on the second gets what it missed
// from the log, not a reset, and then the second replica's live events
// without repeats.
func TestResumeOnALaggingReplica(t *testing.T) {
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			dbA, uri := openTestDB(t, engine, "")
			a := startHub(t, dbA, testCfg())
			a.push(t, membership("!a", "@u:test", event.MembershipJoin), message("!a", "one"))
			release := make(chan struct{})
			dbB, _ := openTestDB(t, engine, uri)
			b := startHub(t, dbB, testCfg(), func(h *Hub, _ *httptest.Server) {
				h.feed.BeforeRead = func(ctx context.Context) {
					select {
					case <-release:
					case <-ctx.Done():
					}
				}
			})
			seen := a.push(t, message("!a", "two"))[0].Position
			a.push(t, message("!a", "three"))
			b.hub.mu.Lock()
			behind := b.hub.position < seen
			b.hub.mu.Unlock()
			if !behind {
				t.Fatal("replica B is not behind; the test checks nothing")
			}
			frames, _ := b.open(t, "@u:test", fmt.Sprint(seen))
			if got := next(t, frames); got.event != "m.room.message" || !strings.Contains(got.data, "three") {
				t.Fatalf("resume on the lagging replica gave %+v, want the missed message", got)
			}
			close(release)
			a.push(t, message("!a", "four"))
			b.hub.Wake()
			if got := next(t, frames); !strings.Contains(got.data, "four") {
				t.Fatalf("live after resume gave %+v (a repeat?)", got)
			}
			expectNone(t, frames)
			// A position that was never logged is still a reset.
			frames, _ = b.open(t, "@u:test", "999")
			if got := next(t, frames); got.event != EventReset {
				t.Fatalf("a position from the future gave %+v", got)
			}
		})
	}
}

// smallSocketBuffers keeps a reader's backlog in the bridge, where it
// counts, rather than in kernel buffers: the server's send buffer and
// (with smallReceiveBuffer) the client's receive buffer hold a few KiB.
func smallSocketBuffers(_ *Hub, srv *httptest.Server) {
	srv.Config.ConnState = func(c net.Conn, s http.ConnState) {
		if s == http.StateNew {
			_ = c.(*net.TCPConn).SetWriteBuffer(4096)
		}
	}
}

var smallReceiveBuffer = &net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
	var err error
	if cerr := c.Control(func(fd uintptr) { err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 4096) }); cerr != nil {
		return cerr
	}
	return err
}}

// TestMassJoinNeverCutsAStreamOff: thousands of people join a room while a
// member's stream is not reading. The stream is not cut off; once it
// reads again it gets every join, one by one as long as it kept up and
// counted in "members" events after that, then the messages behind them.
func TestMassJoinNeverCutsAStreamOff(t *testing.T) {
	bothModes(t, func(t *testing.T, cfg Config) {
		cfg.Buffer, cfg.Heartbeat = 16, time.Hour
		f := newHubFixture(t, cfg, smallSocketBuffers)
		f.push(t, membership("!a", "@u:test", event.MembershipJoin))
		conn := f.rawStreamWith(t, smallReceiveBuffer, "@u:test", "")
		// Keeping up, a stream gets others' joins one by one.
		f.push(t, membership("!a", "@early:test", event.MembershipJoin))
		if got := conn.read(t, 1)[0]; got.name != "m.room.member" || !strings.Contains(got.data, "@early:test") {
			t.Fatalf("got %+v, want the join", got)
		}
		const joins = 3000
		for i := 0; i < joins; i += 100 { // transactions as Synapse sends them
			batch := make([]*database.LoggedEvent, 0, 100)
			for j := i; j < i+100; j++ {
				batch = append(batch, membership("!a", fmt.Sprintf("@p%d:test", j), event.MembershipJoin))
			}
			f.push(t, batch...)
		}
		msg := f.push(t, message("!a", "after the joins"))[0].Position
		if n := f.hub.Connections(); n != 1 {
			t.Fatalf("%d streams open: the mass join cut the reader off", n)
		}
		full, counted, gotMessage := 0, 0, false
		for !gotMessage || full+counted < joins {
			e := conn.read(t, 1)[0]
			switch e.name {
			case "m.room.member":
				full++
			case EventMembers:
				var p MembersPayload
				if err := json.Unmarshal([]byte(e.data), &p); err != nil || p.RoomID != "!a" || p.Count < 1 || e.hasID {
					t.Fatalf("members event %+v (%v)", e, err)
				}
				counted += p.Count
			case "m.room.message":
				if e.id != fmt.Sprint(msg) || !strings.Contains(e.data, "after the joins") {
					t.Fatalf("got %+v", e)
				}
				gotMessage = true
			default:
				t.Fatalf("unexpected %+v", e)
			}
		}
		t.Logf("%d one by one, %d counted", full, counted)
		if full+counted != joins || counted == 0 {
			t.Fatalf("%d joins one by one and %d counted, want %d in all, some counted", full, counted, joins)
		}
		f.push(t, message("!a", "still live"))
		if got := conn.read(t, 1)[0]; !strings.Contains(got.data, "still live") {
			t.Fatalf("got %+v", got)
		}
	})
}

func gjsonString(raw []byte, path string) string { return gjson.GetBytes(raw, path).String() }

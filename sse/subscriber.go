package sse

import (
	"errors"
	"sync"

	"maunium.net/go/mautrix/id"
)

var errTooManyStreams = errors.New("too many streams for this user")

// subscriber is one open stream. Frames wait in a bounded channel; a
// subscriber whose channel is full is cut off rather than allowed to grow.
type subscriber struct {
	user  id.UserID
	rooms map[id.RoomID]struct{} // guarded by the hub's lock
	// from is the position the stream started at: the hub's events up to
	// it are already in the stream's start (see Hub.subscribe).
	from int64
	// Exactly one of frames (a stream with a goroutine of its own) and
	// parked (a taken-over connection) is set.
	frames chan outFrame
	parked *parkedConn
	done   chan struct{}
	once   sync.Once
	reason string

	// behind is the queue length from which others' membership is noted
	// instead of queued (goroutine streams; parked ones keep their own).
	behind  int
	notesMu sync.Mutex
	notes   memberNotes
	// noted wakes the stream's goroutine when notes are waiting.
	noted chan struct{}
}

func newSubscriber(user id.UserID, buffer int, parked *parkedConn) *subscriber {
	s := &subscriber{user: user, rooms: make(map[id.RoomID]struct{}, 1), parked: parked, done: make(chan struct{})}
	if parked == nil {
		s.frames = make(chan outFrame, buffer)
		s.behind = behindAt(buffer)
		s.noted = make(chan struct{}, 1)
	} else {
		parked.sub = s
	}
	return s
}

// behindAt is how many queued frames make a stream count as behind: from
// then on, others' membership changes are coalesced rather than queued.
func behindAt(buffer int) int { return max(1, buffer/4) }

// offer queues a frame without blocking; false means the buffer is full.
// A parked connection that needs a writer joins batch.
func (s *subscriber) offer(frame outFrame, batch *readyBatch) bool {
	if s.parked != nil {
		return s.parked.offer(frame, batch)
	}
	select {
	case <-s.done:
		return true
	default:
	}
	select {
	case s.frames <- frame:
		return true
	default:
		return false
	}
}

// offerOthersMembership hands the stream a member event about someone else.
// It never cuts the stream off: a mass join (thousands of member events in
// a moment) must not cost anyone their stream. While the stream keeps up,
// the event is queued like any other; once it is behind (behindAt frames
// waiting, or unsent bytes), the event is only counted per room, and when
// the stream has caught up it gets one "members" event per such room
// instead (see memberNotes). A stream that resumes with Last-Event-ID gets
// every member event from the log again.
func (s *subscriber) offerOthersMembership(frame outFrame, note memberNote, batch *readyBatch) {
	if s.parked != nil {
		s.parked.offerOthersMembership(frame, note, batch)
		return
	}
	s.notesMu.Lock()
	defer s.notesMu.Unlock()
	if s.notes.empty() && len(s.frames) < s.behind {
		select {
		case s.frames <- frame:
			return
		default:
		}
	}
	s.notes.add(note)
	select {
	case s.noted <- struct{}{}:
	default:
	}
}

// takeNotes returns the members events waiting for a goroutine stream, at
// most behind of them; the stream is woken again for the rest.
func (s *subscriber) takeNotes() [][]byte {
	s.notesMu.Lock()
	defer s.notesMu.Unlock()
	frames := s.notes.take(s.behind)
	if !s.notes.empty() {
		select {
		case s.noted <- struct{}{}:
		default:
		}
	}
	return frames
}

func (s *subscriber) close(reason string) {
	s.once.Do(func() {
		s.reason = reason
		close(s.done)
		if s.parked != nil {
			s.parked.close()
		}
	})
}

// memberNote is one member event about someone else that a stream did not
// get: the room, its portal and the event's position.
type memberNote struct {
	room   id.RoomID
	portal *PortalInfo
	pos    int64
}

// MembersPayload is the data of a "members" event: others' membership of
// a room changed (Count member events, the newest at StreamPos) while the
// stream was too far behind to get each; a page that shows the room's
// members reloads them.
type MembersPayload struct {
	RoomID    id.RoomID   `json:"room_id"`
	Portal    *PortalInfo `json:"portal,omitempty"`
	StreamPos int64       `json:"stream_pos"`
	Count     int         `json:"count"`
}

// memberNotes coalesces others' member events per room, in the order the
// rooms were first noted. It holds one entry per room, so it is bounded by
// the rooms a stream follows.
type memberNotes struct {
	order  []id.RoomID
	byRoom map[id.RoomID]*MembersPayload
}

func (n *memberNotes) empty() bool { return len(n.order) == 0 }

func (n *memberNotes) add(note memberNote) {
	if p := n.byRoom[note.room]; p != nil {
		p.StreamPos = max(p.StreamPos, note.pos)
		p.Count++
		return
	}
	if n.byRoom == nil {
		n.byRoom = make(map[id.RoomID]*MembersPayload)
	}
	n.byRoom[note.room] = &MembersPayload{RoomID: note.room, Portal: note.portal, StreamPos: note.pos, Count: 1}
	n.order = append(n.order, note.room)
}

// take removes up to limit rooms' notes and returns their frames. They
// carry no id: their position is not the stream's, which may already be
// past them.
func (n *memberNotes) take(limit int) [][]byte {
	k := min(limit, len(n.order))
	if k == 0 {
		return nil
	}
	frames := make([][]byte, 0, k)
	for _, room := range n.order[:k] {
		frames = append(frames, encodeNamedFrame(0, EventMembers, n.byRoom[room]))
		delete(n.byRoom, room)
	}
	n.order = append(n.order[:0], n.order[k:]...)
	return frames
}

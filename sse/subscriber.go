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
	// Exactly one of frames (a stream with a goroutine of its own) and
	// parked (a taken-over connection) is set.
	frames chan []byte
	parked *parkedConn
	done   chan struct{}
	once   sync.Once
	reason string
}

func newSubscriber(user id.UserID, buffer int, parked *parkedConn) *subscriber {
	s := &subscriber{user: user, rooms: make(map[id.RoomID]struct{}, 1), parked: parked, done: make(chan struct{})}
	if parked == nil {
		s.frames = make(chan []byte, buffer)
	} else {
		parked.sub = s
	}
	return s
}

// offer queues a frame without blocking; false means the buffer is full.
// A parked connection that needs a writer joins batch.
func (s *subscriber) offer(frame []byte, batch *readyBatch) bool {
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

func (s *subscriber) close(reason string) {
	s.once.Do(func() {
		s.reason = reason
		close(s.done)
		if s.parked != nil {
			s.parked.close()
		}
	})
}

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
	user   id.UserID
	rooms  map[id.RoomID]struct{} // guarded by the hub's lock
	frames chan []byte
	done   chan struct{}
	once   sync.Once
	reason string
}

func newSubscriber(user id.UserID, buffer int) *subscriber {
	return &subscriber{
		user:   user,
		rooms:  make(map[id.RoomID]struct{}),
		frames: make(chan []byte, buffer),
		done:   make(chan struct{}),
	}
}

// offer queues a frame without blocking; false means the buffer is full.
func (s *subscriber) offer(frame []byte) bool {
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
	})
}

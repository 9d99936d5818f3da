package sse

import (
	"context"
	"errors"
	"net"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// An idle stream should cost no goroutine. After its headers, an HTTP/1.1
// stream is taken over from net/http and parked: the hub's epoll instance
// watches it for the peer closing, and a small pool of writers serves only
// the connections that have something to send. (HTTP/2 streams cannot be
// taken over and keep a goroutine each.)

// Write limits of parked connections.
const (
	// A connection with this much unsent is too slow and is cut off; it
	// reconnects with Last-Event-ID.
	maxPending = 1 << 20
	retryDelay = 100 * time.Millisecond
)

// parker owns the parked connections.
type parker struct {
	hub   *Hub
	epfd  int
	ready chan *parkedConn

	mu     sync.Mutex
	conns  map[uint64]*parkedConn
	nextID uint64
}

// parkedConn is one taken-over stream.
type parkedConn struct {
	id     uint64
	p      *parker
	conn   net.Conn
	raw    syscall.RawConn
	sub    *subscriber
	limit  int
	mu     sync.Mutex
	queue  [][]byte
	unsent []byte
	// busy is true while the connection is queued for, or held by, a
	// writer — or still owned by its handler.
	busy bool
}

func newParker(h *Hub, writers int) (*parker, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	p := &parker{hub: h, epfd: epfd, ready: make(chan *parkedConn, 1<<16), conns: make(map[uint64]*parkedConn)}
	for range writers {
		go p.writer()
	}
	return p, nil
}

// newConn prepares a parked connection; until release, frames only queue.
func (p *parker) newConn(limit int) *parkedConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.nextID++
	return &parkedConn{id: p.nextID, p: p, limit: limit, busy: true}
}

// park starts watching conn for the peer closing.
func (p *parker) park(pc *parkedConn, conn net.Conn) error {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return errors.New("connection has no file descriptor")
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	pc.conn, pc.raw = conn, raw
	p.mu.Lock()
	p.conns[pc.id] = pc
	p.mu.Unlock()
	var ctlErr error
	err = raw.Control(func(fd uintptr) {
		evt := unix.EpollEvent{Events: unix.EPOLLRDHUP | unix.EPOLLHUP | unix.EPOLLERR | unix.EPOLLET,
			Fd: int32(uint32(pc.id)), Pad: int32(uint32(pc.id >> 32))}
		ctlErr = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, int(fd), &evt)
	})
	return errors.Join(err, ctlErr)
}

// release hands the connection from its handler to the writers.
func (pc *parkedConn) release() {
	pc.mu.Lock()
	pc.busy = false
	pending := len(pc.queue) > 0
	if pending {
		pc.busy = true
	}
	pc.mu.Unlock()
	if pending {
		pc.p.schedule(pc)
	}
}

// offer queues a frame; false means the connection is too far behind.
func (pc *parkedConn) offer(frame []byte) bool {
	pc.mu.Lock()
	if len(pc.queue) >= pc.limit {
		pc.mu.Unlock()
		return false
	}
	pc.queue = append(pc.queue, frame)
	schedule := !pc.busy
	pc.busy = true
	pc.mu.Unlock()
	if schedule {
		pc.p.schedule(pc)
	}
	return true
}

func (p *parker) schedule(pc *parkedConn) {
	select {
	case p.ready <- pc:
	default:
		// The ready queue is full: do not block the hub's lock holder.
		go func() { p.ready <- pc }()
	}
}

// writer sends what parked connections have queued: several frames leave
// in one write (writev).
func (p *parker) writer() {
	for pc := range p.ready {
		pc.mu.Lock()
		bufs := net.Buffers{}
		if len(pc.unsent) > 0 {
			bufs = append(bufs, pc.unsent)
		}
		bufs = append(bufs, pc.queue...)
		pc.queue, pc.unsent = nil, nil
		pc.mu.Unlock()
		if pc.raw == nil {
			continue
		}
		rest, err := writeNow(pc.raw, bufs)
		if err != nil {
			p.hub.drop(pc.sub, "write failed")
			continue
		}
		pc.mu.Lock()
		pc.unsent = rest
		again := len(pc.queue) > 0 || len(rest) > 0
		pc.busy = again
		tooSlow := len(rest) > maxPending
		pc.mu.Unlock()
		switch {
		case tooSlow:
			p.hub.drop(pc.sub, "too slow")
		case len(rest) > 0:
			time.AfterFunc(retryDelay, func() { p.schedule(pc) })
		case again:
			p.schedule(pc)
		}
	}
}

// close forgets and closes a parked connection.
func (pc *parkedConn) close() {
	pc.p.mu.Lock()
	delete(pc.p.conns, pc.id)
	pc.p.mu.Unlock()
	if pc.conn != nil {
		_ = pc.conn.Close() // closing the descriptor also removes it from epoll
	}
}

// watch reports peers that closed their end, until ctx ends.
func (p *parker) watch(ctx context.Context) {
	events := make([]unix.EpollEvent, 256)
	for ctx.Err() == nil {
		n, err := unix.EpollWait(p.epfd, events, 500)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			p.hub.log.Err(err).Msg("epoll_wait failed")
			return
		}
		for _, evt := range events[:n] {
			id := uint64(uint32(evt.Fd)) | uint64(uint32(evt.Pad))<<32
			p.mu.Lock()
			pc := p.conns[id]
			p.mu.Unlock()
			if pc != nil {
				p.hub.drop(pc.sub, "client went away")
			}
		}
	}
	_ = unix.Close(p.epfd)
}

// heartbeat queues a comment on every parked connection.
func (p *parker) heartbeat() {
	p.mu.Lock()
	conns := make([]*parkedConn, 0, len(p.conns))
	for _, pc := range p.conns {
		conns = append(conns, pc)
	}
	p.mu.Unlock()
	for _, pc := range conns {
		if !pc.offer(heartbeatFrame) {
			p.hub.drop(pc.sub, "too slow")
		}
	}
}

var heartbeatFrame = []byte(": ping\n\n")

// writeNow writes what the socket takes right now and returns the rest,
// without ever waiting: a writer must not be held up by one slow client.
// Writing on the descriptor directly also spares the deadline timer and
// the netpoll bookkeeping of net.Conn.Write.
func writeNow(raw syscall.RawConn, bufs [][]byte) ([]byte, error) {
	var n int
	var werr error
	err := raw.Write(func(fd uintptr) bool {
		if len(bufs) == 1 {
			n, werr = unix.Write(int(fd), bufs[0])
		} else {
			n, werr = unix.Writev(int(fd), bufs)
		}
		return true
	})
	if err == nil && werr != nil && !errors.Is(werr, unix.EAGAIN) {
		err = werr
	}
	if err != nil {
		return nil, err
	}
	n = max(n, 0)
	var rest []byte
	for _, b := range bufs {
		if n >= len(b) {
			n -= len(b)
			continue
		}
		rest = append(rest, b[n:]...)
		n = 0
	}
	return rest, nil
}

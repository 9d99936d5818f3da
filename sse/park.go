package sse

import (
	"context"
	"errors"
	"net"
	"runtime"
	"sync"
	"syscall"
	"time"
	"unsafe"

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
	ready chan []*parkedConn

	mu     sync.Mutex
	conns  map[uint64]*parkedConn
	nextID uint64
}

// parkedConn is one taken-over stream.
type parkedConn struct {
	id    uint64
	p     *parker
	conn  net.Conn
	fd    int // conn's descriptor, for the writers; valid while the conn is open
	sub   *subscriber
	limit int

	mu     sync.Mutex
	queue  [][]byte
	spare  [][]byte // the writer's last batch, reused for the next queue
	unsent []byte
	// busy is true while the connection is queued for, or held by, a
	// writer — or still owned by its handler.
	busy bool
	// writing is true while a writer uses fd: closing then waits for the
	// writer to finish, so a descriptor number is never written to after
	// it was closed and perhaps reused for another client's connection.
	writing bool
	closed  bool
}

// readyBatch collects the connections one event made ready, so they reach
// the writers in a few channel operations rather than one each.
type readyBatch struct {
	p     *parker
	conns []*parkedConn
}

const batchSize = 64

func (b *readyBatch) add(pc *parkedConn) {
	if b.p == nil {
		b.p = pc.p
	}
	b.conns = append(b.conns, pc)
	if len(b.conns) == batchSize {
		b.flush()
	}
}

func (b *readyBatch) flush() {
	if len(b.conns) > 0 {
		b.p.scheduleAll(b.conns)
		b.conns = nil
	}
}

func newParker(h *Hub, writers int) (*parker, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	p := &parker{hub: h, epfd: epfd, ready: make(chan []*parkedConn, 1<<12), conns: make(map[uint64]*parkedConn)}
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
	return &parkedConn{id: p.nextID, p: p, limit: limit, busy: true, fd: -1}
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
	var ctlErr error
	err = raw.Control(func(fd uintptr) {
		pc.mu.Lock()
		pc.conn, pc.fd = conn, int(fd)
		pc.mu.Unlock()
		evt := unix.EpollEvent{Events: unix.EPOLLRDHUP | unix.EPOLLHUP | unix.EPOLLERR | unix.EPOLLET,
			Fd: int32(uint32(pc.id)), Pad: int32(uint32(pc.id >> 32))}
		ctlErr = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, int(fd), &evt)
	})
	if err = errors.Join(err, ctlErr); err != nil {
		return err
	}
	p.mu.Lock()
	p.conns[pc.id] = pc
	p.mu.Unlock()
	return nil
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

// offer queues a frame; false means the connection is too far behind. A
// connection that now needs a writer joins batch, or is scheduled at once
// when batch is nil.
func (pc *parkedConn) offer(frame []byte, batch *readyBatch) bool {
	pc.mu.Lock()
	if len(pc.queue) >= pc.limit {
		pc.mu.Unlock()
		return false
	}
	pc.queue = append(pc.queue, frame)
	schedule := !pc.busy
	pc.busy = true
	pc.mu.Unlock()
	switch {
	case !schedule:
	case batch != nil:
		batch.add(pc)
	default:
		pc.p.schedule(pc)
	}
	return true
}

func (p *parker) schedule(pc *parkedConn) { p.scheduleAll([]*parkedConn{pc}) }

func (p *parker) scheduleAll(conns []*parkedConn) {
	select {
	case p.ready <- conns:
	default:
		// The ready queue is full: do not block the hub's lock holder.
		go func() { p.ready <- conns }()
	}
}

// writer sends what parked connections have queued: several frames leave
// in one sendmsg.
func (p *parker) writer() {
	for batch := range p.ready {
		for _, pc := range batch {
			pc.write()
		}
	}
}

// write sends what the connection has queued, as far as the socket takes
// it without waiting.
func (pc *parkedConn) write() {
	bufs, fd, ok := pc.beginWrite()
	if !ok {
		return
	}
	rest, err := writeNow(fd, bufs)
	pc.endWrite(bufs, rest, err)
}

// beginWrite takes what is queued and marks the descriptor in use; false
// means the connection is closed (or not parked yet) and has nothing to do.
func (pc *parkedConn) beginWrite() ([][]byte, int, bool) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.closed || pc.fd < 0 {
		pc.busy = false
		return nil, -1, false
	}
	bufs := pc.queue
	if len(pc.unsent) > 0 {
		bufs = append([][]byte{pc.unsent}, bufs...)
	}
	pc.queue, pc.spare, pc.unsent = pc.spare[:0], nil, nil
	pc.writing = true
	return bufs, pc.fd, true
}

// endWrite keeps what the socket did not take, closes the connection if
// that was asked for meanwhile, and decides what comes next.
func (pc *parkedConn) endWrite(bufs [][]byte, rest []byte, err error) {
	clear(bufs)
	pc.mu.Lock()
	pc.writing = false
	if pc.closed {
		pc.mu.Unlock()
		pc.closeConn()
		return
	}
	pc.spare = bufs[:0]
	pc.unsent = rest
	again := len(pc.queue) > 0 || len(rest) > 0
	pc.busy = again
	tooSlow := len(rest) > maxPending
	pc.mu.Unlock()
	switch {
	case err != nil:
		pc.p.hub.drop(pc.sub, "write failed")
	case tooSlow:
		pc.p.hub.drop(pc.sub, "too slow")
	case len(rest) > 0:
		time.AfterFunc(retryDelay, func() { pc.p.schedule(pc) })
	case again:
		pc.p.schedule(pc)
	}
}

// close forgets a parked connection and closes it, at once or, when a
// writer is using its descriptor, as soon as the writer is done.
func (pc *parkedConn) close() {
	pc.p.mu.Lock()
	delete(pc.p.conns, pc.id)
	pc.p.mu.Unlock()
	pc.mu.Lock()
	pc.closed = true
	writing := pc.writing
	pc.queue, pc.spare, pc.unsent = nil, nil, nil
	pc.mu.Unlock()
	if !writing {
		pc.closeConn()
	}
}

func (pc *parkedConn) closeConn() {
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
	var batch readyBatch
	for _, pc := range conns {
		if !pc.offer(heartbeatFrame, &batch) {
			p.hub.drop(pc.sub, "too slow")
		}
	}
	batch.flush()
}

var heartbeatFrame = []byte(": ping\n\n")

// writeNow writes what the socket takes right now and returns the rest,
// without ever waiting: a writer must not be held up by one slow client.
// It sends on the descriptor directly (send(2) with MSG_DONTWAIT, or
// sendmsg for several frames), sparing net.Conn's locking, deadline and
// netpoll bookkeeping and the file layer of write(2).
func writeNow(fd int, bufs [][]byte) ([]byte, error) {
	var n int
	var err error
	if len(bufs) == 1 {
		n, err = send(fd, bufs[0])
	} else {
		n, err = sendv(fd, bufs)
	}
	if err != nil && !errors.Is(err, unix.EAGAIN) {
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

// send is send(2) on a non-blocking descriptor. It is a raw system call:
// it never waits, so the scheduler need not hand the writer's processor to
// another thread meanwhile — a handoff that, with every writer sending all
// the time, cost more than the sends themselves.
func send(fd int, b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	n, _, errno := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// maxIovecs bounds the frames sent in one sendmsg (the kernel's IOV_MAX).
const maxIovecs = 1024

// sendv is sendmsg(2) of several buffers, raw like send.
func sendv(fd int, bufs [][]byte) (int, error) {
	iov := make([]unix.Iovec, 0, min(len(bufs), maxIovecs))
	for _, b := range bufs {
		if len(iov) == maxIovecs {
			break
		}
		if len(b) > 0 {
			v := unix.Iovec{Base: &b[0]}
			v.SetLen(len(b))
			iov = append(iov, v)
		}
	}
	if len(iov) == 0 {
		return 0, nil
	}
	msg := unix.Msghdr{Iov: &iov[0]}
	msg.SetIovlen(len(iov))
	n, _, errno := unix.RawSyscall(unix.SYS_SENDMSG, uintptr(fd), uintptr(unsafe.Pointer(&msg)), unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL)
	runtime.KeepAlive(bufs)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

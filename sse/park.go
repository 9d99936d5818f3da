package sse

import (
	"context"
	"errors"
	"net"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
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

// Why a stream could not be parked; its handler closes the connection.
var (
	// errStreamClosed: the stream was dropped (too slow, shutting down)
	// before it was parked.
	errStreamClosed = errors.New("stream closed before it was parked")
	// errParkerStopped: the hub is shutting down.
	errParkerStopped = errors.New("parked streams are shut down")
)

// parker owns the parked connections.
type parker struct {
	hub   *Hub
	ready chan []*parkedConn
	// kick wakes a writer for the overflow.
	kick chan struct{}
	stop chan struct{}

	mu    sync.Mutex
	epfd  int // guarded by mu once watch may close it
	conns map[uint64]*parkedConn
	// stopped is set when epfd is closed: nothing is parked after that.
	stopped bool
	nextID  uint64

	// overflow holds what did not fit into ready. It is bounded by the
	// number of parked connections: a connection is scheduled again only
	// after a writer has taken it.
	overflowMu  sync.Mutex
	overflow    []*parkedConn
	hasOverflow atomic.Bool
}

// parkedConn is one taken-over stream.
type parkedConn struct {
	id    uint64
	p     *parker
	sub   *subscriber
	limit int
	// behind is the queue length from which others' membership is noted
	// instead of queued (see subscriber.offerOthersMembership).
	behind int

	mu sync.Mutex
	// conn is set when the handler has taken the connection over, fd
	// when it is parked; the writers use fd only while the conn is open.
	conn   net.Conn
	fd     int
	notes  memberNotes
	queue  [][]byte
	spare  [][]byte // the writer's last batch, reused for the next queue
	unsent []byte
	// received holds when the pushes of the queued frames' events arrived
	// (those known, see outFrame), sending those of the frames a writer
	// holds or has not sent in full, so that each is observed once its
	// frame is all written.
	received, sending []int64
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

// inlineWrites is how many connections a delivery writes to itself rather
// than through the writers: a message for a few people leaves without
// waking another goroutine, a broadcast is spread over the writers.
const inlineWrites = 4

// finish writes to the connections collected, itself when they are few,
// else through the writers. Call it without the hub's lock: the
// connections are the batch's until written (they are busy), nobody else
// writes to them meanwhile, and frames queued meanwhile follow in order.
func (b *readyBatch) finish() {
	if len(b.conns) > inlineWrites {
		b.flush()
		return
	}
	for _, pc := range b.conns {
		pc.write()
	}
	b.conns = nil
}

func newParker(h *Hub, writers int) (*parker, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	p := &parker{hub: h, epfd: epfd, ready: make(chan []*parkedConn, 1<<12), kick: make(chan struct{}, 1),
		stop: make(chan struct{}), conns: make(map[uint64]*parkedConn)}
	for range writers {
		go p.writer()
	}
	return p, nil
}

// shutdown closes the epoll instance and stops the writers. The descriptor
// number is closed under the lock that park holds while using it, so park
// never adds a connection to whatever reuses the number.
func (p *parker) shutdown() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return
	}
	p.stopped = true
	_ = unix.Close(p.epfd)
	close(p.stop)
}

// newConn prepares a parked connection; until release, frames only queue.
func (p *parker) newConn(limit int) *parkedConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.nextID++
	return &parkedConn{id: p.nextID, p: p, limit: limit, behind: behindAt(limit), busy: true, fd: -1}
}

// attach records the connection its handler has taken over. false means
// the stream was dropped meanwhile: the handler must close conn itself.
func (pc *parkedConn) attach(conn net.Conn) bool {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.closed {
		return false
	}
	pc.conn = conn
	return true
}

// park starts watching the attached connection for the peer closing. It
// fails when the stream was dropped before (errStreamClosed) or the hub is
// shutting down (errParkerStopped); the connection is then the handler's
// to close. The stream's lock is held throughout, so a concurrent close
// either comes first (and park refuses) or finds the connection parked
// (and closes it).
func (p *parker) park(pc *parkedConn) error {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.closed {
		return errStreamClosed
	}
	sc, ok := pc.conn.(syscall.Conn)
	if !ok {
		return errors.New("connection has no file descriptor")
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	var ctlErr error
	err = raw.Control(func(fd uintptr) {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.stopped {
			ctlErr = errParkerStopped
			return
		}
		evt := unix.EpollEvent{Events: unix.EPOLLRDHUP | unix.EPOLLHUP | unix.EPOLLERR | unix.EPOLLET,
			Fd: int32(uint32(pc.id)), Pad: int32(uint32(pc.id >> 32))}
		if ctlErr = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, int(fd), &evt); ctlErr == nil {
			pc.fd = int(fd)
			p.conns[pc.id] = pc
		}
	})
	return errors.Join(err, ctlErr)
}

// release hands the connection from its handler to the writers.
func (pc *parkedConn) release() {
	pc.mu.Lock()
	pc.busy = false
	pending := len(pc.queue) > 0 || !pc.notes.empty()
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
func (pc *parkedConn) offer(frame outFrame, batch *readyBatch) bool {
	pc.mu.Lock()
	if pc.closed {
		// Dropped: nothing will be sent, and it is not too slow.
		pc.mu.Unlock()
		return true
	}
	if len(pc.queue) >= pc.limit {
		pc.mu.Unlock()
		return false
	}
	pc.queue = append(pc.queue, frame.b)
	if frame.received != 0 {
		pc.received = append(pc.received, frame.received)
	}
	schedule := !pc.busy
	pc.busy = true
	pc.mu.Unlock()
	pc.scheduled(schedule, batch)
	return true
}

// offerOthersMembership queues a member event about someone else while the
// connection keeps up and only notes it once it is behind; it never fails
// (see subscriber.offerOthersMembership). A connection with notes is busy
// (its queue or unsent bytes are not empty), so a writer will get to it
// and turn the notes into frames when it has drained the rest.
func (pc *parkedConn) offerOthersMembership(frame outFrame, note memberNote, batch *readyBatch) {
	pc.mu.Lock()
	if pc.closed {
		pc.mu.Unlock()
		return
	}
	if !pc.notes.empty() || len(pc.queue) >= pc.behind || len(pc.unsent) > 0 {
		pc.notes.add(note)
		pc.mu.Unlock()
		return
	}
	pc.queue = append(pc.queue, frame.b)
	if frame.received != 0 {
		pc.received = append(pc.received, frame.received)
	}
	schedule := !pc.busy
	pc.busy = true
	pc.mu.Unlock()
	pc.scheduled(schedule, batch)
}

// scheduled hands a connection that became busy to the writers: through
// batch, or at once when batch is nil.
func (pc *parkedConn) scheduled(schedule bool, batch *readyBatch) {
	switch {
	case !schedule:
	case batch != nil:
		batch.add(pc)
	default:
		pc.p.schedule(pc)
	}
}

func (p *parker) schedule(pc *parkedConn) { p.scheduleAll([]*parkedConn{pc}) }

func (p *parker) scheduleAll(conns []*parkedConn) {
	select {
	case p.ready <- conns:
	default:
		// The ready queue is full: the hub's lock holder must not wait,
		// and a goroutine per overflow would be unbounded. The overflow
		// list is bounded (see parker.overflow); a writer is kicked.
		p.overflowMu.Lock()
		p.overflow = append(p.overflow, conns...)
		p.hasOverflow.Store(true)
		p.overflowMu.Unlock()
		select {
		case p.kick <- struct{}{}:
		default: // a kick is pending: its writer takes the overflow after this append
		}
	}
}

// writer sends what parked connections have queued: several frames leave
// in one sendmsg.
func (p *parker) writer() {
	for {
		select {
		case batch := <-p.ready:
			for _, pc := range batch {
				pc.write()
			}
		case <-p.kick:
		case <-p.stop:
			return
		}
		if p.hasOverflow.Load() {
			for _, pc := range p.takeOverflow() {
				pc.write()
			}
		}
	}
}

// takeOverflow takes up to a batch of the overflow, kicking another writer
// when more is left.
func (p *parker) takeOverflow() []*parkedConn {
	p.overflowMu.Lock()
	defer p.overflowMu.Unlock()
	n := min(len(p.overflow), batchSize)
	taken := slices.Clone(p.overflow[:n])
	p.overflow = append(p.overflow[:0], p.overflow[n:]...)
	if len(p.overflow) == 0 {
		p.hasOverflow.Store(false)
	} else {
		select {
		case p.kick <- struct{}{}:
		default:
		}
	}
	return taken
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
	if len(pc.queue) == 0 && len(pc.unsent) == 0 {
		pc.queue = append(pc.queue, pc.notes.take(pc.behind)...)
	}
	bufs := pc.queue
	if len(pc.unsent) > 0 {
		bufs = append([][]byte{pc.unsent}, bufs...)
	}
	pc.queue, pc.spare, pc.unsent = pc.spare[:0], nil, nil
	pc.sending = append(pc.sending, pc.received...)
	pc.received = pc.received[:0]
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
		conn := pc.conn
		pc.mu.Unlock()
		_ = conn.Close()
		return
	}
	pc.spare = bufs[:0]
	pc.unsent = rest
	var sent []int64
	if len(rest) == 0 && err == nil && len(pc.sending) > 0 {
		sent = pc.sending
		pc.sending = nil
	}
	if len(pc.queue) == 0 && len(rest) == 0 {
		// Caught up: now the rooms whose members changed meanwhile.
		pc.queue = append(pc.queue, pc.notes.take(pc.behind)...)
	}
	again := len(pc.queue) > 0 || len(rest) > 0
	pc.busy = again
	tooSlow := len(rest) > maxPending
	pc.mu.Unlock()
	if sent != nil {
		pc.p.hub.delivered(sent...)
	}
	switch {
	case err != nil:
		pc.p.hub.drop(pc.sub, "write failed")
	case tooSlow:
		pc.p.hub.drop(pc.sub, dropTooSlow)
	case len(rest) > 0:
		time.AfterFunc(retryDelay, func() { pc.p.schedule(pc) })
	case again:
		pc.p.schedule(pc)
	}
}

// close forgets a parked connection and closes it, at once or, when a
// writer is using its descriptor, as soon as the writer is done.
// A connection closed before its handler attached it is closed by the
// handler (see attach).
func (pc *parkedConn) close() {
	pc.mu.Lock()
	if pc.closed {
		pc.mu.Unlock()
		return
	}
	pc.closed = true
	writing, conn := pc.writing, pc.conn
	pc.queue, pc.spare, pc.unsent, pc.notes = nil, nil, nil, memberNotes{}
	pc.received, pc.sending = nil, nil
	pc.mu.Unlock()
	pc.p.mu.Lock()
	delete(pc.p.conns, pc.id)
	pc.p.mu.Unlock()
	if !writing && conn != nil {
		_ = conn.Close() // closing the descriptor also removes it from epoll
	}
}

// watch reports peers that closed their end, until ctx ends.
func (p *parker) watch(ctx context.Context) {
	defer p.shutdown()
	events := make([]unix.EpollEvent, 256)
	for ctx.Err() == nil {
		// Only watch closes epfd (in shutdown, after this loop).
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
		if !pc.offer(outFrame{b: heartbeatFrame}, &batch) {
			p.hub.drop(pc.sub, dropTooSlow)
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

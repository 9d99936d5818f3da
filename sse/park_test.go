package sse

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"
)

// testParker is a parker with no writers of its own: the test plays them.
func testParker(t *testing.T) *parker {
	t.Helper()
	p, err := newParker(NewHub(nil, testCfg(), zerolog.Nop()), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.shutdown)
	return p
}

// parkedTestConn parks conn as a stream of its own.
func parkedTestConn(t *testing.T, p *parker, conn net.Conn) *parkedConn {
	t.Helper()
	pc := p.newConn(16)
	newSubscriber("@a:test", 16, pc)
	if !pc.attach(conn) {
		t.Fatal("attach refused")
	}
	if err := p.park(pc); err != nil {
		t.Fatal(err)
	}
	return pc
}

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (server, client net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	client, err = net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if server, err = l.Accept(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = server.Close(); _ = client.Close() })
	return server, client
}

func fdOf(t *testing.T, c net.Conn) int {
	t.Helper()
	raw, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var fd int
	if err := raw.Control(func(f uintptr) { fd = int(f) }); err != nil {
		t.Fatal(err)
	}
	return fd
}

func readsNothing(t *testing.T, c net.Conn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	buf := make([]byte, 64)
	if n, err := c.Read(buf); n > 0 {
		t.Fatalf("read %q from a connection that should get nothing", buf[:n])
	} else if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Fatalf("read: %v, want a timeout", err)
	}
}

// Writers send on descriptor numbers, which the kernel hands out again as
// soon as they are closed. A stream dropped while its frames wait must
// never have them written to the connection that now has its number —
// another user's.
func TestParkedWritesNeverReachAReusedDescriptor(t *testing.T) {
	p := testParker(t)
	a, aPeer := tcpPair(t)
	pc := parkedTestConn(t, p, a)
	oldFD := fdOf(t, a)
	if !pc.offer(outFrame{b: []byte("data: for a\n\n")}, nil) {
		t.Fatal("offer refused")
	}
	pc.close()

	b, bPeer := tcpPair(t)
	if fdOf(t, b) != oldFD && fdOf(t, bPeer) != oldFD {
		t.Logf("descriptor %d was not reused; the check is weaker", oldFD)
	}
	pc.write() // what a writer holding the old connection would do
	readsNothing(t, bPeer)
	readsNothing(t, b)
	if n, _ := aPeer.Read(make([]byte, 64)); n > 0 {
		t.Fatal("a closed stream was written to")
	}
}

// Closing a stream while a writer is sending on it waits for the writer:
// the descriptor is closed when the send is over.
func TestParkedCloseDuringWriteDefersToWriter(t *testing.T) {
	p := testParker(t)
	a, aPeer := tcpPair(t)
	pc := parkedTestConn(t, p, a)
	pc.offer(outFrame{b: []byte("last\n")}, nil)
	bufs, fd, ok := pc.beginWrite()
	if !ok {
		t.Fatal("nothing to write")
	}
	pc.close() // the stream is dropped while the writer holds it
	readsNothing(t, aPeer)
	rest, err := writeNow(fd, bufs) // the descriptor is still this stream's
	pc.endWrite(bufs, rest, err)
	_ = aPeer.SetReadDeadline(time.Now().Add(2 * time.Second))
	if got, err := io.ReadAll(aPeer); err != nil || string(got) != "last\n" {
		t.Fatalf("peer read %q, %v; want the frame, then the end", got, err)
	}
	if _, _, ok := pc.beginWrite(); ok {
		t.Fatal("a closed stream was handed to a writer")
	}
}

// Several frames waiting for one connection leave in one sendmsg.
func TestWriteNowSendsQueuedFramesTogether(t *testing.T) {
	a, aPeer := tcpPair(t)
	frames := [][]byte{[]byte("one\n"), {}, []byte("two\n"), []byte("three\n")}
	rest, err := writeNow(fdOf(t, a), frames)
	if err != nil || len(rest) != 0 {
		t.Fatalf("writeNow: rest %q, err %v", rest, err)
	}
	got := make([]byte, 14)
	_ = aPeer.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.ReadFull(aPeer, got); err != nil || string(got) != "one\ntwo\nthree\n" {
		t.Fatalf("read %q, %v", got, err)
	}
}

// What the socket does not take now — a full send buffer, or more frames
// than one sendmsg carries — comes back as the rest, and sending the rest
// later delivers every byte once, in order.
func TestWriteNowKeepsWhatTheSocketDidNotTake(t *testing.T) {
	a, aPeer := tcpPair(t)
	fd := fdOf(t, a)
	var frames [][]byte
	var want bytes.Buffer
	for i := range 3 * maxIovecs {
		frame := fmt.Appendf(nil, "frame %d %s\n", i, strings.Repeat("x", i%700))
		frames = append(frames, frame)
		want.Write(frame)
	}
	rest, err := writeNow(fd, frames)
	if err != nil {
		t.Fatal(err)
	}
	if len(rest) == 0 {
		t.Fatal("a peer that reads nothing took everything; nothing was left to check")
	}
	// The peer starts reading; the writer keeps sending what is left, as
	// its retries would.
	got := make(chan []byte)
	go func() {
		_ = aPeer.SetReadDeadline(time.Now().Add(10 * time.Second))
		b, _ := io.ReadAll(io.LimitReader(aPeer, int64(want.Len())))
		got <- b
	}()
	for deadline := time.Now().Add(10 * time.Second); len(rest) > 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d bytes never sent", len(rest))
		}
		if rest, err = writeNow(fd, [][]byte{rest}); err != nil {
			t.Fatal(err)
		}
	}
	if b := <-got; !bytes.Equal(b, want.Bytes()) {
		t.Fatalf("peer read %d bytes, want %d, or out of order", len(b), want.Len())
	}
}

// A send on a connection the peer has reset is an error, not a rest.
func TestWriteNowReportsABrokenConnection(t *testing.T) {
	a, aPeer := tcpPair(t)
	_ = aPeer.(*net.TCPConn).SetLinger(0) // close with a reset
	_ = aPeer.Close()
	time.Sleep(50 * time.Millisecond)
	var err error
	for range 3 { // the first send may still be taken before the reset is seen
		if _, err = writeNow(fdOf(t, a), [][]byte{[]byte("data: x\n\n")}); err != nil {
			break
		}
	}
	if err == nil {
		t.Fatal("sending to a reset connection succeeded")
	}
}

// streamEnds fails unless the server ends the stream (the request fails,
// or its body ends) rather than leaving the client waiting in silence.
func streamEnds(t *testing.T, url string) {
	t.Helper()
	client := &http.Client{Timeout: 20 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("the stream was left open in silence: %v", err)
		}
		return // closed before an answer: the client retries
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("the stream was left open in silence: %v", err)
		}
	}
}

func parkedConns(p *parker) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// A stream dropped while its handler sets it up — before the handler took
// the connection over, or after but before it was parked — ends: its
// connection is closed (so the client reconnects, instead of waiting on a
// stream that gets neither events nor heartbeats), and nothing of it stays
// parked.
func TestStreamDroppedBeforeParkingIsClosed(t *testing.T) {
	for _, when := range []string{"before take-over", "before park"} {
		t.Run(when, func(t *testing.T) {
			t.Parallel()
			cfg := testCfg()
			cfg.Heartbeat = 50 * time.Millisecond
			f := newHubFixture(t, cfg, func(h *Hub, _ *httptest.Server) {
				drop := func(sub *subscriber) { h.drop(sub, "dropped by the test") }
				if when == "before park" {
					h.hooks.beforePark = drop
				} else {
					h.hooks.afterSubscribe = drop
				}
			})
			streamEnds(t, f.srv.URL+"?user=@u:test")
			if n := parkedConns(f.hub.parkerOf()); n != 0 || f.hub.Connections() != 0 {
				t.Fatalf("%d parked, %d streams left", n, f.hub.Connections())
			}
		})
	}
}

// Closing a stream while its handler attaches the connection: whichever
// comes first, the connection ends up closed exactly once, by the one who
// knows of it; never left open. Run with -race: close reads the
// connection under the lock attach writes it under.
func TestCloseRacingAttachNeverLeavesTheConnectionOpen(t *testing.T) {
	p := testParker(t)
	for range 50 {
		server, client := tcpPair(t)
		pc := p.newConn(16)
		newSubscriber("@a:test", 16, pc)
		attached := make(chan bool)
		go func() { attached <- pc.attach(server) }()
		go pc.close()
		if !<-attached {
			_ = server.Close() // what the handler does when attach refuses
		}
		_ = client.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := client.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("the connection was left open: %v", err)
		}
	}
}

// After the parker has shut down, park refuses, and never touches the
// epoll descriptor number, which the kernel may have handed to another
// epoll instance meanwhile.
func TestParkAfterShutdownTouchesNoReusedDescriptor(t *testing.T) {
	p := testParker(t)
	old := p.epfd
	p.shutdown()
	other, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(other)
	if other != old {
		t.Logf("epoll descriptor %d was not reused; the check is weaker", old)
	}
	server, client := tcpPair(t)
	pc := p.newConn(16)
	newSubscriber("@a:test", 16, pc)
	if !pc.attach(server) {
		t.Fatal("attach refused")
	}
	if err := p.park(pc); !errors.Is(err, errParkerStopped) {
		t.Fatalf("park after shutdown: %v", err)
	}
	_ = client.Close()
	events := make([]unix.EpollEvent, 4)
	if n, _ := unix.EpollWait(other, events, 100); n != 0 {
		t.Fatal("a stream was added to another epoll instance")
	}
	if parkedConns(p) != 0 {
		t.Fatal("a stream was parked after shutdown")
	}
}

// A dropped stream takes no more frames (a heartbeat would otherwise queue
// on it forever).
func TestClosedStreamTakesNoFrames(t *testing.T) {
	p := testParker(t)
	server, _ := tcpPair(t)
	pc := parkedTestConn(t, p, server)
	pc.close()
	if !pc.offer(outFrame{b: heartbeatFrame}, nil) {
		t.Fatal("a closed stream counts as too slow")
	}
	pc.offerOthersMembership(outFrame{b: []byte("x")}, memberNote{room: "!a", pos: 1}, nil)
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if len(pc.queue) != 0 || !pc.notes.empty() {
		t.Fatalf("a closed stream queued %d frames", len(pc.queue))
	}
}

// When the writers' queue is full, what does not fit waits in a list —
// no goroutine per overflow — and the writers get to all of it, also when
// they were idle when it was added.
func TestScheduleOverflowIsServedWithoutGoroutines(t *testing.T) {
	p := testParker(t)
	for range cap(p.ready) {
		p.schedule(p.newConn(16))
	}
	before := runtime.NumGoroutine()
	over := make([]*parkedConn, 500)
	for i := range over {
		over[i] = p.newConn(16)
		p.schedule(over[i])
	}
	if grown := runtime.NumGoroutine() - before; grown > 50 {
		t.Fatalf("%d goroutines started for an overflow of %d", grown, len(over))
	}
	// The writers took everything from the channel and are idle now.
	for range cap(p.ready) {
		<-p.ready
	}
	go p.writer()
	for _, pc := range over {
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
			pc.mu.Lock()
			busy := pc.busy
			pc.mu.Unlock()
			if !busy {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("an overflowed stream never reached a writer")
			}
		}
	}
}

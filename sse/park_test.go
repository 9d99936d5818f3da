package sse

import (
	"bytes"
	"fmt"
	"io"
	"net"
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
	t.Cleanup(func() { _ = unix.Close(p.epfd) })
	return p
}

// parkedTestConn parks conn as a stream of its own.
func parkedTestConn(t *testing.T, p *parker, conn net.Conn) *parkedConn {
	t.Helper()
	pc := p.newConn(16)
	newSubscriber("@a:test", 16, pc)
	if err := p.park(pc, conn); err != nil {
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
	if !pc.offer([]byte("data: for a\n\n"), nil) {
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
	pc.offer([]byte("last\n"), nil)
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

package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// The clients stand in for 10,000 browsers on other machines, but here they
// share the 2 cores with the bridge: every microsecond they spend is taken
// from the bridge and shows up as latency. So by default they are read the
// cheap way: raw non-blocking sockets, one epoll loop per core, no
// goroutine per stream. (-goclient keeps a goroutine per stream instead,
// for comparison.)

// epollClients opens n streams (for the floor: plain connections) and
// times the messages read on them.
func epollClients(addr string, n int, floor bool, lat chan<- time.Duration) error {
	tcp, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		return err
	}
	sa := &unix.SockaddrInet4{Port: tcp.Port}
	copy(sa.Addr[:], tcp.IP.To4())
	loops := max(1, runtime.NumCPU())
	epfds := make([]int, loops)
	for i := range epfds {
		if epfds[i], err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
			return err
		}
	}
	streams := make([]*rawStream, n)
	for u := range n {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		if err := unix.Connect(fd, sa); err != nil {
			return fmt.Errorf("connect: %w", err)
		}
		if !floor {
			if _, err := unix.Write(fd, []byte(streamRequest(u))); err != nil {
				return err
			}
		}
		if err := unix.SetNonblock(fd, true); err != nil {
			return err
		}
		streams[u] = &rawStream{fd: fd}
		evt := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(u)}
		if err := unix.EpollCtl(epfds[u%loops], unix.EPOLL_CTL_ADD, fd, &evt); err != nil {
			return err
		}
	}
	for _, epfd := range epfds {
		go epollLoop(epfd, streams, lat)
	}
	return nil
}

// rawStream is one connection and the part of a line not read yet.
type rawStream struct {
	fd    int
	carry []byte
}

func epollLoop(epfd int, streams []*rawStream, lat chan<- time.Duration) {
	runtime.LockOSThread()
	events := make([]unix.EpollEvent, 512)
	buf := make([]byte, 64<<10)
	for {
		n, err := unix.EpollWait(epfd, events, -1)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return
		}
		for _, evt := range events[:n] {
			s := streams[evt.Fd]
			for {
				got, err := unix.Read(s.fd, buf)
				if got <= 0 || err != nil {
					break
				}
				s.consume(buf[:got], time.Now().UnixNano(), lat)
				if got < len(buf) {
					break
				}
			}
		}
	}
}

// consume times each complete data line; a line split across reads waits
// in carry for its end.
func (s *rawStream) consume(data []byte, now int64, lat chan<- time.Duration) {
	if len(s.carry) > 0 {
		data = append(s.carry, data...)
		s.carry = s.carry[:0]
	}
	for {
		nl := bytes.IndexByte(data, '\n')
		if nl < 0 {
			s.carry = append(s.carry, data...)
			return
		}
		if ts, ok := sendTime(data[:nl+1]); ok {
			lat <- time.Duration(now - ts)
		}
		data = data[nl+1:]
	}
}

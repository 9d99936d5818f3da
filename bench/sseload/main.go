// Command sseload measures what an idle event stream costs the bridge: it
// starts the real stream hub (SQLite, loopback HTTP server), opens N
// streams to it from a second process, and reports the server's resident
// memory per connection and its goroutine count, for parked streams and
// for a goroutine per stream, in one run.
//
//	go run ./bench/sseload -n 15000
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/id"

	"github.com/openmeet-team/openmeet-bridge/database"
	"github.com/openmeet-team/openmeet-bridge/sse"
)

func main() {
	n := flag.Int("n", 15000, "streams to open")
	client := flag.String("client", "", "internal: open streams to this address and hold them")
	flag.Parse()
	var err error
	if *client != "" {
		err = holdStreams(*client, *n)
	} else {
		for _, park := range []bool{true, false} {
			if err = measure(*n, park); err != nil {
				break
			}
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sseload:", err)
		os.Exit(1)
	}
}

func rssKiB() int64 {
	data, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			v, _ := strconv.ParseInt(strings.Fields(line)[1], 10, 64)
			return v
		}
	}
	return 0
}

func settle() int64 {
	runtime.GC()
	debug.FreeOSMemory()
	time.Sleep(500 * time.Millisecond)
	return rssKiB()
}

func measure(n int, park bool) error {
	dir, err := os.MkdirTemp("", "sseload-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	db, err := database.Open(database.Config{Type: "sqlite3-fk-wal", URI: "file:" + filepath.Join(dir, "db") + "?_txlock=immediate"}, zerolog.Nop())
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err = db.Upgrade(ctx); err != nil {
		return err
	}
	hub := sse.NewHub(db, sse.Config{Heartbeat: 25 * time.Second, Buffer: 256, MaxPerUser: n, ConnectRate: 1e6, ConnectBurst: 1e6, Park: park, Writers: 4}, zerolog.Nop())
	go func() { _ = hub.Run(ctx) }()
	<-hub.Started() // streams are refused until the hub follows the log
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	// The stream path as the client API runs it, minus authentication: the
	// user is taken from the query.
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hub.Serve(w, r, id.UserID(r.URL.Query().Get("user")))
	})}
	go func() { _ = srv.Serve(l) }()
	defer srv.Close()
	time.Sleep(200 * time.Millisecond)
	before, goroutinesBefore := settle(), runtime.NumGoroutine()

	cmd := exec.Command(os.Args[0], "-client", l.Addr().String(), "-n", strconv.Itoa(n))
	cmd.Stderr = os.Stderr
	stdout, _ := cmd.StdoutPipe()
	if err = cmd.Start(); err != nil {
		return err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ready") {
		return fmt.Errorf("client failed: %q %v", line, err)
	}
	for deadline := time.Now().Add(time.Minute); hub.Connections() < n; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d streams open", hub.Connections(), n)
		}
	}
	after, goroutines := settle(), runtime.NumGoroutine()
	mode := "goroutine per stream"
	if park {
		mode = "parked"
	}
	fmt.Printf("%-21s %6d streams: RSS %7d KiB → %7d KiB = %5.2f KiB per stream; goroutines %d → %d\n",
		mode, n, before, after, float64(after-before)/float64(n), goroutinesBefore, goroutines)
	return nil
}

// holdStreams opens n streams and keeps them open, reading what comes.
func holdStreams(addr string, n int) error {
	conns := make([]net.Conn, 0, n)
	for i := range n {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			return fmt.Errorf("stream %d: %w", i, err)
		}
		fmt.Fprintf(conn, "GET /?user=@u%d:load HTTP/1.1\r\nHost: load\r\nAccept: text/event-stream\r\n\r\n", i)
		conns = append(conns, conn)
	}
	for _, conn := range conns {
		go func() {
			buf := make([]byte, 512)
			for {
				if _, err := conn.Read(buf); err != nil {
					return
				}
			}
		}()
	}
	fmt.Println("ready")
	select {}
}

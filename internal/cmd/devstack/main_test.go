package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/openmeet-team/openmeet-bridge/internal/harness"
)

const repoRoot = "../../.."

func buildDevstack(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "devstack")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// A port in use is one line on stderr naming the flag that chooses
// another, before anything starts.
func TestPortInUse(t *testing.T) {
	t.Parallel()
	bin := buildDevstack(t)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	port := taken.Addr().(*net.TCPAddr).Port
	free, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	for _, flag := range []string{"-synapse-port", "-bridge-port"} {
		args := []string{"-synapse-port", strconv.Itoa(free), "-bridge-port", strconv.Itoa(free)}
		if flag == "-synapse-port" {
			args[1] = strconv.Itoa(port)
		} else {
			args[3] = strconv.Itoa(port)
		}
		cmd := exec.Command(bin, args...)
		cmd.Dir = repoRoot
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 {
			t.Fatalf("%s in use: %v", flag, err)
		}
		want := fmt.Sprintf("devstack: port %d on 127.0.0.1 is in use; choose another with %s (./scripts/dev.sh %s %d)\n", port, flag, flag, port+10)
		if stderr.String() != want || stdout.Len() != 0 {
			t.Fatalf("%s in use: stderr %q, stdout %q; want stderr %q", flag, stderr.String(), stdout.String(), want)
		}
	}
}

// SIGINT or SIGTERM to the PID of scripts/dev.sh (not to its process
// group, as a terminal's Ctrl-C would) stops the bridge and Synapse and
// everything else it started, and frees both ports.
func TestDevScriptStopsOnSignal(t *testing.T) {
	python := filepath.Join(harness.SynapseVenv(), "bin", "python")
	if _, err := os.Stat(python); err != nil {
		msg := fmt.Sprintf("Synapse is not available: no Synapse %s virtualenv at %s (run SYNAPSE_VERSION=%s scripts/install-synapse.sh)",
			harness.SynapseVersion(), harness.SynapseVenv(), harness.SynapseVersion())
		if harness.Required() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			t.Parallel()
			hsPort, err1 := harness.FreePort()
			bridgePort, err2 := harness.FreePort()
			if err := errors.Join(err1, err2); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command("./scripts/dev.sh", "-synapse-port", strconv.Itoa(hsPort), "-bridge-port", strconv.Itoa(bridgePort))
			cmd.Dir = repoRoot
			cmd.Env = append(os.Environ(), "SYNAPSE_VERSION="+harness.SynapseVersion())
			// A group of its own, so that the test can clean up after a
			// failure; the signal under test goes to the PID only.
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			var stderr syncBuffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			pid := cmd.Process.Pid
			t.Cleanup(func() { _ = syscall.Kill(-pid, syscall.SIGKILL) })
			var out syncBuffer
			ready := make(chan struct{})
			copied := make(chan struct{})
			go func() {
				defer close(copied)
				lines := bufio.NewScanner(stdout)
				once := sync.Once{}
				for lines.Scan() {
					out.Write([]byte(lines.Text() + "\n"))
					if strings.HasPrefix(lines.Text(), "Ctrl-C (or SIGTERM to process ") {
						once.Do(func() { close(ready) })
					}
				}
				_, _ = io.Copy(io.Discard, stdout)
			}()
			select {
			case <-ready:
			case <-copied:
				t.Fatalf("dev.sh ended before it was up:\n%s\n%s", out.String(), stderr.String())
			case <-time.After(4 * time.Minute):
				t.Fatalf("dev.sh not up after 4 minutes:\n%s\n%s", out.String(), stderr.String())
			}
			if !strings.Contains(out.String(), fmt.Sprintf("SIGTERM to process %d", pid)) {
				t.Fatalf("dev.sh's process is not the dev stack's (exec):\n%s", out.String())
			}
			started := descendants(pid)
			if len(started) == 0 {
				t.Fatal("found no Synapse process under the dev stack")
			}
			if err := syscall.Kill(pid, sig); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { <-copied; exited <- cmd.Wait() }()
			select {
			case err := <-exited:
				if err != nil {
					t.Fatalf("exit after %v: %v\n%s\n%s", sig, err, out.String(), stderr.String())
				}
			case <-time.After(90 * time.Second):
				t.Fatalf("still running 90 s after %v:\n%s", sig, out.String())
			}
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				alive := 0
				for _, p := range started {
					if syscall.Kill(p, 0) == nil {
						alive++
					}
				}
				if alive == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d of the processes the dev stack started (%v) outlived it", alive, started)
				}
			}
			for _, port := range []int{hsPort, bridgePort} {
				l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
				if err != nil {
					t.Fatalf("port %d still taken after the stop: %v", port, err)
				}
				_ = l.Close()
			}
			if !strings.Contains(out.String(), "Stopping…") {
				t.Errorf("no word of stopping:\n%s", out.String())
			}
		})
	}
}

// descendants lists the processes below pid (Linux /proc).
func descendants(pid int) []int {
	var out []int
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, f := range tasks {
		data, _ := os.ReadFile(f)
		for _, field := range strings.Fields(string(data)) {
			if child, err := strconv.Atoi(field); err == nil {
				out = append(out, child)
				out = append(out, descendants(child)...)
			}
		}
	}
	return out
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

package portal

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestQueueCoalescesAndOrders(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var running, maxRunning, runs atomic.Int32
	var value, seen atomic.Int64
	release := make(chan struct{})
	q := newQueue(ctx, func(ctx context.Context, key string) error {
		if n := running.Add(1); n > maxRunning.Load() {
			maxRunning.Store(n)
		}
		defer running.Add(-1)
		runs.Add(1)
		<-release
		seen.Store(value.Load())
		return nil
	})
	// The first request starts a run that blocks; 50 more arrive while it
	// runs and must all be served by one more run that sees the last value.
	first := q.request("a", true)
	for runs.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			value.Store(int64(i + 1))
			if err := q.do(ctx, "a"); err != nil {
				t.Error(err)
			}
		}()
	}
	// Wait until all 50 are queued behind the running one.
	for {
		q.mu.Lock()
		n := len(q.keys["a"].next)
		q.mu.Unlock()
		if n == 50 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	final := value.Load()
	close(release)
	<-first
	wg.Wait()
	if runs.Load() != 2 {
		t.Fatalf("%d runs for 51 requests, want 2", runs.Load())
	}
	if maxRunning.Load() != 1 {
		t.Fatalf("%d runs of one key at once", maxRunning.Load())
	}
	if seen.Load() != final {
		t.Fatalf("last run saw %d, want %d", seen.Load(), final)
	}
}

func TestQueueKeysRunInParallel(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var running atomic.Int32
	both := make(chan struct{})
	q := newQueue(ctx, func(ctx context.Context, key string) error {
		if running.Add(1) == 2 {
			close(both)
		}
		select {
		case <-both:
		case <-time.After(5 * time.Second):
		}
		return nil
	})
	a, b := q.request("a", true), q.request("b", true)
	<-a
	<-b
	select {
	case <-both:
	default:
		t.Fatal("two keys did not run at the same time")
	}
}

func TestQueueStopsWithContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	q := newQueue(ctx, func(ctx context.Context, key string) error { <-ctx.Done(); return ctx.Err() })
	ch := q.request("a", true)
	cancel()
	if err := <-ch; err == nil {
		t.Fatal("want the context's error")
	}
	q.wait()
}

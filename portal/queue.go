// Package portal keeps Matrix in line with what the OpenMeet backend wants:
// one OpenMeet event or group is one portal room, whose desired state (name,
// topic, visibility, members and their roles) lives in the database and is
// applied to Synapse through one ordered queue per portal.
package portal

import (
	"context"
	"sync"
)

// queue runs work for one key at a time, in order, and coalesces requests:
// whoever asks while a run is under way is served by the next run, which
// starts after the current one and reads the newest desired state. Runs for
// different keys proceed in parallel. This is what keeps two bursts of
// membership calls for one portal from interleaving while never running a
// sync for each call.
type queue[K comparable] struct {
	mu   sync.Mutex
	keys map[K]*keyState
	run  func(ctx context.Context, key K) error
	ctx  context.Context
	wg   sync.WaitGroup
}

type keyState struct {
	// next holds the waiters of the run after the current one; pending is
	// true when that run was asked for without a waiter.
	next    []chan error
	pending bool
}

func newQueue[K comparable](ctx context.Context, run func(ctx context.Context, key K) error) *queue[K] {
	return &queue[K]{keys: make(map[K]*keyState), run: run, ctx: ctx}
}

// request asks for a run of key that starts after this call. If wait is
// true, the returned channel receives that run's result.
func (q *queue[K]) request(key K, wait bool) <-chan error {
	var ch chan error
	if wait {
		ch = make(chan error, 1)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	st, running := q.keys[key]
	if !running {
		st = &keyState{}
		q.keys[key] = st
		q.wg.Add(1)
		go q.loop(key, st)
	}
	if ch != nil {
		st.next = append(st.next, ch)
	}
	st.pending = true
	return ch
}

// do requests a run and waits for it or for ctx.
func (q *queue[K]) do(ctx context.Context, key K) error {
	ch := q.request(key, true)
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (q *queue[K]) loop(key K, st *keyState) {
	defer q.wg.Done()
	for {
		q.mu.Lock()
		if !st.pending || q.ctx.Err() != nil {
			delete(q.keys, key)
			waiters := st.next
			q.mu.Unlock()
			for _, ch := range waiters {
				ch <- q.ctx.Err()
			}
			return
		}
		waiters := st.next
		st.next, st.pending = nil, false
		q.mu.Unlock()
		err := q.run(q.ctx, key)
		for _, ch := range waiters {
			ch <- err
		}
	}
}

// wait blocks until every run has finished; call it after the context
// passed to newQueue is done.
func (q *queue[K]) wait() { q.wg.Wait() }

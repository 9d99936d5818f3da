package database

import (
	"context"
	"sync/atomic"
	"time"
)

// Feed follows the event log for one reader (the stream hub, the bot).
// Batches that this process has just committed are handed to it in
// process, so the reader does not read back what it was given; the log is
// read instead when the reader is woken (another replica wrote, a poll),
// when a handed batch does not continue exactly where the reader stands
// (one was dropped or overtaken, another writer committed in between), and
// when the reader asks for more after a full read. So the reader sees the
// log's events once each, in position order, without gaps.
//
// That a handed batch continues the log is decided by its first position
// alone. That holds because writers commit in the order of the positions
// they reserve (AppendTransaction holds the position row's lock until
// commit) and one commit's positions are one contiguous range, of which it
// hands over every event it wrote: when a batch starts right after the
// reader's position, nothing else can lie between them or inside it.
type Feed struct {
	log    *EventLogQuery
	limit  int
	handed chan handedBatch
	wake   chan struct{}
	// handedUpTo is the highest position handed so far.
	handedUpTo atomic.Int64
	// BeforeRead, when set, runs each time the feed is about to read the
	// log (tests stop a reader there).
	BeforeRead func(ctx context.Context)
}

// NewFeed makes a feed that keeps up to queue handed batches and reads the
// log limit events at a time.
func (q *EventLogQuery) NewFeed(queue, limit int) *Feed {
	return &Feed{log: q, limit: limit, handed: make(chan handedBatch, queue), wake: make(chan struct{}, 1)}
}

type handedBatch struct {
	events   []*LoggedEvent
	received time.Time
}

// Batch is what Next returns: events in position order, and when the
// pushes that brought them arrived, where known.
type Batch struct {
	Events []*LoggedEvent
	// FromLog is set when the events were read from the log: all that
	// was logged after the position asked for, up to the limit.
	FromLog bool
	// received: the events at positions first to last arrived at at.
	received []receivedMark
}

type receivedMark struct {
	first, last int64
	at          time.Time
}

// Received is when the push that brought the event at position pos
// arrived, if the batch knows; zero otherwise (read from the log: written
// by another replica, or a handed batch was dropped).
func (b *Batch) Received(pos int64) time.Time {
	for _, m := range b.received {
		if m.first <= pos && pos <= m.last {
			return m.at
		}
	}
	return time.Time{}
}

// Hand passes the events of one commit, in position order, as
// AppendTransaction returned them, right after the commit, with the time
// the push that brought them arrived. It never
// blocks: when the reader is so far behind that its queue is full, the
// batch is dropped and the reader reads the log instead. The events must
// not be changed afterwards.
func (f *Feed) Hand(events []*LoggedEvent, received time.Time) {
	if len(events) == 0 {
		return
	}
	last := events[len(events)-1].Position
	for {
		seen := f.handedUpTo.Load()
		if last <= seen || f.handedUpTo.CompareAndSwap(seen, last) {
			break
		}
	}
	select {
	case f.handed <- handedBatch{events, received}:
	default:
		f.Wake()
	}
}

// Announced tells the feed that the log has rows up to position upTo (a
// notification from the database, perhaps of this process's own commit);
// at is where the reader stands. The reader reads the log unless it is
// that far already or was handed a batch that far: then anything it does
// not have yet lies before a handed batch, which will not continue where
// the reader stands and so makes it read the log. upTo 0 means unknown:
// the reader reads the log.
func (f *Feed) Announced(upTo, at int64) {
	if upTo <= 0 || upTo > max(at, f.handedUpTo.Load()) {
		f.Wake()
	}
}

// Wake makes the reader read the log.
func (f *Feed) Wake() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// Next returns events logged after position after, in order, that directly
// follow it: a handed batch that starts at after+1, or what the log holds
// after it. It waits for something new up to poll, and then reads the log
// anyway. It returns nothing (and ctx's error) once ctx ends.
func (f *Feed) Next(ctx context.Context, after int64, poll time.Duration) (Batch, error) {
	return f.NextAfter(ctx, func() int64 { return after }, poll)
}

// NextAfter is Next for a reader whose position may move while it waits
// (the hub, which also delivers batches itself): after is asked where it
// stands whenever that matters.
func (f *Feed) NextAfter(ctx context.Context, position func() int64, poll time.Duration) (Batch, error) {
	var timeout <-chan time.Time
	for {
		var handed handedBatch
		// A pending wake wins over handed batches: the read covers them.
		select {
		case <-f.wake:
			return f.read(ctx, position(), f.takeHanded(nil))
		default:
			select {
			case handed = <-f.handed:
			default:
				// Nothing waiting: wait.
				if timeout == nil {
					timer := time.NewTimer(poll)
					defer timer.Stop()
					timeout = timer.C
				}
				select {
				case <-ctx.Done():
					return Batch{}, ctx.Err()
				case <-f.wake:
					return f.read(ctx, position(), f.takeHanded(nil))
				case <-timeout:
					return f.read(ctx, position(), f.takeHanded(nil))
				case handed = <-f.handed:
				}
			}
		}
		batch := handed.events
		after := position()
		i := 0
		for i < len(batch) && batch[i].Position <= after {
			i++ // already read from the log
		}
		if batch = batch[i:]; len(batch) == 0 {
			continue
		}
		mark := []receivedMark{{batch[0].Position, batch[len(batch)-1].Position, handed.received}}
		if batch[0].Position == after+1 {
			return Batch{Events: batch, received: mark}, nil
		}
		// Something came between: another writer, or a batch that was
		// dropped. The log has it all, in order.
		return f.read(ctx, after, f.takeHanded(mark))
	}
}

// takeHanded empties the queue of handed batches, adding their arrival
// to marks: a read of the log that starts now covers them, since each was
// committed before it was handed (a read that stops at the limit leaves a
// wake, so the next read goes on).
func (f *Feed) takeHanded(marks []receivedMark) []receivedMark {
	for {
		select {
		case handed := <-f.handed:
			if n := len(handed.events); n > 0 {
				marks = append(marks, receivedMark{handed.events[0].Position, handed.events[n-1].Position, handed.received})
			}
		default:
			return marks
		}
	}
}

// read reads the log after position after; marks are the handed batches it
// reads instead (only their own events' arrival is known).
func (f *Feed) read(ctx context.Context, after int64, marks []receivedMark) (Batch, error) {
	if f.BeforeRead != nil {
		f.BeforeRead(ctx)
	}
	if ctx.Err() != nil {
		return Batch{}, ctx.Err()
	}
	events, err := f.log.After(ctx, after, f.limit)
	if err == nil && len(events) == f.limit {
		f.Wake() // there may be more
	}
	return Batch{Events: events, FromLog: true, received: marks}, err
}

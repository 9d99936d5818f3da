package portal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/openmeet-team/openmeet-bridge/appservice"
	"github.com/openmeet-team/openmeet-bridge/database"
)

// Outbox delivers what users send through the client API: each message is
// stored first, then sent to Synapse as the user's ghost, with retries and
// backoff while Synapse is unreachable, exactly once.
type Outbox struct {
	db  *database.Database
	hs  *appservice.Homeserver
	log zerolog.Logger

	wake    chan struct{}
	mu      sync.Mutex
	changed chan struct{} // closed and replaced whenever an entry settles
}

// claimFor is how long a claimed entry is reserved for this process; a
// crashed replica's claims expire and another one sends the entry.
const claimFor = time.Minute

// NewOutbox builds the outbox; Run starts its worker.
func NewOutbox(db *database.Database, hs *appservice.Homeserver, log zerolog.Logger) *Outbox {
	return &Outbox{
		db: db, hs: hs,
		log:     log.With().Str("component", "outbox").Logger(),
		wake:    make(chan struct{}, 1),
		changed: make(chan struct{}),
	}
}

// Add stores a message (a no-op for a txn id the user already used) and
// wakes the worker. It returns the stored entry.
func (o *Outbox) Add(ctx context.Context, entry *database.OutboxEntry) (*database.OutboxEntry, error) {
	stored, added, err := o.db.Outbox.Add(ctx, entry)
	if err != nil {
		return nil, fmt.Errorf("failed to store message: %w", err)
	}
	if added {
		o.Wake()
	}
	return stored, nil
}

// Resume makes every waiting entry due now and wakes the worker: the
// homeserver is back, so backoff no longer helps.
func (o *Outbox) Resume(ctx context.Context) {
	if err := o.db.Outbox.DueNow(ctx); err != nil {
		o.log.Warn().Err(err).Msg("Failed to make outbox entries due")
	}
	o.Wake()
}

// Wake makes the worker look for due entries now.
func (o *Outbox) Wake() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// Wait returns the entry once it is sent or failed, or as it is when the
// wait ends.
func (o *Outbox) Wait(ctx context.Context, entryID int64, wait time.Duration) (*database.OutboxEntry, error) {
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		o.mu.Lock()
		changed := o.changed
		o.mu.Unlock()
		entry, err := o.db.Outbox.ByID(ctx, entryID)
		if err != nil || entry == nil || entry.State != database.OutboxPending {
			return entry, err
		}
		select {
		case <-changed:
		case <-deadline.C:
			return entry, nil
		case <-ctx.Done():
			return entry, nil
		}
	}
}

func (o *Outbox) settled() {
	o.mu.Lock()
	close(o.changed)
	o.changed = make(chan struct{})
	o.mu.Unlock()
}

// Run sends due entries until ctx ends.
func (o *Outbox) Run(ctx context.Context) {
	for {
		entries, err := o.db.Outbox.Claim(ctx, 50, claimFor)
		if err != nil && ctx.Err() == nil {
			o.log.Err(err).Msg("Failed to claim outbox entries")
		}
		for i, entry := range entries {
			if ctx.Err() != nil {
				// Shutting down: hand back what this process will not send,
				// so the next one need not wait for the claims to expire.
				o.release(entries[i:])
				return
			}
			o.deliver(ctx, entry)
		}
		if len(entries) == 50 {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-o.wake:
		case <-time.After(time.Second):
		}
	}
}

// deliver sends one entry. The homeserver txn id is derived from the entry,
// so a retry after a lost answer returns the same event instead of a copy.
func (o *Outbox) deliver(ctx context.Context, entry *database.OutboxEntry) {
	log := o.log.With().Int64("outbox_id", entry.ID).Stringer("user_id", entry.UserID).Stringer("room_id", entry.RoomID).Logger()
	o.hs.MarkRegistered(ctx, entry.UserID)
	client := o.hs.Intent(entry.UserID).Client
	txnID := "om" + strconv.FormatInt(entry.ID, 10)
	var eventID id.EventID
	var err error
	if entry.EventType == event.EventRedaction.Type {
		var content struct {
			Redacts id.EventID `json:"redacts"`
			Reason  string     `json:"reason"`
		}
		if err = json.Unmarshal([]byte(entry.Content), &content); err == nil {
			var resp *mautrix.RespSendEvent
			resp, err = client.RedactEvent(ctx, entry.RoomID, content.Redacts, mautrix.ReqRedact{TxnID: txnID, Reason: content.Reason})
			if resp != nil {
				eventID = resp.EventID
			}
		}
	} else {
		var resp *mautrix.RespSendEvent
		resp, err = client.SendMessageEvent(ctx, entry.RoomID, event.Type{Type: entry.EventType, Class: event.MessageEventType},
			json.RawMessage(entry.Content), mautrix.ReqSendEvent{TransactionID: txnID})
		if resp != nil {
			eventID = resp.EventID
		}
	}
	switch {
	case err == nil:
		err = o.db.Outbox.MarkSent(ctx, entry.ID, eventID)
	case permanent(err):
		log.Warn().Err(err).Msg("Homeserver refused message")
		err = o.db.Outbox.MarkFailed(ctx, entry.ID, err.Error())
	case ctx.Err() != nil:
		o.release([]*database.OutboxEntry{entry})
		return
	default:
		backoff := min(time.Duration(1<<min(entry.Attempts, 9))*time.Second, 5*time.Minute)
		log.Info().Err(err).Dur("retry_in", backoff).Msg("Homeserver unreachable, will retry")
		err = o.db.Outbox.MarkRetry(ctx, entry.ID, time.Now().Add(backoff), err.Error())
	}
	if err != nil {
		log.Err(err).Msg("Failed to record delivery")
	}
	o.settled()
}

// permanent reports an error retrying cannot fix: the homeserver answered
// with a client error other than rate limiting.
func permanent(err error) bool {
	var httpErr mautrix.HTTPError
	if !errors.As(err, &httpErr) || httpErr.Response == nil {
		return false
	}
	status := httpErr.Response.StatusCode
	return status >= 400 && status < 500 && status != 429 && status != 408
}

// release drops this process's claims, with a context of its own since the
// worker's has ended.
func (o *Outbox) release(entries []*database.OutboxEntry) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, entry := range entries {
		if err := o.db.Outbox.Release(ctx, entry.ID); err != nil {
			o.log.Warn().Err(err).Int64("outbox_id", entry.ID).Msg("Failed to release outbox claim")
		}
	}
}

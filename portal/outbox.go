package portal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/openmeet-team/openmeet-bridge/appservice"
	"github.com/openmeet-team/openmeet-bridge/database"
)

// Outbox delivers what users send through the client API: each message is
// stored first, then sent to Synapse as the user's ghost, with retries and
// backoff while Synapse is unreachable.
//
// Order: each (user, room) is one queue, and only its oldest waiting entry
// is ever claimed (see database.OutboxQuery.Claim), so a user's messages
// reach a room in the order they were accepted, across backoff, restarts
// and replicas. Queues are delivered side by side (up to maxInFlight at
// once), so one slow or unreachable room does not hold up the others.
//
// Duplicates: a claim outlives the longest delivery and is fenced by a
// token; an entry is settled by the send's answer or by its echo in a
// pushed transaction, whichever comes first; and before an entry whose
// earlier send may have reached Synapse is sent again, the room is searched
// for it, since Synapse's own txn-id cache is lost when it restarts.
type Outbox struct {
	db  *database.Database
	hs  *appservice.Homeserver
	log zerolog.Logger
	// preparer, when set, readies an entry's content before each send.
	preparer Preparer

	// sendBound is the longest one send may take; claimFor is how long a
	// claim lasts, which covers a search, a send and recording the result.
	sendBound, claimFor time.Duration

	wake chan struct{}
	// sends is the parent of every send's context; Stop cancels it when
	// its deadline comes before the sends end.
	sends     context.Context
	stopSends context.CancelFunc

	mu       sync.Mutex
	changed  chan struct{}                     // closed and replaced whenever an entry settles
	inFlight map[int64]context.CancelCauseFunc // entries this process is delivering
	running  bool                              // Run has started
	stopped  bool                              // Stop was called
	done     chan struct{}                     // closed when Run has returned
}

const (
	// maxInFlight is how many queues one process delivers at once.
	maxInFlight = 16
	// searchBudget bounds the search for an earlier send's message.
	searchBudget = 30 * time.Second
	// searchPages bounds how many pages of the user's own events are read.
	searchPages = 5
	// clockSkew is how much older than its entry a found event may look.
	clockSkew = 5 * time.Minute
	// recordTimeout bounds writing a result, also during shutdown;
	// recordMargin is what a claim adds for it beyond the send.
	recordTimeout = 10 * time.Second
	recordMargin  = 30 * time.Second
	// pollInterval is how often the worker looks for due entries when
	// nothing wakes it (entries added by other replicas, backoff ending).
	pollInterval = time.Second
)

var (
	// errEchoed ends a send whose entry its echo has settled.
	errEchoed = errors.New("settled by its echo")
	// errShutdown ends sends still running when Stop's deadline comes.
	errShutdown = errors.New("bridge shutting down")
	// errBadEntry is a stored entry that cannot be sent as it is.
	errBadEntry = errors.New("stored message cannot be sent")
)

// NewOutbox builds the outbox; Run starts its worker.
func NewOutbox(db *database.Database, hs *appservice.Homeserver, log zerolog.Logger) *Outbox {
	sends, stopSends := context.WithCancelCause(context.Background())
	o := &Outbox{
		db: db, hs: hs,
		log:       log.With().Str("component", "outbox").Logger(),
		sendBound: deliveryBound(hs.Bot().Client),
		wake:      make(chan struct{}, 1),
		sends:     sends,
		stopSends: func() { stopSends(errShutdown) },
		changed:   make(chan struct{}),
		inFlight:  make(map[int64]context.CancelCauseFunc),
		done:      make(chan struct{}),
	}
	o.claimFor = searchBudget + o.sendBound + recordMargin
	db.EventLog.OnEcho(o.echoed)
	return o
}

// deliveryBound is the longest one send through client may take: each
// attempt the client makes may wait for its HTTP timeout, plus the pauses
// between attempts. Sends are cut off there, and claims last longer.
func deliveryBound(client *mautrix.Client) time.Duration {
	timeout := client.Client.Timeout
	if timeout <= 0 {
		timeout = time.Minute
	}
	backoff := client.DefaultHTTPBackoff
	if backoff <= 0 {
		backoff = 4 * time.Second // mautrix's default
	}
	attempts := client.DefaultHTTPRetries + 1
	bound := time.Duration(attempts) * timeout
	for range attempts - 1 {
		bound += backoff
		backoff *= 2
	}
	return bound
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
// wait ends. It also looks now and then, since another replica may settle
// the entry.
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
		case <-time.After(pollInterval):
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

// echoed is told by the event log which entries their echo settled: a
// send of them still running here is ended, and the next entry of their
// queue may go.
func (o *Outbox) echoed(entryIDs []int64) {
	o.mu.Lock()
	for _, entryID := range entryIDs {
		if cancel := o.inFlight[entryID]; cancel != nil {
			cancel(errEchoed)
		}
	}
	o.mu.Unlock()
	o.settled()
	o.Wake()
}

// Run delivers due entries until ctx ends, then waits for the deliveries
// it started: their results are recorded before it returns.
func (o *Outbox) Run(ctx context.Context) {
	defer close(o.done)
	o.mu.Lock()
	o.running = !o.stopped
	o.mu.Unlock()
	if !o.running {
		return
	}
	var deliveries sync.WaitGroup
	defer deliveries.Wait()
	for ctx.Err() == nil {
		o.mu.Lock()
		free := maxInFlight - len(o.inFlight)
		o.mu.Unlock()
		if free > 0 {
			// Not ctx: a claim committed as shutdown begins must still be
			// read back, or its entries would wait for it to expire.
			claimCtx, cancel := o.recordContext()
			entries, err := o.db.Outbox.Claim(claimCtx, free, o.claimFor)
			cancel()
			if err != nil {
				o.log.Err(err).Msg("Failed to claim outbox entries")
			}
			for _, entry := range entries {
				sendCtx, cancel := context.WithCancelCause(o.sends)
				o.mu.Lock()
				o.inFlight[entry.ID] = cancel
				o.mu.Unlock()
				deliveries.Add(1)
				go func() {
					defer deliveries.Done()
					o.deliver(ctx, sendCtx, entry)
					cancel(nil)
					o.mu.Lock()
					delete(o.inFlight, entry.ID)
					o.mu.Unlock()
					o.settled()
					// A slot is free, and the next entry of the queue may be due.
					o.Wake()
				}()
			}
		}
		select {
		case <-ctx.Done():
		case <-o.wake:
		case <-time.After(pollInterval):
		}
	}
}

// Stop waits until Run has returned, that is until the sends it started
// have ended and their results are recorded. When ctx ends first, the
// sends still running are cut off; their results (an attempt that may or
// may not have arrived) are recorded all the same. Cancel Run's context
// first.
func (o *Outbox) Stop(ctx context.Context) {
	o.mu.Lock()
	o.stopped = true
	running := o.running
	o.mu.Unlock()
	if !running {
		return
	}
	select {
	case <-o.done:
		return
	case <-ctx.Done():
	}
	o.log.Warn().Msg("Cutting off sends still running at shutdown")
	o.stopSends()
	<-o.done
}

// deliver sends one claimed entry, unless its earlier send already arrived,
// and records the result. runCtx ends at shutdown: nothing new begins
// then. sendCtx ends when the echo settles the entry or Stop cuts sends
// off.
func (o *Outbox) deliver(runCtx, sendCtx context.Context, entry *database.OutboxEntry) {
	log := o.log.With().Int64("outbox_id", entry.ID).Stringer("user_id", entry.UserID).Stringer("room_id", entry.RoomID).Logger()
	ctx := log.WithContext(sendCtx)
	if runCtx.Err() != nil {
		o.release(entry, log)
		return
	}
	o.hs.MarkRegistered(ctx, entry.UserID)
	client := o.hs.Intent(entry.UserID).Client
	if entry.MaybeSent {
		eventID, err := o.findSent(ctx, client, entry)
		switch {
		case err != nil:
			o.record(entry, "", fmt.Errorf("failed to look for an earlier attempt: %w", err), sendCtx, log)
			return
		case eventID != "":
			log.Info().Stringer("event_id", eventID).Msg("An earlier attempt had arrived; not sending again")
			o.record(entry, eventID, nil, sendCtx, log)
			return
		}
		if runCtx.Err() != nil {
			o.release(entry, log)
			return
		}
	}
	recordCtx, cancel := o.recordContext()
	err := o.db.Outbox.BeginAttempt(recordCtx, entry, o.sendBound+recordMargin)
	cancel()
	if err != nil {
		if !errors.Is(err, database.ErrClaimLost) {
			log.Err(err).Msg("Failed to record the start of a send; not sending")
		}
		return
	}
	attemptCtx, cancelAttempt := context.WithTimeout(ctx, o.sendBound)
	defer cancelAttempt()
	eventID, err := o.send(attemptCtx, client, entry)
	o.record(entry, eventID, err, attemptCtx, log)
}

// send makes one delivery attempt (with the client's own quick retries).
// Every attempt of an entry uses the entry's homeserver txn id, so while
// Synapse keeps its txn cache a retry returns the same event instead of a
// copy; no other entry ever has that id (see database.NewHSTxnID). The
// content always carries the client's txn id, by which the echo and a
// later search recognise the message.
func (o *Outbox) send(ctx context.Context, client *mautrix.Client, entry *database.OutboxEntry) (id.EventID, error) {
	txnID := entry.HSTxnID
	if txnID == "" {
		return "", fmt.Errorf("%w: no homeserver txn id", errBadEntry)
	}
	var resp *mautrix.RespSendEvent
	var err error
	if entry.EventType == event.EventRedaction.Type {
		var content struct {
			Redacts id.EventID `json:"redacts"`
			Reason  string     `json:"reason"`
		}
		if err = json.Unmarshal([]byte(entry.Content), &content); err != nil {
			return "", fmt.Errorf("%w: redaction content: %w", errBadEntry, err)
		}
		resp, err = client.RedactEvent(ctx, entry.RoomID, content.Redacts, mautrix.ReqRedact{
			TxnID: txnID, Reason: content.Reason, Extra: map[string]any{database.OutboxTxnIDKey: entry.TxnID},
		})
	} else {
		var stored string
		if stored, err = o.prepared(ctx, entry); err != nil {
			return "", err
		}
		var content json.RawMessage
		if content, err = withTxnID(stored, entry.TxnID); err != nil {
			return "", err
		}
		resp, err = client.SendMessageEvent(ctx, entry.RoomID, event.Type{Type: entry.EventType, Class: event.MessageEventType},
			content, mautrix.ReqSendEvent{TransactionID: txnID})
	}
	if err != nil {
		return "", err
	}
	return resp.EventID, nil
}

// withTxnID returns content carrying the client's txn id; the client API
// puts it there already.
func withTxnID(content, txnID string) (json.RawMessage, error) {
	if got := gjson.Get(content, "net\\.openmeet\\.txn_id"); got.Type == gjson.String && got.Str == txnID {
		return json.RawMessage(content), nil
	}
	var fields map[string]any
	if err := json.Unmarshal([]byte(content), &fields); err != nil || fields == nil {
		return nil, fmt.Errorf("%w: content is not a JSON object", errBadEntry)
	}
	fields[database.OutboxTxnIDKey] = txnID
	return json.Marshal(fields)
}

// findSent looks in the room, as the entry's user, for the message an
// earlier attempt may have delivered though no answer came back (Synapse
// stopped after storing it): the user's events of the entry's type, newest
// first, back to shortly before the entry was accepted. While the entry
// waits, no later entry of its queue is sent, so there are few of them.
func (o *Outbox) findSent(ctx context.Context, client *mautrix.Client, entry *database.OutboxEntry) (id.EventID, error) {
	ctx, cancel := context.WithTimeout(ctx, searchBudget)
	defer cancel()
	filter := &mautrix.FilterPart{Senders: []id.UserID{entry.UserID}, Types: []event.Type{{Type: entry.EventType}}}
	oldest := time.UnixMilli(entry.CreatedAt).Add(-clockSkew).UnixMilli()
	from := ""
	for range searchPages {
		resp, err := client.Messages(ctx, entry.RoomID, from, "", mautrix.DirectionBackward, filter, 50)
		if err != nil {
			return "", err
		}
		for _, evt := range resp.Chunk {
			if txnID, _ := evt.Content.Raw[database.OutboxTxnIDKey].(string); txnID == entry.TxnID && evt.Sender == entry.UserID {
				return evt.ID, nil
			}
			if evt.Timestamp < oldest {
				return "", nil
			}
		}
		if resp.End == "" || len(resp.Chunk) == 0 {
			return "", nil
		}
		from = resp.End
	}
	return "", fmt.Errorf("more than %d pages of the user's events since the message was accepted", searchPages)
}

// record writes the result of a delivery. It uses a context of its own,
// not ended by shutdown, so that a send that happened is recorded as sent
// even while the bridge stops. The writes are fenced: when the claim is no
// longer this worker's (the echo settled the entry, or the claim expired
// and another worker took it over), nothing is written.
func (o *Outbox) record(entry *database.OutboxEntry, eventID id.EventID, err error, sendCtx context.Context, log zerolog.Logger) {
	ctx, cancel := o.recordContext()
	defer cancel()
	cause := context.Cause(sendCtx)
	switch {
	case err == nil:
		err = o.db.Outbox.MarkSent(ctx, entry, eventID)
	case errors.Is(cause, errEchoed):
		log.Debug().Msg("Echo arrived during the send")
		return
	case permanent(err) || errors.Is(err, errBadEntry):
		log.Warn().Err(err).Msg("Homeserver refused message")
		err = o.db.Outbox.MarkFailed(ctx, entry, refusal(err))
	case errors.Is(cause, errShutdown):
		// Due again at once: whoever starts next looks for it first.
		log.Info().Err(err).Msg("Send cut off by shutdown, will retry")
		err = o.db.Outbox.MarkRetry(ctx, entry, time.Now(), err.Error())
	default:
		backoff := min(time.Duration(1<<min(entry.Attempts, 9))*time.Second, 5*time.Minute)
		log.Info().Err(err).Dur("retry_in", backoff).Msg("Homeserver unreachable, will retry")
		err = o.db.Outbox.MarkRetry(ctx, entry, time.Now().Add(backoff), err.Error())
	}
	switch {
	case errors.Is(err, database.ErrClaimLost):
		log.Info().Msg("Outbox entry was settled or claimed elsewhere meanwhile; result not recorded")
	case err != nil:
		log.Err(err).Msg("Failed to record delivery")
	}
}

// release hands back a claim this process will not use, so the next
// worker need not wait for it to expire.
func (o *Outbox) release(entry *database.OutboxEntry, log zerolog.Logger) {
	ctx, cancel := o.recordContext()
	defer cancel()
	if err := o.db.Outbox.Release(ctx, entry); err != nil && !errors.Is(err, database.ErrClaimLost) {
		log.Warn().Err(err).Msg("Failed to release outbox claim")
	}
}

func (o *Outbox) recordContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), recordTimeout)
}

// duplicateAnnotation is Synapse's errcode for a reaction its sender has
// already made (same event, same key).
const duplicateAnnotation = "M_DUPLICATE_ANNOTATION"

// refusal is the last_error of an entry the homeserver refused for good:
// "ERRCODE (HTTP status): message" when it gave a Matrix error, which
// RefusedAsDuplicate reads back.
func refusal(err error) string {
	var httpErr mautrix.HTTPError
	if errors.As(err, &httpErr) && httpErr.RespError != nil && httpErr.Response != nil {
		return fmt.Sprintf("%s (HTTP %d): %s", httpErr.RespError.ErrCode, httpErr.Response.StatusCode, httpErr.RespError.Err)
	}
	return err.Error()
}

// RefusedAsDuplicate reports whether the homeserver refused a reaction
// because its user had already made it: the reaction is in the room, only
// not from this request. The entry stays failed (nothing to retry), and
// the client API answers 409 with the homeserver's errcode instead of
// calling it a failure.
func RefusedAsDuplicate(e *database.OutboxEntry) bool {
	return e.State == database.OutboxFailed && e.EventType == event.EventReaction.Type &&
		strings.HasPrefix(e.LastError, duplicateAnnotation+" (HTTP ")
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

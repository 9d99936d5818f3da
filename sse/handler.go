package sse

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/openmeet-team/openmeet-bridge/database"
)

// writeTimeout bounds one write to a client (in nanoseconds); a client that
// does not read for that long is gone. Atomic so that a test can shorten it
// while goroutines of earlier tests still read it.
var writeTimeout atomic.Int64

func init() { writeTimeout.Store(int64(15 * time.Second)) }

// Serve streams userID's events to w until the client goes away, the hub
// cuts it off, or the bridge stops. The caller has authenticated the user.
func (h *Hub) Serve(w http.ResponseWriter, r *http.Request, userID id.UserID) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		mautrix.MUnknown.WithMessage("Streaming is not supported by this connection").Write(w)
		return
	}
	lastID, hasLast, err := lastEventID(r)
	if err != nil {
		mautrix.MInvalidParam.WithMessage("Last-Event-ID must be a stream position").Write(w)
		return
	}
	if !h.admit(w, r, userID) {
		return
	}
	ctx := r.Context()
	var pc *parkedConn
	parker := h.parkerOf()
	if parker != nil && r.ProtoMajor == 1 {
		pc = parker.newConn(h.cfg.Buffer)
	}
	sub, start, rooms, err := h.subscribe(ctx, userID, pc)
	if errors.Is(err, errTooManyStreams) {
		retryLater(w, http.StatusServiceUnavailable, 5*time.Second, "Too many open streams for this user")
		return
	} else if errors.Is(err, ErrHubNotRunning) || errors.Is(err, errHubOutran) {
		h.log.Warn().Err(err).Msg("Stream refused")
		retryLater(w, http.StatusServiceUnavailable, 2*time.Second, "The event stream is not available right now; retry shortly")
		return
	} else if err != nil {
		h.log.Err(err).Msg("Failed to open stream")
		mautrix.MUnknown.WithMessage("Failed to open stream").Write(w)
		return
	}
	if h.hooks.afterSubscribe != nil {
		h.hooks.afterSubscribe(sub)
	}
	if pc != nil {
		h.serveParked(w, r, sub, pc, userID, rooms, lastID, hasLast, start)
		return
	}
	defer h.drop(sub, "closed")

	header := w.Header()
	header.Set("Content-Type", "text/event-stream")
	header.Set("Cache-Control", "no-cache")
	header.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	write := func(b []byte) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(time.Duration(writeTimeout.Load())))
		_, err := w.Write(b)
		return err == nil
	}
	if !write([]byte("retry: 2000\n: connected\n\n")) || !h.opening(r, write, userID, rooms, lastID, hasLast, start) {
		return
	}
	flusher.Flush()
	heartbeat := time.NewTicker(h.cfg.Heartbeat)
	defer heartbeat.Stop()
	var received []int64
	for {
		select {
		case frame := <-sub.frames:
			if !write(frame.b) {
				return
			}
			received = append(received[:0], frame.received)
			// Whatever else is queued leaves in the same flush.
			for more := true; more; {
				select {
				case frame = <-sub.frames:
					if !write(frame.b) {
						return
					}
					received = append(received, frame.received)
				default:
					more = false
				}
			}
			if !writeNotes(sub, write) {
				return
			}
			flusher.Flush()
			h.delivered(received...)
		case <-sub.noted:
			if !writeNotes(sub, write) {
				return
			}
			flusher.Flush()
		case <-heartbeat.C:
			if !write([]byte(": ping\n\n")) {
				return
			}
			flusher.Flush()
		case <-sub.done:
			return
		case <-ctx.Done():
			return
		}
	}
}

// writeNotes writes the members events waiting for a goroutine stream once
// its queue has drained.
func writeNotes(sub *subscriber, write func([]byte) bool) bool {
	if len(sub.frames) > 0 {
		return true // not caught up yet; the notes wait
	}
	for _, frame := range sub.takeNotes() {
		if !write(frame) {
			return false
		}
	}
	return true
}

// admit applies the new-stream rate limits. One user or one address over
// its own limit gets 429 with when to retry, so that a client reconnecting
// in a loop spends its own budget, not everyone's; the bridge-wide limit
// answers 503.
func (h *Hub) admit(w http.ResponseWriter, r *http.Request, userID id.UserID) bool {
	refused, wait := h.limits.admit(userID, h.limits.clientAddress(r), time.Now())
	switch refused {
	case overKeyLimit:
		retryLater(w, http.StatusTooManyRequests, wait, "Too many new streams from this user or address; retry later")
		return false
	case overGlobalLimit:
		retryLater(w, http.StatusServiceUnavailable, time.Second, "Too many new streams; retry shortly")
		return false
	}
	return true
}

// retryLater refuses a stream with M_LIMIT_EXCEEDED, saying when to retry
// both in Retry-After (whole seconds, rounded up) and in retry_after_ms,
// which a page reads more easily (a cross-origin page sees Retry-After
// only because CORS exposes it).
func retryLater(w http.ResponseWriter, status int, wait time.Duration, msg string) {
	ms := max(wait.Milliseconds(), 1)
	w.Header().Set("Retry-After", strconv.FormatInt((ms+999)/1000, 10))
	mautrix.MLimitExceeded.WithMessage("%s", msg).WithStatus(status).WithExtraField("retry_after_ms", ms).Write(w)
}

// serveParked takes the connection over from net/http, writes the headers
// and what the client missed itself, then parks the connection: from then
// on it costs no goroutine until something is sent to it. If the stream is
// dropped before it is parked (too slow while catching up, shutdown), the
// connection is closed here, so the client reconnects rather than waiting
// on a silent stream.
func (h *Hub) serveParked(w http.ResponseWriter, r *http.Request, sub *subscriber, pc *parkedConn, userID id.UserID, rooms map[id.RoomID]struct{}, lastID int64, hasLast bool, start int64) {
	header := w.Header().Clone()
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		h.drop(sub, "cannot take over")
		mautrix.MUnknown.WithMessage("Failed to open stream").Write(w)
		return
	}
	if !pc.attach(conn) {
		_ = conn.Close()
		return
	}
	header.Set("Content-Type", "text/event-stream")
	header.Set("Cache-Control", "no-cache")
	header.Set("X-Accel-Buffering", "no")
	header.Set("Connection", "close")
	var head bytes.Buffer
	head.WriteString("HTTP/1.1 200 OK\r\n")
	_ = header.Write(&head)
	head.WriteString("\r\nretry: 2000\n: connected\n\n")
	write := func(b []byte) bool {
		_ = conn.SetWriteDeadline(time.Now().Add(time.Duration(writeTimeout.Load())))
		_, err := conn.Write(b)
		return err == nil
	}
	if !write(head.Bytes()) || !h.opening(r, write, userID, rooms, lastID, hasLast, start) {
		h.drop(sub, "closed")
		return
	}
	// The handler's write deadline must not outlive it: parked writes never
	// wait, and a deadline left behind would fail them later.
	_ = conn.SetWriteDeadline(time.Time{})
	if h.hooks.beforePark != nil {
		h.hooks.beforePark(sub)
	}
	if err := pc.p.park(pc); err != nil {
		if !errors.Is(err, errStreamClosed) && !errors.Is(err, errParkerStopped) {
			h.log.Warn().Err(err).Msg("Failed to park stream")
		}
		h.drop(sub, "cannot park")
		_ = conn.Close()
		return
	}
	pc.release()
}

// opening writes the first frames of a stream, before any live event:
// its position, so that a client cut off at once still resumes from
// there, and for a resumed stream what it missed.
//
// A new stream gets a position frame at start. A resumed one gets one at
// lastID (a cut during the catch-up resumes from the last event written,
// or from there), the events it missed, and a position frame at start,
// which moves the client past the events of rooms it does not follow. A
// position the log no longer holds, or never held, gets a reset event at
// start instead, and nothing before it: a position frame first would let
// a client cut off right after it resume from start without ever hearing
// that it must reload its history.
func (h *Hub) opening(r *http.Request, write func([]byte) bool, userID id.UserID, follows map[id.RoomID]struct{}, lastID int64, hasLast bool, start int64) bool {
	if !hasLast {
		return write(positionFrame(start))
	}
	ctx := r.Context()
	oldest, err := h.db.EventLog.OldestPosition(ctx)
	if err != nil {
		return false
	}
	// start is at least the committed end of the log (Hub.subscribe), also
	// on a replica whose hub lags behind: a position past it was never
	// logged here (another database, or made up).
	if lastID > start || (oldest > 0 && lastID < oldest-1) {
		frame := encodeNamedFrame(start, EventReset, map[string]any{"reason": "position outside the stream's retention; reload history", "stream_pos": start})
		if start == 0 {
			frame = append([]byte("id: 0\n"), frame...) // encodeNamedFrame leaves out id 0
		}
		return write(frame)
	}
	if !write(positionFrame(lastID)) || !h.backfill(ctx, write, userID, follows, lastID, start) {
		return false
	}
	return lastID == start || write(positionFrame(start))
}

// backfill writes what the client missed, from after lastID up to start
// (from start on, the subscriber has it): what the user could see at each
// position (see historyFilter).
func (h *Hub) backfill(ctx context.Context, write func([]byte) bool, userID id.UserID, follows map[id.RoomID]struct{}, lastID, start int64) bool {
	if lastID >= start {
		return true
	}
	filter, err := newHistoryFilter(ctx, h.db, userID, follows, lastID, start)
	if err != nil {
		h.log.Err(err).Msg("Failed to resume stream")
		return false
	}
	for pos := lastID; pos < start; {
		events, err := h.db.EventLog.After(ctx, pos, 500)
		if err != nil || len(events) == 0 {
			return err == nil
		}
		for _, evt := range events {
			if evt.Position > start {
				return true
			}
			pos = evt.Position
			visible, err := filter.visible(ctx, evt)
			if err != nil {
				h.log.Err(err).Msg("Failed to resume stream")
				return false
			}
			if !visible {
				continue
			}
			frame, _, err := h.fmt.frame(ctx, evt)
			if err != nil || !write(frame) {
				return false
			}
		}
	}
	return true
}

func isAbout(evt *database.LoggedEvent, userID id.UserID) bool {
	return evt.Type == event.StateMember.Type && evt.StateKey != nil && *evt.StateKey == userID.String()
}

func lastEventID(r *http.Request) (int64, bool, error) {
	raw := r.Header.Get("Last-Event-ID")
	if raw == "" {
		raw = r.URL.Query().Get("last_event_id")
	}
	if raw == "" {
		return 0, false, nil
	}
	pos, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || pos < 0 {
		return 0, false, errors.New("bad Last-Event-ID")
	}
	return pos, true, nil
}

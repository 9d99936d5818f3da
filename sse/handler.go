package sse

import (
	"bytes"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/openmeet-team/openmeet-bridge/database"
)

// writeTimeout bounds one write to a client; a client that does not read
// for that long is gone.
var writeTimeout = 15 * time.Second

// Serve streams userID's events to w until the client goes away, the hub
// cuts it off, or the bridge stops. The caller has authenticated the user.
func (h *Hub) Serve(w http.ResponseWriter, r *http.Request, userID id.UserID) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		mautrix.MUnknown.WithMessage("Streaming is not supported by this connection").Write(w)
		return
	}
	if !h.limiter.allow() {
		w.Header().Set("Retry-After", "1")
		mautrix.MLimitExceeded.WithMessage("Too many new streams; retry shortly").WithStatus(http.StatusServiceUnavailable).Write(w)
		return
	}
	lastID, hasLast, err := lastEventID(r)
	if err != nil {
		mautrix.MInvalidParam.WithMessage("Last-Event-ID must be a stream position").Write(w)
		return
	}
	ctx := r.Context()
	rooms, err := h.db.Members.JoinedRooms(ctx, userID)
	if err != nil {
		h.log.Err(err).Msg("Failed to load rooms for stream")
		mautrix.MUnknown.WithMessage("Failed to open stream").Write(w)
		return
	}
	var pc *parkedConn
	parker := h.parkerOf()
	if parker != nil && r.ProtoMajor == 1 {
		pc = parker.newConn(h.cfg.Buffer)
	}
	sub, start, err := h.subscribe(userID, rooms, pc)
	if errors.Is(err, errTooManyStreams) {
		w.Header().Set("Retry-After", "5")
		mautrix.MLimitExceeded.WithMessage("Too many open streams for this user").WithStatus(http.StatusServiceUnavailable).Write(w)
		return
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
		_ = rc.SetWriteDeadline(time.Now().Add(writeTimeout))
		_, err := w.Write(b)
		return err == nil
	}
	if !write([]byte("retry: 2000\n: connected\n\n")) {
		return
	}
	if hasLast && !h.backfill(r, write, userID, rooms, lastID, start) {
		return
	}
	flusher.Flush()
	heartbeat := time.NewTicker(h.cfg.Heartbeat)
	defer heartbeat.Stop()
	for {
		select {
		case frame := <-sub.frames:
			if !write(frame) {
				return
			}
			// Whatever else is queued leaves in the same flush.
			for more := true; more; {
				select {
				case frame = <-sub.frames:
					if !write(frame) {
						return
					}
				default:
					more = false
				}
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

// serveParked takes the connection over from net/http, writes the headers
// and what the client missed itself, then parks the connection: from then
// on it costs no goroutine until something is sent to it.
func (h *Hub) serveParked(w http.ResponseWriter, r *http.Request, sub *subscriber, pc *parkedConn, userID id.UserID, rooms []id.RoomID, lastID int64, hasLast bool, start int64) {
	header := w.Header().Clone()
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		h.drop(sub, "cannot take over")
		mautrix.MUnknown.WithMessage("Failed to open stream").Write(w)
		return
	}
	pc.conn = conn
	header.Set("Content-Type", "text/event-stream")
	header.Set("Cache-Control", "no-cache")
	header.Set("X-Accel-Buffering", "no")
	header.Set("Connection", "close")
	var head bytes.Buffer
	head.WriteString("HTTP/1.1 200 OK\r\n")
	_ = header.Write(&head)
	head.WriteString("\r\nretry: 2000\n: connected\n\n")
	write := func(b []byte) bool {
		_ = conn.SetWriteDeadline(time.Now().Add(writeTimeout))
		_, err := conn.Write(b)
		return err == nil
	}
	if !write(head.Bytes()) || (hasLast && !h.backfill(r, write, userID, rooms, lastID, start)) {
		h.drop(sub, "closed")
		return
	}
	// The handler's write deadline must not outlive it: parked writes never
	// wait, and a deadline left behind would fail them later.
	_ = conn.SetWriteDeadline(time.Time{})
	if err := pc.p.park(pc, conn); err != nil {
		h.log.Warn().Err(err).Msg("Failed to park stream")
		h.drop(sub, "cannot park")
		return
	}
	pc.release()
}

// backfill writes what the client missed, from after lastID up to start
// (from start on, the subscriber has it). A position the log no longer
// holds, or never held, gets a reset event instead: the page must reload
// its history.
func (h *Hub) backfill(r *http.Request, write func([]byte) bool, userID id.UserID, rooms []id.RoomID, lastID, start int64) bool {
	ctx := r.Context()
	oldest, err := h.db.EventLog.OldestPosition(ctx)
	if err != nil {
		return false
	}
	if lastID > start || (oldest > 0 && lastID < oldest-1) {
		return write(encodeFrame(start, "reset", map[string]any{"reason": "position outside the stream's retention; reload history", "stream_pos": start}))
	}
	follows := make(map[id.RoomID]bool, len(rooms))
	for _, roomID := range rooms {
		follows[roomID] = true
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
			if !follows[evt.RoomID] && !isAbout(evt, userID) {
				continue
			}
			frame, err := h.fmt.frame(ctx, evt)
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

// rateLimiter is a token bucket for new streams.
type rateLimiter struct {
	mu     sync.Mutex
	rate   float64
	burst  float64
	tokens float64
	last   time.Time
}

func newRateLimiter(rate float64, burst int) *rateLimiter {
	return &rateLimiter{rate: rate, burst: float64(burst), tokens: float64(burst), last: time.Now()}
}

func (l *rateLimiter) allow() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	l.tokens = min(l.burst, l.tokens+now.Sub(l.last).Seconds()*l.rate)
	l.last = now
	if l.tokens < 1 {
		return false
	}
	l.tokens--
	return true
}

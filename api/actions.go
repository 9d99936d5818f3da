package api

import (
	"net/http"
	"strings"
	"sync"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/openmeet-team/openmeet-bridge/database"
	"github.com/openmeet-team/openmeet-bridge/sse"
)

// typingDebounce: an unchanged typing state reaches Synapse at most this
// often per user and room.
const typingDebounce = 3 * time.Second

type typingState struct {
	typing bool
	at     time.Time
}

// typingCache remembers the last typing state sent per user and room.
type typingCache struct {
	mu   sync.Mutex
	last map[[2]string]typingState
}

// shouldSend reports whether a typing state must go to Synapse now.
func (c *typingCache) shouldSend(userID id.UserID, roomID id.RoomID, typing bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.last == nil || len(c.last) > 100000 {
		c.last = make(map[[2]string]typingState)
	}
	key := [2]string{string(userID), string(roomID)}
	prev, ok := c.last[key]
	if ok && prev.typing == typing && time.Since(prev.at) < typingDebounce {
		return false
	}
	c.last[key] = typingState{typing, time.Now()}
	return true
}

// targetEvent loads the event a request refers to, which must be in the
// portal's room; it writes 400/404 and returns nil otherwise.
func (c *Client) targetEvent(w http.ResponseWriter, r *http.Request, p *database.Portal, eventID string) *database.LoggedEvent {
	if !strings.HasPrefix(eventID, "$") {
		errInvalid.WithMessage("event_id must be an event ID").Write(w)
		return nil
	}
	evt, err := c.db.EventLog.Get(r.Context(), id.EventID(eventID))
	if err != nil {
		c.internalError(w, r, err)
		return nil
	}
	if evt == nil || evt.RoomID != p.RoomID {
		errNotFound.WithMessage("No such event in this room").Write(w)
		return nil
	}
	return evt
}

type editRequest struct {
	EventID       string `json:"event_id"`
	Body          string `json:"body"`
	FormattedBody string `json:"formatted_body"`
}

// putEdit replaces the text of one of the caller's own messages.
func (c *Client) putEdit(w http.ResponseWriter, r *http.Request) {
	var req editRequest
	p, ok := c.roomRequest(w, r, &req)
	if !ok {
		return
	}
	if strings.TrimSpace(req.Body) == "" {
		errInvalid.WithMessage("body must not be empty").Write(w)
		return
	}
	target := c.targetEvent(w, r, p, req.EventID)
	if target == nil {
		return
	}
	if target.Sender != callerOf(r).userID || target.Type != event.EventMessage.Type {
		mautrix.MForbidden.WithMessage("You can only edit your own messages").Write(w)
		return
	}
	txnID := pathVar(r, "txnId")
	content := textContent("* "+req.Body, "")
	content["m.new_content"] = textContent(req.Body, req.FormattedBody)
	content["m.relates_to"] = map[string]any{"rel_type": "m.replace", "event_id": req.EventID}
	content[sse.TxnIDKey] = txnID
	c.enqueue(w, r, p, txnID, event.EventMessage.Type, content)
}

type reactRequest struct {
	EventID string `json:"event_id"`
	Key     string `json:"key"`
}

// putReact annotates an event with a reaction (remove it by redacting the
// reaction's event).
func (c *Client) putReact(w http.ResponseWriter, r *http.Request) {
	var req reactRequest
	p, ok := c.roomRequest(w, r, &req)
	if !ok {
		return
	}
	if req.Key == "" || len(req.Key) > 64 {
		errInvalid.WithMessage("key must be 1 to 64 bytes").Write(w)
		return
	}
	if c.targetEvent(w, r, p, req.EventID) == nil {
		return
	}
	txnID := pathVar(r, "txnId")
	content := map[string]any{
		"m.relates_to": map[string]any{"rel_type": "m.annotation", "event_id": req.EventID, "key": req.Key},
		sse.TxnIDKey:   txnID,
	}
	c.enqueue(w, r, p, txnID, event.EventReaction.Type, content)
}

type redactRequest struct {
	EventID string `json:"event_id"`
	Reason  string `json:"reason"`
}

// putRedact removes an event: the caller's own, or anyone's with the
// room's redact level.
func (c *Client) putRedact(w http.ResponseWriter, r *http.Request) {
	var req redactRequest
	p, ok := c.roomRequest(w, r, &req)
	if !ok {
		return
	}
	target := c.targetEvent(w, r, p, req.EventID)
	if target == nil {
		return
	}
	who := callerOf(r).userID
	if target.Sender != who {
		levels, err := c.portals.PowerLevels(r.Context(), p.RoomID)
		if err != nil {
			c.homeserverError(w, err, "read power levels")
			return
		}
		if levels.GetUserLevel(who) < levels.Redact() {
			mautrix.MForbidden.WithMessage("You may only remove your own messages").Write(w)
			return
		}
	}
	content := map[string]any{"redacts": req.EventID, "reason": req.Reason}
	c.enqueue(w, r, p, pathVar(r, "txnId"), event.EventRedaction.Type, content)
}

type typingRequest struct {
	Typing    bool `json:"typing"`
	TimeoutMS int  `json:"timeout_ms"`
}

// putTyping sets the caller's typing state; unchanged states are sent to
// Synapse at most every few seconds.
func (c *Client) putTyping(w http.ResponseWriter, r *http.Request) {
	var req typingRequest
	p, ok := c.roomRequest(w, r, &req)
	if !ok {
		return
	}
	if req.TimeoutMS == 0 {
		req.TimeoutMS = 10000
	}
	if req.TimeoutMS < 1000 || req.TimeoutMS > 120000 {
		errInvalid.WithMessage("timeout_ms must be from 1000 to 120000").Write(w)
		return
	}
	who := callerOf(r).userID
	if c.typing.shouldSend(who, p.RoomID, req.Typing) {
		if err := c.portals.Typing(r.Context(), who, p.RoomID, req.Typing, time.Duration(req.TimeoutMS)*time.Millisecond); err != nil {
			c.homeserverError(w, err, "send typing")
			return
		}
	}
	writeJSON(w, http.StatusOK, struct{}{})
}

type receiptRequest struct {
	EventID string `json:"event_id"`
}

// postReceipt marks the room read up to an event.
func (c *Client) postReceipt(w http.ResponseWriter, r *http.Request) {
	var req receiptRequest
	p, ok := c.roomRequest(w, r, &req)
	if !ok {
		return
	}
	target := c.targetEvent(w, r, p, req.EventID)
	if target == nil {
		return
	}
	who := callerOf(r).userID
	if err := c.db.ReadMarkers.Set(r.Context(), who, p.RoomID, target.Position); err != nil {
		c.internalError(w, r, err)
		return
	}
	if err := c.portals.MarkRead(r.Context(), who, p.RoomID, id.EventID(req.EventID)); err != nil {
		c.homeserverError(w, err, "send read marker")
		return
	}
	writeJSON(w, http.StatusOK, struct{}{})
}

package api

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/openmeet-team/openmeet-bridge/database"
	"github.com/openmeet-team/openmeet-bridge/portal"
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

// eventRef is what an action needs of the event it refers to.
type eventRef struct {
	sender   id.UserID
	evtType  string
	originTS int64
	// position is where the event log has it, or 0 when it has not (yet).
	position int64
}

// targetEvent finds the event a request refers to, which must be in the
// portal's room: in the event log, or else -- not pushed yet, pruned, or
// never pushed -- from Synapse as the caller, who must be able to see it.
// It writes 400/404/502 and returns nil otherwise.
func (c *Client) targetEvent(w http.ResponseWriter, r *http.Request, p *database.Portal, eventID string) *eventRef {
	if portal.CheckEventID(eventID) != nil {
		errInvalid.WithMessage("event_id must be an event ID ($ and at most 255 bytes, no spaces or control characters)").Write(w)
		return nil
	}
	logged, err := c.db.EventLog.Get(r.Context(), id.EventID(eventID))
	if err != nil {
		c.internalError(w, r, err)
		return nil
	}
	if logged != nil {
		if logged.RoomID != p.RoomID {
			errNotFound.WithMessage("No such event in this room").Write(w)
			return nil
		}
		return &eventRef{sender: logged.Sender, evtType: logged.Type, originTS: logged.OriginTS, position: logged.Position}
	}
	evt, err := c.portals.Event(r.Context(), callerOf(r).userID, p.RoomID, id.EventID(eventID))
	switch {
	case errors.Is(err, portal.ErrNoSuchEvent):
		errNotFound.WithMessage("No such event in this room").Write(w)
		return nil
	case err != nil:
		c.homeserverError(w, err, "read event")
		return nil
	}
	return &eventRef{sender: evt.Sender, evtType: evt.Type, originTS: evt.OriginTS}
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
	if target.sender != callerOf(r).userID || target.evtType != event.EventMessage.Type {
		mautrix.MForbidden.WithMessage("You can only edit your own messages").Write(w)
		return
	}
	txnID := pathVar(r, "txnId")
	content := textContent("* "+req.Body, "")
	content["m.new_content"] = textContent(req.Body, req.FormattedBody)
	content["m.relates_to"] = map[string]any{"rel_type": "m.replace", "event_id": req.EventID}
	content[sse.TxnIDKey] = txnID
	c.enqueue(w, r, p, txnID, event.EventMessage.Type, content, actionEdit, req)
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
	c.enqueue(w, r, p, txnID, event.EventReaction.Type, content, actionReact, req)
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
	if target.sender != who {
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
	c.enqueue(w, r, p, pathVar(r, "txnId"), event.EventRedaction.Type, content, actionRedact, req)
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

// postReceipt marks the room read up to an event: Synapse's receipt and
// read marker, and the bridge's own marker behind the unread counts.
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
	pos, err := c.markerPosition(r.Context(), p.RoomID, id.EventID(req.EventID), target)
	if err != nil {
		c.internalError(w, r, err)
		return
	}
	if pos > 0 {
		if err := c.db.ReadMarkers.Set(r.Context(), who, p.RoomID, pos); err != nil {
			c.internalError(w, r, err)
			return
		}
	}
	if err := c.portals.MarkRead(r.Context(), who, p.RoomID, id.EventID(req.EventID)); err != nil {
		c.homeserverError(w, err, "send read marker")
		return
	}
	writeJSON(w, http.StatusOK, struct{}{})
}

// receiptLogWait bounds how long a receipt waits for the push of an event
// newer than anything logged in its room.
const receiptLogWait = 2 * time.Second

// markerPosition is where a receipt of the target puts the read marker (0:
// nowhere). A logged event gives its own position. For one the log lacks,
// the room's newest logged event decides: the target is older when its
// timestamp is not later -- it was pruned, and the marker stays where it is
// -- or newer, and then its push is most likely on its way (Synapse pushes
// a room's events in order): it waits a moment for it and takes its
// position, or, if it does not come, marks everything logged so far as read.
// Timestamps are the homeserver's, so the order is only as good as clocks;
// a wrong guess only moves an unread count.
func (c *Client) markerPosition(ctx context.Context, roomID id.RoomID, eventID id.EventID, t *eventRef) (int64, error) {
	if t.position > 0 {
		return t.position, nil
	}
	newest, newestTS, ok, err := c.db.EventLog.NewestInRoom(ctx, roomID)
	if err != nil || !ok || t.originTS <= newestTS {
		return 0, err
	}
	pos, logged, err := c.portals.AwaitLogged(ctx, eventID, time.Now().Add(receiptLogWait))
	if err != nil || logged {
		return pos, err
	}
	return newest, nil
}

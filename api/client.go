package api

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/openmeet-team/openmeet-bridge/database"
	"github.com/openmeet-team/openmeet-bridge/ident"
	"github.com/openmeet-team/openmeet-bridge/media"
	"github.com/openmeet-team/openmeet-bridge/portal"
	"github.com/openmeet-team/openmeet-bridge/sse"
)

// ClientPrefix is where the client API is served.
const ClientPrefix = "/_openmeet/client/v1"

// ticketCookie is the cookie holding a stream ticket, when enabled.
const ticketCookie = "openmeet_stream_ticket"

// ClientConfig is the client_api section of the config.
type ClientConfig struct {
	Enabled        bool          `yaml:"enabled"`
	JWT            JWTConfig     `yaml:"jwt"`
	AllowedOrigins []string      `yaml:"allowed_origins"`
	TicketTTL      time.Duration `yaml:"ticket_ttl"`
	TicketCookie   bool          `yaml:"ticket_cookie"`
	SendWait       time.Duration `yaml:"send_wait"`
	MaxBodyBytes   int64         `yaml:"max_body_bytes"`
	Stream         sse.Config    `yaml:"stream"`
	Media          media.Config  `yaml:"media"`
	Limits         LimitsConfig  `yaml:"limits"`
}

// Client serves the API browsers use: rooms, history, sending, and the
// event stream.
type Client struct {
	cfg      *ClientConfig
	verifier *Verifier
	db       *database.Database
	portals  *portal.Registry
	outbox   *portal.Outbox
	hub      *sse.Hub
	media    *media.Service
	typing   typingCache
	limits   *limiters
	log      zerolog.Logger
}

// NewClient builds the client API.
func NewClient(cfg *ClientConfig, db *database.Database, portals *portal.Registry, outbox *portal.Outbox, hub *sse.Hub, log zerolog.Logger) (*Client, error) {
	verifier, err := NewVerifier(cfg.JWT)
	if err != nil {
		return nil, err
	}
	return &Client{cfg: cfg, verifier: verifier, db: db, portals: portals, outbox: outbox, hub: hub, limits: newLimiters(cfg.Limits),
		log: log.With().Str("component", "client_api").Logger()}, nil
}

// caller is an authenticated user.
type caller struct {
	tenant, slug string
	userID       id.UserID
}

type callerKey struct{}

// Register mounts the API on r.
func (c *Client) Register(r *mux.Router) {
	sub := r.PathPrefix(ClientPrefix).Subrouter()
	sub.Use(c.cors)
	sub.Methods(http.MethodOptions).HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	auth := func(h http.HandlerFunc) http.Handler { return c.authenticate(h, false) }
	// Each user's rate limits (ratelimit.go) apply after authentication.
	limited := func(a Action, h http.HandlerFunc) http.Handler { return auth(c.limited(a, h)) }
	sub.Handle("/events/ticket", limited(ActionTicket, c.postTicket)).Methods(http.MethodPost)
	sub.Handle("/events", c.authenticate(c.getEvents, true)).Methods(http.MethodGet)
	sub.Handle("/rooms", auth(c.getRooms)).Methods(http.MethodGet)
	sub.Handle("/whoami", auth(c.getWhoami)).Methods(http.MethodGet)
	room := "/rooms/{kind:events|groups}/{slug}"
	sub.Handle(room, auth(c.getRoom)).Methods(http.MethodGet)
	sub.Handle(room+"/messages", auth(c.getMessages)).Methods(http.MethodGet)
	sub.Handle(room+"/send/{txnId}", limited(ActionSend, c.putSend)).Methods(http.MethodPut)
	sub.Handle(room+"/edit/{txnId}", limited(ActionEdit, c.putEdit)).Methods(http.MethodPut)
	sub.Handle(room+"/react/{txnId}", limited(ActionReact, c.putReact)).Methods(http.MethodPut)
	sub.Handle(room+"/redact/{txnId}", limited(ActionRedact, c.putRedact)).Methods(http.MethodPut)
	sub.Handle(room+"/typing", limited(ActionTyping, c.putTyping)).Methods(http.MethodPut)
	sub.Handle(room+"/receipt", limited(ActionReceipt, c.postReceipt)).Methods(http.MethodPost)
	c.registerMedia(sub, auth)
	for _, path := range []string{"/events/ticket", "/events", "/rooms", room, room + "/messages", room + "/send/{txnId}",
		room + "/edit/{txnId}", room + "/react/{txnId}", room + "/redact/{txnId}", room + "/typing", room + "/receipt"} {
		sub.HandleFunc(path, MethodNotAllowed)
	}
}

// cors lets the configured frontend origins call the API with credentials,
// and no other origin.
func (c *Client) cors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin == "" {
			next.ServeHTTP(w, r)
			return
		}
		allowed := slices.Contains(c.cfg.AllowedOrigins, origin)
		apply := func(h http.Header) {
			for _, key := range []string{"Access-Control-Allow-Origin", "Access-Control-Allow-Credentials", "Access-Control-Allow-Methods",
				"Access-Control-Allow-Headers", "Access-Control-Max-Age", "Access-Control-Expose-Headers"} {
				h.Del(key)
			}
			if !allowed {
				return
			}
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Allow-Credentials", "true")
			// The stream's 429 and 503 say when to retry; a page on another
			// origin reads that only if it is exposed.
			h.Set("Access-Control-Expose-Headers", "Retry-After")
			if r.Method == http.MethodOptions {
				h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, OPTIONS")
				h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Last-Event-ID")
				h.Set("Access-Control-Max-Age", "600")
			}
		}
		if allowed {
			w.Header().Add("Vary", "Origin")
		}
		apply(w.Header())
		next.ServeHTTP(&corsWriter{ResponseWriter: w, apply: apply}, r)
	})
}

// corsWriter puts the client API's CORS headers back just before the
// response header is written: mautrix writes every Matrix error with
// Access-Control-Allow-Origin "*", which would let any origin read the
// errors of this API, and which browsers refuse for a request with
// credentials (an EventSource using the ticket cookie).
type corsWriter struct {
	http.ResponseWriter
	apply       func(http.Header)
	wroteHeader bool
}

func (w *corsWriter) WriteHeader(code int) {
	if !w.wroteHeader {
		w.wroteHeader = true
		w.apply(w.Header())
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *corsWriter) Write(b []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// Flush and Unwrap keep the stream working through the wrapper: it
// asserts http.Flusher, and takes the connection over with
// http.ResponseController.
func (w *corsWriter) Flush() {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *corsWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// authenticate resolves the caller from a bearer JWT or, for the stream,
// from a single-use ticket (query or cookie), and checks that the user is
// provisioned.
func (c *Client) authenticate(next http.HandlerFunc, allowTicket bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var tenant, slug, reason string
		var err error
		token, hasToken := bearer(r)
		switch {
		case hasToken:
			tenant, slug, err = c.verifier.Verify(token)
			reason = RefusalReason(err)
		case allowTicket && ticketFrom(r) != "":
			var ok bool
			tenant, slug, ok, err = c.db.Tickets.Redeem(r.Context(), ticketFrom(r))
			if err == nil && !ok {
				err, reason = ErrBadToken, "ticket unknown, used already or expired"
			}
		default:
			mautrix.MMissingToken.WithMessage("Missing OpenMeet token").Write(w)
			return
		}
		if errors.Is(err, ErrBadToken) {
			// The caller learns nothing of why; the log does, never with
			// the token.
			c.log.Debug().Err(err).Str("reason", reason).Str("path", r.URL.Path).Str("remote_addr", r.RemoteAddr).
				Msg("Refused a client API token")
			mautrix.MUnknownToken.WithMessage("Invalid or expired token").Write(w)
			return
		} else if err != nil {
			c.internalError(w, r, err)
			return
		}
		g, err := c.db.Ghosts.Get(r.Context(), tenant, slug)
		if err != nil {
			c.internalError(w, r, err)
			return
		}
		if g == nil {
			mautrix.MForbidden.WithMessage("This OpenMeet user is not known to the bridge").Write(w)
			return
		}
		ctx := context.WithValue(r.Context(), callerKey{}, &caller{tenant: tenant, slug: slug, userID: g.UserID})
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

func bearer(r *http.Request) (string, bool) {
	const prefix = "bearer "
	h := r.Header.Get("Authorization")
	if len(h) < len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return "", false
	}
	return strings.TrimSpace(h[len(prefix):]), true
}

func ticketFrom(r *http.Request) string {
	if t := r.URL.Query().Get("ticket"); t != "" {
		return t
	}
	if cookie, err := r.Cookie(ticketCookie); err == nil {
		return cookie.Value
	}
	return ""
}

func callerOf(r *http.Request) *caller { return r.Context().Value(callerKey{}).(*caller) }

// homeserverError answers 502 when Synapse failed a request made for the
// caller.
func (c *Client) homeserverError(w http.ResponseWriter, err error, what string) {
	c.log.Warn().Err(err).Str("action", what).Msg("Homeserver request failed")
	mautrix.MUnknown.WithMessage("The homeserver did not answer").WithStatus(http.StatusBadGateway).Write(w)
}

// textContent is an m.text message, with an HTML body when one is given.
func textContent(body, formatted string) map[string]any {
	content := map[string]any{"msgtype": "m.text", "body": body}
	if formatted != "" {
		content["format"], content["formatted_body"] = "org.matrix.custom.html", formatted
	}
	return content
}

func (c *Client) internalError(w http.ResponseWriter, r *http.Request, err error) {
	c.log.Err(err).Str("path", r.URL.Path).Msg("Client API request failed")
	mautrix.MUnknown.WithMessage("Internal error").Write(w)
}

// postTicket issues a single-use, short-lived ticket for EventSource, which
// cannot send an Authorization header; the JWT never goes into a URL.
func (c *Client) postTicket(w http.ResponseWriter, r *http.Request) {
	who := callerOf(r)
	var raw [24]byte
	_, _ = rand.Read(raw[:])
	ticket := base64.RawURLEncoding.EncodeToString(raw[:])
	expires := time.Now().Add(c.cfg.TicketTTL)
	if err := c.db.Tickets.Add(r.Context(), ticket, who.tenant, who.slug, expires); err != nil {
		c.internalError(w, r, err)
		return
	}
	if c.cfg.TicketCookie {
		http.SetCookie(w, &http.Cookie{Name: ticketCookie, Value: ticket, Path: ClientPrefix + "/events",
			Expires: expires, HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteLaxMode})
	}
	writeJSON(w, http.StatusOK, map[string]any{"ticket": ticket, "expires_in_ms": c.cfg.TicketTTL.Milliseconds()})
}

func (c *Client) getEvents(w http.ResponseWriter, r *http.Request) {
	c.hub.Serve(w, r, callerOf(r).userID)
}

// getWhoami tells the page who it is signed in as.
func (c *Client) getWhoami(w http.ResponseWriter, r *http.Request) {
	who := callerOf(r)
	g, err := c.db.Ghosts.Get(r.Context(), who.tenant, who.slug)
	if err != nil || g == nil {
		c.internalError(w, r, errors.Join(err, errors.New("ghost vanished")))
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"user_id": g.UserID.String(), "tenant": g.Tenant, "slug": g.Slug, "displayname": g.Displayname})
}

type roomInfo struct {
	Kind   string `json:"kind"`
	Slug   string `json:"slug"`
	Name   string `json:"name"`
	Topic  string `json:"topic"`
	Alias  string `json:"alias"`
	RoomID string `json:"room_id"`
	// Unread counts messages from others since the user's last receipt
	// through this API, up to maxUnread.
	Unread int `json:"unread"`
}

// maxUnread caps unread counts; a page shows "99+".
const maxUnread = 100

// getRooms lists the portals whose room the caller's ghost is joined to.
func (c *Client) getRooms(w http.ResponseWriter, r *http.Request) {
	who := callerOf(r)
	roomIDs, err := c.db.Members.JoinedRooms(r.Context(), who.userID)
	if err != nil {
		c.internalError(w, r, err)
		return
	}
	out := struct {
		Rooms []roomInfo `json:"rooms"`
	}{Rooms: []roomInfo{}}
	for _, roomID := range roomIDs {
		p, err := c.db.Portals.GetByRoomID(r.Context(), roomID)
		if err != nil {
			c.internalError(w, r, err)
			return
		}
		if p == nil || p.Tenant != who.tenant || p.Closed {
			continue
		}
		info, err := c.roomInfo(r.Context(), who.userID, p)
		if err != nil {
			c.internalError(w, r, err)
			return
		}
		out.Rooms = append(out.Rooms, info)
	}
	writeJSON(w, http.StatusOK, out)
}

func (c *Client) roomInfo(ctx context.Context, userID id.UserID, p *database.Portal) (roomInfo, error) {
	unread, err := c.db.ReadMarkers.Unread(ctx, userID, p.RoomID, maxUnread)
	if err != nil {
		return roomInfo{}, err
	}
	return roomInfo{Kind: p.Kind, Slug: p.Slug, Name: p.Name, Topic: p.Topic,
		Alias: p.Alias.String(), RoomID: p.RoomID.String(), Unread: unread}, nil
}

// roomDetail is one room with what the user may do in it.
type roomDetail struct {
	roomInfo
	// PowerLevel is the user's level in the room; RedactLevel the level
	// needed to remove other people's events (one's own need none).
	PowerLevel  int `json:"power_level"`
	RedactLevel int `json:"redact_level"`
}

// getRoom describes one of the caller's rooms, with the power levels a
// page needs to offer only the actions the bridge will allow. The levels
// are read from Synapse, as putRedact reads them.
func (c *Client) getRoom(w http.ResponseWriter, r *http.Request) {
	p, ok := c.joinedPortal(w, r)
	if !ok {
		return
	}
	who := callerOf(r).userID
	levels, err := c.portals.PowerLevels(r.Context(), p.RoomID)
	if err != nil {
		c.homeserverError(w, err, "read power levels")
		return
	}
	info, err := c.roomInfo(r.Context(), who, p)
	if err != nil {
		c.internalError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, roomDetail{roomInfo: info, PowerLevel: levels.GetUserLevel(who), RedactLevel: levels.Redact()})
}

// joinedPortal resolves the room of the path for the caller: 404 when the
// caller's tenant has no such portal, 403 when its ghost is not joined.
func (c *Client) joinedPortal(w http.ResponseWriter, r *http.Request) (*database.Portal, bool) {
	who := callerOf(r)
	key := database.PortalKey{Tenant: who.tenant, Kind: string(ident.Kind(strings.TrimSuffix(mux.Vars(r)["kind"], "s"))), Slug: pathVar(r, "slug")}
	p, err := c.db.Portals.Get(r.Context(), key)
	if err != nil {
		c.internalError(w, r, err)
		return nil, false
	}
	if p == nil || p.RoomID == "" {
		errNotFound.WithMessage("No such %s", key.Kind).Write(w)
		return nil, false
	}
	if p.Closed {
		// Closed is stored before the ghosts' leaves are pushed: refuse at
		// once, so that a 200 to DELETE holds for the caller's next call.
		mautrix.MForbidden.WithMessage("This %s is closed", key.Kind).Write(w)
		return nil, false
	}
	membership, err := c.db.Members.Membership(r.Context(), p.RoomID, who.userID)
	if err != nil {
		c.internalError(w, r, err)
		return nil, false
	}
	if membership != event.MembershipJoin {
		mautrix.MForbidden.WithMessage("You are not a member of this %s", key.Kind).Write(w)
		return nil, false
	}
	return p, true
}

// roomRequest resolves the caller's portal (joined, or 403/404) and
// decodes the request body; on failure it has answered.
func (c *Client) roomRequest(w http.ResponseWriter, r *http.Request, req any) (*database.Portal, bool) {
	p, ok := c.joinedPortal(w, r)
	if !ok || !readJSON(w, r, c.cfg.MaxBodyBytes, req) {
		return nil, false
	}
	return p, true
}

func (c *Client) getMessages(w http.ResponseWriter, r *http.Request) {
	p, ok := c.joinedPortal(w, r)
	if !ok {
		return
	}
	limit := 50
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 200 {
			errInvalid.WithMessage("limit must be a number from 1 to 200").Write(w)
			return
		}
		limit = n
	}
	// Read before asking Synapse: every event logged up to here was pushed,
	// so Synapse had stored it, so the page holds it (or an older page
	// does). A stream resumed from here misses nothing; what both carry is
	// recognised by event ID.
	pos, err := c.db.EventLog.MaxPosition(r.Context())
	if err != nil {
		c.internalError(w, r, err)
		return
	}
	resp, err := c.portals.Messages(r.Context(), callerOf(r).userID, p.RoomID, r.URL.Query().Get("from"), limit)
	if err != nil {
		c.homeserverError(w, err, "read history")
		return
	}
	out := struct {
		Chunk     []*sse.Payload `json:"chunk"`
		End       string         `json:"end,omitempty"`
		StreamPos int64          `json:"stream_pos"`
	}{Chunk: make([]*sse.Payload, 0, len(resp.Chunk)), End: resp.End, StreamPos: pos}
	for _, evt := range resp.Chunk {
		raw, err := json.Marshal(evt)
		if err != nil {
			c.internalError(w, r, err)
			return
		}
		payload, err := c.hub.Payload(r.Context(), &database.LoggedEvent{EventID: evt.ID, RoomID: evt.RoomID, Type: evt.Type.Type, Sender: evt.Sender, Raw: raw})
		if err != nil {
			c.internalError(w, r, err)
			return
		}
		out.Chunk = append(out.Chunk, payload)
	}
	writeJSON(w, http.StatusOK, out)
}

type sendRequest struct {
	Body          string `json:"body"`
	FormattedBody string `json:"formatted_body"`
	// ReplyTo is the event ID of the message this one answers.
	ReplyTo string `json:"reply_to"`
}

type sendResponse struct {
	TxnID   string `json:"txn_id"`
	State   string `json:"state"`
	EventID string `json:"event_id,omitempty"`
	Error   string `json:"error,omitempty"`
}

// putSend stores a message in the outbox and answers 200 once Synapse has
// it, or 202 while it is still on its way.
func (c *Client) putSend(w http.ResponseWriter, r *http.Request) {
	txnID := pathVar(r, "txnId")
	var req sendRequest
	p, ok := c.roomRequest(w, r, &req)
	if !ok {
		return
	}
	if strings.TrimSpace(req.Body) == "" {
		errInvalid.WithMessage("body must not be empty").Write(w)
		return
	}
	content := textContent(req.Body, req.FormattedBody)
	content[sse.TxnIDKey] = txnID
	if req.ReplyTo != "" {
		if portal.CheckEventID(req.ReplyTo) != nil {
			errInvalid.WithMessage("reply_to must be an event ID").Write(w)
			return
		}
		content["m.relates_to"] = map[string]any{"m.in_reply_to": map[string]any{"event_id": req.ReplyTo}}
	}
	c.enqueue(w, r, p, txnID, event.EventMessage.Type, content, actionSend, req)
}

// enqueue stores what action asked for (req, the decoded request) as a
// message of eventType with content, and answers with its delivery.
func (c *Client) enqueue(w http.ResponseWriter, r *http.Request, p *database.Portal, txnID, eventType string, content any, action string, req any) {
	if txnID == "" || len(txnID) > 255 {
		errInvalid.WithMessage("txnId must be 1 to 255 characters").Write(w)
		return
	}
	raw, err := json.Marshal(content)
	if err != nil {
		c.internalError(w, r, err)
		return
	}
	digest, err := requestDigest(action, p, req)
	if err != nil {
		c.internalError(w, r, err)
		return
	}
	c.enqueueAnd(w, r, p.RoomID, txnID, eventType, raw, digest, func(status int, resp sendResponse) { writeJSON(w, status, resp) })
}

// enqueueAnd stores a message in the outbox (or finds the one stored under
// txnID), waits a while for its delivery, and answers through answer. The
// txn id of another request (digest differs) is refused with 409.
func (c *Client) enqueueAnd(w http.ResponseWriter, r *http.Request, roomID id.RoomID, txnID, eventType string, raw []byte, digest string, answer func(int, sendResponse)) {
	entry, err := c.outbox.Add(r.Context(), &database.OutboxEntry{
		UserID: callerOf(r).userID, RoomID: roomID, TxnID: txnID, EventType: eventType, Content: string(raw), RequestDigest: digest,
	})
	if err != nil {
		c.internalError(w, r, err)
		return
	}
	if c.txnConflict(w, r, entry, digest) {
		return
	}
	if entry.State == database.OutboxPending {
		if entry, err = c.outbox.Wait(r.Context(), entry.ID, c.cfg.SendWait); err != nil {
			c.internalError(w, r, err)
			return
		}
	}
	if portal.RefusedAsDuplicate(entry) {
		// Not a failure: the reaction is there. Retrying the txn id gets
		// this answer again.
		mautrix.RespError{ErrCode: "M_DUPLICATE_ANNOTATION", Err: "You already reacted to this event with this key", StatusCode: http.StatusConflict}.Write(w)
		return
	}
	resp := sendResponse{TxnID: txnID, State: entry.State, EventID: entry.EventID.String()}
	status := http.StatusOK
	switch entry.State {
	case database.OutboxPending:
		status = http.StatusAccepted
	case database.OutboxFailed:
		status, resp.Error = http.StatusBadGateway, entry.LastError
	}
	answer(status, resp)
}

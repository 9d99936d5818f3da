package api

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/gorilla/mux"
	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/openmeet-team/openmeet-bridge/media"
	"github.com/openmeet-team/openmeet-bridge/sse"
)

// Error codes of uploads.
var (
	errTypeNotAllowed = mautrix.RespError{ErrCode: "NET.OPENMEET.TYPE_NOT_ALLOWED", StatusCode: http.StatusUnsupportedMediaType}
	errTypeMismatch   = mautrix.RespError{ErrCode: "NET.OPENMEET.TYPE_MISMATCH", StatusCode: http.StatusUnsupportedMediaType}
	errTruncated      = mautrix.RespError{ErrCode: "NET.OPENMEET.TRUNCATED", StatusCode: http.StatusBadRequest}
	errLengthRequired = mautrix.RespError{ErrCode: "M_MISSING_PARAM", StatusCode: http.StatusLengthRequired}
)

// SetMedia turns on uploads and media downloads; without it their
// endpoints answer 404.
func (c *Client) SetMedia(m *media.Service) { c.media = m }

// registerMedia mounts the media endpoints on the client API's router.
func (c *Client) registerMedia(sub *mux.Router, auth func(http.HandlerFunc) http.Handler) {
	room := "/rooms/{kind:events|groups}/{slug}/upload/{txnId}"
	sub.Handle(room, auth(c.limited(ActionUpload, c.putUpload))).Methods(http.MethodPut)
	sub.Handle("/media/config", auth(c.getMediaConfig)).Methods(http.MethodGet)
	file := "/{server}/{mediaId}"
	sub.HandleFunc("/media/download"+file, c.getMedia(media.Download)).Methods(http.MethodGet, http.MethodHead)
	sub.HandleFunc("/media/thumbnail"+file, c.getMedia(media.Thumbnail)).Methods(http.MethodGet, http.MethodHead)
	for _, path := range []string{room, "/media/config", "/media/download" + file, "/media/thumbnail" + file} {
		sub.HandleFunc(path, MethodNotAllowed)
	}
}

func (c *Client) mediaOff(w http.ResponseWriter) bool {
	if c.media == nil {
		errNotFound.WithMessage("Media is not enabled on this bridge").Write(w)
		return true
	}
	return false
}

// getMediaConfig tells the page what it may upload.
func (c *Client) getMediaConfig(w http.ResponseWriter, r *http.Request) {
	if c.mediaOff(w) {
		return
	}
	// When Synapse does not answer, the limit it gave last still holds.
	limit, err := c.media.Limit(r.Context())
	if err != nil && !errors.Is(err, media.ErrUnavailable) {
		c.homeserverError(w, err, "read media config")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"max_upload_bytes": limit, "allowed_types": c.media.Config.AllowedTypes})
}

// uploadResponse is a send's answer plus where the file is.
type uploadResponse struct {
	sendResponse
	ContentURI   string `json:"content_uri"`
	URL          string `json:"url"`
	ThumbnailURL string `json:"thumbnail_url,omitempty"`
}

// putUpload streams the request body to Synapse as the caller's ghost and
// sends it to the room as m.image, m.video, m.audio or m.file through the
// outbox. A repeat of an upload (same txn id, room, type, name and size)
// answers as the first time did, and the file is not read or stored again;
// the txn id of another request is refused with 409.
func (c *Client) putUpload(w http.ResponseWriter, r *http.Request) {
	if c.mediaOff(w) {
		return
	}
	p, ok := c.joinedPortal(w, r)
	if !ok {
		return
	}
	who, txnID := callerOf(r), pathVar(r, "txnId")
	if txnID == "" || len(txnID) > 255 {
		errInvalid.WithMessage("txnId must be 1 to 255 characters").Write(w)
		return
	}
	mediaType, filename := media.ParseType(r.Header.Get("Content-Type")), r.URL.Query().Get("filename")
	digest, err := requestDigest(actionUpload, p, uploadRequest{MediaType: mediaType, Filename: filename, Size: r.ContentLength})
	if err != nil {
		c.internalError(w, r, err)
		return
	}
	entry, err := c.db.Outbox.ByTxn(r.Context(), who.userID, txnID)
	if err != nil {
		c.internalError(w, r, err)
		return
	}
	if entry != nil {
		if !c.txnConflict(w, r, entry, digest) {
			c.answerUpload(w, r, p.RoomID, txnID, entry.EventType, []byte(entry.Content), digest)
		}
		return
	}
	if r.ContentLength < 0 {
		errLengthRequired.WithMessage("Content-Length is required").Write(w)
		return
	}
	spool, err := c.media.Check(r.Context(), r.ContentLength, mediaType)
	var content map[string]any
	switch {
	case err != nil:
	case spool:
		// Synapse does not answer: the file waits in the database and is
		// uploaded when the outbox sends its message.
		content, err = c.media.Spool(r.Context(), who.userID, txnID, r.Body, r.ContentLength, mediaType, filename)
	default:
		var up *media.Uploaded
		if up, err = c.media.Upload(r.Context(), who.userID, r.Body, r.ContentLength, mediaType, filename); err == nil {
			content = up.Content
		}
	}
	if err != nil {
		c.uploadError(w, r, err)
		return
	}
	content[sse.TxnIDKey] = txnID
	raw, err := json.Marshal(content)
	if err != nil {
		c.internalError(w, r, err)
		return
	}
	c.answerUpload(w, r, p.RoomID, txnID, event.EventMessage.Type, raw, digest)
}

// answerUpload queues the message (or finds it queued) and answers with
// the send's state and the URLs of the file the stored message names:
// for a repeat, or for a simultaneous identical upload that stored its
// message first, that is the first file (and for an entry stored before
// digests were recorded, in the first request's room).
func (c *Client) answerUpload(w http.ResponseWriter, r *http.Request, roomID id.RoomID, txnID, eventType string, content []byte, digest string) {
	c.enqueueAnd(w, r, roomID, txnID, eventType, content, digest, func(status int, resp sendResponse) {
		if stored, err := c.db.Outbox.ByTxn(r.Context(), callerOf(r).userID, txnID); err == nil && stored != nil {
			roomID, content = stored.RoomID, []byte(stored.Content)
		}
		mxc := gjson.GetBytes(content, "url").Str
		out := uploadResponse{sendResponse: resp, ContentURI: mxc, URL: c.media.Signer.URL(media.Download, roomID, mxc, nil)}
		if thumb := gjson.GetBytes(content, "info.thumbnail_url").Str; thumb != "" {
			out.ThumbnailURL = c.media.Signer.URL(media.Download, roomID, thumb, nil)
		}
		writeJSON(w, status, out)
	})
}

func (c *Client) uploadError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, media.ErrTooLarge):
		limit, _ := c.media.Limit(r.Context())
		mautrix.MTooLarge.WithMessage("The file is larger than the limit of %d bytes", limit).Write(w)
	case errors.Is(err, media.ErrTypeNotAllowed):
		errTypeNotAllowed.WithMessage("Files of this type may not be uploaded (Content-Type %q)", r.Header.Get("Content-Type")).Write(w)
	case errors.Is(err, media.ErrNotMatching):
		errTypeMismatch.WithMessage("The file's content does not match its Content-Type: %s", errors.Unwrap(err)).Write(w)
	case errors.Is(err, media.ErrTruncated):
		errTruncated.WithMessage("The upload ended before Content-Length bytes; nothing was stored").Write(w)
	case errors.Is(err, media.ErrEmpty):
		errInvalid.WithMessage("The file is empty").Write(w)
	case errors.Is(err, media.ErrUnavailable):
		c.log.Warn().Err(err).Msg("Upload failed: homeserver unavailable")
		w.Header().Set("Retry-After", "10")
		mautrix.MUnknown.WithMessage("The homeserver is unavailable and the file cannot be kept for it now; nothing was stored, try again later").WithStatus(http.StatusServiceUnavailable).Write(w)
	default:
		c.homeserverError(w, err, "upload")
	}
}

// getMedia serves a file or thumbnail to the holder of a signed URL (an
// <img> tag), or to a caller with a JWT whose ghost is joined to the room
// named by ?room= in which an event names the file.
func (c *Client) getMedia(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if c.mediaOff(w) {
			return
		}
		server, mediaID := pathVar(r, "server"), pathVar(r, "mediaId")
		if !media.ValidPart(server) || !media.ValidPart(mediaID) {
			errNotFound.WithMessage("No such file").Write(w)
			return
		}
		if r.URL.Query().Has("sig") {
			c.getSignedMedia(w, r, kind, server, mediaID)
			return
		}
		c.authenticate(func(w http.ResponseWriter, r *http.Request) {
			c.getMemberMedia(w, r, kind, server, mediaID)
		}, false).ServeHTTP(w, r)
	}
}

func (c *Client) getSignedMedia(w http.ResponseWriter, r *http.Request, kind, server, mediaID string) {
	roomID, left, err := c.media.Signer.Verify(kind, server, mediaID, r.URL.Query())
	switch {
	case errors.Is(err, media.ErrExpired):
		mautrix.MForbidden.WithMessage("This media URL has expired; reload to get a new one").Write(w)
		return
	case err != nil:
		mautrix.MForbidden.WithMessage("This media URL is not valid").Write(w)
		return
	}
	p, err := c.db.Portals.GetByRoomID(r.Context(), roomID)
	if err != nil {
		c.internalError(w, r, err)
		return
	}
	if p == nil || p.Closed {
		mautrix.MForbidden.WithMessage("This media URL's room is closed").Write(w)
		return
	}
	c.media.Serve(w, r, kind, server, mediaID, "", left)
}

func (c *Client) getMemberMedia(w http.ResponseWriter, r *http.Request, kind, server, mediaID string) {
	who := callerOf(r)
	roomID := id.RoomID(r.URL.Query().Get("room"))
	// The caller hears only that the file is not theirs to see; whether
	// the room or the file was the reason goes to the log.
	forbidden := func(reason string) {
		c.log.Debug().Str("user_id", who.userID.String()).Str("room_id", roomID.String()).
			Str("mxc", "mxc://"+server+"/"+mediaID).Str("reason", reason).Msg("Refused a media download")
		mautrix.MForbidden.WithMessage("No room of yours has this file").Write(w)
	}
	if roomID == "" {
		errInvalid.WithMessage("Give the room the file was seen in as ?room=, or use a signed URL").Write(w)
		return
	}
	membership, err := c.db.Members.Membership(r.Context(), roomID, who.userID)
	if err != nil {
		c.internalError(w, r, err)
		return
	}
	if membership != event.MembershipJoin {
		forbidden("not_joined")
		return
	}
	found, err := c.db.EventLog.ReferencesMedia(r.Context(), roomID, "mxc://"+server+"/"+mediaID)
	if err != nil {
		c.internalError(w, r, err)
		return
	}
	if !found {
		// No event of the room names it in a file's place (a message's
		// file or thumbnail, an edit's, an avatar), or those that did
		// were redacted.
		forbidden("not_in_room")
		return
	}
	c.media.Serve(w, r, kind, server, mediaID, who.userID, 0)
}

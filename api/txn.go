package api

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"

	"maunium.net/go/mautrix"

	"github.com/openmeet-team/openmeet-bridge/database"
)

// errTxnConflict: the caller already used the txn id for another request
// (another action, room or body). Answering with that request's result
// would tell the caller that this one was done.
var errTxnConflict = mautrix.RespError{ErrCode: "NET.OPENMEET.TXN_CONFLICT", StatusCode: http.StatusConflict}

// Client API actions that go through the outbox, as named in request
// digests.
const (
	actionSend   = "send"
	actionEdit   = "edit"
	actionReact  = "react"
	actionRedact = "redact"
	actionUpload = "upload"
)

// uploadRequest is what identifies an upload without reading its body: a
// repeat sends the same file, with the same headers. A different file of
// the same type, name and size under the same txn id passes for a repeat.
type uploadRequest struct {
	MediaType string `json:"media_type"`
	Filename  string `json:"filename"`
	Size      int64  `json:"size"`
}

// requestDigest identifies what a client asked for: the action, the
// portal as the path names it (its room may be replaced by an upgrade
// between a request and its repeat) and the decoded request, marshalled
// again so that spacing and key order do not count. Changing this form
// makes repeats of requests stored before it look like other requests.
func requestDigest(action string, p *database.Portal, req any) (string, error) {
	canonical, err := json.Marshal(struct {
		Action  string `json:"action"`
		Tenant  string `json:"tenant"`
		Kind    string `json:"kind"`
		Slug    string `json:"slug"`
		Request any    `json:"request"`
	}{action, p.Tenant, p.Kind, p.Slug, req})
	if err != nil {
		return "", fmt.Errorf("failed to encode request digest: %w", err)
	}
	sum := sha256.Sum256(canonical)
	return hex.EncodeToString(sum[:]), nil
}

// txnConflict reports whether the stored entry of a txn id is of another
// request than the one whose digest is given, and if so answers 409.
// Entries stored before digests were recorded have none and are answered
// as before.
func (c *Client) txnConflict(w http.ResponseWriter, r *http.Request, entry *database.OutboxEntry, digest string) bool {
	if entry.RequestDigest == "" || entry.RequestDigest == digest {
		return false
	}
	c.log.Info().Stringer("user_id", entry.UserID).Int64("outbox_id", entry.ID).Str("path", r.URL.Path).
		Msg("Refused a request reusing a txn id of another request")
	errTxnConflict.WithMessage("This txnId was already used for another request (another action, room or body); " +
		"a repeat must be identical, and a new request needs a new txnId").Write(w)
	return true
}

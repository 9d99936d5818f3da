// Package api serves the bridge's own HTTP APIs: the provisioning API the
// OpenMeet backend calls, and (later) the client API browsers call. Both
// answer Matrix-style errors ({"errcode", "error"}).
package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"maunium.net/go/mautrix"
)

// Error codes of our own, namespaced as the Matrix spec asks.
var (
	errPortalClosed = mautrix.RespError{ErrCode: "NET.OPENMEET.PORTAL_CLOSED", StatusCode: http.StatusConflict}
	errNotFound     = mautrix.MNotFound
	errInvalid      = mautrix.MInvalidParam
	// errConflict: the request contradicts what the bridge already has
	// (an adopted account or room that cannot change).
	errConflict = mautrix.RespError{ErrCode: "NET.OPENMEET.CONFLICT", StatusCode: http.StatusConflict}
)

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// readJSON decodes a request body of at most limit bytes into v, refusing
// unknown fields and trailing data. On failure it has written the error.
func readJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			mautrix.MTooLarge.WithMessage("Request body is larger than %d bytes", limit).Write(w)
		} else {
			mautrix.MBadJSON.WithMessage("Failed to read request body").Write(w)
		}
		return false
	}
	if !json.Valid(body) {
		mautrix.MNotJSON.WithMessage("Request body is not valid JSON").Write(w)
		return false
	}
	// Decoding null (or nothing but spaces around it) into a struct
	// succeeds and would read as a request with every field empty.
	if trimmed := bytes.TrimLeft(body, " \t\r\n"); len(trimmed) == 0 || trimmed[0] != '{' {
		mautrix.MBadJSON.WithMessage("Request body must be a JSON object").Write(w)
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		mautrix.MBadJSON.WithMessage("%s", describeJSONError(err)).Write(w)
		return false
	}
	return true
}

func describeJSONError(err error) string {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		return fmt.Sprintf("field %q must be %s, not %s", typeErr.Field, typeErr.Type, typeErr.Value)
	}
	return err.Error()
}

// NotFound answers 404 M_UNRECOGNIZED, for paths nothing serves.
func NotFound(w http.ResponseWriter, r *http.Request) {
	mautrix.MUnrecognized.WithMessage("Unrecognized request").Write(w)
}

// MethodNotAllowed answers 405 M_UNRECOGNIZED, for a known path with a
// method it does not take.
func MethodNotAllowed(w http.ResponseWriter, r *http.Request) {
	mautrix.MUnrecognized.WithMessage("Method not allowed").WithStatus(http.StatusMethodNotAllowed).Write(w)
}

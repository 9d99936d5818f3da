package media

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"
)

// inlineTypes may be shown in the page; everything else is served as an
// attachment. Never SVG or HTML: they run scripts when opened.
var inlineTypes = map[string]bool{
	"image/png": true, "image/jpeg": true, "image/gif": true, "image/webp": true, "image/apng": true, "image/avif": true,
	"video/mp4": true, "video/webm": true, "video/ogg": true,
	"audio/mpeg": true, "audio/ogg": true, "audio/webm": true, "audio/mp4": true, "audio/aac": true,
	"audio/wav": true, "audio/flac": true,
	"text/plain": true,
}

// contentSecurityPolicy applies to a file opened on its own: no script,
// no plugin, no frame around it, a sandbox without origin.
const contentSecurityPolicy = "default-src 'none'; script-src 'none'; style-src 'unsafe-inline'; media-src 'self'; " +
	"object-src 'none'; sandbox; frame-ancestors 'none'"

// thumbnailParams checks the size a browser asks a thumbnail in.
func thumbnailParams(q url.Values) (url.Values, error) {
	out := url.Values{}
	for _, key := range []string{"width", "height"} {
		n, err := strconv.Atoi(q.Get(key))
		if err != nil || n < 1 || n > 2000 {
			return nil, fmt.Errorf("%s must be a number from 1 to 2000", key)
		}
		out.Set(key, strconv.Itoa(n))
	}
	switch m := q.Get("method"); m {
	case "", "scale":
		out.Set("method", "scale")
	case "crop":
		out.Set("method", m)
	default:
		return nil, errors.New("method must be crop or scale")
	}
	return out, nil
}

// Serve answers a GET or HEAD of a file or thumbnail, fetched from Synapse
// as asUser (the bot when empty). maxAge is how long the browser may keep
// it (0: revalidate every time).
func (s *Service) Serve(w http.ResponseWriter, r *http.Request, kind, server, mediaID string, asUser id.UserID, maxAge time.Duration) {
	var params url.Values
	etag := `"` + mediaID + `"`
	if kind == Thumbnail {
		var err error
		if params, err = thumbnailParams(r.URL.Query()); err != nil {
			mautrix.MInvalidParam.WithMessage("%s", err.Error()).Write(w)
			return
		}
		etag = `"` + mediaID + "-" + params.Get("width") + "x" + params.Get("height") + "-" + params.Get("method") + `"`
	}
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("Referrer-Policy", "no-referrer")
	// Access is decided by the URL's signature or the token, not by who
	// embeds the file: a frontend on another origin may show it.
	h.Set("Cross-Origin-Resource-Policy", "cross-origin")
	h.Set("ETag", etag)
	if maxAge > 0 {
		// Files never change under their ID.
		h.Set("Cache-Control", fmt.Sprintf("private, max-age=%d, immutable", int(maxAge/time.Second)))
	} else {
		h.Set("Cache-Control", "private, no-cache")
	}
	if match := r.Header.Get("If-None-Match"); match != "" && etagMatches(match, etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	resp, err := s.Repo.Fetch(r.Context(), asUser, kind, server, mediaID, params)
	if err != nil {
		switch status := StatusOf(err); {
		case status == http.StatusNotFound || status == http.StatusBadRequest:
			mautrix.MNotFound.WithMessage("No such file").Write(w)
		case status == http.StatusRequestEntityTooLarge:
			mautrix.MTooLarge.WithMessage("The homeserver would not fetch this file").Write(w)
		default:
			mautrix.MUnknown.WithMessage("The homeserver did not answer").WithStatus(http.StatusBadGateway).Write(w)
		}
		return
	}
	defer resp.Body.Close()
	mediaType := ParseType(resp.Header.Get("Content-Type"))
	if mediaType == "" {
		mediaType = "application/octet-stream"
	}
	contentType := mediaType
	if strings.HasPrefix(mediaType, "text/") {
		contentType += "; charset=utf-8"
	}
	h.Set("Content-Type", contentType)
	disposition := "attachment"
	if inlineTypes[mediaType] {
		disposition = "inline"
	}
	h.Set("Content-Disposition", mime.FormatMediaType(disposition, map[string]string{"filename": filenameOf(resp, mediaID, mediaType)}))
	total := contentLength(resp)
	if total < 0 {
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			_, _ = io.Copy(w, resp.Body)
		}
		return
	}
	h.Set("Accept-Ranges", "bytes")
	start, length, partial, ok := byteRange(r, etag, total)
	if !ok {
		h.Set("Content-Range", fmt.Sprintf("bytes */%d", total))
		mautrix.RespError{ErrCode: "M_INVALID_PARAM", Err: "Range not satisfiable", StatusCode: http.StatusRequestedRangeNotSatisfiable}.Write(w)
		return
	}
	h.Set("Content-Length", strconv.FormatInt(length, 10))
	status := http.StatusOK
	if partial {
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, start+length-1, total))
		status = http.StatusPartialContent
	}
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return
	}
	// Synapse is asked for the whole file; the bytes before the range
	// are skipped as they come.
	if _, err := io.CopyN(io.Discard, resp.Body, start); err != nil {
		return
	}
	_, _ = io.CopyN(w, resp.Body, length)
}

func etagMatches(header, etag string) bool {
	for _, part := range strings.Split(header, ",") {
		part = strings.TrimPrefix(strings.TrimSpace(part), "W/")
		if part == etag || part == "*" {
			return true
		}
	}
	return false
}

// byteRange reads a single-range Range header ("bytes=a-b", "bytes=a-",
// "bytes=-n"). Anything else, or an If-Range that does not match, is
// answered with the whole file; ok is false for a range past the end.
func byteRange(r *http.Request, etag string, total int64) (start, length int64, partial, ok bool) {
	spec, found := strings.CutPrefix(r.Header.Get("Range"), "bytes=")
	if !found || strings.Contains(spec, ",") || (r.Header.Get("If-Range") != "" && r.Header.Get("If-Range") != etag) {
		return 0, total, false, true
	}
	first, last, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return 0, total, false, true
	}
	if first == "" {
		n, err := strconv.ParseInt(last, 10, 64)
		if err != nil || n < 0 {
			return 0, total, false, true
		}
		if n == 0 || total == 0 {
			return 0, 0, false, false
		}
		n = min(n, total)
		return total - n, n, true, true
	}
	a, err := strconv.ParseInt(first, 10, 64)
	if err != nil || a < 0 {
		return 0, total, false, true
	}
	if a >= total {
		return 0, 0, false, false
	}
	b := total - 1
	if last != "" {
		if b, err = strconv.ParseInt(last, 10, 64); err != nil || b < a {
			return 0, total, false, true
		}
		b = min(b, total-1)
	}
	return a, b - a + 1, true, true
}

// filenameOf is the file's name as Synapse gives it, made safe, or one
// made from its ID and type.
func filenameOf(resp *http.Response, mediaID, mediaType string) string {
	if _, params, err := mime.ParseMediaType(resp.Header.Get("Content-Disposition")); err == nil && params["filename"] != "" {
		return CleanFilename(params["filename"], mediaType)
	}
	return CleanFilename(mediaID+extension(mediaType), mediaType)
}

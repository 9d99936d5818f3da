package media

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"
)

// ErrUnavailable is returned when Synapse could not be reached or failed
// (5xx): nothing was stored, and trying again later may work.
var ErrUnavailable = errors.New("homeserver unavailable")

// Repo talks to Synapse's media repository with the appservice's token,
// as a ghost (?user_id=) or as the bridge's bot.
type Repo struct {
	base    string
	asToken string
	client  *http.Client

	mu         sync.Mutex
	limit      int64
	limitKnown bool
}

// NewRepo talks to the homeserver at base. transport may be nil. The
// client has no overall timeout: a download streams for as long as the
// browser reads; request contexts bound each call instead.
func NewRepo(base, asToken string, transport http.RoundTripper) *Repo {
	return &Repo{base: strings.TrimSuffix(base, "/"), asToken: asToken, client: &http.Client{Transport: transport}}
}

func (r *Repo) request(ctx context.Context, method, path string, query url.Values, body io.Reader, asUser id.UserID) (*http.Request, error) {
	if query == nil {
		query = url.Values{}
	}
	if asUser != "" {
		query.Set("user_id", string(asUser))
	}
	u := r.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+r.asToken)
	return req, nil
}

// homeserverError reads a non-2xx answer as a mautrix.HTTPError (with the
// Matrix error when there is one); 5xx answers are ErrUnavailable too.
func homeserverError(resp *http.Response) error {
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var respErr mautrix.RespError
	if json.Unmarshal(raw, &respErr) != nil || respErr.ErrCode == "" {
		respErr = mautrix.RespError{ErrCode: "M_UNKNOWN", Err: strings.TrimSpace(string(raw))}
	}
	respErr.StatusCode = resp.StatusCode
	err := mautrix.HTTPError{Request: resp.Request, Response: resp, RespError: &respErr}
	if resp.StatusCode >= 500 {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return err
}

// probeTimeout bounds asking Synapse for its media config, which is also
// how an upload learns whether Synapse is reachable.
const probeTimeout = 5 * time.Second

// UploadLimit asks Synapse for its m.upload.size (0 when it sets none), as
// the bot. ErrUnavailable when Synapse does not answer within a few
// seconds; LastLimit then has what it said last.
func (r *Repo) UploadLimit(ctx context.Context) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	req, err := r.request(ctx, http.MethodGet, "/_matrix/client/v1/media/config", nil, nil, "")
	if err != nil {
		return 0, err
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, homeserverError(resp)
	}
	var cfg struct {
		Size int64 `json:"m.upload.size"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&cfg); err != nil {
		return 0, fmt.Errorf("%w: media config: %w", ErrUnavailable, err)
	}
	r.mu.Lock()
	r.limit, r.limitKnown = cfg.Size, true
	r.mu.Unlock()
	return cfg.Size, nil
}

// LastLimit is the m.upload.size Synapse gave last; ok is false when it
// never answered.
func (r *Repo) LastLimit() (limit int64, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.limit, r.limitKnown
}

// Upload streams size bytes of body to Synapse as asUser and returns the
// mxc URI. Synapse stores nothing unless it receives all size bytes: when
// body ends early or fails, the request is cut off and its error returned.
func (r *Repo) Upload(ctx context.Context, asUser id.UserID, body io.Reader, size int64, contentType, filename string) (string, error) {
	q := url.Values{}
	if filename != "" {
		q.Set("filename", filename)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	watched := &watchedReader{r: body, cancel: cancel}
	req, err := r.request(ctx, http.MethodPost, "/_matrix/media/v3/upload", q, watched, asUser)
	if err != nil {
		return "", err
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", contentType)
	resp, err := r.client.Do(req)
	if watched.err != nil {
		return "", watched.err
	}
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", homeserverError(resp)
	}
	var out struct {
		ContentURI string `json:"content_uri"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&out); err != nil {
		return "", fmt.Errorf("%w: upload answer: %w", ErrUnavailable, err)
	}
	if _, _, ok := ParseMXC(out.ContentURI); !ok {
		return "", fmt.Errorf("%w: upload answered %q, not an mxc URI", ErrUnavailable, out.ContentURI)
	}
	return out.ContentURI, nil
}

// watchedReader remembers the first read error other than EOF and cancels
// the request at once, so the homeserver sees a cut connection, never a
// short body it could take for the whole file.
type watchedReader struct {
	r      io.Reader
	cancel context.CancelFunc
	err    error
}

func (w *watchedReader) Read(p []byte) (int, error) {
	n, err := w.r.Read(p)
	if err != nil && err != io.EOF && w.err == nil {
		w.err = err
		w.cancel()
	}
	return n, err
}

// Fetch asks Synapse's authenticated media API for a file (kind Download)
// or a thumbnail (kind Thumbnail, with width, height and method in
// params), as asUser or, when it is empty, as the bot. The caller closes
// the body. Answers other than 200 are returned as errors.
func (r *Repo) Fetch(ctx context.Context, asUser id.UserID, kind, server, mediaID string, params url.Values) (*http.Response, error) {
	q := url.Values{}
	for k, v := range params {
		q[k] = v
	}
	req, err := r.request(ctx, http.MethodGet, "/_matrix/client/v1/media/"+kind+"/"+url.PathEscape(server)+"/"+url.PathEscape(mediaID), q, nil, asUser)
	if err != nil {
		return nil, err
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, homeserverError(resp)
	}
	return resp, nil
}

// StatusOf is the HTTP status of a homeserver error, or 0.
func StatusOf(err error) int {
	var httpErr mautrix.HTTPError
	if errors.As(err, &httpErr) && httpErr.Response != nil {
		return httpErr.Response.StatusCode
	}
	return 0
}

// contentLength is a response's length, or -1.
func contentLength(resp *http.Response) int64 {
	if resp.ContentLength >= 0 {
		return resp.ContentLength
	}
	n, err := strconv.ParseInt(resp.Header.Get("Content-Length"), 10, 64)
	if err != nil {
		return -1
	}
	return n
}

package migrate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// provisionPrefix is where the bridge serves the provisioning API.
const provisionPrefix = "/_openmeet/provision/v1"

// apiError is a non-2xx answer of the bridge.
type apiError struct {
	Status  int
	ErrCode string `json:"errcode"`
	Message string `json:"error"`
}

func (e *apiError) Error() string {
	return fmt.Sprintf("HTTP %d %s: %s", e.Status, e.ErrCode, e.Message)
}

// permanent reports whether retrying cannot help: the bridge refused the
// record itself.
func (e *apiError) permanent() bool { return e.Status >= 400 && e.Status < 500 && e.Status != 429 }

func isNotFound(err error) bool {
	var e *apiError
	return errors.As(err, &e) && e.Status == http.StatusNotFound
}

// client calls the provisioning API; writes are paced by limiter.
type client struct {
	base    string
	secret  string
	http    *http.Client
	limiter *rate.Limiter
	reads   atomic.Int64
	writes  atomic.Int64
	// pending counts 202 answers: stored, Synapse not updated yet.
	pending atomic.Int64
}

func escape(s string) string { return url.PathEscape(s) }

// do sends one request; writes wait for the pace limiter first. Server
// errors and connection failures are retried with backoff (the requests
// are idempotent), refusals are not.
func (c *client) do(ctx context.Context, method, path string, body, out any) (int, error) {
	write := method != http.MethodGet
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return 0, err
		}
	}
	backoff := time.Second
	for attempt := 1; ; attempt++ {
		if write {
			if err := c.limiter.Wait(ctx); err != nil {
				return 0, err
			}
			c.writes.Add(1)
		} else {
			c.reads.Add(1)
		}
		status, err := c.once(ctx, method, path, payload, out)
		var apiErr *apiError
		if err == nil || errors.As(err, &apiErr) && apiErr.permanent() || attempt == 5 || ctx.Err() != nil {
			if status == http.StatusAccepted {
				c.pending.Add(1)
			}
			return status, err
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(backoff):
		}
		backoff *= 2
	}
}

func (c *client) once(ctx context.Context, method, path string, payload []byte, out any) (int, error) {
	var body io.Reader
	if payload != nil {
		body = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+provisionPrefix+path, body)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+c.secret)
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("failed to reach the bridge: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("failed to read the bridge's answer: %w", err)
	}
	if resp.StatusCode >= 300 {
		e := &apiError{Status: resp.StatusCode}
		if json.Unmarshal(raw, e) != nil || e.Message == "" {
			e.Message = strings.TrimSpace(string(raw))
		}
		return resp.StatusCode, e
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, fmt.Errorf("failed to decode the bridge's answer: %w", err)
		}
	}
	return resp.StatusCode, nil
}

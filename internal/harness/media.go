package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// Upload stores a file in the homeserver's media repository as the user,
// as a Matrix client does, and returns its mxc URI.
func (u *MatrixUser) Upload(ctx context.Context, contentType, filename string, data []byte) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost,
		u.HS.URL+"/_matrix/media/v3/upload?filename="+url.QueryEscape(filename), bytes.NewReader(data))
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+u.AccessToken)
	req.Header.Set("Content-Type", contentType)
	resp, err := u.HS.client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", &HTTPError{Status: resp.StatusCode, Body: string(raw)}
	}
	var out struct {
		ContentURI string `json:"content_uri"`
	}
	return out.ContentURI, json.Unmarshal(raw, &out)
}

// Download fetches a file from the authenticated media API as the user.
func (u *MatrixUser) Download(ctx context.Context, mxc string) ([]byte, http.Header, error) {
	rest, ok := strings.CutPrefix(mxc, "mxc://")
	if !ok {
		return nil, nil, fmt.Errorf("not an mxc URI: %q", mxc)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.HS.URL+"/_matrix/client/v1/media/download/"+rest, nil)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+u.AccessToken)
	resp, err := u.HS.client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, nil, &HTTPError{Status: resp.StatusCode, Body: string(raw)}
	}
	return raw, resp.Header, err
}

// SendEvent sends a message event of any content and returns its ID.
func (u *MatrixUser) SendEvent(ctx context.Context, roomID, eventType string, content any) (string, error) {
	var resp struct {
		EventID string `json:"event_id"`
	}
	path := fmt.Sprintf("/_matrix/client/v3/rooms/%s/send/%s/%s", url.PathEscape(roomID), url.PathEscape(eventType), randomHex(8))
	err := u.Do(ctx, http.MethodPut, path, content, &resp)
	return resp.EventID, err
}

// Event reads one event of a room the user is in.
func (u *MatrixUser) Event(ctx context.Context, roomID, eventID string) (map[string]any, error) {
	var evt map[string]any
	err := u.Do(ctx, http.MethodGet, "/_matrix/client/v3/rooms/"+url.PathEscape(roomID)+"/event/"+url.PathEscape(eventID), nil, &evt)
	return evt, err
}

package harness

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"testing"
)

// HTTPError is a non-2xx answer of the homeserver.
type HTTPError struct {
	Status  int
	ErrCode string
	Body    string
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("HTTP %d %s: %s", e.Status, e.ErrCode, e.Body)
}

// do sends a JSON request to Synapse and decodes a JSON answer into out.
func (s *Synapse) do(ctx context.Context, method, path, token string, body, out any) error {
	var reader io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return err
		}
		reader = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.URL+path, reader)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		var e struct {
			ErrCode string `json:"errcode"`
		}
		_ = json.Unmarshal(raw, &e)
		return &HTTPError{Status: resp.StatusCode, ErrCode: e.ErrCode, Body: string(raw)}
	}
	if out != nil {
		return json.Unmarshal(raw, out)
	}
	return nil
}

// RegisterUser creates an ordinary user through the shared-secret admin
// registration API.
func (s *Synapse) RegisterUser(ctx context.Context, localpart, password string, admin bool) (userID, token string, err error) {
	var nonce struct {
		Nonce string `json:"nonce"`
	}
	if err = s.do(ctx, http.MethodGet, "/_synapse/admin/v1/register", "", nil, &nonce); err != nil {
		return "", "", fmt.Errorf("failed to get registration nonce: %w", err)
	}
	mac := hmac.New(sha1.New, []byte(s.sharedSecret))
	adminWord := "notadmin"
	if admin {
		adminWord = "admin"
	}
	mac.Write([]byte(nonce.Nonce + "\x00" + localpart + "\x00" + password + "\x00" + adminWord))
	var resp struct {
		UserID      string `json:"user_id"`
		AccessToken string `json:"access_token"`
	}
	err = s.do(ctx, http.MethodPost, "/_synapse/admin/v1/register", "", map[string]any{
		"nonce": nonce.Nonce, "username": localpart, "password": password, "admin": admin,
		"mac": hex.EncodeToString(mac.Sum(nil)),
	}, &resp)
	if err != nil {
		return "", "", fmt.Errorf("failed to register %s: %w", localpart, err)
	}
	return resp.UserID, resp.AccessToken, nil
}

// MatrixUser is an ordinary (non-bridge) user of the test homeserver.
type MatrixUser struct {
	UserID      string
	AccessToken string
	HS          *Synapse
}

// NewUser registers a user with a unique localpart starting with prefix.
func (s *Synapse) NewUser(tb testing.TB, prefix string) *MatrixUser {
	tb.Helper()
	userID, token, err := s.RegisterUser(context.Background(), UniqueName(prefix), randomHex(8), false)
	if err != nil {
		tb.Fatal(err)
	}
	return &MatrixUser{UserID: userID, AccessToken: token, HS: s}
}

// Do sends a request as the user; out may be nil.
func (u *MatrixUser) Do(ctx context.Context, method, path string, body, out any) error {
	return u.HS.do(ctx, method, path, u.AccessToken, body, out)
}

// CreateRoom creates a room and returns its ID.
func (u *MatrixUser) CreateRoom(ctx context.Context, body map[string]any) (string, error) {
	var resp struct {
		RoomID string `json:"room_id"`
	}
	err := u.Do(ctx, http.MethodPost, "/_matrix/client/v3/createRoom", body, &resp)
	return resp.RoomID, err
}

// Invite invites userID to roomID.
func (u *MatrixUser) Invite(ctx context.Context, roomID, userID string) error {
	return u.Do(ctx, http.MethodPost, "/_matrix/client/v3/rooms/"+url.PathEscape(roomID)+"/invite",
		map[string]any{"user_id": userID}, nil)
}

// Join joins a room by ID or alias and returns the room ID.
func (u *MatrixUser) Join(ctx context.Context, roomIDOrAlias string) (string, error) {
	var resp struct {
		RoomID string `json:"room_id"`
	}
	err := u.Do(ctx, http.MethodPost, "/_matrix/client/v3/join/"+url.PathEscape(roomIDOrAlias), map[string]any{}, &resp)
	return resp.RoomID, err
}

// SendText sends an m.text message and returns its event ID.
func (u *MatrixUser) SendText(ctx context.Context, roomID, text string) (string, error) {
	var resp struct {
		EventID string `json:"event_id"`
	}
	path := fmt.Sprintf("/_matrix/client/v3/rooms/%s/send/m.room.message/%s", url.PathEscape(roomID), randomHex(8))
	err := u.Do(ctx, http.MethodPut, path, map[string]any{"msgtype": "m.text", "body": text}, &resp)
	return resp.EventID, err
}

// Profile returns a user's display name and avatar URL.
func (u *MatrixUser) Profile(ctx context.Context, userID string) (displayname, avatar string, err error) {
	var resp struct {
		Displayname string `json:"displayname"`
		AvatarURL   string `json:"avatar_url"`
	}
	err = u.Do(ctx, http.MethodGet, "/_matrix/client/v3/profile/"+url.PathEscape(userID), nil, &resp)
	return resp.Displayname, resp.AvatarURL, err
}

package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
	"github.com/rs/zerolog"

	"github.com/openmeet-team/openmeet-bridge/api"
	"github.com/openmeet-team/openmeet-bridge/appservice"
	"github.com/openmeet-team/openmeet-bridge/bridge"
	"github.com/openmeet-team/openmeet-bridge/database"
	"github.com/openmeet-team/openmeet-bridge/internal/harness"
	"github.com/openmeet-team/openmeet-bridge/internal/openapicheck"
)

// The fuzz targets send request bodies to a real bridge: its HTTP router,
// handlers and an SQLite database in a temporary directory. No Synapse
// runs: a stand-in answers every homeserver request at once with 404
// M_UNRECOGNIZED, so that the calls a body reaches after it was accepted
// end quickly (as 202, or 502 where the client API must ask Synapse). What
// is checked is what the bridge answers to the body.

const (
	fuzzTenant    = "acme"
	fuzzDomain    = "openmeet.test"
	fuzzJWTSecret = "fuzz-jwt-secret-0123456789abcdef0123"
	// fuzzMaxBody is both APIs' body limit here: small, so that the
	// fuzzer reaches it.
	fuzzMaxBody  = 4096
	fuzzRoomID   = "!meetup:" + fuzzDomain
	fuzzKnownEvt = "$known:" + fuzzDomain
)

type fuzzBridge struct {
	b      *bridge.Bridge
	base   string
	secret string
	jwt    string
	spec   *openapicheck.Spec
}

// startFuzzBridge starts a bridge with the client API, a provisioned user
// ada, and a portal "meetup" whose room ada has joined (as Synapse would
// have pushed it), with one message of hers in it.
func startFuzzBridge(f *testing.F) *fuzzBridge {
	f.Helper()
	homeserver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"errcode":"M_UNRECOGNIZED","error":"no homeserver in this test"}`))
	}))
	f.Cleanup(homeserver.Close)
	example, err := os.ReadFile("../example-config.yaml")
	if err != nil {
		f.Fatal(err)
	}
	cfg, err := bridge.ParseConfig(example, nil)
	if err != nil {
		f.Fatal(err)
	}
	port, err := harness.FreePort()
	if err != nil {
		f.Fatal(err)
	}
	cfg.Homeserver.Address, cfg.Homeserver.Domain = homeserver.URL, fuzzDomain
	cfg.Appservice.Address, cfg.Appservice.Hostname, cfg.Appservice.Port = fmt.Sprintf("http://127.0.0.1:%d", port), "127.0.0.1", port
	cfg.Appservice.ID, cfg.Appservice.ASToken, cfg.Appservice.HSToken = "openmeet", appservice.NewToken(), appservice.NewToken()
	cfg.Database.URI = "file:" + filepath.Join(f.TempDir(), "bridge.db") + "?_txlock=immediate"
	cfg.Provisioning.SharedSecret = appservice.NewToken()
	cfg.Provisioning.MaxBodyBytes = fuzzMaxBody
	cfg.Portals.SyncWait = time.Millisecond
	cfg.ClientAPI.Enabled = true
	cfg.ClientAPI.JWT.Secrets = []string{fuzzJWTSecret}
	cfg.ClientAPI.SendWait = time.Millisecond
	cfg.ClientAPI.MaxBodyBytes = fuzzMaxBody
	// Bodies are fuzzed here, not the per-user limits: out of their way.
	l := &cfg.ClientAPI.Limits
	for _, lim := range []*api.RateLimit{&l.Send, &l.Edit, &l.React, &l.Redact, &l.Upload, &l.Typing, &l.Receipt, &l.Ticket} {
		*lim = api.RateLimit{Rate: 1e6, Burst: 100_000}
	}
	l.MaxPendingOutbox = 1 << 30
	if err := cfg.Validate(); err != nil {
		f.Fatal(err)
	}
	b := bridge.New(cfg, zerolog.Nop())
	if err := b.Start(context.Background()); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		_ = b.Stop(ctx)
	})
	spec, err := openapicheck.Load(api.OpenAPI)
	if err != nil {
		f.Fatal(err)
	}
	token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "ada", "tenant": fuzzTenant, "aud": cfg.ClientAPI.JWT.Audience, "exp": time.Now().Add(24 * time.Hour).Unix(),
	}).SignedString([]byte(fuzzJWTSecret))
	if err != nil {
		f.Fatal(err)
	}
	fb := &fuzzBridge{b: b, base: cfg.Appservice.Address, secret: cfg.Provisioning.SharedSecret, jwt: token, spec: spec}

	for _, call := range []struct{ path, body string }{
		{"/tenants/acme/users/ada", `{"displayname":"Ada"}`},
		{"/tenants/acme/users/bob", `{"displayname":"Bob"}`},
		{"/tenants/acme/events/meetup", `{"name":"Meetup","visibility":"public"}`},
		{"/tenants/acme/events/meetup/members/ada", `{"role":"attendee"}`},
	} {
		if status, raw := fb.do(f, "PUT", api.ProvisionPrefix+call.path, fb.secret, []byte(call.body)); status/100 != 2 {
			f.Fatalf("PUT %s: %d %s", call.path, status, raw)
		}
	}
	// The room exists and ada is in it, as if Synapse had created it and
	// pushed her join.
	ctx := context.Background()
	if err := b.DB.Portals.SetRoomID(ctx, database.PortalKey{Tenant: fuzzTenant, Kind: "event", Slug: "meetup"}, fuzzRoomID); err != nil {
		f.Fatal(err)
	}
	ada := "@openmeet_acme_ada:" + fuzzDomain
	txn := fmt.Sprintf(`{"events":[
		{"event_id":"$join:%[1]s","room_id":%[2]q,"type":"m.room.member","state_key":%[3]q,"sender":%[3]q,"origin_server_ts":1,"content":{"membership":"join"}},
		{"event_id":%[4]q,"room_id":%[2]q,"type":"m.room.message","sender":%[3]q,"origin_server_ts":2,"content":{"msgtype":"m.text","body":"hello"}}]}`,
		fuzzDomain, fuzzRoomID, ada, fuzzKnownEvt)
	if status, raw := fb.do(f, "PUT", "/_matrix/app/v1/transactions/fuzz-setup", cfg.Appservice.HSToken, []byte(txn)); status != 200 {
		f.Fatalf("setup transaction: %d %s", status, raw)
	}
	return fb
}

// do sends one request and returns the answer; a failed round trip (such
// as a handler that panicked) fails the test.
func (fb *fuzzBridge) do(t testing.TB, method, path, token string, body []byte) (int, []byte) {
	t.Helper()
	var reader io.Reader
	if body != nil {
		reader = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, fb.base+path, reader)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 8 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the answer: %v", method, path, err)
	}
	return resp.StatusCode, raw
}

// bodyRoute is one endpoint that takes a JSON body.
type bodyRoute struct {
	method, path string
	// fields are the body's keys (JSON object keys the endpoint knows).
	fields []string
	// state reads what the call would change, to show that a refused
	// call changed nothing (nil: not checked).
	state func(t *testing.T, fb *fuzzBridge) string
}

// checkBodyAnswer checks what every body, good or bad, must get: a
// described answer, never 500, a Matrix error for every 4xx; and for
// bodies that are certainly bad, the 4xx the API promises for them.
func checkBodyAnswer(t *testing.T, fb *fuzzBridge, route bodyRoute, body []byte, status int, raw []byte, allow5xx bool) {
	t.Helper()
	if err := fb.spec.Check(route.method, route.path, status, raw); err != nil {
		t.Fatalf("%s %s with %s: answer not as described: %v\n%s", route.method, route.path, short(body), err, raw)
	}
	if status >= 500 && !(allow5xx && status == http.StatusBadGateway) {
		t.Fatalf("%s %s with %s: %d %s", route.method, route.path, short(body), status, raw)
	}
	var matrixErr struct {
		Errcode *string `json:"errcode"`
		Error   *string `json:"error"`
	}
	// (A 502 may also be a send's "failed" result, as described.)
	if status >= 400 && status < 500 {
		if err := json.Unmarshal(raw, &matrixErr); err != nil || matrixErr.Errcode == nil || *matrixErr.Errcode == "" || matrixErr.Error == nil {
			t.Fatalf("%s %s with %s: %d without a Matrix error body: %s", route.method, route.path, short(body), status, raw)
		}
	}
	want, errcode := expectedRefusal(body, route.fields)
	switch {
	case want == 0:
	case status != want || (errcode != "" && *matrixErr.Errcode != errcode):
		t.Fatalf("%s %s with %s: %d %s, want %d %s", route.method, route.path, short(body), status, raw, want, errcode)
	}
}

// expectedRefusal tells, without the bridge's code, the answer a body must
// get when it is certainly bad: too large, not JSON, not an object, or an
// object with a key the endpoint does not know. It returns 0 when the body
// may be good.
func expectedRefusal(body []byte, fields []string) (int, string) {
	if len(body) > fuzzMaxBody {
		return http.StatusRequestEntityTooLarge, "M_TOO_LARGE"
	}
	if !json.Valid(body) {
		return http.StatusBadRequest, "M_NOT_JSON"
	}
	var object map[string]json.RawMessage
	if err := json.Unmarshal(body, &object); err != nil || object == nil {
		// null, arrays, strings, numbers.
		return http.StatusBadRequest, "M_BAD_JSON"
	}
	for key := range object {
		known := false
		for _, field := range fields {
			// encoding/json matches keys case-insensitively (with Unicode
			// folding): only plain-ASCII keys can be judged unknown here.
			if strings.EqualFold(key, field) {
				known = true
			}
		}
		if !known && isPlainASCII(key) {
			return http.StatusBadRequest, "M_BAD_JSON"
		}
	}
	return 0, ""
}

// short quotes a body for a failure message, cut to a readable length.
func short(body []byte) string {
	if len(body) > 200 {
		return fmt.Sprintf("%q… (%d bytes)", body[:200], len(body))
	}
	return fmt.Sprintf("%q", body)
}

func isPlainASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf || s[i] == '\\' {
			return false
		}
	}
	return true
}

// stateOf returns fields of a provisioning GET, to compare before and
// after; 404 reads as "absent".
func stateOf(path string, keys ...string) func(t *testing.T, fb *fuzzBridge) string {
	return func(t *testing.T, fb *fuzzBridge) string {
		status, raw := fb.do(t, "GET", api.ProvisionPrefix+path, fb.secret, nil)
		if status == http.StatusNotFound {
			return "absent"
		}
		var v map[string]any
		if status != http.StatusOK || json.Unmarshal(raw, &v) != nil {
			t.Fatalf("GET %s: %d %s", path, status, raw)
		}
		var out []string
		for _, k := range keys {
			out = append(out, fmt.Sprintf("%s=%v", k, v[k]))
		}
		return strings.Join(out, " ")
	}
}

// membersOf lists the portal's desired members and roles.
func membersOf(t *testing.T, fb *fuzzBridge) string {
	status, raw := fb.do(t, "GET", api.ProvisionPrefix+"/tenants/acme/events/meetup/members", fb.secret, nil)
	var v struct {
		Members []struct {
			UserSlug string `json:"user_slug"`
			Role     string `json:"role"`
		} `json:"members"`
	}
	if status != http.StatusOK || json.Unmarshal(raw, &v) != nil {
		t.Fatalf("GET members: %d %s", status, raw)
	}
	var out []string
	for _, m := range v.Members {
		out = append(out, m.UserSlug+":"+m.Role)
	}
	slices.Sort(out)
	return strings.Join(out, ",")
}

var provisioningRoutes = []bodyRoute{
	{"PUT", "/tenants/acme/users/fuzz", []string{"displayname", "avatar_url"}, stateOf("/tenants/acme/users/fuzz", "displayname", "avatar_url")},
	{"PUT", "/tenants/acme/events/fuzz", []string{"name", "topic", "visibility", "ensure_room"}, stateOf("/tenants/acme/events/fuzz", "name", "topic", "visibility", "closed")},
	{"PUT", "/tenants/acme/groups/fuzz", []string{"name", "topic", "visibility", "ensure_room"}, stateOf("/tenants/acme/groups/fuzz", "name", "topic", "visibility", "closed")},
	{"PUT", "/tenants/acme/events/meetup/members/bob", []string{"role"}, membersOf},
	{"POST", "/tenants/acme/events/meetup/members:batch", []string{"set", "remove"}, membersOf},
}

// FuzzProvisioningBodies: no body makes a provisioning call fail with
// 5xx, panic, or answer other than described; certainly-bad bodies get
// their 4xx Matrix error; a refused call changes nothing.
func FuzzProvisioningBodies(f *testing.F) {
	for _, seed := range []struct {
		route uint8
		body  string
	}{
		{0, `{"displayname":"Fuzz"}`}, {0, `{"displayname":"Fuzz","avatar_url":"mxc://openmeet.test/abc"}`},
		{0, `{"displayname":"","avatar_url":"https://127.0.0.1/a.png"}`}, {0, `{"displayname":"x","avatar_url":"file:///etc/passwd"}`},
		{0, `{"displayname":"x","extra":1}`}, {0, `{"DisplayName":"case"}`}, {0, `null`}, {0, `[]`}, {0, `"x"`}, {0, `{`},
		{1, `{"name":"Fuzz","topic":"t","visibility":"public","ensure_room":false}`}, {1, `{"name":"Fuzz","visibility":"secret"}`},
		{1, `{"name":1}`}, {1, `{"name":"a\u0000b"}`}, {2, `{"name":"Group","visibility":"private"}`}, {2, "{\"name\":\"\xff\"}"},
		{3, `{"role":"speaker"}`}, {3, `{"role":"owner"}`}, {3, `{"role":null}`}, {3, `{}`},
		{4, `{"set":[{"user_slug":"bob","role":"moderator"}],"remove":[]}`}, {4, `{"set":[{"user_slug":"bob","role":"host"}],"remove":["bob"]}`},
		{4, `{"set":[{"user_slug":"nobody","role":"host"}]}`}, {4, `{"remove":["ada","ada"]}`}, {4, `{"set":{}}`},
	} {
		f.Add(seed.route, []byte(seed.body))
	}
	for i := range provisioningRoutes {
		f.Add(uint8(i), []byte(`{"x":"`+strings.Repeat("x", fuzzMaxBody)+`"}`))
	}
	fb := startFuzzBridge(f)
	f.Fuzz(func(t *testing.T, routeNo uint8, body []byte) {
		route := provisioningRoutes[int(routeNo)%len(provisioningRoutes)]
		before := route.state(t, fb)
		status, raw := fb.do(t, route.method, api.ProvisionPrefix+route.path, fb.secret, body)
		route.path = api.ProvisionPrefix + route.path
		checkBodyAnswer(t, fb, route, body, status, raw, false)
		if status >= 400 {
			if after := route.state(t, fb); after != before {
				t.Fatalf("%s %s with %s was refused (%d %s) but changed %q to %q", route.method, route.path, short(body), status, raw, before, after)
			}
		}
	})
}

var clientRoutes = []bodyRoute{
	{method: "PUT", path: "/rooms/events/meetup/send/fuzz-send", fields: []string{"body", "formatted_body", "reply_to"}},
	{method: "PUT", path: "/rooms/events/meetup/edit/fuzz-edit", fields: []string{"event_id", "body", "formatted_body"}},
	{method: "PUT", path: "/rooms/events/meetup/react/fuzz-react", fields: []string{"event_id", "key"}},
	{method: "PUT", path: "/rooms/events/meetup/redact/fuzz-redact", fields: []string{"event_id", "reason"}},
	{method: "PUT", path: "/rooms/events/meetup/typing", fields: []string{"typing", "timeout_ms"}},
	{method: "POST", path: "/rooms/events/meetup/receipt", fields: []string{"event_id"}},
}

// FuzzClientBodies: no body makes a client API call panic, answer 500 or
// answer other than described; certainly-bad bodies get their 4xx Matrix
// error. (A good body may get 502 here, where the call needs the absent
// homeserver.)
func FuzzClientBodies(f *testing.F) {
	for _, seed := range []struct {
		route uint8
		body  string
	}{
		{0, `{"body":"hi"}`}, {0, `{"body":"hi","formatted_body":"<b>hi</b>","reply_to":"` + fuzzKnownEvt + `"}`},
		{0, `{"body":"hi","reply_to":"not an event"}`}, {0, `{"body":"   "}`}, {0, `{"body":"a\u0000\u2028b"}`},
		{0, `{"Body":"case"}`}, {0, `{"body":"x","txn_id":"forged"}`}, {0, `null`}, {0, `[1]`}, {0, `{"body":`},
		{1, `{"event_id":"` + fuzzKnownEvt + `","body":"edited"}`}, {1, `{"event_id":"$other:x","body":"edited"}`}, {1, `{"event_id":"","body":"x"}`},
		{2, `{"event_id":"` + fuzzKnownEvt + `","key":"👍"}`}, {2, `{"event_id":"` + fuzzKnownEvt + `","key":""}`},
		{3, `{"event_id":"` + fuzzKnownEvt + `","reason":"spam"}`}, {3, `{"event_id":"$a\u0000b"}`},
		{4, `{"typing":true,"timeout_ms":5000}`}, {4, `{"typing":true,"timeout_ms":-1}`}, {4, `{"typing":"yes"}`}, {4, `{"timeout_ms":1e99}`}, {4, `null`}, {4, " \n null"}, {5, `[]`},
		{5, `{"event_id":"` + fuzzKnownEvt + `"}`}, {5, `{"event_id":"$` + strings.Repeat("x", 300) + `"}`},
	} {
		f.Add(seed.route, []byte(seed.body))
	}
	for i := range clientRoutes {
		f.Add(uint8(i), []byte(`{"x":"`+strings.Repeat("x", fuzzMaxBody)+`"}`))
	}
	fb := startFuzzBridge(f)
	f.Fuzz(func(t *testing.T, routeNo uint8, body []byte) {
		route := clientRoutes[int(routeNo)%len(clientRoutes)]
		route.path = api.ClientPrefix + route.path
		status, raw := fb.do(t, route.method, route.path, fb.jwt, body)
		checkBodyAnswer(t, fb, route, body, status, raw, true)
	})
}

package bridge_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/openmeet-team/openmeet-bridge/api"
	"github.com/openmeet-team/openmeet-bridge/bridge"
	"github.com/openmeet-team/openmeet-bridge/internal/harness"
)

// limitAnswer is a client API answer with what a 429 says about retrying.
type limitAnswer struct {
	status       int
	errcode      string
	retryAfter   int   // Retry-After, whole seconds
	retryAfterMS int64 // retry_after_ms of the body
}

// callLimited sends a client API request, checks the answer against the
// OpenAPI description and reads its retry hints.
func callLimited(t *testing.T, b *bridge.Bridge, token, method, path string, body any) limitAnswer {
	t.Helper()
	var reader io.Reader
	if body != nil {
		data, _ := json.Marshal(body)
		reader = bytes.NewReader(data)
	}
	req, _ := http.NewRequest(method, "http://"+b.Addr().String()+"/_openmeet/client/v1"+path, reader)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	checkAgainstOpenAPI(t, req, resp.StatusCode, raw)
	var out struct {
		ErrCode      string `json:"errcode"`
		RetryAfterMS int64  `json:"retry_after_ms"`
	}
	_ = json.Unmarshal(raw, &out)
	retryAfter, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
	return limitAnswer{status: resp.StatusCode, errcode: out.ErrCode, retryAfter: retryAfter, retryAfterMS: out.RetryAfterMS}
}

// isRetryLater reports whether an answer is a well-formed 429: the errcode,
// and the same positive wait in the body and (rounded up) in the header.
func (a limitAnswer) isRetryLater() bool {
	return a.status == http.StatusTooManyRequests && a.errcode == "M_LIMIT_EXCEEDED" && a.retryAfterMS > 0 &&
		int64(a.retryAfter) == (a.retryAfterMS+999)/1000
}

// flood sends up to n requests made by req and returns how many were
// accepted (2xx) before the first 429, and that 429.
func flood(t *testing.T, n int, req func(i int) limitAnswer) (accepted int, refused limitAnswer) {
	t.Helper()
	for i := range n {
		a := req(i)
		if a.status == http.StatusTooManyRequests {
			return accepted, a
		}
		if a.status < 200 || a.status > 299 {
			t.Fatalf("request %d: %d %s", i, a.status, a.errcode)
		}
		accepted++
	}
	return accepted, limitAnswer{}
}

// slowBucket is a limit whose bucket does not noticeably refill during a
// test: the burst is all a flood gets.
func slowBucket(burst int) api.RateLimit { return api.RateLimit{Rate: 0.001, Burst: burst} }

// TestClientRateLimits: one user flooding sends, typing, receipts and
// stream tickets gets exactly the burst, then 429 M_LIMIT_EXCEEDED with
// retry_after_ms and Retry-After, and nothing more is stored; another user
// of the same room is not held back; the refusals are counted by action.
func TestClientRateLimits(t *testing.T) {
	hs := harness.SharedSynapse(t)
	cfg := clientConfig(t, hs)
	limits := &cfg.ClientAPI.Limits
	limits.Send, limits.Typing, limits.Receipt, limits.Ticket = slowBucket(4), slowBucket(3), slowBucket(3), slowBucket(3)
	b := startBridge(t, cfg)
	tenant, ada, bob := meetupWithAdaAndBob(t, b, b)
	room := "/rooms/events/meetup"

	accepted, refused := flood(t, 20, func(i int) limitAnswer {
		return callLimited(t, b, ada, "PUT", fmt.Sprintf("%s/send/flood-%d", room, i), map[string]string{"body": fmt.Sprintf("flood %d", i)})
	})
	if accepted != 4 || !refused.isRetryLater() {
		t.Fatalf("send flood: %d accepted, then %+v; want 4, then a 429 with retry hints", accepted, refused)
	}
	// A token comes back after 1/rate = 1000 s; the hint says about that.
	if refused.retryAfterMS < 900_000 || refused.retryAfterMS > 1_000_000 {
		t.Errorf("send retry_after_ms = %d, want about 1000 s", refused.retryAfterMS)
	}
	// The bucket is the user's, not the token's: a fresh token does not
	// start a fresh one.
	fresh := mintJWT(t, jwtSecret, tenant, "ada", time.Hour+time.Minute)
	if a := callLimited(t, b, fresh, "PUT", room+"/send/flood-fresh", map[string]string{"body": "fresh token"}); !a.isRetryLater() {
		t.Fatalf("send with a fresh token of the limited user: %+v", a)
	}
	adaID := fmt.Sprintf("@openmeet_%s_ada:%s", tenant, hs.ServerName)
	if entry, err := b.DB.Outbox.ByTxn(context.Background(), id.UserID(adaID), "flood-4"); err != nil || entry != nil {
		t.Fatalf("the refused send was stored: %+v %v", entry, err)
	}
	var sent struct {
		EventID string `json:"event_id"`
	}
	if code := call(t, b, bob, "PUT", room+"/send/bob-1", map[string]string{"body": "Bob is not held back"}, &sent); code != 200 && code != 202 {
		t.Fatalf("Bob's send while Ada is limited: %d", code)
	}

	accepted, refused = flood(t, 10, func(i int) limitAnswer {
		return callLimited(t, b, ada, "PUT", room+"/typing", map[string]bool{"typing": i%2 == 0})
	})
	if accepted != 3 || !refused.isRetryLater() {
		t.Fatalf("typing flood: %d accepted, then %+v", accepted, refused)
	}
	if a := callLimited(t, b, bob, "PUT", room+"/typing", map[string]bool{"typing": true}); a.status != 200 {
		t.Fatalf("Bob's typing while Ada is limited: %+v", a)
	}

	accepted, refused = flood(t, 10, func(int) limitAnswer {
		return callLimited(t, b, ada, "POST", room+"/receipt", map[string]string{"event_id": sent.EventID})
	})
	if sent.EventID == "" || accepted != 3 || !refused.isRetryLater() {
		t.Fatalf("receipt flood (event %q): %d accepted, then %+v", sent.EventID, accepted, refused)
	}

	tickets := func() int {
		var n int
		if err := b.DB.RawDB.QueryRow("SELECT COUNT(*) FROM stream_ticket WHERE tenant = $1 AND user_slug = 'ada'", tenant).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	accepted, refused = flood(t, 10, func(int) limitAnswer { return callLimited(t, b, ada, "POST", "/events/ticket", nil) })
	if accepted != 3 || !refused.isRetryLater() || tickets() != 3 {
		t.Fatalf("ticket flood: %d accepted, then %+v; %d tickets stored", accepted, refused, tickets())
	}
	if a := callLimited(t, b, bob, "POST", "/events/ticket", nil); a.status != 200 {
		t.Fatalf("Bob's ticket while Ada is limited: %+v", a)
	}

	_, metrics := get(t, "http://"+b.Addr().String()+"/metrics")
	for _, want := range []string{
		`openmeet_client_refused_total{action="send",reason="rate"} 2`,
		`openmeet_client_refused_total{action="typing",reason="rate"} 1`,
		`openmeet_client_refused_total{action="receipt",reason="rate"} 1`,
		`openmeet_client_refused_total{action="ticket",reason="rate"} 1`,
		`openmeet_client_refused_total{action="upload",reason="outbox_full"} 0`,
	} {
		if !bytes.Contains(metrics, []byte(want)) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// TestOutboxCapRefuses: while Synapse is down a user's sends wait in the
// outbox; once max_pending_outbox of them wait, a new one is refused with
// 429 and retry hints and not stored, while repeating a stored txn id
// still answers, and another user can still send. Once Synapse is back
// and the entries are delivered, the user can send again.
func TestOutboxCapRefuses(t *testing.T) {
	hs := harness.OwnSynapse(t, harness.SynapseOptions{})
	cfg := clientConfig(t, hs)
	cfg.ClientAPI.SendWait = 500 * time.Millisecond
	cfg.ClientAPI.Limits.MaxPendingOutbox = 3
	b := startBridge(t, cfg)
	eventually(t, 60*time.Second, "the bridge to be ready", func() bool { return b.HS.Ready() })
	tenant, ada, bob := meetupWithAdaAndBob(t, b, b)
	room := "/rooms/events/meetup"
	send := func(token, txnID string) limitAnswer {
		return callLimited(t, b, token, "PUT", room+"/send/"+txnID, map[string]string{"body": "while down " + txnID})
	}

	if err := hs.Pause(); err != nil {
		t.Fatal(err)
	}
	resumed := false
	defer func() {
		if !resumed {
			_ = hs.Resume()
		}
	}()
	for i := range 3 {
		if a := send(ada, fmt.Sprintf("down-%d", i)); a.status != http.StatusAccepted {
			t.Fatalf("send %d while Synapse is down: %+v, want 202", i, a)
		}
	}
	refused := send(ada, "down-3")
	if !refused.isRetryLater() || refused.retryAfterMS != 10_000 {
		t.Fatalf("send beyond max_pending_outbox: %+v, want 429 with retry_after_ms 10000", refused)
	}
	adaID := id.UserID(fmt.Sprintf("@openmeet_%s_ada:%s", tenant, hs.ServerName))
	ctx := context.Background()
	if n, err := b.DB.Outbox.PendingOf(ctx, adaID, 100); err != nil || n != 3 {
		t.Fatalf("Ada has %d pending entries (%v), want 3", n, err)
	}
	// A reaction adds an entry too, and is held to the same cap.
	if a := callLimited(t, b, ada, "PUT", room+"/react/down-r", map[string]string{"event_id": "$none", "key": "👍"}); !a.isRetryLater() {
		t.Fatalf("reaction beyond max_pending_outbox: %+v", a)
	}
	// Repeating a stored request adds nothing: it is answered as before.
	if a := send(ada, "down-1"); a.status != http.StatusAccepted {
		t.Fatalf("repeat of a pending send at the cap: %+v, want 202", a)
	}
	if a := send(bob, "bob-down"); a.status != http.StatusAccepted {
		t.Fatalf("Bob's send while Ada's outbox is full: %+v, want 202", a)
	}

	resumed = true
	if err := hs.Resume(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 90*time.Second, "Ada's waiting messages to be delivered", func() bool {
		n, err := b.DB.Outbox.PendingOf(ctx, adaID, 100)
		return err == nil && n == 0
	})
	if a := send(ada, "after"); a.status != http.StatusOK && a.status != http.StatusAccepted {
		t.Fatalf("send once the outbox drained: %+v", a)
	}
}

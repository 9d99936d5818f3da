package appservice

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// gauge reads a gauge without labels; ok is false when it is not exported.
func (ts *testServer) gauge(t testing.TB, name string) (value float64, ok bool) {
	t.Helper()
	return gaugeOf(t, ts.reg, name)
}

func gaugeOf(t testing.TB, reg *prometheus.Registry, name string) (value float64, ok bool) {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, fam := range families {
		if fam.GetName() == name && fam.GetType().String() == "GAUGE" && len(fam.GetMetric()) == 1 {
			return fam.GetMetric()[0].GetGauge().GetValue(), true
		}
	}
	return 0, false
}

// Every result of openmeet_appservice_transactions_total is exported from
// the start, at 0, so a rule sees the first db_error as an increase.
func TestTransactionResultsExistFromTheStart(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	families, err := ts.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, fam := range families {
		if fam.GetName() != "openmeet_appservice_transactions_total" {
			continue
		}
		for _, m := range fam.GetMetric() {
			got[m.GetLabel()[0].GetValue()] = true
		}
	}
	for _, result := range txnResults {
		if !got[result] {
			t.Errorf("result %q not exported before any transaction", result)
		}
	}
}

// The last-transaction gauge follows applied transactions and retries of
// them, not refused ones, and a new server reads it from the database.
func TestLastTransactionTimestamp(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	if v, ok := ts.gauge(t, "openmeet_appservice_last_transaction_timestamp_seconds"); !ok || v != 0 {
		t.Fatalf("before any transaction: %v %v", v, ok)
	}
	before := float64(time.Now().Add(-time.Millisecond).UnixMilli()) / 1000
	body := `{"events":[{"event_id":"$1","room_id":"!r:test.local","type":"m.room.message","sender":"@a:test.local","origin_server_ts":1,"content":{}}]}`
	if code, _ := ts.do(t, "PUT", "/_matrix/app/v1/transactions/1", testHSToken, body); code != 200 {
		t.Fatalf("transaction: %d", code)
	}
	applied, _ := ts.gauge(t, "openmeet_appservice_last_transaction_timestamp_seconds")
	if applied < before || applied > float64(time.Now().UnixMilli())/1000 {
		t.Fatalf("after a transaction: %v, want about now (%v)", applied, before)
	}
	if code, _ := ts.do(t, "PUT", "/_matrix/app/v1/transactions/2", testHSToken, "{not json"); code != 400 {
		t.Fatalf("bad transaction: %d", code)
	}
	if v, _ := ts.gauge(t, "openmeet_appservice_last_transaction_timestamp_seconds"); v != applied {
		t.Fatalf("a refused transaction moved it: %v", v)
	}
	for deadline := time.Now().Add(time.Second); float64(time.Now().UnixMilli())/1000 <= applied; {
		if time.Now().After(deadline) {
			t.Fatal("the clock does not move")
		}
		time.Sleep(time.Millisecond)
	}
	if code, _ := ts.do(t, "PUT", "/_matrix/app/v1/transactions/1", testHSToken, body); code != 200 {
		t.Fatalf("retry: %d", code)
	}
	if v, _ := ts.gauge(t, "openmeet_appservice_last_transaction_timestamp_seconds"); v <= applied {
		t.Fatalf("a retried transaction did not move it: %v", v)
	}

	// A server started on the same database starts from the stored time,
	// to the millisecond.
	_, at, ok, err := ts.db.EventLog.LastTxn(context.Background())
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	reg := prometheus.NewRegistry()
	fresh, err := NewServer(testConfig(), "test.local", ts.db, zerolog.Nop(), reg)
	if err != nil {
		t.Fatal(err)
	}
	if err := fresh.LoadLastTransaction(context.Background()); err != nil {
		t.Fatal(err)
	}
	if v, _ := gaugeOf(t, reg, "openmeet_appservice_last_transaction_timestamp_seconds"); v != float64(at.UnixMilli())/1000 {
		t.Fatalf("after a restart: %v, want %v", v, at)
	}
}

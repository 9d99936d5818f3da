package bridge_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/openmeet-team/openmeet-bridge/internal/harness"
	"github.com/openmeet-team/openmeet-bridge/migrate"
)

// benchTenant is the tenant of the generated deployment.
const benchTenant = "bench"

// BenchmarkMigrate migrates a generated deployment on a real Synapse:
// MIGRATE_BENCH_USERS users (default 1,000) that exist in Synapse, a tenth
// as many events and a hundredth as many groups whose rooms exist with
// their old aliases and a message, and five memberships per user, none of
// them joined yet (the most Synapse work per membership). It reports the
// wall time, the bridge's requests to Synapse and the CPU time of the
// bridge process (which also runs migrate) and of Synapse, then the time of
// a re-run, which must change nothing. Setup is not measured.
func BenchmarkMigrate(b *testing.B) {
	users := 1000
	if v := os.Getenv("MIGRATE_BENCH_USERS"); v != "" {
		var err error
		if users, err = strconv.Atoi(v); err != nil || users < 100 {
			b.Fatalf("MIGRATE_BENCH_USERS=%q: want a number ≥ 100", v)
		}
	}
	events, groups, perUser := users/10, max(users/100, 1), 5
	// MIGRATE_BENCH_JOINED=1: the members are already in their (public)
	// rooms, as in a real deployment, so the migration joins nobody.
	joined := os.Getenv("MIGRATE_BENCH_JOINED") == "1"
	preset := "private_chat"
	if joined {
		preset = "public_chat"
	}
	hs := harness.OwnSynapse(b, harness.SynapseOptions{LegacyUserRegex: `^@[^:]+_(?:` + benchTenant + `):localhost$`})
	ctx := context.Background()
	adminID, adminToken, err := hs.RegisterUser(ctx, "openmeet-admin", "pw", true)
	if err != nil {
		b.Fatal(err)
	}
	admin := &harness.MatrixUser{UserID: adminID, AccessToken: adminToken, HS: hs}
	d := &legacyDeployment{hs: hs, admin: admin, tenant: benchTenant}

	setup := time.Now()
	parallel(b, users, 8, func(i int) error {
		return registerAsAppservice(hs, fmt.Sprintf("u%05d_%s", i, benchTenant))
	})
	rooms := make([]string, events+groups)
	parallel(b, events+groups, 4, func(i int) error {
		kind, slug := portalOf(i, events)
		roomID, err := admin.CreateRoom(ctx, map[string]any{"preset": preset, "name": slug,
			"room_alias_name": kind + "-" + slug + "-" + benchTenant})
		if err == nil {
			rooms[i] = roomID
			_, err = admin.SendText(ctx, roomID, "from before the migration")
		}
		return err
	})
	b.Logf("setup: %d accounts, %d rooms in %s", users, events+groups, time.Since(setup).Round(time.Second))

	var export bytes.Buffer
	enc := json.NewEncoder(&export)
	_ = enc.Encode(rec{"kind": "tenant", "id": benchTenant})
	for i := range users {
		slug := fmt.Sprintf("u%05d", i)
		_ = enc.Encode(rec{"kind": "user", "tenant": benchTenant, "slug": slug, "displayname": "User " + slug,
			"matrix_user_id": "@" + slug + "_" + benchTenant + ":localhost"})
	}
	for i := range events + groups {
		kind, slug := portalOf(i, events)
		visibility := "private"
		if joined {
			visibility = "public"
		}
		_ = enc.Encode(rec{"kind": kind, "tenant": benchTenant, "slug": slug, "name": "Portal " + slug, "visibility": visibility,
			"room": "#" + kind + "-" + slug + "-" + benchTenant + ":localhost"})
	}
	memberships := users * perUser
	portals := events + groups
	for p := range portals {
		kind, slug := portalOf(p, events)
		n := memberships/portals + btoi(p < memberships%portals)
		for k := range n {
			role := map[bool]string{true: "attendee", false: "member"}[kind == "event"]
			if k == 0 {
				role = map[bool]string{true: "host", false: "owner"}[kind == "event"]
			}
			// Distinct users within a portal (stride 7, coprime to users unless 7 divides it).
			user := (p*37 + k*7) % users
			_ = enc.Encode(rec{"kind": "membership", "tenant": benchTenant, "portal_kind": kind, "portal_slug": slug,
				"user_slug": fmt.Sprintf("u%05d", user), "role": role})
		}
	}
	if joined {
		type pair struct{ room, user string }
		var pairs []pair
		for p := range portals {
			n := memberships/portals + btoi(p < memberships%portals)
			for k := range n {
				pairs = append(pairs, pair{rooms[p], fmt.Sprintf("@u%05d_%s:localhost", (p*37+k*7)%users, benchTenant)})
			}
		}
		start := time.Now()
		parallel(b, len(pairs), 8, func(i int) error { return joinAsAppservice(hs, pairs[i].room, pairs[i].user) })
		b.Logf("setup: %d members joined in %s", len(pairs), time.Since(start).Round(time.Second))
	}
	input := filepath.Join(b.TempDir(), "export.jsonl")
	if err := os.WriteFile(input, export.Bytes(), 0o600); err != nil {
		b.Fatal(err)
	}
	br := d.adoptingBridge(b)
	opts := migrate.Options{Input: input, BridgeURL: "http://" + br.Addr().String(), Secret: br.Config.Provisioning.SharedSecret,
		Concurrency: 4, Progress: benchLog{b}, ProgressEvery: 30 * time.Second}
	items := 1 + users + portals + memberships

	b.ResetTimer()
	for range b.N {
		for _, pass := range []string{"migrate", "re-run"} {
			start, hsCPU, selfCPU, before := time.Now(), cpuSeconds(hs.PID()), selfCPUSeconds(), br.HS.RequestCounts()
			report, err := migrate.Run(ctx, opts)
			if err != nil || report.Failed > 0 {
				b.Fatalf("%s: %v, %d failed, first: %+v", pass, err, report.Failed, report.Failures[:min(3, len(report.Failures))])
			}
			wall := time.Since(start)
			bridgeCPU, synapseCPU := selfCPUSeconds()-selfCPU, cpuSeconds(hs.PID())-hsCPU
			counts := diffCounts(br.HS.RequestCounts(), before)
			total := 0
			for _, n := range counts {
				total += n
			}
			changed := 0
			for _, c := range report.Kinds {
				changed += c.Changed
			}
			if pass == "re-run" && changed != 0 {
				b.Fatalf("re-run changed %d lines", changed)
			}
			b.Logf("%s of %d items (%d users, %d events, %d groups, %d memberships): %s wall, %.1f items/s; "+
				"%d changed, %d pending; bridge→Synapse requests %d (%.2f/item); bridge+migrate CPU %.1fs (%.2f ms/item), "+
				"Synapse CPU %.1fs (%.2f ms/item); bridge API %d reads, %d writes; %s",
				pass, items, users, events, groups, memberships, wall.Round(time.Millisecond), float64(items)/wall.Seconds(),
				changed, report.Pending, total, float64(total)/float64(items), bridgeCPU, 1000*bridgeCPU/float64(items),
				synapseCPU, 1000*synapseCPU/float64(items), report.Reads, report.Writes, formatCounts(counts))
			if pass == "migrate" {
				b.ReportMetric(wall.Seconds(), "wall_s")
				b.ReportMetric(float64(total)/float64(items), "synapse_req/item")
				b.ReportMetric(1000*synapseCPU/float64(items), "synapse_cpu_ms/item")
				b.ReportMetric(1000*bridgeCPU/float64(items), "bridge_cpu_ms/item")
			}
		}
	}
	b.StopTimer()
	// Spot check: the first event's room is the adopted one, with its history.
	var p portalOut
	provision(b, br, "GET", "/tenants/"+benchTenant+"/events/e0000", nil, &p)
	if p.RoomID != rooms[0] || p.State != "synced" {
		b.Fatalf("event e0000: %+v, want room %s", p, rooms[0])
	}
}

func portalOf(i, events int) (kind, slug string) {
	if i < events {
		return "event", fmt.Sprintf("e%04d", i)
	}
	return "group", fmt.Sprintf("g%04d", i-events)
}

func btoi(v bool) int {
	if v {
		return 1
	}
	return 0
}

type benchLog struct{ b *testing.B }

func (l benchLog) Write(p []byte) (int, error) {
	l.b.Logf("%s", bytes.TrimSpace(p))
	return len(p), nil
}

// parallel runs fn(0..n-1) with at most width at once and fails on the
// first error.
func parallel(b *testing.B, n, width int, fn func(i int) error) {
	b.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	sem := make(chan struct{}, width)
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := fn(i); err != nil {
				mu.Lock()
				first = err
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if first != nil {
		b.Fatal(first)
	}
}

// registerAsAppservice creates an account in the legacy namespace the way
// the bench's setup can do quickly (the real deployment used the admin API,
// which hashes a password for each).
func registerAsAppservice(hs *harness.Synapse, localpart string) error {
	body, _ := json.Marshal(map[string]any{"type": "m.login.application_service", "username": localpart, "inhibit_login": true})
	if err := postAsAppservice(hs, "/_matrix/client/v3/register", body); err != nil {
		return fmt.Errorf("register %s: %w", localpart, err)
	}
	return nil
}

// joinAsAppservice joins userID (in the legacy namespace) to a public room.
func joinAsAppservice(hs *harness.Synapse, roomID, userID string) error {
	path := "/_matrix/client/v3/join/" + url.PathEscape(roomID) + "?user_id=" + url.QueryEscape(userID)
	if err := postAsAppservice(hs, path, []byte("{}")); err != nil {
		return fmt.Errorf("join %s to %s: %w", userID, roomID, err)
	}
	return nil
}

// postAsAppservice POSTs body to Synapse's client API with the as_token
// and wants a 200.
func postAsAppservice(hs *harness.Synapse, path string, body []byte) error {
	req, _ := http.NewRequest(http.MethodPost, hs.URL+path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+hs.AS.ASToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return nil
}

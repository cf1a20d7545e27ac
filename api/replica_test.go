package api

import (
	"context"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tlsrpt/tlsrpt/db/dbtest"
	"github.com/tlsrpt/tlsrpt/ingest"
	"github.com/tlsrpt/tlsrpt/reports"
)

// TestReplicaPages serves the pages from a store with a real streaming
// replica (dbtest.NewReplicated) whose replay the test pauses: the
// overview reads the replica, so a domain added meanwhile is missing from
// it, except on the page the form redirects to (?done=, read from the
// primary); the lag notice shows once the lag passes the threshold (set
// to a millisecond, so that the test need not wait 30 s), not before, and
// /metrics exports the lag; after resuming, the overview shows the domain
// and the notice goes away.
func TestReplicaPages(t *testing.T) {
	d := dbtest.NewReplicated(t)
	var mu sync.Mutex
	now := testNow
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	// tick moves the clock past the lag cache of the pages.
	tick := func() { mu.Lock(); defer mu.Unlock(); now = now.Add(replicaLagTTL + time.Second) }
	d.Now = clock
	s, err := New(Config{DB: d, Pipeline: &ingest.Pipeline{Store: d, Limits: reports.DefaultLimits(), Now: clock},
		Log: slog.New(slog.DiscardHandler), PublicRate: unlimited, LoginRate: unlimited, Now: clock,
		ReplicaLagNotice: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	e := &testEnv{t: t, s: s, d: d}
	admin := e.login("admin")
	ctx := context.Background()
	const notice = "behind the primary"
	page := func(path string) string {
		t.Helper()
		rec := e.do(admin, request{method: "GET", path: path})
		if rec.Code != 200 {
			t.Fatalf("GET %s = %d: %s", path, rec.Code, rec.Body)
		}
		return rec.Body.String()
	}
	dbtest.WaitReplay(t, d)
	if body := page("/"); strings.Contains(body, notice) {
		t.Errorf("GET / with the replica caught up shows the lag notice")
	}

	if _, err := d.Read.Exec(ctx, `SELECT pg_wal_replay_pause()`); err != nil {
		t.Fatal(err)
	}
	resumed := false
	defer func() {
		if !resumed {
			_, _ = d.Read.Exec(ctx, `SELECT pg_wal_replay_resume()`)
		}
	}()
	rec := e.do(admin, request{method: "POST", path: "/domains", form: url.Values{"domain": {"replica.example"}}, withCSRF: true})
	if rec.Code != 303 || rec.Header().Get("Location") != "/?done=added" {
		t.Fatalf("POST /domains = %d %s", rec.Code, rec.Header().Get("Location"))
	}
	if body := page("/?done=added"); !strings.Contains(body, "replica.example") {
		t.Errorf("GET /?done=added (right after the change: the primary) does not list the domain just added")
	}
	dbtest.WaitReceive(t, d)
	tick()
	body := page("/")
	if strings.Contains(body, "replica.example") {
		t.Errorf("GET / (the replica, replay paused) lists the domain added after the pause")
	}
	if !strings.Contains(body, notice) {
		t.Errorf("GET / with replay paused behind a write and a 1 ms threshold has no lag notice")
	}
	if m := e.do(anonymous, request{method: "GET", path: "/metrics"}).Body.String(); !strings.Contains(m, "tlsrpt_replica_lag_seconds ") {
		t.Errorf("/metrics has no tlsrpt_replica_lag_seconds")
	}
	s.cfg.ReplicaLagNotice = time.Hour
	if body := page("/"); strings.Contains(body, notice) {
		t.Errorf("GET / with a lag under the threshold (1 h) shows the lag notice")
	}

	if _, err := d.Read.Exec(ctx, `SELECT pg_wal_replay_resume()`); err != nil {
		t.Fatal(err)
	}
	resumed = true
	dbtest.WaitReplay(t, d)
	s.cfg.ReplicaLagNotice = time.Millisecond
	tick()
	body = page("/")
	if !strings.Contains(body, "replica.example") {
		t.Errorf("GET / after resuming does not list the domain")
	}
	if strings.Contains(body, notice) {
		t.Errorf("GET / after resuming still shows the lag notice")
	}
}

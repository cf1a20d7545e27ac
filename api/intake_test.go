package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/db/dbtest"
	"github.com/tlsrpt/tlsrpt/ingest"
	"github.com/tlsrpt/tlsrpt/reports"
	"github.com/tlsrpt/tlsrpt/rollout"
	"github.com/tlsrpt/tlsrpt/rollout/dnstest"
)

// posted is the answer to one POST /tlsrpt over HTTP.
type posted struct {
	status     int
	retryAfter string
	message    string
}

// postHTTP posts body to url as a TLS report.
func postHTTP(t *testing.T, c *http.Client, url string, body []byte) posted {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+"/tlsrpt", bytes.NewReader(body))
	if err != nil {
		t.Error(err)
		return posted{}
	}
	req.Header.Set("Content-Type", "application/tlsrpt+json")
	resp, err := c.Do(req)
	if err != nil {
		t.Error(err)
		return posted{}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var res struct {
		Message string
		Error   struct{ Message string }
	}
	if err := json.Unmarshal(b, &res); err != nil {
		t.Errorf("POST /tlsrpt = %d, not JSON: %.200s", resp.StatusCode, b)
	}
	msg := res.Message
	if msg == "" {
		msg = res.Error.Message
	}
	return posted{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"), message: msg}
}

// TestPostGroupCommit posts distinct reports, the same reports three times
// at once and broken bodies, all concurrently over keep-alive connections:
// each request gets its own answer, every report answered 200 is stored
// exactly once, and the requests shared transactions.
func TestPostGroupCommit(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.Intake = ingest.BatcherOptions{MaxDelay: 20 * time.Millisecond} })
	srv := httptest.NewServer(e.s.Handler())
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 32, MaxConnsPerHost: 32}, Timeout: time.Minute}

	type input struct {
		kind string // "new", "dup", "broken", "refused"
		id   string
		body []byte
	}
	var ins []input
	for i := range 100 {
		ins = append(ins, input{"new", fmt.Sprintf("n%d", i), reportJSONBody(t, "sender.example", fmt.Sprintf("n%d", i))})
	}
	for i := range 10 {
		for range 3 {
			ins = append(ins, input{"dup", fmt.Sprintf("d%d", i), reportJSONBody(t, "sender.example", fmt.Sprintf("d%d", i))})
		}
	}
	for i := range 6 {
		ins = append(ins, input{"broken", fmt.Sprintf("b%d", i), fmt.Appendf(nil, `{"organization-name":"x","report-id":"b%d"`, i)})
	}
	// Valid reports the store refuses (a range before 2000, db/partitions.go):
	// refused alone, not with the reports batched with them.
	year := []byte(rollout.UTCDay(testNow).AddDate(0, 0, -2).Format("2006-")) // reportJSONBody's day
	for i := range 4 {
		body := bytes.ReplaceAll(reportJSONBody(t, "sender.example", fmt.Sprintf("old%d", i)), year, []byte("1999-"))
		ins = append(ins, input{"refused", fmt.Sprintf("old%d", i), body})
	}
	answers := make([]posted, len(ins))
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, in := range ins {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			answers[i] = postHTTP(t, client, srv.URL, in.body)
		}()
	}
	close(start)
	wg.Wait()

	storedPerDup := map[string]int{}
	want := map[string]bool{}
	for i, in := range ins {
		a := answers[i]
		switch in.kind {
		case "new":
			if a.status != http.StatusOK || a.message != "report stored" {
				t.Errorf("POST new %s = %+v, want 200 stored", in.id, a)
			}
		case "dup":
			if a.status != http.StatusOK {
				t.Errorf("POST dup %s = %+v, want 200", in.id, a)
			}
			if a.message == "report stored" {
				storedPerDup[in.id]++
			} else if a.message != "report already stored" {
				t.Errorf("POST dup %s = %+v, want stored or already stored", in.id, a)
			}
		case "broken", "refused":
			if a.status != http.StatusBadRequest || a.message == "" {
				t.Errorf("POST %s %s = %+v, want 400 with a reason", in.kind, in.id, a)
			}
		}
		if a.status == http.StatusOK {
			day := rollout.UTCDay(testNow).AddDate(0, 0, -2) // reportJSONBody's day
			want[tortureKey("sender.example", in.id, day, day.Add(24*time.Hour-time.Second))] = true
		}
	}
	for i := range 10 {
		if n := storedPerDup[fmt.Sprintf("d%d", i)]; n != 1 {
			t.Errorf("report d%d posted three times at once: answered \"stored\" %d times, want 1", i, n)
		}
	}
	seen := storedReportKeys(t, e.d)
	for k := range want {
		if seen[k] != 1 {
			t.Errorf("report %q answered 200, stored %d times", k, seen[k])
		}
	}
	if len(seen) != len(want) || len(want) != 110 {
		t.Errorf("%d reports stored, %d answered 200; want 110 each", len(seen), len(want))
	}
	st := e.s.IntakeStats()
	if st.Reports != 130 || st.Batches == 0 || st.Batches > int64(len(ins))/2 {
		t.Errorf("IntakeStats() = %+v for %d concurrent requests: want 130 reports in grouped batches", st, len(ins))
	}
	t.Logf("%d requests, %d batches", len(ins), st.Batches)
}

// TestPostStoreDown makes the database refuse connections: POST /tlsrpt
// answers 503 with Retry-After from the failed batch, not after a
// timeout, and the next POST at once; when the database is back, 200.
func TestPostStoreDown(t *testing.T) {
	e := newTestEnv(t, func(c *Config) {
		c.Intake = ingest.BatcherOptions{StoreTimeout: time.Minute, DownFor: 2 * time.Second}
	})
	ctx := context.Background()
	setDown := dbtest.Outage(t, e.d)
	post := func(id string) *httpRec {
		return e.do(who{remote: "192.0.2.9:1"}, request{method: "POST", path: "/tlsrpt", body: string(reportJSONBody(t, "sender.example", id)), ctype: "application/tlsrpt+json"})
	}
	if rec := post("up"); rec.Code != http.StatusOK {
		t.Fatalf("POST = %d %s", rec.Code, rec.Body)
	}
	setDown(true)
	t.Cleanup(func() { setDown(false) })
	for i, limit := range []time.Duration{10 * time.Second, time.Second} {
		t0 := time.Now()
		rec := post(fmt.Sprintf("down%d", i))
		el := time.Since(t0)
		if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
			t.Errorf("POST %d with the database down = %d, Retry-After %q; want 503 with it", i, rec.Code, rec.Header().Get("Retry-After"))
		}
		if el > limit {
			t.Errorf("POST %d with the database down took %s, want under %s (StoreTimeout is a minute)", i, el, limit)
		}
	}
	setDown(false)
	ok := false
	for range 100 {
		if rec := post("back"); rec.Code == http.StatusOK {
			ok = true
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !ok {
		t.Fatal("POST never answered 200 after the database came back")
	}
	var n int
	if err := e.d.Pool.QueryRow(ctx, `SELECT count(*) FROM reports WHERE report_id LIKE 'down%'`).Scan(&n); err != nil || n != 0 {
		t.Errorf("reports answered 503 and stored: %d, %v", n, err)
	}
}

// TestPostTwoInstances runs two servers, each with its own pool, on one
// database, as two tlsrpt instances behind a load balancer: the same
// report posted to both at once is stored once, and both answer 200.
func TestPostTwoInstances(t *testing.T) {
	url := dbtest.NewURL(t, true)
	ctx := context.Background()
	var urls []string
	var d *db.DB
	// One clock for both instances, their stores and the reports' days.
	now := func() time.Time { return testNow }
	dns := dnstest.Start(t, "example.", "test-key.", "c2VjcmV0c2VjcmV0c2VjcmV0")
	for range 2 {
		di, err := db.Open(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(di.Close)
		di.Now = now
		s, err := New(Config{DB: di, Pipeline: &ingest.Pipeline{Store: di, Limits: reports.DefaultLimits(), Now: now},
			Log: slog.New(slog.DiscardHandler), PublicRate: unlimited, Now: now, Resolver: dns.Resolver()})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(s.Handler())
		t.Cleanup(srv.Close)
		urls = append(urls, srv.URL)
		d = di
	}
	const n = 30
	answers := make([][2]posted, n)
	var wg sync.WaitGroup
	for i := range n {
		body := reportJSONBody(t, "sender.example", fmt.Sprintf("twice-%d", i))
		start := make(chan struct{})
		for k := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				answers[i][k] = postHTTP(t, http.DefaultClient, urls[k], body)
			}()
		}
		close(start)
	}
	wg.Wait()
	for i, a := range answers {
		if a[0].status != http.StatusOK || a[1].status != http.StatusOK {
			t.Errorf("report %d posted to both: %+v; want 200 from both", i, a)
			continue
		}
		stored := 0
		for _, x := range a {
			if x.message == "report stored" {
				stored++
			}
		}
		if stored != 1 {
			t.Errorf("report %d posted to both: %q and %q; want one stored, one already stored", i, a[0].message, a[1].message)
		}
	}
	seen := storedReportKeys(t, d)
	for k, c := range seen {
		if c != 1 {
			t.Errorf("report %s stored %d times", k, c)
		}
	}
	if len(seen) != n {
		t.Errorf("%d reports stored, want %d", len(seen), n)
	}
}

// TestServeShutdownDrains stops Serve while posted reports wait for their
// batch (a lock held on reports): Serve returns only after they are
// committed, and each of their requests was answered 200.
func TestServeShutdownDrains(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.Intake = ingest.BatcherOptions{Workers: 1} })
	ctx := context.Background()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serveCtx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- e.s.Serve(serveCtx, ln, "", "") }()
	base := "http://" + ln.Addr().String()

	// Hold inserts into reports until released.
	cfg := e.d.Pool.Config().ConnConfig.Copy()
	lock, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lock.Close(ctx) })
	tx, err := lock.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `LOCK TABLE reports IN SHARE MODE`); err != nil {
		t.Fatal(err)
	}

	const n = 8
	answers := make(chan posted, n)
	for i := range n {
		go func() {
			answers <- postHTTP(t, http.DefaultClient, base, reportJSONBody(t, "sender.example", fmt.Sprintf("drain-%d", i)))
		}()
	}
	// Wait until the first batch waits on the lock and the others queued
	// or joined it: every request is in the server.
	for i := 0; ; i++ {
		var waiting int
		if err := e.d.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		st := e.s.IntakeStats()
		if waiting > 0 && st.Batches == 0 && st.Waiting == n {
			break
		}
		if i > 1000 {
			t.Fatalf("the posts did not reach the intake: %d waiting on the lock, %+v", waiting, st)
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	select {
	case err := <-served:
		t.Fatalf("Serve() = %v before the queued reports were committed", err)
	case <-time.After(200 * time.Millisecond):
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve() = %v", err)
	}
	for range n {
		if a := <-answers; a.status != http.StatusOK || a.message != "report stored" {
			t.Errorf("POST during shutdown = %+v, want 200 stored", a)
		}
	}
	var stored int
	if err := e.d.Pool.QueryRow(ctx, `SELECT count(*) FROM reports WHERE report_id LIKE 'drain-%'`).Scan(&stored); err != nil || stored != n {
		t.Errorf("stored %d, %v; want %d", stored, err, n)
	}
}

// TestPostParseBudget: while the parse budget is spent, a post is refused
// with 503 and Retry-After before its body is read, and nothing of it is
// stored; once the budget is free the same report is taken.
func TestPostParseBudget(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.Intake = ingest.BatcherOptions{ParseBytes: 8 << 20} })
	srv := httptest.NewServer(e.s.Handler())
	defer srv.Close()
	body := reportJSONBody(t, "sender.example", "budget-1")
	held, err := e.s.intake.Reserve(8 << 20)
	if err != nil {
		t.Fatalf("Reserve(all) = %v", err)
	}
	got := postHTTP(t, srv.Client(), srv.URL, body)
	if got.status != http.StatusServiceUnavailable || got.retryAfter == "" {
		t.Fatalf("POST with the budget spent = %+v, want 503 with Retry-After", got)
	}
	var n int
	if err := e.d.Pool.QueryRow(context.Background(), `SELECT count(*) FROM reports`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("reports after a refused post = %d (%v), want 0", n, err)
	}
	held.Release()
	if got := postHTTP(t, srv.Client(), srv.URL, body); got.status != http.StatusOK {
		t.Fatalf("POST with the budget free = %+v, want 200", got)
	}
	// Every reservation was given back: the whole budget is free again.
	all, err := e.s.intake.Reserve(8 << 20)
	if err != nil {
		t.Fatalf("Reserve(all) after the posts = %v, want the budget free", err)
	}
	all.Release()
}

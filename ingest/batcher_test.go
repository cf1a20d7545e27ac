package ingest_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/db/dbtest"
	"github.com/tlsrpt/tlsrpt/ingest"
	"github.com/tlsrpt/tlsrpt/reports"
)

// datedReportJSON is reportJSON on another day.
func datedReportJSON(org, id string, day time.Time) string {
	return strings.ReplaceAll(reportJSON(org, id), "2026-03-01", day.Format("2006-01-02"))
}

// TestBatcherAnswersEach posts distinct reports, the same reports several
// times at once, broken bodies and reports the store refuses, all
// concurrently: each request gets its own answer, the reports answered
// stored or duplicate are in the database exactly once, the refused ones
// are not, and the requests shared transactions.
func TestBatcherAnswersEach(t *testing.T) {
	p, d := newPipeline(t)
	b := ingest.NewBatcher(p, d.StoreBatch, ingest.BatcherOptions{MaxDelay: 20 * time.Millisecond, MaxReports: 64})
	t.Cleanup(func() { b.Close(context.Background()) })

	type input struct {
		kind string // "new", "dup", "broken", "refused"
		id   string
		body []byte
	}
	var ins []input
	for i := range 80 {
		ins = append(ins, input{"new", fmt.Sprintf("n%d", i), gz(reportJSON("google.com", fmt.Sprintf("n%d", i)))})
	}
	for i := range 10 {
		for range 3 {
			ins = append(ins, input{"dup", fmt.Sprintf("d%d", i), []byte(reportJSON("microsoft.com", fmt.Sprintf("d%d", i)))})
		}
	}
	for i := range 8 {
		ins = append(ins, input{"broken", "", []byte(fmt.Sprintf(`{"organization-name":"x","report-id":"b%d"`, i))})
	}
	// A report dated before 2000 is a sender's bug the store refuses
	// (db/partitions.go): it must not fail the reports batched with it.
	for i := range 4 {
		ins = append(ins, input{"refused", fmt.Sprintf("r%d", i), []byte(datedReportJSON("yahoo.com", fmt.Sprintf("r%d", i), time.Date(1999, 6, 1, 0, 0, 0, 0, time.UTC)))})
	}

	outs := make([]ingest.Outcome, len(ins))
	errs := make([]error, len(ins))
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, in := range ins {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			outs[i], errs[i] = b.Report(context.Background(), in.body, reports.SourceHTTPS, fmt.Sprintf("192.0.2.%d", i%200))
		}()
	}
	close(start)
	wg.Wait()

	newPerDup := map[string]int{}
	for i, in := range ins {
		out, err := outs[i], errs[i]
		if err != nil {
			t.Errorf("Report(%s %s) error %v", in.kind, in.id, err)
			continue
		}
		switch in.kind {
		case "new":
			if out != (ingest.Outcome{Reports: 1, New: 1}) {
				t.Errorf("Report(new %s) = %+v, want stored", in.id, out)
			}
		case "dup":
			if out.Reports != 1 || out.New+out.Duplicates != 1 || out.Quarantined {
				t.Errorf("Report(dup %s) = %+v, want stored or duplicate", in.id, out)
			}
			newPerDup[in.id] += out.New
		case "broken", "refused":
			if out.Refused != 1 || out.New != 0 || !out.Quarantined || out.Reason == "" {
				t.Errorf("Report(%s %s) = %+v, want refused and quarantined with a reason", in.kind, in.id, out)
			}
		}
	}
	for id, n := range newPerDup {
		if n != 1 {
			t.Errorf("report %s posted 3 times: answered new %d times, want 1", id, n)
		}
	}
	if n := count(t, d, `SELECT count(*) FROM reports`); n != 90 {
		t.Errorf("reports rows = %d, want 90 (80 new + 10 posted thrice)", n)
	}
	if n := count(t, d, `SELECT count(*) FROM (SELECT report_id FROM reports GROUP BY 1 HAVING count(*) > 1) x`); n != 0 {
		t.Errorf("%d reports stored more than once", n)
	}
	if n := count(t, d, `SELECT count(*) FROM reports WHERE organization_name = 'yahoo.com'`); n != 0 {
		t.Errorf("%d refused reports stored", n)
	}
	if n := count(t, d, `SELECT count(*) FROM quarantine WHERE source = 'https'`); n != 12 {
		t.Errorf("quarantine rows = %d, want 12 (8 broken + 4 refused)", n)
	}
	st := b.Stats()
	if st.Reports != 110 {
		t.Errorf("Stats().Reports = %d, want 110 (80 new, 30 stored or duplicate)", st.Reports)
	}
	if st.Batches == 0 || st.Batches >= int64(len(ins))/2 {
		t.Errorf("Stats().Batches = %d for %d concurrent requests: want them grouped", st.Batches, len(ins))
	}
	t.Logf("%d requests, %d batches", len(ins), st.Batches)
}

// blockReports takes a lock on reports that makes every insert wait until
// release is called, and returns once it holds it.
func blockReports(t *testing.T, url string) (release func()) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `LOCK TABLE reports IN SHARE MODE`); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			tx.Rollback(ctx)
			conn.Close(ctx)
		})
	}
	t.Cleanup(release)
	return release
}

// waitFor polls cond every 10 ms for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for range 1000 {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

// TestBatcherBlockedStore holds the store busy (a lock on reports): the
// queue fills and the next request is refused at once; a request whose
// caller leaves still gets its report stored; Close refuses new reports
// and returns only when the queued ones are committed.
func TestBatcherBlockedStore(t *testing.T) {
	url := dbtest.NewURL(t, true)
	ctx := context.Background()
	d, err := db.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	p := &ingest.Pipeline{Store: d, Limits: reports.DefaultLimits(), Now: func() time.Time { return testNow }}
	b := ingest.NewBatcher(p, d.StoreBatch, ingest.BatcherOptions{Workers: 1, Queue: 3, Full: 3 * time.Second})

	release := blockReports(t, url)
	type answer struct {
		out ingest.Outcome
		err error
	}
	answers := make(chan answer, 10)
	post := func(ctx context.Context, id string) {
		out, err := b.Report(ctx, []byte(reportJSON("google.com", id)), reports.SourceHTTPS, "192.0.2.1")
		answers <- answer{out, err}
	}
	// The first report's batch waits on the lock.
	go post(ctx, "q0")
	waitFor(t, "the first batch to wait on the lock", func() bool {
		return count(t, d, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`) == 1
	})
	// Three more fill the queue; the caller of one of them leaves.
	leave, cancel := context.WithCancel(ctx)
	go post(leave, "q1")
	go post(ctx, "q2")
	go post(ctx, "q3")
	waitFor(t, "three queued reports", func() bool { return ingest.QueueLen(b) == 3 })

	t0 := time.Now()
	_, err = b.Report(ctx, []byte(reportJSON("google.com", "q4")), reports.SourceHTTPS, "192.0.2.1")
	var re *ingest.RetryError
	if !errors.As(err, &re) || !errors.Is(err, ingest.ErrRetryLater) || re.RetryAfterSeconds() != "3" {
		t.Fatalf("Report() with the queue full = %v, want a RetryError of 3 s", err)
	}
	if el := time.Since(t0); el > time.Second {
		t.Errorf("Report() with the queue full took %s: it must not wait", el)
	}
	cancel()
	if a := <-answers; !errors.Is(a.err, context.Canceled) {
		t.Fatalf("the left request's Report() = %+v, %v; want context.Canceled", a.out, a.err)
	}

	closed := make(chan error, 1)
	go func() { closed <- b.Close(ctx) }()
	waitFor(t, "Close to refuse new reports", func() bool {
		_, err := b.Report(ctx, []byte(reportJSON("google.com", "late")), reports.SourceHTTPS, "192.0.2.1")
		return errors.Is(err, ingest.ErrClosed)
	})
	select {
	case err := <-closed:
		t.Fatalf("Close() = %v while the queued reports wait on the lock", err)
	case <-time.After(100 * time.Millisecond):
	}
	if st := b.Stats(); st.Waiting != 4 || st.Batches != 0 {
		t.Errorf("Stats() before the release = %+v, want 4 waiting, no batch", st)
	}
	release()
	if err := <-closed; err != nil {
		t.Fatalf("Close() = %v", err)
	}
	if st := b.Stats(); st.Waiting != 0 || st.Reports != 4 {
		t.Errorf("Stats() after Close = %+v, want 4 reports, none waiting", st)
	}
	for range 3 {
		if a := <-answers; a.err != nil || a.out != (ingest.Outcome{Reports: 1, New: 1}) {
			t.Errorf("queued Report() = %+v, %v; want stored", a.out, a.err)
		}
	}
	// The left request's report was committed with the others; the late
	// and refused ones were not taken.
	if n := count(t, d, `SELECT count(*) FROM reports WHERE report_id IN ('q0', 'q1', 'q2', 'q3')`); n != 4 {
		t.Errorf("stored %d of the 4 accepted reports", n)
	}
	if n := count(t, d, `SELECT count(*) FROM reports WHERE report_id IN ('q4', 'late')`); n != 0 {
		t.Errorf("stored %d refused reports", n)
	}
}

// TestBatcherStoreDown makes the database refuse connections: the request
// gets a RetryError from the failed batch (not after a timeout), the next
// ones at once without waiting on the store, and once the database is back
// and DownFor has passed, reports are stored again.
func TestBatcherStoreDown(t *testing.T) {
	p, d := newPipeline(t)
	ctx := context.Background()
	b := ingest.NewBatcher(p, d.StoreBatch, ingest.BatcherOptions{StoreTimeout: time.Minute, DownFor: 2 * time.Second})
	t.Cleanup(func() { b.Close(ctx) })
	if out, err := b.Report(ctx, []byte(reportJSON("google.com", "up")), reports.SourceHTTPS, "x"); err != nil || out.New != 1 {
		t.Fatalf("Report() = %+v, %v", out, err)
	}

	setDown := dbtest.Outage(t, d)
	setDown(true)
	t.Cleanup(func() { setDown(false) })

	t0 := time.Now()
	_, err := b.Report(ctx, []byte(reportJSON("google.com", "down1")), reports.SourceHTTPS, "x")
	var re *ingest.RetryError
	if !errors.As(err, &re) || re.Err == nil {
		t.Fatalf("Report() with the database down = %v, want a RetryError with the store's error", err)
	}
	if el := time.Since(t0); el > 10*time.Second {
		t.Errorf("Report() with the database down took %s (StoreTimeout is a minute: the failure must answer, not the timeout)", el)
	}
	t0 = time.Now()
	_, err = b.Report(ctx, []byte(reportJSON("google.com", "down2")), reports.SourceHTTPS, "x")
	if !errors.As(err, &re) || re.Err != nil || re.After <= 0 {
		t.Fatalf("Report() while down = %v, want an immediate RetryError with the time left", err)
	}
	if el := time.Since(t0); el > time.Second {
		t.Errorf("Report() while down took %s: it must not wait", el)
	}

	setDown(false)
	waitFor(t, "reports to be stored again", func() bool {
		out, err := b.Report(ctx, []byte(reportJSON("google.com", "back")), reports.SourceHTTPS, "x")
		return err == nil && out.Reports == 1
	})
	if n := count(t, d, `SELECT count(*) FROM reports WHERE report_id LIKE 'down%'`); n != 0 {
		t.Errorf("%d reports refused while down are stored", n)
	}
}

// TestBatcherQueueBytes bounds the bytes waiting: with a bound below one
// report, a report is taken when nothing waits, and the next one is
// refused at once while the first is being stored.
func TestBatcherQueueBytes(t *testing.T) {
	p, d := newPipeline(t)
	ctx := context.Background()
	b := ingest.NewBatcher(p, d.StoreBatch, ingest.BatcherOptions{QueueBytes: 1})
	t.Cleanup(func() { b.Close(ctx) })

	release := blockReports(t, d.Pool.Config().ConnString())
	first := make(chan error, 1)
	go func() {
		_, err := b.Report(ctx, []byte(reportJSON("google.com", "big1")), reports.SourceHTTPS, "x")
		first <- err
	}()
	waitFor(t, "the first report to be taken", func() bool { return b.Stats().Waiting == 1 })
	_, err := b.Report(ctx, []byte(reportJSON("google.com", "big2")), reports.SourceHTTPS, "x")
	var re *ingest.RetryError
	if !errors.As(err, &re) || !strings.Contains(re.Reason, "bytes") {
		t.Errorf("second Report() over the byte bound = %v, want a RetryError about bytes", err)
	}
	release()
	if err := <-first; err != nil {
		t.Errorf("first Report() = %v", err)
	}
	if n := count(t, d, `SELECT count(*) FROM reports`); n != 1 {
		t.Errorf("stored %d reports, want 1", n)
	}
}

package ingest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/db/dbtest"
	"github.com/tlsrpt/tlsrpt/db/pgembed"
	"github.com/tlsrpt/tlsrpt/reports"
)

// TestImportCrash: an import commits asynchronously (db.ImportBatch), so
// a crash of PostgreSQL (its postmaster SIGKILLed mid-import) may lose the
// import's last commits, but only whole ones: after the restart, running
// the import again stores every report once, and the rollups are exactly
// those of the same files imported once, without a crash, into another
// database.
func TestImportCrash(t *testing.T) {
	dir := t.TempDir()
	const n = 2400
	for i := range n {
		day := time.Date(2026, 3, 1+i%28, 0, 0, 0, 0, time.UTC)
		js := fmt.Sprintf(`{"organization-name":"org%d.example","date-range":{"start-datetime":%q,"end-datetime":%q},
"contact-info":"tls@org.example","report-id":"crash-%d","policies":[{"policy":{"policy-type":"sts",
"policy-string":["version: STSv1","mode: %s","mx: mx.d%d.example","max_age: 86400"],"policy-domain":"d%d.example","mx-host":["mx.d%d.example"]},
"summary":{"total-successful-session-count":%d,"total-failure-session-count":%d},
"failure-details":[{"result-type":"certificate-expired","sending-mta-ip":"198.51.100.%d","receiving-mx-hostname":"mx.d%d.example","failed-session-count":%d}]}]}`,
			i%3, day.Format(time.RFC3339), day.Add(24*time.Hour-time.Second).Format(time.RFC3339), i,
			[]string{"testing", "enforce"}[i%2], i%20, i%20, i%20, 100+i%7, 1+i%5, i%9, i%20, 1+i%5)
		var b bytes.Buffer
		w := gzip.NewWriter(&b)
		w.Write([]byte(js))
		w.Close()
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("r%05d.json.gz", i)), b.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	files, err := ScanPaths([]string{dir})
	if err != nil {
		t.Fatal(err)
	}
	now := func() time.Time { return time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC) }
	importer := func(d *db.DB, async bool) *Importer {
		im := &Importer{Pipeline: &Pipeline{Store: d, Limits: reports.DefaultLimits(), Now: now, Log: testLogger(t)},
			StoreBatch: d.StoreBatch, BatchSize: 40}
		if async {
			im.StoreBatch = d.ImportBatch
		}
		return im
	}

	pg := startPrivatePG(t, filepath.Join(shortTempDir(t), "pg"))
	d, err := db.Open(t.Context(), pg.url)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := importer(d, true).Import(ctx, files)
		done <- err
	}()
	// Kill PostgreSQL once a third of the reports are in.
	for stored := 0; stored < n/3; {
		select {
		case err := <-done:
			t.Fatalf("the import ended (%v) before PostgreSQL was killed", err)
		case <-time.After(5 * time.Millisecond):
		}
		if err := d.Pool.QueryRow(t.Context(), `SELECT count(*) FROM reports`).Scan(&stored); err != nil {
			t.Fatal(err)
		}
	}
	if err := pg.srv.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err == nil {
		t.Fatal("the import went on without its database")
	}
	d.Close()

	// The backends of the killed postmaster exit when they notice; until
	// then the cluster cannot start again.
	deadline := time.Now().Add(30 * time.Second)
	for {
		srv, err := pgembedStart(t, pg.dir)
		if err == nil {
			pg.srv = srv
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("restarting PostgreSQL after the kill: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	d, err = db.Open(t.Context(), pg.url)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var survived int
	if err := d.Pool.QueryRow(t.Context(), `SELECT count(*) FROM reports`).Scan(&survived); err != nil {
		t.Fatal(err)
	}
	st, err := importer(d, true).Import(t.Context(), files)
	if err != nil {
		t.Fatalf("importing again after the crash: %v", err)
	}
	if err := d.Durable(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d reports survived the kill; the second import: %d new, %d duplicate", survived, st.New, st.Duplicates)
	if st.New+st.Duplicates != n || st.Duplicates != survived {
		t.Errorf("second import: %d new + %d duplicate, want %d in all with %d duplicates (what survived)", st.New, st.Duplicates, n, survived)
	}

	ref, err := db.Open(t.Context(), dbtest.NewURL(t, true))
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	if _, err := importer(ref, false).Import(t.Context(), files); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`SELECT count(*)::text || ' ' || count(DISTINCT (organization_name, report_id)) FROM reports`,
		`SELECT count(*)::text FROM report_policies`,
		`SELECT count(*)::text FROM failure_details`,
		`SELECT string_agg(x, ';' ORDER BY x) FROM (SELECT concat_ws(' ', policy_domain, day, organization_name, policy_type, trusted, reporter, reports, successful, failed) AS x FROM daily_policy_rollups) r`,
		`SELECT string_agg(x, ';' ORDER BY x) FROM (SELECT concat_ws(' ', policy_domain, day, result_type, receiving_mx, trusted, failed) AS x FROM daily_failure_rollups) r`,
		`SELECT string_agg(x, ';' ORDER BY x) FROM (SELECT concat_ws(' ', policy_domain, day, mode, trusted, reports) AS x FROM daily_mode_rollups) r`,
		`SELECT string_agg(x, ';' ORDER BY x) FROM (SELECT concat_ws(' ', policy_domain, day, organization_name, sending_range, result_type, trusted, reporter, failed) AS x FROM daily_sender_rollups) r`,
		`SELECT string_agg(x, ';' ORDER BY x) FROM (SELECT concat_ws(' ', policy_domain, day, trusted, sending_ip, failed) AS x FROM daily_ip_rollups) r`,
		`SELECT string_agg(x, ';' ORDER BY x) FROM (SELECT concat_ws(' ', domain, last_day) AS x FROM unlisted_domains) r`,
	} {
		var got, want string
		if err := d.Pool.QueryRow(t.Context(), q).Scan(&got); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		if err := ref.Pool.QueryRow(t.Context(), q).Scan(&want); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		if got != want {
			t.Errorf("after the crash and a second import, %s\n = %.300s\nwant (one import, no crash) %.300s", q, got, want)
		}
	}
}

// pgembedStart starts the private cluster in dir again, an error rather
// than a failure while the killed one's backends are still exiting.
func pgembedStart(t *testing.T, dir string) (*pgembed.Server, error) {
	t.Helper()
	return pgembed.Start(t.Context(), pgembed.Config{Dir: dir, NoFsync: true})
}

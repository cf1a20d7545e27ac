package ingest_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/ingest"
	"github.com/tlsrpt/tlsrpt/reports"
)

func write(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := writeFile(path, data); err != nil {
		t.Fatal(err)
	}
}

func writeFile(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}

func TestScanPathsMaildir(t *testing.T) {
	dir := t.TempDir()
	md := filepath.Join(dir, "Maildir")
	for _, sub := range []string{"cur", "new", "tmp", ".Sub/cur", ".Sub/new", ".Sub/tmp"} {
		if err := os.MkdirAll(filepath.Join(md, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write(t, filepath.Join(md, "cur", "1.host:2,S"), []byte("x"))
	write(t, filepath.Join(md, "new", "2.host"), []byte("x"))
	write(t, filepath.Join(md, "tmp", "3.host"), []byte("x"))
	write(t, filepath.Join(md, "dovecot-uidlist"), []byte("x"))
	write(t, filepath.Join(md, ".Sub", "new", "4.host"), []byte("x"))
	write(t, filepath.Join(dir, "plain", "a.json"), []byte("x"))
	write(t, filepath.Join(dir, "plain", ".hidden"), []byte("x"))
	files, err := ingest.ScanPaths([]string{dir, filepath.Join(dir, "plain", "a.json")})
	if err != nil {
		t.Fatalf("ScanPaths() = %v", err)
	}
	var got []string
	for _, f := range files {
		rel, _ := filepath.Rel(dir, f.Path)
		got = append(got, rel)
	}
	want := "Maildir/.Sub/new/4.host Maildir/cur/1.host:2,S Maildir/new/2.host plain/a.json"
	if strings.Join(sortedCopy(got), " ") != want {
		t.Errorf("ScanPaths() = %v, want %s", got, want)
	}
	if _, err := ingest.ScanPaths([]string{filepath.Join(dir, "missing")}); err == nil {
		t.Error("ScanPaths(missing) = nil error")
	}
}

func sortedCopy(s []string) []string {
	c := append([]string(nil), s...)
	for i := range c {
		for j := i + 1; j < len(c); j++ {
			if c[j] < c[i] {
				c[i], c[j] = c[j], c[i]
			}
		}
	}
	return c
}

func newImporter(d *db.DB, batch int) *ingest.Importer {
	return &ingest.Importer{
		Pipeline:   &ingest.Pipeline{Store: d, Limits: reports.DefaultLimits(), Now: func() time.Time { return testNow }},
		StoreBatch: d.StoreBatch,
		BatchSize:  batch,
	}
}

func TestImportMbox(t *testing.T) {
	_, d := newPipeline(t)
	dir := t.TempDir()
	m1 := mail("a@google.com", testNow, gz(reportJSON("google.com", "x1")))
	m2 := mail("a@google.com", testNow, gz(reportJSON("google.com", "x2")))
	none := []byte("From: b@example.org\r\nSubject: hi\r\n\r\nhello\r\n>From the start\r\n")
	var mbox []byte
	for _, m := range [][]byte{m1, none, m2} {
		mbox = append(mbox, "From MAILER-DAEMON Thu Mar  5 10:00:00 2026\n"...)
		mbox = append(mbox, m...)
		mbox = append(mbox, '\n')
	}
	write(t, filepath.Join(dir, "box"), mbox)
	files, err := ingest.ScanPaths([]string{dir})
	if err != nil {
		t.Fatal(err)
	}
	st, err := newImporter(d, 10).Import(context.Background(), files)
	if err != nil {
		t.Fatalf("Import() = %v", err)
	}
	if st.Inputs != 3 || st.New != 2 || len(st.RefusedInputs) != 1 || !strings.HasSuffix(st.RefusedInputs[0].Ref, "box#2") {
		t.Fatalf("Import(mbox) = %+v", st)
	}
	var raw []byte
	if err := d.Pool.QueryRow(context.Background(), `SELECT raw FROM quarantine`).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), "\r\nFrom the start") {
		t.Errorf("quarantined message = %q, want the >From line unquoted", raw)
	}
}

// corpusDirs are the sample reports: the copy in testdata, and the shared
// corpus when present.
func corpusDirs(t *testing.T) []string {
	dirs := []string{"../testdata/corpus"}
	if _, err := os.Stat("/work/shared/corpus/tlsrpt"); err == nil {
		dirs = append(dirs, "/work/shared/corpus/tlsrpt")
	}
	if _, err := os.Stat(dirs[0]); err != nil {
		t.Skipf("no corpus: %v", err)
	}
	return dirs
}

func TestImportCorpusTwice(t *testing.T) {
	_, d := newPipeline(t)
	ctx := context.Background()
	files, err := ingest.ScanPaths(corpusDirs(t))
	if err != nil {
		t.Fatal(err)
	}
	first, err := newImporter(d, 7).Import(ctx, files)
	if err != nil {
		t.Fatalf("Import() = %v", err)
	}
	if first.New == 0 || first.Reports != first.New+first.Duplicates {
		t.Fatalf("first Import() = %+v", first)
	}
	snap := snapshot(t, d)
	second, err := newImporter(d, 500).Import(ctx, files)
	if err != nil {
		t.Fatalf("second Import() = %v", err)
	}
	if second.New != 0 || second.Duplicates != first.Reports || second.Refused != first.Refused {
		t.Errorf("second Import() = %+v, first %+v; want all duplicates", second, first)
	}
	if again := snapshot(t, d); again != snap {
		t.Errorf("rows after the second import:\n%s\nafter the first:\n%s", again, snap)
	}
	// Every refusal has a reason.
	for _, r := range first.RefusedInputs {
		if r.Outcome.Reason == "" {
			t.Errorf("%s refused without a reason", r.Ref)
		}
	}
}

// snapshot summarises every table the import writes.
func snapshot(t *testing.T, d *db.DB) string {
	t.Helper()
	var b strings.Builder
	for _, q := range []string{
		`SELECT count(*), coalesce(sum(hashtext(organization_name || report_id || start_time::text || end_time::text)), 0) FROM reports`,
		`SELECT count(*), coalesce(sum(successful + failed), 0) FROM report_policies`,
		`SELECT count(*), coalesce(sum(failed_session_count), 0) FROM failure_details`,
		`SELECT count(*), coalesce(sum(reports * 1000 + successful + failed), 0) FROM daily_policy_rollups`,
		`SELECT count(*), coalesce(sum(failed), 0) FROM daily_failure_rollups`,
		`SELECT count(*), coalesce(sum(length(reason)), 0) FROM quarantine`,
	} {
		var n, s int64
		if err := d.Pool.QueryRow(context.Background(), q).Scan(&n, &s); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		fmt.Fprintf(&b, "%s: %d rows, sum %d\n", strings.Fields(q[strings.Index(q, "FROM"):])[1], n, s)
	}
	return b.String()
}

func TestImportOversized(t *testing.T) {
	_, d := newPipeline(t)
	dir := t.TempDir()
	write(t, filepath.Join(dir, "big.json"), []byte(strings.Repeat(" ", 2048)+reportJSON("google.com", "big")))
	write(t, filepath.Join(dir, "ok.json"), []byte(reportJSON("google.com", "ok")))
	im := newImporter(d, 10)
	im.Pipeline.Limits.MaxMessageBytes = 1024
	files, err := ingest.ScanPaths([]string{dir})
	if err != nil {
		t.Fatal(err)
	}
	st, err := im.Import(context.Background(), files)
	if err != nil {
		t.Fatalf("Import() = %v", err)
	}
	if st.New != 1 || len(st.RefusedInputs) != 1 || !strings.Contains(st.RefusedInputs[0].Outcome.Reason, "over 1024 bytes") {
		t.Fatalf("Import() = %+v", st)
	}
	var n int
	if err := d.Pool.QueryRow(context.Background(), `SELECT count(*) FROM quarantine`).Scan(&n); err != nil || n != 0 {
		t.Errorf("quarantine rows = %d, %v; want 0 (nothing was read)", n, err)
	}
}

// TestImportSkipsNonReports: a directory of reports with documentation
// and code beside them: those are skipped and counted as skipped, by name
// (SOURCES.md, LICENSE, main.go) or by content (notes.txt), never refused
// or quarantined; a file named explicitly is judged by its content.
func TestImportSkipsNonReports(t *testing.T) {
	_, d := newPipeline(t)
	ctx := context.Background()
	dir := t.TempDir()
	report, err := os.ReadFile(filepath.Join("..", "testdata", "corpus", "mta-sts-exporter", "examples", "microsoft-2.json"))
	if err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{
		"report.json": string(report),
		"SOURCES.md":  "# Sources\n\nreports from ...\n",
		"LICENSE":     "MIT License\n",
		"main.go":     "package main\n",
		"notes.txt":   "just some notes\nabout reports\n",
		"mail.eml":    "From: a@example.com\r\nSubject: not a report\r\n\r\nhello\r\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	files, err := ingest.ScanPaths([]string{dir})
	if err != nil {
		t.Fatal(err)
	}
	st, err := newImporter(d, 10).Import(ctx, files)
	if err != nil {
		t.Fatal(err)
	}
	var skipped []string
	for _, s := range st.SkippedInputs {
		skipped = append(skipped, filepath.Base(s.Ref))
		if s.Outcome.Reason == "" {
			t.Errorf("%s skipped without a reason", s.Ref)
		}
	}
	// The mail without a report is an input (a message), refused with its
	// reason and quarantined as before.
	if st.Reports != 1 || st.Skipped != 4 || strings.Join(skipped, ",") != "LICENSE,SOURCES.md,main.go,notes.txt" ||
		st.Refused != 1 || len(st.RefusedInputs) != 1 || filepath.Base(st.RefusedInputs[0].Ref) != "mail.eml" {
		t.Errorf("Import() = %+v; want 1 report, 4 skipped (LICENSE, SOURCES.md, main.go, notes.txt), mail.eml refused", st)
	}
	var quarantined int
	if err := d.Pool.QueryRow(ctx, `SELECT count(*) FROM quarantine`).Scan(&quarantined); err != nil || quarantined != 1 {
		t.Errorf("%d quarantine entries (%v), want 1 (the mail)", quarantined, err)
	}
}

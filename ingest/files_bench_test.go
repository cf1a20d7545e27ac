package ingest_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/tlsrpt/tlsrpt/db/dbtest"
	"github.com/tlsrpt/tlsrpt/ingest"
)

// BenchmarkImportFiles measures "tlsrpt import" end to end (BENCHMARKS.md
// target 3, 10,000 reports/s): gzip report files on disk, sniffed, parsed, and
// stored in batches of 500 into PostgreSQL.
//
//	go test -run '^$' -bench ImportFiles -benchtime 3x ./ingest/
func BenchmarkImportFiles(b *testing.B) {
	const perRun = 2000
	d := dbtest.New(b)
	ctx := context.Background()
	total := 0
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		dir := b.TempDir()
		for j := range perRun {
			name := filepath.Join(dir, fmt.Sprintf("r%05d.json.gz", j))
			writeB(b, name, gz(reportJSON("google.com", fmt.Sprintf("bench-%d-%d", i, j))))
		}
		files, err := ingest.ScanPaths([]string{dir})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		st, err := newImporter(d, ingest.DefaultImportBatch).Import(ctx, files)
		if err != nil {
			b.Fatal(err)
		}
		if st.New != perRun {
			b.Fatalf("Import() = %+v, want %d new", st, perRun)
		}
		total += st.New
	}
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "reports/s")
}

func writeB(b *testing.B, path string, data []byte) {
	b.Helper()
	if err := writeFile(path, data); err != nil {
		b.Fatal(err)
	}
}

package db_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"strings"
	"testing"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/db/dbtest"
	"github.com/tlsrpt/tlsrpt/reports"
)

// TestQuarantineBounds: a large input keeps its prefix with the hash and
// size of the whole; past the cap a new entry keeps no bytes (the ones
// kept stay); the retention deletes by age.
func TestQuarantineBounds(t *testing.T) {
	d := dbtest.New(t)
	ctx := context.Background()
	now := time.Now().UTC() // the one clock of this test
	d.QuarantineMaxBytes = 100 << 10

	big := bytes.Repeat([]byte("junk "), 1<<20/5)
	id, err := d.Quarantine(ctx, big, "not a report", reports.SourceHTTPS, "192.0.2.1")
	if err != nil {
		t.Fatalf("Quarantine(1 MiB) = %v", err)
	}
	e, err := d.QuarantineGet(ctx, id)
	sum := sha256.Sum256(big)
	if err != nil || e.Size != len(big) || e.Kept != db.QuarantineKeepBytes || !bytes.Equal(e.Raw, big[:db.QuarantineKeepBytes]) ||
		!bytes.Equal(e.SHA256, sum[:]) || !strings.Contains(e.Truncated, "only the first 65536 of") {
		t.Fatalf("QuarantineGet(1 MiB entry) = size %d kept %d truncated %q, %v; want the 64 KiB prefix, the whole's size and hash", e.Size, e.Kept, e.Truncated, err)
	}
	small, err := d.Quarantine(ctx, []byte("small junk"), "not a report", reports.SourceHTTPS, "192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	if e, err := d.QuarantineGet(ctx, small); err != nil || e.Truncated != "" || string(e.Raw) != "small junk" {
		t.Fatalf("QuarantineGet(small) = %+v, %v; want it whole", e, err)
	}
	// 64 KiB kept of the 100 KiB cap: another prefix would go over it.
	big2 := append([]byte("other "), big...)
	over, err := d.Quarantine(ctx, big2, "not a report", reports.SourceHTTPS, "192.0.2.2")
	if err != nil {
		t.Fatal(err)
	}
	if e, err := d.QuarantineGet(ctx, over); err != nil || e.Kept != 0 || e.Size != len(big2) || !strings.Contains(e.Truncated, "its cap is 102400") {
		t.Fatalf("QuarantineGet(over the cap) = kept %d size %d truncated %q, %v; want no bytes, the size and why", e.Kept, e.Size, e.Truncated, err)
	}
	list, err := d.QuarantineList(ctx, db.QuarantineFilter{})
	if err != nil || len(list) != 3 {
		t.Fatalf("QuarantineList() = %d entries, %v; want 3", len(list), err)
	}
	// Retention: the first entry is 100 days old, the rest new.
	if _, err := d.Pool.Exec(ctx, `UPDATE quarantine SET created_at = $1 WHERE id = $2`, now.AddDate(0, 0, -100), id); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Pool.Exec(ctx, `UPDATE quarantine SET created_at = $1 WHERE id <> $2`, now, id); err != nil {
		t.Fatal(err)
	}
	n, err := d.QuarantineBefore(ctx, now.AddDate(0, 0, -90))
	if err != nil || n != 1 {
		t.Fatalf("QuarantineBefore(90 days ago) = %d, %v; want 1", n, err)
	}
	if _, err := d.QuarantineGet(ctx, id); err == nil {
		t.Error("the 100-day-old entry is still there")
	}
}

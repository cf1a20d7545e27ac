package pgembed

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestSizeFor(t *testing.T) {
	const mb, gb = 1 << 20, 1 << 30
	for _, tc := range []struct {
		name      string
		mem, free uint64
		want      Sizing
	}{
		{"unknown machine keeps the defaults", 0, 0, Sizing{128, 1024}},
		{"small machine", 512 * mb, 5 * gb, Sizing{128, 1024}},
		{"2 GB, 20 GB free", 2 * gb, 20 * gb, Sizing{256, 2048}},
		{"24 GB, 76 GB free", 24 * gb, 76 * gb, Sizing{3072, 7782}},
		{"a large machine is capped", 256 * gb, 2000 * gb, Sizing{4096, 8192}},
		{"memory known, disk not", 16 * gb, 0, Sizing{2048, 1024}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := SizeFor(tc.mem, tc.free); got != tc.want {
				t.Errorf("SizeFor(%d, %d) = %+v, want %+v", tc.mem, tc.free, got, tc.want)
			}
		})
	}
}

func TestMemTotal(t *testing.T) {
	p := filepath.Join(t.TempDir(), "meminfo")
	if err := os.WriteFile(p, []byte("MemFree:  1000 kB\nMemTotal:       24576000 kB\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, want := memTotal(p), uint64(24576000)<<10; got != want {
		t.Errorf("memTotal() = %d, want %d", got, want)
	}
	if got := memTotal(filepath.Join(t.TempDir(), "absent")); got != 0 {
		t.Errorf("memTotal(absent) = %d, want 0", got)
	}
}

// TestSizingApplied starts a cluster as serve does (fsync on) and reads
// the settings back from the server: the sizing of this machine, and an
// ALTER SYSTEM of the operator's winning over it.
func TestSizingApplied(t *testing.T) {
	requirePostgres(t)
	dir := tempDir(t)
	s, err := Start(context.Background(), Config{Dir: dir})
	if err != nil {
		t.Fatalf("Start() = %v", err)
	}
	want := machineSizing(s.data)
	ctx := context.Background()
	show := func(name string) string {
		t.Helper()
		conn, err := pgx.Connect(ctx, s.URL("postgres"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var v string
		if err := conn.QueryRow(ctx, "SELECT setting FROM pg_settings WHERE name = $1", name).Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	// pg_settings gives shared_buffers in 8 kB pages, max_wal_size in MB.
	if got, want := show("shared_buffers"), want.SharedBuffersMB*128; got != itoa(want) {
		t.Errorf("shared_buffers = %s pages, want %d (%+v)", got, want, want)
	}
	if got := show("max_wal_size"); got != itoa(want.MaxWALMB) {
		t.Errorf("max_wal_size = %s MB, want %d", got, want.MaxWALMB)
	}
	if got := show("checkpoint_timeout"); got != "900" {
		t.Errorf("checkpoint_timeout = %s s, want 900", got)
	}
	conn, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "ALTER SYSTEM SET max_wal_size = '1234MB'"); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if s, err = Start(ctx, Config{Dir: dir}); err != nil {
		t.Fatalf("Start() again = %v", err)
	}
	defer s.Stop()
	if got := show("max_wal_size"); got != "1234" {
		t.Errorf("max_wal_size after ALTER SYSTEM = %s MB, want 1234", got)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

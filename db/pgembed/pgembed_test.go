package pgembed

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tlsrpt/tlsrpt/internal/testreq"
)

// requirePostgres skips the test when no server binaries exist, unless
// TLSRPT_TEST_REQUIRE names postgres.
func requirePostgres(t *testing.T) {
	t.Helper()
	_, err := FindBinDir(context.Background())
	testreq.Need(t, "postgres", "PostgreSQL's server binaries", err)
}

// tempDir returns a directory under os.TempDir() that the postgres user can
// reach (t.TempDir's parents are 0700 when running as root).
func tempDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "pgembed-test-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(d, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func start(t *testing.T, dir string) *Server {
	t.Helper()
	s, err := Start(context.Background(), Config{Dir: dir, NoFsync: true})
	if err != nil {
		t.Fatalf("Start() = %v", err)
	}
	return s
}

func ping(t *testing.T, url string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connecting to %s: %v", url, err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT 1").Scan(&n); err != nil || n != 1 {
		t.Fatalf("SELECT 1 = %d, %v", n, err)
	}
}

func postmasterPID(t *testing.T, s *Server) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.data, "postmaster.pid"))
	if err != nil {
		t.Fatalf("reading postmaster.pid: %v", err)
	}
	pid, err := strconv.Atoi(strings.SplitN(string(b), "\n", 2)[0])
	if err != nil {
		t.Fatalf("postmaster.pid: %v", err)
	}
	return pid
}

func TestStartStopRestart(t *testing.T) {
	requirePostgres(t)
	dir := filepath.Join(tempDir(t), "pg")
	s := start(t, dir)
	ping(t, s.URL("postgres"))
	if err := s.CreateDatabase(context.Background(), "tlsrpt"); err != nil {
		t.Fatalf("CreateDatabase() = %v", err)
	}
	if err := s.CreateDatabase(context.Background(), "tlsrpt"); err != nil {
		t.Fatalf("CreateDatabase() twice = %v", err)
	}
	ping(t, s.URL("tlsrpt"))
	pid := postmasterPID(t, s)
	if err := s.Stop(); err != nil {
		t.Fatalf("Stop() = %v", err)
	}
	// pg_ctl stop -w returns once postmaster.pid is gone, which the
	// postmaster removes just before it exits.
	for i := 0; isPostgres(pid); i++ {
		if i == 100 {
			t.Fatalf("postmaster %d still running 5s after Stop", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A second start reuses the cluster: the database is still there.
	s = start(t, dir)
	defer s.Stop()
	ping(t, s.URL("tlsrpt"))
}

func TestStalePID(t *testing.T) {
	requirePostgres(t)
	dir := filepath.Join(tempDir(t), "pg")
	s := start(t, dir)
	if err := s.Stop(); err != nil {
		t.Fatalf("Stop() = %v", err)
	}
	// What a crash leaves: a postmaster.pid naming a process that is gone.
	stale := "999999\n" + s.data + "\n0\n5432\n" + dir + "\n\n0 0\nready\n"
	if err := os.WriteFile(filepath.Join(s.data, "postmaster.pid"), []byte(stale), 0o600); err != nil {
		t.Fatal(err)
	}
	s = start(t, dir)
	defer s.Stop()
	ping(t, s.URL("postgres"))
}

func TestAdoptRunning(t *testing.T) {
	requirePostgres(t)
	dir := filepath.Join(tempDir(t), "pg")
	s := start(t, dir)
	defer s.Stop()
	// A second Start on a running cluster (another process, or one that
	// survived a crash of its parent) uses it and does not stop it.
	s2 := start(t, dir)
	ping(t, s2.URL("postgres"))
	if err := s2.Stop(); err != nil {
		t.Fatalf("Stop() of adopted = %v", err)
	}
	ping(t, s.URL("postgres"))
}

func TestLongDirUsesShortSocket(t *testing.T) {
	requirePostgres(t)
	dir := filepath.Join(tempDir(t), strings.Repeat("long-directory-name-", 6))
	s := start(t, dir)
	defer s.Stop()
	if !s.ownSocketDir {
		t.Fatalf("socket dir = %s, want a short temporary one", s.socketDir)
	}
	ping(t, s.URL("postgres"))
}

func TestNoServer(t *testing.T) {
	_, err := findBinDir(context.Background(), "/nonexistent/pg_config", "/nonexistent/*/bin")
	if !errors.Is(err, ErrNoServer) {
		t.Fatalf("findBinDir() = %v, want ErrNoServer", err)
	}
	if !strings.Contains(err.Error(), "install postgresql") {
		t.Fatalf("error = %q, want it to say install postgresql", err)
	}
}

// TestWatchProcess: when the watched process is gone, the watchdog stops
// the cluster and removes the directory.
func TestWatchProcess(t *testing.T) {
	requirePostgres(t)
	base := tempDir(t)
	s := start(t, filepath.Join(base, "pg"))
	defer s.Stop()
	pid := postmasterPID(t, s)
	// A short-lived process to watch.
	sleeper := exec.Command("sleep", "1")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	if err := s.WatchProcess(sleeper.Process.Pid, base); err != nil {
		t.Fatalf("WatchProcess() = %v", err)
	}
	_ = sleeper.Wait()
	deadline := time.Now().Add(60 * time.Second)
	for isPostgres(pid) || dirExists(base) {
		if time.Now().After(deadline) {
			t.Fatalf("cluster still running (%v) or directory still there (%v) after the watched process ended", isPostgres(pid), dirExists(base))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func dirExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

package ingest

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/db/dbtest"
	"github.com/tlsrpt/tlsrpt/db/pgembed"
	"github.com/tlsrpt/tlsrpt/ingest/internal/dovetest"
	"github.com/tlsrpt/tlsrpt/internal/testreq"
	"github.com/tlsrpt/tlsrpt/internal/torture"
	"github.com/tlsrpt/tlsrpt/reports"
)

// privatePG is a PostgreSQL cluster of the test's own, which it may stop,
// restart and starve of disk without disturbing the shared test server.
type privatePG struct {
	t   *testing.T
	dir string // the cluster directory (a mount point for the disk test)
	srv *pgembed.Server
	url string
}

// shortTempDir is a temporary directory with a path short enough for the
// cluster's socket to live inside it, so its URL survives a restart.
func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "tt")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil { // the postgres user traverses it
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func startPrivatePG(t *testing.T, dir string) *privatePG {
	t.Helper()
	_, err := pgembed.FindBinDir(t.Context())
	testreq.Need(t, "postgres", "PostgreSQL's server binaries", err)
	p := &privatePG{t: t, dir: dir}
	p.start()
	t.Cleanup(func() { p.srv.Stop() })
	if err := p.srv.CreateDatabase(t.Context(), "tlsrpt"); err != nil {
		t.Fatal(err)
	}
	p.url = p.srv.URL("tlsrpt")
	d, err := db.Open(t.Context(), p.url)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *privatePG) start() {
	p.t.Helper()
	srv, err := pgembed.Start(p.t.Context(), pgembed.Config{Dir: p.dir, NoFsync: true})
	if err != nil {
		p.t.Fatalf("starting the private cluster: %v", err)
	}
	if p.url != "" && srv.URL("tlsrpt") != p.url {
		p.t.Fatalf("the cluster's URL changed across a restart: %s, was %s", srv.URL("tlsrpt"), p.url)
	}
	p.srv = srv
}

// TestPostgresRestartTorture stops PostgreSQL (fast shutdown: every
// session cut) at random moments while the poller's Run loop ingests a
// mailbox, and starts it again; in the end every report is stored
// exactly once and every message is in its final folder.
func TestPostgresRestartTorture(t *testing.T) {
	pg := startPrivatePG(t, filepath.Join(shortTempDir(t), "pg"))
	d, err := db.Open(t.Context(), pg.url)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	srv := startMem(t, memOptions{})
	n := torture.Count(150, 2000)
	mb := buildMailbox(t, n, false, reports.DefaultMaxMessageBytes)
	appendMsgs(t, srv.addr, mb.msgs)
	cfg := memConfig(srv.addr)
	cfg.BatchSize = 20
	pipe := &Pipeline{Store: d, Limits: reports.Limits{}, Now: time.Now, Log: testLogger(t)}
	p, err := NewPoller(cfg, pipe, d, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	seed := torture.Seed(t)
	rng := rand.New(rand.NewPCG(seed, 5))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- p.Run(ctx) }()
	restarts := 0
	for range torture.Count(2, 6) {
		time.Sleep(time.Duration(200+rng.IntN(1500)) * time.Millisecond)
		if folderCounts(t, srv.addr, "INBOX")["INBOX"] == 0 {
			break
		}
		if err := pg.srv.Stop(); err != nil {
			t.Fatalf("stopping PostgreSQL: %v", err)
		}
		time.Sleep(time.Duration(500+rng.IntN(2000)) * time.Millisecond)
		pg.start()
		restarts++
	}
	waitFor(t, 10*time.Minute, "an empty INBOX", func() bool {
		return folderCounts(t, srv.addr, "INBOX")["INBOX"] == 0
	})
	cancel()
	<-done
	lost, dup := checkExactlyOnce(t, d, mb)
	torture.Record(t, map[string]any{"seed": seed, "messages": len(mb.msgs), "reports": len(mb.reportKeys),
		"postgres_restarts": restarts, "lost": lost, "duplicated": dup, "seconds": int(time.Since(start).Seconds())})
	if restarts == 0 {
		t.Errorf("the mailbox was done before the first restart: no fault injected")
	}
}

// checkExactlyOnce checks the reports table and the folders against a
// mailbox of buildMailbox, and returns the reports lost and duplicated.
func checkExactlyOnce(t *testing.T, d *db.DB, mb testMailbox) (lost, dup int) {
	t.Helper()
	seen := storedKeys(t, d)
	for _, c := range seen {
		if c > 1 {
			dup++
		}
	}
	if len(seen) < len(mb.reportKeys) {
		lost = len(mb.reportKeys) - len(seen)
	}
	if len(seen) != len(mb.reportKeys) || dup != 0 {
		t.Errorf("reports stored: %d distinct, %d duplicated; want %d exactly once", len(seen), dup, len(mb.reportKeys))
	}
	if n := countRows(t, d, "quarantine"); n != mb.quarantined {
		t.Errorf("quarantine rows = %d, want %d", n, mb.quarantined)
	}
	return lost, dup
}

// TestDiskFullTorture puts a private cluster on a small tmpfs that fills
// up during ingest (PostgreSQL then fails writes, or PANICs when its WAL
// cannot grow); nothing may be moved out of the INBOX for a report that
// was not stored. Then the tmpfs grows, PostgreSQL is restarted if it
// died, and ingest finishes: every report stored exactly once. It needs
// root (mount); elsewhere it skips.
func TestDiskFullTorture(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs for the cluster needs root")
	}
	dir := filepath.Join(shortTempDir(t), "pg")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=72m,mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("mounting a tmpfs is not allowed here: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	pg := startPrivatePG(t, dir)
	d, err := db.Open(t.Context(), pg.url)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	srv := startMem(t, memOptions{})
	n := torture.Count(300, 2000)
	mb := buildMailbox(t, n, false, reports.DefaultMaxMessageBytes)
	appendMsgs(t, srv.addr, mb.msgs)
	// Fill the disk: what is left of the tmpfs becomes one file, less a
	// little so that PostgreSQL still starts writing.
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	filler := filepath.Join(dir, "filler")
	if err := os.WriteFile(filler, make([]byte, max(0, free-160<<10)), 0o600); err != nil && !errors.Is(err, syscall.ENOSPC) {
		t.Fatal(err)
	}
	t.Logf("tmpfs: %d MiB free before the filler", free>>20)
	cfg := memConfig(srv.addr)
	cfg.BatchSize = 20
	pipe := &Pipeline{Store: d, Limits: reports.Limits{}, Now: time.Now, Log: testLogger(t)}
	p, err := NewPoller(cfg, pipe, d, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	// Passes until the disk is full: the store fails, the rest stays.
	var fullErr error
	for range 20 {
		if _, fullErr = p.Once(t.Context()); fullErr != nil {
			break
		}
	}
	if fullErr == nil {
		t.Fatalf("ingest never failed: the disk did not fill up")
	}
	t.Logf("with the disk full: %v", fullErr)
	inbox := folderCounts(t, srv.addr, "INBOX")["INBOX"]
	if inbox == 0 {
		t.Fatalf("INBOX empty while the disk is full")
	}
	// More space, and the cluster back if it died.
	if out, err := exec.Command("mount", "-o", "remount,size=1g", dir).CombinedOutput(); err != nil {
		t.Fatalf("growing the tmpfs: %v: %s", err, out)
	}
	os.Remove(filler)
	restarted := false
	if err := d.Pool.Ping(t.Context()); err != nil {
		t.Logf("PostgreSQL is down after the disk filled: %v", err)
		pg.srv.Stop()
		pg.start()
		restarted = true
	}
	waitFor(t, 5*time.Minute, "an empty INBOX", func() bool {
		p.Once(t.Context())
		return folderCounts(t, srv.addr, "INBOX")["INBOX"] == 0
	})
	lost, dup := checkExactlyOnce(t, d, mb)
	got := folderCounts(t, srv.addr, DefaultProcessedFolder, DefaultQuarantineFolder)
	if got[DefaultProcessedFolder] != mb.goodMsgs || got[DefaultQuarantineFolder] != mb.quarantined {
		t.Errorf("folders = %v, want processed %d, quarantine %d", got, mb.goodMsgs, mb.quarantined)
	}
	torture.Record(t, map[string]any{"messages": len(mb.msgs), "reports": len(mb.reportKeys), "left_in_inbox_when_full": inbox,
		"error_when_full": strings.SplitN(fullErr.Error(), "\n", 2)[0], "postgres_restarted": restarted, "lost": lost, "duplicated": dup})
}

// TestKill9Torture is the long kill test: `tlsrpt ingest --once` killed
// with SIGKILL at 50 random moments during a sync of 2,000 messages from
// a real Dovecot, and restarted each time; then every report is stored
// exactly once and every message is in its final folder. The short
// version is TestDovecotKill9.
func TestKill9Torture(t *testing.T) {
	if !torture.Long() {
		t.Skip("long version only (TLSRPT_TORTURE=long); TestDovecotKill9 is the short one")
	}
	srv := dovetest.New(t)
	url := dbtest.NewURL(t, true)
	d, err := db.Open(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	bin := buildBinary(t)
	mb := buildMailbox(t, 2000, false, reports.DefaultMaxMessageBytes)
	fillDovecot(t, srv, mb.msgs)
	env := append(os.Environ(),
		"TLSRPT_IMAP_URL="+srv.URL(),
		"TLSRPT_IMAP_PASSWORD=x",
		"TLSRPT_IMAP_INSECURE_PLAINTEXT_LOOPBACK=1",
		"TLSRPT_IMAP_BATCH_SIZE=25",
	)
	seed := torture.Seed(t)
	rng := rand.New(rand.NewPCG(seed, 9))
	const wantKills = 50
	kills := 0
	var peakRSS uint64
	start := time.Now()
	for run := 0; ; run++ {
		if run > 3*wantKills {
			t.Fatalf("no run finished after %d kills", kills)
		}
		var out bytes.Buffer
		cmd := exec.Command(bin, "ingest", "--once", "--dkim=false", "--db", url)
		cmd.Env, cmd.Stdout, cmd.Stderr = env, &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		killAt := time.Duration(30+rng.IntN(600)) * time.Millisecond
		if kills >= wantKills {
			killAt = time.Hour
		}
		select {
		case err := <-exited:
			if err != nil {
				t.Fatalf("run %d failed: %v\n%s", run, err, out.String())
			}
			t.Logf("run %d finished after %d kills:\n%s", run, kills, out.String())
		case <-time.After(killAt):
			peakRSS = max(peakRSS, torture.ProcPeakRSS(cmd.Process.Pid))
			cmd.Process.Signal(syscall.SIGKILL)
			err := <-exited
			var ee *exec.ExitError
			if errors.As(err, &ee) && !ee.Success() {
				kills++
				continue
			}
			// It had finished just before the kill: the sync is done.
		}
		break
	}
	lost, dup := checkExactlyOnce(t, d, mb)
	got := dovecotFolders(t, srv)
	if got["INBOX"] != 0 || got[DefaultProcessedFolder] != mb.goodMsgs || got[DefaultQuarantineFolder] != mb.quarantined {
		t.Errorf("folders = %v, want INBOX 0, processed %d, quarantine %d", got, mb.goodMsgs, mb.quarantined)
	}
	if kills < wantKills {
		t.Errorf("only %d kills before the sync finished; want %d", kills, wantKills)
	}
	torture.Record(t, map[string]any{"seed": seed, "messages": len(mb.msgs), "reports": len(mb.reportKeys), "kills": kills,
		"lost": lost, "duplicated": dup, "peak_rss_mib_ingest": torture.MiB(peakRSS), "seconds": int(time.Since(start).Seconds())})
}

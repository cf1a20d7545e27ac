package ingest

import (
	"bytes"
	"context"
	"errors"
	"math"
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
	"github.com/tlsrpt/tlsrpt/ingest/internal/dovetest"
	"github.com/tlsrpt/tlsrpt/reports"
)

func dovecotConfig(s *dovetest.Server) IMAPConfig {
	return IMAPConfig{
		Security:                  SecurityPlaintext,
		InsecurePlaintextLoopback: true,
		Addr:                      s.Addr,
		Username:                  dovetest.User,
		Password:                  "unused", // doveadm exec greets with PREAUTH
		PollInterval:              time.Minute,
	}
}

func fillDovecot(t *testing.T, s *dovetest.Server, msgs [][]byte) {
	t.Helper()
	c, err := dovetest.Dial(s.Addr, dovetest.User, "x")
	if err != nil {
		t.Fatalf("dialing Dovecot: %v\n%s", err, s.Log())
	}
	defer c.Close()
	if err := dovetest.Append(c, "INBOX", msgs); err != nil {
		t.Fatalf("filling Dovecot: %v\n%s", err, s.Log())
	}
}

func dovecotFolders(t *testing.T, s *dovetest.Server) map[string]int {
	t.Helper()
	c, err := dovetest.Dial(s.Addr, dovetest.User, "x")
	if err != nil {
		t.Fatalf("dialing Dovecot: %v\n%s", err, s.Log())
	}
	defer c.Close()
	n, err := dovetest.Count(c, "INBOX", DefaultProcessedFolder, DefaultQuarantineFolder)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestDovecotIngest: a real Dovecot mailbox of good reports (generated
// and from the corpus), duplicates, mails with no report, a corrupt gzip
// and an oversized mail; then the rows, the folders and the quarantine.
func TestDovecotIngest(t *testing.T) {
	srv := dovetest.New(t)
	d := dbtest.New(t)
	const maxBytes = 256 << 10
	mb := buildMailbox(t, 30, true, maxBytes)
	fillDovecot(t, srv, mb.msgs)

	cfg := dovecotConfig(srv)
	cfg.BatchSize = 16 // several batches
	p := newTestPoller(t, cfg, d, reports.Limits{MaxMessageBytes: maxBytes})
	st, err := p.Once(t.Context())
	if err != nil {
		t.Fatalf("Once: %v\n%s", err, srv.Log())
	}
	if st.Messages != len(mb.msgs) || st.Stored != len(mb.reportKeys) || st.Quarantined != mb.quarantined || st.Deferred != 0 {
		t.Errorf("Once() = %+v, want %d messages, %d stored, %d quarantined", st, len(mb.msgs), len(mb.reportKeys), mb.quarantined)
	}
	if n := countRows(t, d, "reports"); n != len(mb.reportKeys) {
		t.Errorf("reports rows = %d, want %d", n, len(mb.reportKeys))
	}
	if n := countRows(t, d, "quarantine"); n != mb.quarantined {
		t.Errorf("quarantine rows = %d, want %d", n, mb.quarantined)
		logQuarantine(t, d)
	}
	got := dovecotFolders(t, srv)
	if got["INBOX"] != 0 || got[DefaultProcessedFolder] != mb.goodMsgs || got[DefaultQuarantineFolder] != mb.quarantined {
		t.Errorf("folders = %v, want INBOX 0, processed %d, quarantine %d", got, mb.goodMsgs, mb.quarantined)
	}
	// The quarantine rows hold the reasons an operator needs.
	entries, err := d.QuarantineList(t.Context(), db.QuarantineFilter{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var reasons []string
	for _, e := range entries {
		reasons = append(reasons, e.Reason)
	}
	all := strings.Join(reasons, "\n")
	for _, want := range []string{"larger than the limit", "gzip"} {
		if !strings.Contains(all, want) {
			t.Errorf("quarantine reasons do not mention %q:\n%s", want, all)
		}
	}

	// The same reports mailed again: duplicates, moved, nothing new.
	fillDovecot(t, srv, mb.msgs[:5])
	st, err = p.Once(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st.Messages != 5 || st.Stored != 0 || st.Duplicates != 5 {
		t.Errorf("Once() over resent mails = %+v, want 5 messages, 5 duplicates", st)
	}
	if n := countRows(t, d, "reports"); n != len(mb.reportKeys) {
		t.Errorf("reports rows after resending = %d, want %d", n, len(mb.reportKeys))
	}
}

// buildBinary compiles cmd/tlsrpt for tests that run the real program.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "tlsrpt")
	cmd := exec.Command("go", "build", "-o", bin, "../cmd/tlsrpt")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building tlsrpt: %v\n%s", err, out)
	}
	return bin
}

// TestDovecotKill9 is the fault test: `tlsrpt ingest --once` is killed
// with SIGKILL at random moments during its batches and restarted; in the
// end every report is stored exactly once and every message is in its
// final folder.
func TestDovecotKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary repeatedly")
	}
	srv := dovetest.New(t)
	url := dbtest.NewURL(t, true)
	d, err := db.Open(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	bin := buildBinary(t)

	mb := buildMailbox(t, 400, false, reports.DefaultMaxMessageBytes)
	fillDovecot(t, srv, mb.msgs)
	env := append(os.Environ(),
		"TLSRPT_IMAP_URL="+srv.URL(),
		"TLSRPT_IMAP_PASSWORD=x",
		"TLSRPT_IMAP_INSECURE_PLAINTEXT_LOOPBACK=1",
		// Small batches: a commit every 10 messages, so that each run
		// gets only a few of them before its kill and the 400 messages
		// take many runs however fast the machine is (with 25 and longer
		// waits an idle machine finished the mailbox after 4 kills).
		"TLSRPT_IMAP_BATCH_SIZE=10",
	)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 9))
	t.Logf("mailbox: %d messages, %d distinct reports, %d to quarantine", len(mb.msgs), len(mb.reportKeys), mb.quarantined)
	kills := 0
	for run := 0; ; run++ {
		if run > 60 {
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
		// Kill once a random number of further reports is committed: in
		// the middle of the sync however fast the machine is.
		target := countRows(t, d, "reports") + 1 + rng.IntN(30)
		if kills >= 12 {
			target = math.MaxInt // enough kills: let it finish
		}
		killed := false
	wait:
		for {
			select {
			case err := <-exited:
				if err != nil {
					t.Fatalf("run %d failed: %v\n%s", run, err, out.String())
				}
				t.Logf("run %d finished after %d kills:\n%s", run, kills, out.String())
				break wait
			case <-time.After(2 * time.Millisecond):
				if countRows(t, d, "reports") < target {
					continue
				}
				// Right after a commit (before the move) or a little later.
				time.Sleep(time.Duration(rng.IntN(10)) * time.Millisecond)
				cmd.Process.Signal(syscall.SIGKILL)
				var ee *exec.ExitError
				if err := <-exited; errors.As(err, &ee) && !ee.Success() {
					killed = true
				} else {
					t.Logf("run %d finished just before its kill", run)
				}
				break wait
			}
		}
		if !killed {
			break
		}
		kills++
	}
	if kills < 5 {
		t.Errorf("only %d runs were killed mid-sync, want at least 5", kills)
	}
	if n := countRows(t, d, "reports"); n != len(mb.reportKeys) {
		t.Errorf("reports rows = %d, want %d (exactly once)", n, len(mb.reportKeys))
	}
	if n := countRows(t, d, "quarantine"); n != mb.quarantined {
		t.Errorf("quarantine rows = %d, want %d", n, mb.quarantined)
		logQuarantine(t, d)
	}
	got := dovecotFolders(t, srv)
	if got["INBOX"] != 0 || got[DefaultProcessedFolder] != mb.goodMsgs || got[DefaultQuarantineFolder] != mb.quarantined {
		t.Errorf("folders = %v, want INBOX 0, processed %d, quarantine %d", got, mb.goodMsgs, mb.quarantined)
	}
	// Every report row is one of the mailbox's reports.
	rows, err := d.Pool.Query(context.Background(), `SELECT organization_name, report_id FROM reports`)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for rows.Next() {
		var org, id string
		if err := rows.Scan(&org, &id); err != nil {
			t.Fatal(err)
		}
		seen[org+"|"+id]++
	}
	rows.Close()
	for k, n := range seen {
		if n != 1 {
			t.Errorf("report %s stored %d times", k, n)
		}
	}
}

// TestReprocessCommand: an entry quarantined by an older parser is read
// again by `tlsrpt reprocess --all`, stored and marked; a wrong id fails.
func TestReprocessCommand(t *testing.T) {
	url := dbtest.NewURL(t, true)
	d, err := db.Open(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	mb := buildMailbox(t, 1, false, 1<<20)
	good := mb.msgs[0]
	id, err := d.Quarantine(t.Context(), good, "an older parser refused it", reports.SourceIMAP, "imap://x/INBOX;UID=1")
	if err != nil {
		t.Fatal(err)
	}
	junk, err := d.Quarantine(t.Context(), []byte("Subject: hello\r\n\r\nno report\r\n"), "no report", reports.SourceIMAP, "imap://x/INBOX;UID=2")
	if err != nil {
		t.Fatal(err)
	}
	bin := buildBinary(t)
	out, err := exec.Command(bin, "reprocess", "--all", "--dkim=false", "--db", url).CombinedOutput()
	if err != nil {
		t.Fatalf("tlsrpt reprocess --all: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "1 resolved, 1 still refused") {
		t.Errorf("tlsrpt reprocess --all printed:\n%s", out)
	}
	e, err := d.QuarantineGet(t.Context(), id)
	if err != nil || e.ReprocessedAt == nil {
		t.Errorf("entry %d after reprocess = %+v, %v; want marked reprocessed", id, e, err)
	}
	if e, err := d.QuarantineGet(t.Context(), junk); err != nil || e.ReprocessedAt != nil {
		t.Errorf("junk entry %d after reprocess = %+v, %v; want unresolved", junk, e, err)
	}
	if n := countRows(t, d, "reports"); n != 1 {
		t.Errorf("reports rows = %d, want 1", n)
	}
	if out, err := exec.Command(bin, "reprocess", "--db", url, "999999").CombinedOutput(); err == nil {
		t.Errorf("tlsrpt reprocess of a missing id succeeded:\n%s", out)
	}
}

// logQuarantine logs what the quarantine holds, to tell a flaky count
// from a wrong one.
func logQuarantine(t *testing.T, d *db.DB) {
	t.Helper()
	rows, err := d.Pool.Query(context.Background(), `SELECT id, source_ref, size, left(reason, 300) FROM quarantine ORDER BY id LIMIT 40`)
	if err != nil {
		t.Logf("reading the quarantine: %v", err)
		return
	}
	defer rows.Close()
	for rows.Next() {
		var id, size int64
		var ref, reason string
		if err := rows.Scan(&id, &ref, &size, &reason); err == nil {
			t.Logf("quarantine %d: %s (%d bytes): %s", id, ref, size, reason)
		}
	}
}

package ingest

import (
	"context"
	"io"
	"net"
	"net/url"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/db/dbtest"
	"github.com/tlsrpt/tlsrpt/reports"
)

// pgSwitch sits between the store and PostgreSQL's unix socket; turned
// off, it cuts every connection and refuses new ones, as a database that
// went down.
type pgSwitch struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	up     bool
	conns  map[net.Conn]bool
}

// newPGSwitch returns the switch and the database URL that goes through it.
func newPGSwitch(t *testing.T, dbURL string) (*pgSwitch, string) {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	host, port := q.Get("host"), q.Get("port")
	if host == "" || host[0] != '/' || port == "" {
		t.Skipf("the test database is not on a unix socket: %s", u.Redacted())
	}
	dir := t.TempDir()
	ln, err := net.Listen("unix", filepath.Join(dir, ".s.PGSQL."+port))
	if err != nil {
		t.Fatal(err)
	}
	s := &pgSwitch{ln: ln, target: filepath.Join(host, ".s.PGSQL."+port), up: true, conns: map[net.Conn]bool{}}
	t.Cleanup(func() { ln.Close(); s.set(false) })
	go s.serve()
	q.Set("host", dir)
	u.RawQuery = q.Encode()
	return s, u.String()
}

func (s *pgSwitch) set(up bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.up = up
	if !up {
		for c := range s.conns {
			c.Close()
		}
		clear(s.conns)
	}
}

func (s *pgSwitch) serve() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		up := s.up
		s.mu.Unlock()
		if !up {
			c.Close()
			continue
		}
		b, err := net.Dial("unix", s.target)
		if err != nil {
			c.Close()
			continue
		}
		s.mu.Lock()
		s.conns[c], s.conns[b] = true, true
		s.mu.Unlock()
		go func() { io.Copy(b, c); b.Close() }()
		go func() { io.Copy(c, b); c.Close() }()
	}
}

// TestPollerStoreDown: PostgreSQL becomes unreachable while the poller
// runs; nothing is moved out of the mailbox meanwhile, and when it is
// back, ingestion resumes by itself.
func TestPollerStoreDown(t *testing.T) {
	sw, viaSwitch := newPGSwitch(t, dbtest.NewURL(t, true))
	d, err := db.Open(t.Context(), viaSwitch)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	srv := startMem(t, memOptions{})
	mb := buildMailbox(t, 12, false, 1<<20)
	half := len(mb.msgs) / 2
	appendMsgs(t, srv.addr, mb.msgs[:half])

	cfg := memConfig(srv.addr)
	cfg.PollInterval = time.Second
	p := newTestPoller(t, cfg, d, reports.Limits{})
	done := make(chan error, 1)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() { done <- p.Run(ctx) }()
	waitFor(t, 60*time.Second, "the first messages to be moved", func() bool {
		return folderCounts(t, srv.addr, "INBOX")["INBOX"] == 0
	})

	sw.set(false)
	appendMsgs(t, srv.addr, mb.msgs[half:])
	time.Sleep(4 * time.Second) // several poll intervals
	if got := folderCounts(t, srv.addr, "INBOX"); got["INBOX"] != len(mb.msgs)-half {
		t.Errorf("INBOX while the store is down = %d, want all %d new messages left in place", got["INBOX"], len(mb.msgs)-half)
	}

	sw.set(true)
	waitFor(t, 60*time.Second, "the mailbox to be emptied after the store came back", func() bool {
		return folderCounts(t, srv.addr, "INBOX")["INBOX"] == 0
	})
	cancel()
	<-done
	if n := countRows(t, d, "reports"); n != len(mb.reportKeys) {
		t.Errorf("reports rows = %d, want %d", n, len(mb.reportKeys))
	}
	got := folderCounts(t, srv.addr, DefaultProcessedFolder, DefaultQuarantineFolder)
	if got[DefaultProcessedFolder] != mb.goodMsgs || got[DefaultQuarantineFolder] != mb.quarantined {
		t.Errorf("folders = %v, want processed %d, quarantine %d", got, mb.goodMsgs, mb.quarantined)
	}
}

package ingest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/db/dbtest"
	"github.com/tlsrpt/tlsrpt/ingest/internal/dovetest"
	"github.com/tlsrpt/tlsrpt/internal/torture"
	"github.com/tlsrpt/tlsrpt/reports"
)

// tortureMailbox is a mailbox of mutated mails and what the parser says
// must become of them.
type tortureMailbox struct {
	msgs       [][]byte
	keys       map[string]bool // distinct valid reports
	good       int             // messages with a valid report: the processed folder
	bad        int             // messages without: the quarantine folder
	quarantine map[[32]byte]bool
}

// reportKey is a report's identity as the reports table has it
// (timestamptz keeps microseconds).
func reportKey(org, id string, start, end time.Time) string {
	return fmt.Sprintf("%s|%s|%s|%s", storedText(org), storedText(id), start.UTC().Truncate(time.Microsecond).Format(time.RFC3339Nano), end.UTC().Truncate(time.Microsecond).Format(time.RFC3339Nano))
}

// storedText is a sender's string as the store keeps it (db/reports.go
// clean): PostgreSQL text holds no NUL byte and only valid UTF-8.
func storedText(s string) string {
	return strings.ToValidUTF8(strings.ReplaceAll(s, "\x00", ""), "\uFFFD")
}

func buildTortureMailbox(t *testing.T, seed uint64, n int, lim reports.Limits) tortureMailbox {
	t.Helper()
	c, err := torture.LoadCorpus(filepath.Join("..", "testdata", "corpus"), "/work/shared/corpus/tlsrpt")
	if err != nil {
		t.Fatal(err)
	}
	m := torture.NewMutator(c, seed)
	msgs := make([][]byte, n)
	for i := range msgs {
		msgs[i] = m.Mail().Data
	}
	return expectMailbox(msgs, lim)
}

// expectMailbox says what the parser makes of msgs.
func expectMailbox(msgs [][]byte, lim reports.Limits) tortureMailbox {
	mb := tortureMailbox{msgs: msgs, keys: map[string]bool{}, quarantine: map[[32]byte]bool{}}
	for _, raw := range msgs {
		msg, err := reports.ReadMessage(bytes.NewReader(raw), lim)
		good, broken := false, err != nil
		if err == nil {
			for _, a := range msg.Attachments {
				if r := a.Report; r != nil && db.RefusedDay(r.DateRange.Day(), time.Now()) != "" {
					// Parsed, but the store refuses its day: quarantined.
					broken = true
				} else if r != nil {
					good = true
					mb.keys[reportKey(r.OrganizationName, r.ReportID, r.DateRange.Start, r.DateRange.End)] = true
				} else {
					broken = true
				}
			}
		}
		if good {
			mb.good++
		} else {
			mb.bad++
		}
		if broken {
			mb.quarantine[sha256.Sum256(raw)] = true
		}
	}
	return mb
}

// storedKeys returns how often each report identity is in the table.
func storedKeys(t *testing.T, d *db.DB) map[string]int {
	t.Helper()
	rows, err := d.Pool.Query(context.Background(), `SELECT organization_name, report_id, start_time, end_time FROM reports`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	seen := map[string]int{}
	for rows.Next() {
		var org, id string
		var start, end time.Time
		if err := rows.Scan(&org, &id, &start, &end); err != nil {
			t.Fatal(err)
		}
		seen[reportKey(org, id, start, end)]++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return seen
}

// lostAndDuplicated compares the reports table with the expected reports.
func lostAndDuplicated(t *testing.T, d *db.DB, want map[string]bool) (lost, dup, extra int) {
	t.Helper()
	seen := storedKeys(t, d)
	for k := range want {
		switch seen[k] {
		case 0:
			lost++
			if lost <= 5 {
				t.Errorf("report %s lost", k)
			}
		case 1:
		default:
			dup++
			t.Errorf("report %s stored %d times", k, seen[k])
		}
	}
	for k := range seen {
		if !want[k] {
			extra++
			t.Errorf("report %s stored but not in the mailbox", k)
		}
	}
	return lost, dup, extra
}

// TestIMAPTorture: a mailbox of mutated report mails on the in-memory IMAP
// server, read through a proxy that cuts the connection at random points
// mid-fetch, by the poller's Run loop. In the end every valid report is
// stored exactly once, every message is in its final folder, and every
// mail without a report is quarantined with a reason.
func TestIMAPTorture(t *testing.T) {
	d := dbtest.New(t)
	srv := startMem(t, memOptions{})
	seed := torture.Seed(t)
	n := torture.Count(120, 3000)
	lim := reports.Limits{MaxMessageBytes: 8 << 20}
	mb := buildTortureMailbox(t, seed, n, lim)
	t.Logf("seed %d: %d mails, %d distinct valid reports, %d for the processed folder, %d for quarantine",
		seed, n, len(mb.keys), mb.good, mb.bad)
	appendMsgs(t, srv.addr, mb.msgs)
	// The server stores a bare LF as CRLF, so two mails that differ only
	// there are one quarantine entry: expect what the server serves.
	mb = expectMailbox(servedBodies(t, srv.addr, memUser, memPassword, n), lim)

	// Cuts at random offsets: the proxy's byte budget per connection.
	rng := rand.New(rand.NewPCG(seed, 3))
	proxy := newCutProxy(t, srv.addr, int64(20<<10+rng.IntN(400<<10)))
	cfg := memConfig(proxy.ln.Addr().String())
	cfg.BatchSize = 25
	pipe := &Pipeline{Store: d, Limits: lim, Now: time.Now, Log: testLogger(t)}
	p, err := NewPoller(cfg, pipe, d, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	heap := torture.WatchHeap()
	start := time.Now()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	wantCuts := torture.Count(3, 6) // the reconnect backoff doubles: 6 cuts take a minute
	waitFor(t, time.Duration(n/5+60)*time.Second, "the connection cuts", func() bool {
		proxy.mu.Lock()
		defer proxy.mu.Unlock()
		return proxy.cuts >= wantCuts || folderCounts(t, srv.addr, "INBOX")["INBOX"] == 0
	})
	proxy.mu.Lock()
	cuts := proxy.cuts
	proxy.mu.Unlock()
	proxy.setCutting(false)
	waitFor(t, time.Duration(n/5+60)*time.Second, "an empty INBOX", func() bool {
		return folderCounts(t, srv.addr, "INBOX")["INBOX"] == 0
	})
	cancel()
	<-done
	elapsed := time.Since(start)
	peak := heap.Stop()

	lost, dup, extra := lostAndDuplicated(t, d, mb.keys)
	got := folderCounts(t, srv.addr, "INBOX", DefaultProcessedFolder, DefaultQuarantineFolder)
	if got["INBOX"] != 0 || got[DefaultProcessedFolder] != mb.good || got[DefaultQuarantineFolder] != mb.bad {
		t.Errorf("folders = %v, want INBOX 0, processed %d, quarantine %d", got, mb.good, mb.bad)
	}
	if q := countRows(t, d, "quarantine"); q != len(mb.quarantine) {
		t.Errorf("quarantine rows = %d, want %d (distinct mails with a broken part)", q, len(mb.quarantine))
		logMissingQuarantine(t, d, mb)
	}
	var noReason int
	if err := d.Pool.QueryRow(t.Context(), `SELECT count(*) FROM quarantine WHERE reason = ''`).Scan(&noReason); err != nil {
		t.Fatal(err)
	}
	if noReason != 0 {
		t.Errorf("%d quarantine entries without a reason", noReason)
	}
	torture.Record(t, map[string]any{
		"seed": seed, "inputs": n, "valid_reports": len(mb.keys), "processed": got[DefaultProcessedFolder],
		"quarantined": got[DefaultQuarantineFolder], "connection_cuts": cuts, "reconnects": p.Status().Reconnects,
		"lost": lost, "duplicated": dup, "unexpected": extra, "crashes": 0,
		"peak_heap_mib": torture.MiB(peak), "peak_rss_mib": torture.MiB(torture.PeakRSS()), "seconds": int(elapsed.Seconds()),
	})
}

// TestDovecotTorture: mutated mails through a real Dovecot (fewer than
// through the in-memory server: Dovecot parses what it stores and is
// slower to fill).
func TestDovecotTorture(t *testing.T) {
	srv := dovetest.New(t)
	d := dbtest.New(t)
	seed := torture.Seed(t)
	n := torture.Count(60, 1000)
	lim := reports.Limits{MaxMessageBytes: 8 << 20}
	mb := buildTortureMailbox(t, seed, n, lim)
	t.Logf("seed %d: %d mails, %d distinct valid reports", seed, n, len(mb.keys))
	fillDovecot(t, srv, mb.msgs)
	// Dovecot stores some mails other than sent: in a part of raw binary
	// (no Content-Transfer-Encoding, not valid RFC 5322) it turns NUL into
	// 0x80 and a bare LF into CRLF, which breaks a raw gzip attachment. The
	// poller sees what Dovecot serves, so that is what is expected.
	served := servedBodies(t, srv.Addr, dovetest.User, "x", n)
	altered := 0
	for i := range served {
		if !bytes.Equal(served[i], mb.msgs[i]) {
			altered++
		}
	}
	sentGood := mb.good
	mb = expectMailbox(served, lim)
	t.Logf("Dovecot altered %d of %d mails; %d of the mails with a valid report as sent have one as served", altered, n, mb.good)
	cfg := dovecotConfig(srv)
	cfg.BatchSize = 25
	pipe := &Pipeline{Store: d, Limits: lim, Now: time.Now, Log: testLogger(t)}
	p, err := NewPoller(cfg, pipe, d, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := p.Once(t.Context()); err != nil {
		t.Fatalf("Once: %v\n%s", err, srv.Log())
	}
	lost, dup, extra := lostAndDuplicated(t, d, mb.keys)
	got := dovecotFolders(t, srv)
	if got["INBOX"] != 0 || got[DefaultProcessedFolder] != mb.good || got[DefaultQuarantineFolder] != mb.bad {
		t.Errorf("folders = %v, want INBOX 0, processed %d, quarantine %d", got, mb.good, mb.bad)
	}
	if q := countRows(t, d, "quarantine"); q != len(mb.quarantine) {
		t.Errorf("quarantine rows = %d, want %d", q, len(mb.quarantine))
	}
	torture.Record(t, map[string]any{"seed": seed, "inputs": n, "valid_reports": len(mb.keys),
		"altered_by_dovecot": altered, "good_as_sent": sentGood, "good_as_served": mb.good, "processed": got[DefaultProcessedFolder], "quarantined": got[DefaultQuarantineFolder],
		"lost": lost, "duplicated": dup, "unexpected": extra, "seconds": int(time.Since(start).Seconds())})
}

// logMissingQuarantine logs the mails expected in the quarantine table
// that are not there, to explain a mismatch.
func logMissingQuarantine(t *testing.T, d *db.DB, mb tortureMailbox) {
	t.Helper()
	rows, err := d.Pool.Query(context.Background(), `SELECT sha256 FROM quarantine`)
	if err != nil {
		t.Fatal(err)
	}
	have := map[[32]byte]bool{}
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			t.Fatal(err)
		}
		have[[32]byte(b)] = true
	}
	rows.Close()
	for _, raw := range mb.msgs {
		if h := sha256.Sum256(raw); mb.quarantine[h] && !have[h] {
			msg, err := reports.ReadMessage(bytes.NewReader(raw), reports.Limits{MaxMessageBytes: 8 << 20})
			var parts []string
			if msg != nil {
				for _, a := range msg.Attachments {
					parts = append(parts, fmt.Sprintf("report %v err %v", a.Report != nil, a.Err))
				}
			}
			t.Logf("not quarantined: %d bytes, %v, parts %q, head %.200q", len(raw), err, parts, raw)
		}
	}
}

// servedBodies reads the n messages of the INBOX back from the server.
func servedBodies(t *testing.T, addr, user, password string, n int) [][]byte {
	t.Helper()
	c, err := dovetest.Dial(addr, user, password)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	served, err := dovetest.Bodies(c, "INBOX")
	if err != nil || len(served) != n {
		t.Fatalf("reading the INBOX back: %d bodies, %v", len(served), err)
	}
	return served
}

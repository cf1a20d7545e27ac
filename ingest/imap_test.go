package ingest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
	"github.com/emersion/go-sasl"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/db/dbtest"
	"github.com/tlsrpt/tlsrpt/ingest/internal/dovetest"
	"github.com/tlsrpt/tlsrpt/reports"
	"github.com/tlsrpt/tlsrpt/reports/reportgen"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }

const (
	memUser     = "rua@example.net"
	memPassword = "pw"
	testToken   = "ya29.test-access-token"
)

// memServer is go-imap's in-memory server on 127.0.0.1:0.
type memServer struct {
	addr string
	user *imapmemserver.User
}

type memOptions struct {
	caps     imap.CapSet // nil: IMAP4rev1 with MOVE, UIDPLUS, NAMESPACE
	starttls *tls.Config // offer STARTTLS
	tls      *tls.Config // implicit TLS
	sasl     bool        // offer OAUTHBEARER (token testToken) instead of LOGIN
	wrap     func(net.Listener) net.Listener
}

func startMem(t *testing.T, o memOptions) *memServer {
	t.Helper()
	mem := imapmemserver.New()
	user := imapmemserver.NewUser(memUser, memPassword)
	if err := user.Create("INBOX", nil); err != nil {
		t.Fatal(err)
	}
	mem.AddUser(user)
	caps := o.caps
	if caps == nil {
		caps = imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapMove: {}, imap.CapUIDPlus: {}, imap.CapNamespace: {}}
	}
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			s := mem.NewSession()
			if o.sasl {
				return &oauthSession{Session: s}, nil, nil
			}
			return s, nil, nil
		},
		Caps:         caps,
		TLSConfig:    o.starttls,
		InsecureAuth: true,
		Logger:       discardLogger{},
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if o.wrap != nil {
		ln = o.wrap(ln)
	}
	if o.tls != nil {
		ln = tls.NewListener(ln, o.tls)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return &memServer{addr: addr, user: user}
}

type discardLogger struct{}

func (discardLogger) Printf(string, ...any) {}

// oauthSession offers only OAUTHBEARER, accepting testToken for memUser.
type oauthSession struct {
	imapserver.Session
}

func (s *oauthSession) AuthenticateMechanisms() []string { return []string{sasl.OAuthBearer} }

func (s *oauthSession) Authenticate(mech string) (sasl.Server, error) {
	return sasl.NewOAuthBearerServer(func(o sasl.OAuthBearerOptions) *sasl.OAuthBearerError {
		if o.Token != testToken || o.Username != memUser {
			return &sasl.OAuthBearerError{Status: "invalid_token"}
		}
		if err := s.Session.Login(memUser, memPassword); err != nil {
			return &sasl.OAuthBearerError{Status: "invalid_request"}
		}
		return nil
	}), nil
}

// appendMsgs puts msgs into the INBOX over IMAP.
func appendMsgs(t *testing.T, addr string, msgs [][]byte) {
	t.Helper()
	c, err := dovetest.Dial(addr, memUser, memPassword)
	if err != nil {
		t.Fatalf("dialing %s: %v", addr, err)
	}
	defer c.Close()
	if err := dovetest.Append(c, "INBOX", msgs); err != nil {
		t.Fatalf("appending: %v", err)
	}
}

// folderCounts returns the number of messages per folder.
func folderCounts(t *testing.T, addr string, folders ...string) map[string]int {
	t.Helper()
	c, err := dovetest.Dial(addr, memUser, memPassword)
	if err != nil {
		t.Fatalf("dialing %s: %v", addr, err)
	}
	defer c.Close()
	n, err := dovetest.Count(c, folders...)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// memConfig is a validated plaintext-loopback configuration for addr.
func memConfig(addr string) IMAPConfig {
	return IMAPConfig{
		Security:                  SecurityPlaintext,
		InsecurePlaintextLoopback: true,
		Addr:                      addr,
		Username:                  memUser,
		Password:                  memPassword,
		PollInterval:              time.Minute,
	}
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// newTestPoller is a poller on cfg storing into d through the real
// pipeline, with DKIM keys of reportgen's reporters.
func newTestPoller(t *testing.T, cfg IMAPConfig, d *db.DB, lim reports.Limits) *Poller {
	t.Helper()
	pipe := &Pipeline{
		Store:      d,
		Limits:     lim,
		VerifyDKIM: NewDKIMVerifier(func(_ context.Context, name string) ([]string, error) { return reportgen.LookupTXT(name) }),
		Now:        time.Now,
		Log:        testLogger(t),
	}
	p, err := NewPoller(cfg, pipe, d, testLogger(t))
	if err != nil {
		t.Fatalf("NewPoller: %v", err)
	}
	p.SetStoreBatch(dbStoreBatch(d))
	return p
}

// dbStoreBatch adapts (*db.DB).StoreReports as cmd/tlsrpt does.
func dbStoreBatch(d *db.DB) func(ctx context.Context, rs []reports.Received) ([]int64, []bool, error) {
	return d.StoreBatch
}

// testMailbox is what a rua mailbox holds: signed reports, a resent
// report, the corpus's real report mails, and mails with no valid report.
type testMailbox struct {
	msgs        [][]byte
	reportKeys  map[string]bool // distinct reports in the good mails
	goodMsgs    int             // messages with at least one valid report
	quarantined int             // messages with none
}

func buildMailbox(t *testing.T, n int, withOversized bool, maxBytes int64) testMailbox {
	t.Helper()
	var mb testMailbox
	mb.reportKeys = map[string]bool{}
	day := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		rep := reportgen.Reporters[i%len(reportgen.Reporters)]
		r := &reportgen.Report{Reporter: rep, Day: day.AddDate(0, 0, -(i / len(reportgen.Reporters) % 30)), Successful: int64(100 + i), Seq: i,
			Policy: reportgen.Policy{Type: "sts", Mode: "testing", MaxAge: 86400, Domain: "example.net", MX: []string{"mx1.example.net"}}}
		mb.msgs = append(mb.msgs, r.Mail(memUser))
	}
	if n > 0 {
		mb.msgs = append(mb.msgs, mb.msgs[0]) // the same report mailed twice
	}
	err := filepath.WalkDir("../testdata/corpus", func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() || !strings.HasSuffix(path, ".eml") {
			return err
		}
		b, err := os.ReadFile(path)
		mb.msgs = append(mb.msgs, b)
		return err
	})
	if err != nil {
		t.Fatalf("reading the corpus: %v", err)
	}
	// What the parser says decides the expectation; this test checks the
	// path to the database, not the parser.
	for _, m := range mb.msgs {
		msg, err := reports.ReadMessage(bytes.NewReader(m), reports.Limits{MaxMessageBytes: maxBytes})
		good := false
		if err == nil {
			for _, a := range msg.Attachments {
				if a.Report != nil {
					good = true
					r := a.Report
					mb.reportKeys[fmt.Sprintf("%s|%s|%s|%s", r.OrganizationName, r.ReportID, r.DateRange.Start.UTC(), r.DateRange.End.UTC())] = true
				}
			}
		}
		if good {
			mb.goodMsgs++
		} else {
			mb.quarantined++
		}
	}
	bad := reportgen.BrokenMails(memUser, day)
	mb.msgs = append(mb.msgs, bad...)
	mb.quarantined += len(bad)
	if withOversized {
		// Two big mails that differ only after the bytes kept: two
		// quarantine entries all the same.
		for _, end := range []string{"a", "b"} {
			big := []byte("From: flood@example.org\r\nSubject: big\r\n\r\n" + strings.Repeat("x", int(maxBytes)+1000) + end + "\r\n")
			mb.msgs = append(mb.msgs, big)
			mb.quarantined++
		}
	}
	return mb
}

func countRows(t *testing.T, d *db.DB, table string) int {
	t.Helper()
	var n int
	if err := d.Pool.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n); err != nil {
		t.Fatalf("counting %s: %v", table, err)
	}
	return n
}

// TestPollerOnce is a full pass over a mailbox of good, duplicate,
// broken and oversized mails on the in-memory server.
func TestPollerOnce(t *testing.T) {
	d := dbtest.New(t)
	srv := startMem(t, memOptions{})
	const maxBytes = 256 << 10
	mb := buildMailbox(t, 20, true, maxBytes)
	appendMsgs(t, srv.addr, mb.msgs)

	p := newTestPoller(t, memConfig(srv.addr), d, reports.Limits{MaxMessageBytes: maxBytes})
	st, err := p.Once(t.Context())
	if err != nil {
		t.Fatalf("Once: %v", err)
	}
	want := Stats{Messages: len(mb.msgs), Stored: len(mb.reportKeys), Duplicates: mb.goodMsgs - len(mb.reportKeys), Quarantined: mb.quarantined}
	if st.Messages != want.Messages || st.Stored != want.Stored || st.Quarantined != want.Quarantined || st.Stored+st.Duplicates < mb.goodMsgs {
		t.Errorf("Once() = %+v, want %+v", st, want)
	}
	if n := countRows(t, d, "reports"); n != len(mb.reportKeys) {
		t.Errorf("reports rows = %d, want %d", n, len(mb.reportKeys))
	}
	if n := countRows(t, d, "quarantine"); n != mb.quarantined {
		t.Errorf("quarantine rows = %d, want %d", n, mb.quarantined)
	}
	got := folderCounts(t, srv.addr, "INBOX", DefaultProcessedFolder, DefaultQuarantineFolder)
	if got["INBOX"] != 0 || got[DefaultProcessedFolder] != mb.goodMsgs || got[DefaultQuarantineFolder] != mb.quarantined {
		t.Errorf("folders = %v, want INBOX 0, processed %d, quarantine %d", got, mb.goodMsgs, mb.quarantined)
	}
	// The oversized message is kept as its first bytes with the reason.
	entries, err := d.QuarantineList(t.Context(), db.QuarantineFilter{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	foundBig := 0
	for _, e := range entries {
		if e.Size > quarantineHeadBytes && e.Size < quarantineHeadBytes+200 && strings.Contains(e.Reason, "larger than the limit") {
			foundBig++
		}
		if e.Source != reports.SourceIMAP || !strings.Contains(e.SourceRef, "UID=") {
			t.Errorf("quarantine entry %d: source %s %q, want imap with a UID", e.ID, e.Source, e.SourceRef)
		}
	}
	if foundBig != 2 {
		t.Errorf("%d quarantine entries of the first %d bytes saying the message is too large, want 2: %+v", foundBig, quarantineHeadBytes, entries)
	}
	// DKIM: reportgen's reports are signed; the verifier found them.
	var pass int
	if err := d.Pool.QueryRow(t.Context(), `SELECT count(*) FROM reports WHERE dkim = 'pass'`).Scan(&pass); err != nil {
		t.Fatal(err)
	}
	if pass < 20 {
		t.Errorf("reports with DKIM pass = %d, want at least the 20 signed ones", pass)
	}

	// A second pass finds nothing new; the state points past the last UID.
	st, err = p.Once(t.Context())
	if err != nil || st != (Stats{}) {
		t.Errorf("second Once() = %+v, %v; want nothing", st, err)
	}
	v, last, err := d.IngestState(t.Context(), p.Config().MailboxKey())
	if err != nil || v == 0 || last != uint32(len(mb.msgs)) {
		t.Errorf("IngestState = %d, %d, %v; want a UIDVALIDITY and last UID %d", v, last, err, len(mb.msgs))
	}
	if s := p.Status(); s.Totals.Messages != len(mb.msgs) || s.LastError != "" || s.LastSuccess.IsZero() || s.Connected {
		t.Errorf("Status() = %+v", s)
	}
}

// TestPollerFallbacks checks servers without MOVE (COPY, \Deleted, UID
// EXPUNGE) and without MOVE and UIDPLUS (copy and flag \Seen), and the
// mark-seen-only option.
func TestPollerFallbacks(t *testing.T) {
	tests := []struct {
		name       string
		caps       imap.CapSet
		markSeen   bool
		wantInbox  bool // messages stay in the INBOX
		wantCopied bool // and are in the processed folder
	}{
		{"uidplus", imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapUIDPlus: {}}, false, false, true},
		{"plain rev1", imap.CapSet{imap.CapIMAP4rev1: {}}, false, true, true},
		{"mark seen", nil, true, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := dbtest.New(t)
			srv := startMem(t, memOptions{caps: tt.caps})
			mb := buildMailbox(t, 3, false, 1<<20)
			appendMsgs(t, srv.addr, mb.msgs)
			cfg := memConfig(srv.addr)
			cfg.MarkSeenOnly = tt.markSeen
			p := newTestPoller(t, cfg, d, reports.Limits{})
			p.SetStoreBatch(nil) // one transaction per report, the path without StoreReports
			if _, err := p.Once(t.Context()); err != nil {
				t.Fatalf("Once: %v", err)
			}
			got := folderCounts(t, srv.addr, "INBOX", DefaultProcessedFolder, DefaultQuarantineFolder)
			n := len(mb.msgs)
			wantInbox, wantDone := 0, 0
			if tt.wantInbox {
				wantInbox = n
			}
			if tt.wantCopied {
				wantDone = n
			}
			if got["INBOX"] != wantInbox || got[DefaultProcessedFolder]+got[DefaultQuarantineFolder] != wantDone {
				t.Errorf("folders = %v, want INBOX %d and %d in the two folders", got, wantInbox, wantDone)
			}
			if tt.wantInbox {
				assertAllSeen(t, srv.addr, n)
			}
			if c := countRows(t, d, "reports"); c != len(mb.reportKeys) {
				t.Errorf("reports rows = %d, want %d", c, len(mb.reportKeys))
			}
			// Nothing is read twice on the next pass.
			if st, err := p.Once(t.Context()); err != nil || st.Messages != 0 {
				t.Errorf("second Once() = %+v, %v; want nothing", st, err)
			}
		})
	}
}

func assertAllSeen(t *testing.T, addr string, n int) {
	t.Helper()
	c, err := dovetest.Dial(addr, memUser, memPassword)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	res, err := c.UIDSearch(&imap.SearchCriteria{Flag: []imap.Flag{imap.FlagSeen}}, nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if got := len(res.AllUIDs()); got != n {
		t.Errorf("messages flagged \\Seen = %d, want %d", got, n)
	}
}

// TestPollerUIDValidityChange: a mailbox recreated with a new UIDVALIDITY
// is read again from the start, and its reports are duplicates.
func TestPollerUIDValidityChange(t *testing.T) {
	d := dbtest.New(t)
	srv := startMem(t, memOptions{})
	mb := buildMailbox(t, 4, false, 1<<20)
	appendMsgs(t, srv.addr, mb.msgs)
	cfg := memConfig(srv.addr)
	cfg.MarkSeenOnly = true
	p := newTestPoller(t, cfg, d, reports.Limits{})
	if _, err := p.Once(t.Context()); err != nil {
		t.Fatal(err)
	}
	// Pretend the last run saw another UIDVALIDITY with a high last UID:
	// trusting it would skip everything.
	key := p.Config().MailboxKey()
	v, _, _ := d.IngestState(t.Context(), key)
	if err := d.SetIngestState(t.Context(), key, v+1, 1_000_000); err != nil {
		t.Fatal(err)
	}
	st, err := p.Once(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st.Messages != len(mb.msgs) || st.Stored != 0 {
		t.Errorf("pass after UIDVALIDITY change = %+v, want %d messages read again, 0 new reports", st, len(mb.msgs))
	}
	if n := countRows(t, d, "reports"); n != len(mb.reportKeys) {
		t.Errorf("reports rows = %d, want %d", n, len(mb.reportKeys))
	}
}

// TestPollerTLSAndOAuth: implicit TLS against a private CA, and
// OAUTHBEARER with a token from a command.
func TestPollerTLSAndOAuth(t *testing.T) {
	serverTLS, caFile := testCA(t)
	d := dbtest.New(t)
	// The SASL wrapper hides the session's NAMESPACE and MOVE: this
	// server falls back to COPY and UID EXPUNGE.
	srv := startMem(t, memOptions{tls: serverTLS, sasl: true, caps: imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapUIDPlus: {}}})
	mb := buildMailbox(t, 2, false, 1<<20)
	// This server offers no LOGIN: the test appends with the token too.
	appendTLS(t, srv.addr, caFile, mb.msgs)

	cfg := IMAPConfig{Security: SecurityTLS, Addr: srv.addr, Username: memUser, CAFile: caFile,
		Auth: AuthOAuthBearer, TokenCommand: "echo " + testToken, PollInterval: time.Minute}
	p := newTestPoller(t, cfg, d, reports.Limits{})
	st, err := p.Once(t.Context())
	if err != nil {
		t.Fatalf("Once over TLS with OAUTHBEARER: %v", err)
	}
	if st.Messages != len(mb.msgs) {
		t.Errorf("Once() = %+v, want %d messages", st, len(mb.msgs))
	}

	// A wrong token is refused with a clear error.
	cfg.TokenCommand = "echo wrong"
	p = newTestPoller(t, cfg, d, reports.Limits{})
	if _, err := p.Once(t.Context()); err == nil || !strings.Contains(err.Error(), "OAUTHBEARER") {
		t.Errorf("Once with a wrong token: %v, want an OAUTHBEARER error", err)
	}
	// Without the CA the certificate is not trusted.
	cfg.TokenCommand, cfg.CAFile = "echo "+testToken, ""
	p = newTestPoller(t, cfg, d, reports.Limits{})
	if _, err := p.Once(t.Context()); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("Once without the CA: %v, want a certificate error", err)
	}
}

// TestPollerSTARTTLS: imap:// upgrades with STARTTLS, and a server that
// does not offer it is refused rather than used in plaintext.
func TestPollerSTARTTLS(t *testing.T) {
	serverTLS, caFile := testCA(t)
	d := dbtest.New(t)
	srv := startMem(t, memOptions{starttls: serverTLS})
	mb := buildMailbox(t, 2, false, 1<<20)
	appendMsgs(t, srv.addr, mb.msgs)
	cfg := IMAPConfig{Security: SecuritySTARTTLS, Addr: srv.addr, Username: memUser, Password: memPassword, CAFile: caFile}
	p := newTestPoller(t, cfg, d, reports.Limits{})
	if st, err := p.Once(t.Context()); err != nil || st.Messages != len(mb.msgs) {
		t.Errorf("Once over STARTTLS = %+v, %v; want %d messages", st, err, len(mb.msgs))
	}

	plain := startMem(t, memOptions{})
	cfg.Addr = plain.addr
	p = newTestPoller(t, cfg, d, reports.Limits{})
	if _, err := p.Once(t.Context()); err == nil || !strings.Contains(err.Error(), "starttls") {
		t.Errorf("Once against a server without STARTTLS: %v, want a starttls error", err)
	}
}

func appendTLS(t *testing.T, addr, caFile string, msgs [][]byte) {
	t.Helper()
	pemBytes, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemBytes)
	c, err := imapclient.DialTLS(addr, &imapclient.Options{TLSConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Authenticate(sasl.NewOAuthBearerClient(&sasl.OAuthBearerOptions{Username: memUser, Token: testToken})); err != nil {
		t.Fatal(err)
	}
	if err := dovetest.Append(c, "INBOX", msgs); err != nil {
		t.Fatal(err)
	}
}

// testCA makes a CA and a server certificate for 127.0.0.1, and returns
// the server's TLS configuration and the CA's PEM file.
func testCA(t *testing.T) (*tls.Config, string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tlsrpt test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644); err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{leafDER}, PrivateKey: key}}}, caFile
}

// TestPollerRunIdle: Run sees a new message through IDLE long before the
// poll interval.
func TestPollerRunIdle(t *testing.T) {
	d := dbtest.New(t)
	srv := startMem(t, memOptions{})
	cfg := memConfig(srv.addr)
	cfg.PollInterval = time.Hour
	p := newTestPoller(t, cfg, d, reports.Limits{})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	waitFor(t, 60*time.Second, "the poller to connect", func() bool { return p.Status().Connected && !p.Status().LastSuccess.IsZero() })

	mb := buildMailbox(t, 3, false, 1<<20)
	appendMsgs(t, srv.addr, mb.msgs[:3])
	waitFor(t, 30*time.Second, "3 reports stored", func() bool { return countRows(t, d, "reports") == 3 })
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run() = %v after cancel, want nil", err)
	}
}

func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// cutProxy forwards loopback TCP to target and cuts every connection
// after it has carried cutAfter bytes from the server, until cutting is
// turned off.
type cutProxy struct {
	ln       net.Listener
	target   string
	cutAfter int64
	mu       sync.Mutex
	cutting  bool
	cuts     int
}

func newCutProxy(t *testing.T, target string, cutAfter int64) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target, cutAfter: cutAfter, cutting: true}
	t.Cleanup(func() { ln.Close() })
	go p.serve()
	return p
}

func (p *cutProxy) setCutting(on bool) {
	p.mu.Lock()
	p.cutting = on
	p.mu.Unlock()
}

func (p *cutProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		go func() { io.Copy(s, c); s.Close() }()
		go func() {
			defer c.Close()
			defer s.Close()
			p.mu.Lock()
			cut := p.cutting
			p.mu.Unlock()
			if !cut {
				io.Copy(c, s)
				return
			}
			io.CopyN(c, s, p.cutAfter)
			p.mu.Lock()
			p.cuts++
			p.mu.Unlock()
		}()
	}
}

// TestPollerReconnect: the connection is cut in the middle of a FETCH,
// twice; Run reconnects by itself and every report ends up stored once.
func TestPollerReconnect(t *testing.T) {
	d := dbtest.New(t)
	srv := startMem(t, memOptions{})
	mb := buildMailbox(t, 40, false, 1<<20)
	appendMsgs(t, srv.addr, mb.msgs)
	proxy := newCutProxy(t, srv.addr, 30<<10) // well inside the first FETCH
	cfg := memConfig(proxy.ln.Addr().String())
	cfg.BatchSize = 10
	p := newTestPoller(t, cfg, d, reports.Limits{})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	waitFor(t, 60*time.Second, "two cuts", func() bool {
		proxy.mu.Lock()
		defer proxy.mu.Unlock()
		return proxy.cuts >= 2
	})
	proxy.setCutting(false)
	waitFor(t, 60*time.Second, "every message in its folder", func() bool {
		got := folderCounts(t, srv.addr, "INBOX")
		return got["INBOX"] == 0
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
	if s := p.Status(); s.Reconnects < 2 {
		t.Errorf("Status().Reconnects = %d, want at least 2", s.Reconnects)
	}
}

// TestPollerDefersDKIMTempError: a fresh mail whose DKIM key cannot be
// fetched for now stays in the mailbox while the others go on, the
// recorded UID stays below it, and it is taken once DNS answers again.
func TestPollerDefersDKIMTempError(t *testing.T) {
	d := dbtest.New(t)
	srv := startMem(t, memOptions{})
	day := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -1)
	var msgs [][]byte
	for i := range 6 {
		r := &reportgen.Report{Reporter: reportgen.Reporters[i%len(reportgen.Reporters)], Day: day, Successful: 10, Seq: i,
			Policy: reportgen.Policy{Type: "sts", Mode: "testing", MaxAge: 86400, Domain: "example.net", MX: []string{"mx1.example.net"}}}
		msgs = append(msgs, r.Mail(memUser))
	}
	appendMsgs(t, srv.addr, msgs)
	var mu sync.Mutex
	yahooDown := true
	lookup := func(_ context.Context, name string) ([]string, error) {
		mu.Lock()
		defer mu.Unlock()
		if yahooDown && strings.HasSuffix(name, "yahoo.com") {
			return nil, &net.DNSError{Err: "server misbehaving", Name: name, IsTemporary: true}
		}
		return reportgen.LookupTXT(name)
	}
	pipe := &Pipeline{Store: d, VerifyDKIM: NewDKIMVerifier(lookup), Now: time.Now, Log: testLogger(t)}
	cfg := memConfig(srv.addr)
	cfg.BatchSize = 2
	p, err := NewPoller(cfg, pipe, d, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	p.SetStoreBatch(dbStoreBatch(d))

	st, err := p.Once(t.Context())
	if err != nil {
		t.Fatalf("Once: %v", err)
	}
	if st.Messages != 5 || st.Deferred != 1 || st.Stored != 5 {
		t.Errorf("Once() with yahoo.com's DNS down = %+v, want 5 messages stored, 1 deferred", st)
	}
	if got := folderCounts(t, srv.addr, "INBOX"); got["INBOX"] != 1 {
		t.Errorf("INBOX = %d, want the 1 deferred message", got["INBOX"])
	}
	_, last, err := d.IngestState(t.Context(), p.Config().MailboxKey())
	if err != nil || last != 2 {
		t.Errorf("recorded last UID = %d, %v; want 2 (below the deferred UID 3)", last, err)
	}

	mu.Lock()
	yahooDown = false
	mu.Unlock()
	st, err = p.Once(t.Context())
	if err != nil || st.Messages != 1 || st.Stored != 1 || st.Deferred != 0 {
		t.Errorf("Once() with DNS back = %+v, %v; want the deferred message stored", st, err)
	}
	if got := folderCounts(t, srv.addr, "INBOX", DefaultProcessedFolder); got["INBOX"] != 0 || got[DefaultProcessedFolder] != 6 {
		t.Errorf("folders = %v, want INBOX 0, processed 6", got)
	}
	var pass int
	if err := d.Pool.QueryRow(t.Context(), `SELECT count(*) FROM reports WHERE dkim = 'pass'`).Scan(&pass); err != nil || pass != 6 {
		t.Errorf("reports with DKIM pass = %d, %v; want 6", pass, err)
	}
}

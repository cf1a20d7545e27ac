package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tlsrpt/tlsrpt/rollout/dnstest"

	"github.com/jackc/pgx/v5"

	"github.com/tlsrpt/tlsrpt/db/dbtest"
	"github.com/tlsrpt/tlsrpt/reports/reportgen"
)

// instance is one `tlsrpt serve` process of TestTwoInstances.
type instance struct {
	name   string
	cmd    *exec.Cmd
	base   string // http://127.0.0.1:port
	exited chan error

	mu    sync.Mutex
	lines []string
	seen  chan struct{} // a new log line arrived
}

// startInstance runs bin serve with env and waits for its web address.
func startInstance(t *testing.T, bin, name string, env []string) *instance {
	t.Helper()
	in := &instance{name: name, exited: make(chan error, 1), seen: make(chan struct{}, 1)}
	in.cmd = exec.Command(bin, "serve")
	in.cmd.Dir = t.TempDir()
	in.cmd.Env = append(os.Environ(), env...)
	in.cmd.Env = append(in.cmd.Env, "TLSRPT_DATA_DIR="+filepath.Join(in.cmd.Dir, "data"))
	stderr, err := in.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	in.cmd.Stdout = io.Discard
	if err := in.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			in.mu.Lock()
			in.lines = append(in.lines, sc.Text())
			in.mu.Unlock()
			select {
			case in.seen <- struct{}{}:
			default:
			}
		}
		in.exited <- in.cmd.Wait()
		close(in.seen)
	}()
	t.Cleanup(func() {
		if in.cmd.ProcessState == nil {
			in.cmd.Process.Kill()
			<-in.exited
		}
	})
	m := in.waitLine(t, regexp.MustCompile(`msg=Serving url=(http://\S+)`), time.Minute)
	in.base = m[1]
	return in
}

// waitLine waits until a log line of the instance matches re and returns
// the match.
func (in *instance) waitLine(t *testing.T, re *regexp.Regexp, d time.Duration) []string {
	t.Helper()
	deadline := time.After(d)
	for {
		in.mu.Lock()
		for _, l := range in.lines {
			if m := re.FindStringSubmatch(l); m != nil {
				in.mu.Unlock()
				return m
			}
		}
		in.mu.Unlock()
		select {
		case _, ok := <-in.seen:
			if !ok {
				t.Fatalf("%s exited before logging %q:\n%s", in.name, re, in.log())
			}
		case <-deadline:
			t.Fatalf("%s did not log %q within %s:\n%s", in.name, re, d, in.log())
		}
	}
}

func (in *instance) logged(re *regexp.Regexp) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, l := range in.lines {
		if re.MatchString(l) {
			return true
		}
	}
	return false
}

func (in *instance) log() string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return strings.Join(in.lines, "\n")
}

// instanceReports builds n unsigned report mails for distinct days of
// instances.example, starting at day offset first.
func instanceReports(first, n int) (mails [][]byte, jsons [][]byte) {
	day := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -2)
	for i := first; i < first+n; i++ {
		r := &reportgen.Report{
			Reporter:   reportgen.Reporters[i%len(reportgen.Reporters)],
			Day:        day.AddDate(0, 0, -i/len(reportgen.Reporters)),
			Successful: int64(100 + i),
			Seq:        i,
			Policy: reportgen.Policy{Type: "sts", Mode: "testing", MaxAge: 86400, Domain: "instances.example",
				MX: []string{"mx.instances.example"}, MXHosts: []string{"mx.instances.example"}},
		}
		mails = append(mails, reportgen.StripSignature(r.Mail(demoMailboxUser)))
		jsons = append(jsons, r.JSON())
	}
	return mails, jsons
}

// TestTwoInstances runs two `tlsrpt serve` processes against one
// PostgreSQL and one mailbox (SCALING.md, "Several instances"): one
// polls the mailbox while the other waits; both serve the web and take
// POSTed reports (the same report posted to both is stored once); when
// the poller is killed with SIGKILL, the other takes the mailbox over and
// ingests what arrives next. Every mail ends up stored exactly once.
func TestTwoInstances(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs two servers")
	}
	// An empty database: the first instance migrates it (--migrate), the
	// second finds it migrated.
	url := dbtest.NewURL(t, false)
	bin := filepath.Join(t.TempDir(), "tlsrpt")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	const first, later = 40, 25
	mails, _ := instanceReports(0, first)
	password := randomHex(8)
	imapAddr, user, stop, err := startMemMailbox(password, mails)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()

	env := []string{
		"DATABASE_URL=" + url,
		"TLSRPT_LISTEN=127.0.0.1:0",
		"TLSRPT_ADMIN_PASSWORD=" + randomHex(12),
		"TLSRPT_ADMIN_PASSWORD_FILE=",
		"TLSRPT_IMAP_URL=imap://" + strings.Replace(demoMailboxUser, "@", "%40", 1) + "@" + imapAddr + "/INBOX",
		"TLSRPT_IMAP_PASSWORD=" + password,
		"TLSRPT_IMAP_PASSWORD_FILE=",
		"TLSRPT_IMAP_INSECURE_PLAINTEXT_LOOPBACK=1",
		"TLSRPT_IMAP_POLL_INTERVAL=1s",
		// A DNS of the test's own: the mails are unsigned, live checks
		// are not run, and the posting address has no reverse name.
		"TLSRPT_RESOLVER=" + dnstest.Start(t, "example.", "test-key.", "c2VjcmV0c2VjcmV0c2VjcmV0").Addr,
		"TLSRPT_LOG_LEVEL=info",
		"TLSRPT_MIGRATE=1",
	}
	taken := regexp.MustCompile(`msg="Mailbox lock taken"`)
	waiting := regexp.MustCompile(`msg="Mailbox polled by another instance, waiting to take over"`)

	a := startInstance(t, bin, "instance A", env)
	a.waitLine(t, taken, time.Minute)
	b := startInstance(t, bin, "instance B", env)
	b.waitLine(t, waiting, time.Minute)

	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	count := func(where string) int {
		t.Helper()
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM reports WHERE "+where).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	waitCount := func(where string, want int, why string) {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for {
			n := count(where)
			if n == want {
				return
			}
			if n > want || time.Now().After(deadline) {
				t.Fatalf("%s: %d reports where %s, want %d\nA:\n%s\nB:\n%s", why, n, where, want, a.log(), b.log())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitCount("source = 'imap'", first, "after instance A polled the mailbox")

	// Both instances serve the web and the HTTPS intake. The same new
	// report POSTed to both at once is stored once; both answer 200.
	for _, in := range []*instance{a, b} {
		resp, err := http.Get(in.base + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: GET /healthz = %d", in.name, resp.StatusCode)
		}
		resp, err = http.Get(in.base + "/login")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: GET /login = %d", in.name, resp.StatusCode)
		}
	}
	_, posted := instanceReports(1000, 1)
	var wg sync.WaitGroup
	codes := make([]int, 2)
	for i, in := range []*instance{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Post(in.base+"/tlsrpt", "application/tlsrpt+json", bytes.NewReader(posted[0]))
			if err != nil {
				t.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			codes[i] = resp.StatusCode
		}()
	}
	wg.Wait()
	if codes[0] != http.StatusOK || codes[1] != http.StatusOK {
		t.Errorf("the same report POSTed to both instances: statuses %v, want 200 and 200", codes)
	}
	if n := count("source = 'https'"); n != 1 {
		t.Errorf("the report POSTed to both instances is stored %d times, want once", n)
	}
	if b.logged(taken) {
		t.Errorf("instance B took the mailbox while A held it:\n%s", b.log())
	}

	// Kill the poller without warning; B takes the mailbox over and
	// ingests the mail that arrives afterwards.
	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-a.exited
	more, _ := instanceReports(first, later)
	if err := appendMail(user, more); err != nil {
		t.Fatal(err)
	}
	b.waitLine(t, taken, time.Minute)
	waitCount("source = 'imap'", first+later, "after instance B took the mailbox over")
	var distinct int
	if err := conn.QueryRow(ctx, "SELECT count(DISTINCT report_id) FROM reports").Scan(&distinct); err != nil {
		t.Fatal(err)
	}
	if distinct != first+later+1 {
		t.Errorf("%d distinct report ids stored, want %d", distinct, first+later+1)
	}

	// B stops cleanly on SIGTERM.
	if err := b.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-b.exited:
		if err != nil {
			t.Errorf("instance B after SIGTERM: %v\n%s", err, b.log())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("instance B did not stop within 30s of SIGTERM")
	}
}

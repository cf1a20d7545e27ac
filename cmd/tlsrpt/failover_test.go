package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/db/dbtest"
	"github.com/tlsrpt/tlsrpt/ingest"
	"github.com/tlsrpt/tlsrpt/reports/reportgen"
	"github.com/tlsrpt/tlsrpt/rollout/dnstest"
)

// failoverRecovery is how soon after the promotion every instance must be
// back to normal (RELIABILITY.md, "Failover").
const failoverRecovery = 15 * time.Second

// failoverInstance is one in-process `tlsrpt serve` of TestFailover.
type failoverInstance struct {
	name string
	base string
	log  *syncBuilder
}

// startFailoverInstance runs serve as runServe does, with the IMAP poller
// of the environment vars, until the test ends.
func startFailoverInstance(t *testing.T, name string, vars map[string]string) *failoverInstance {
	t.Helper()
	in := &failoverInstance{name: name, log: &syncBuilder{}}
	env := &Env{Stdout: &strings.Builder{}, Stderr: in.log, Getenv: func(k string) string { return vars[k] }}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	parse := parseServeFlags(fs, env)
	if err := fs.Parse([]string{"--listen", "127.0.0.1:0"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := parse()
	if err != nil {
		t.Fatal(err)
	}
	ic, err := ingest.IMAPConfigFromEnv(env.Getenv, "")
	if err == nil {
		err = ic.Validate()
	}
	if err != nil {
		t.Fatal(err)
	}
	ready := make(chan string, 1)
	a := &app{env: env, cfg: cfg, log: newLogger(env, cfg), imap: &ic, noProbes: true, ready: func(addr, _ string) { ready <- addr }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Errorf("%s did not stop within 30 s", name)
		}
	})
	select {
	case addr := <-ready:
		in.base = "http://" + addr
	case err := <-done:
		t.Fatalf("%s: run() = %v before it was ready; log:\n%s", name, err, in.log.String())
	case <-time.After(time.Minute):
		t.Fatalf("%s not ready within a minute", name)
	}
	return in
}

// count is how many lines of the instance's log match re.
func (in *failoverInstance) count(re *regexp.Regexp) int {
	return len(re.FindAllStringIndex(in.log.String(), -1))
}

// failoverReport is report seq of failover.example, two days ago: its
// report id, its JSON (for POST) and its mail (for the mailbox).
func failoverReport(seq int) (id string, json, mail []byte) {
	r := &reportgen.Report{
		Reporter:   reportgen.Reporters[seq%len(reportgen.Reporters)],
		Day:        time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -2),
		Successful: int64(100 + seq%1000),
		Seq:        seq,
		Policy: reportgen.Policy{Type: "sts", Mode: "testing", MaxAge: 86400, Domain: "failover.example",
			MX: []string{"mx.failover.example"}, MXHosts: []string{"mx.failover.example"}},
	}
	return r.ReportID(), r.JSON(), reportgen.StripSignature(r.Mail(demoMailboxUser))
}

// postAttempt is one POST of the senders: when, to which instance, and
// the answer (0: no answer, a connection error).
type postAttempt struct {
	at         time.Time
	instance   int
	status     int
	retryAfter string
}

// TestFailover runs two `tlsrpt serve` instances on a primary and its
// synchronous streaming standby, DATABASE_URL listing both with
// target_session_attrs=read-write, while mail arrives in their IMAP
// mailbox and senders POST reports to both, retrying on 503 and on
// connection errors as senders do. The primary's postmaster is killed
// with SIGKILL and the standby promoted with pg_ctl promote. Then: every
// report is stored exactly once (none lost, none doubled), no POST was
// answered with anything but 200 or 503 with Retry-After, no mail left
// the INBOX while there was no primary (a mail whose commit failed is
// fetched again), each instance answers its health check and takes a
// POST, and the mailbox is polled again, within 15 s of the promotion;
// the mailbox lock is taken once on the new primary. The times are
// logged (BENCHMARKS.md, "Failover").
func TestFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a primary, a standby and two servers")
	}
	pair := dbtest.NewPair(t, true)
	url := pair.URL("target_session_attrs=read-write")
	ctx := context.Background()

	password := randomHex(8)
	imapAddr, user, stopIMAP, err := startMemMailbox(password, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer stopIMAP()
	vars := map[string]string{
		"DATABASE_URL":                            url,
		"TLSRPT_ADMIN_PASSWORD":                   randomHex(12),
		"TLSRPT_IMAP_URL":                         "imap://" + strings.Replace(demoMailboxUser, "@", "%40", 1) + "@" + imapAddr + "/INBOX",
		"TLSRPT_IMAP_PASSWORD":                    password,
		"TLSRPT_IMAP_INSECURE_PLAINTEXT_LOOPBACK": "1",
		"TLSRPT_IMAP_POLL_INTERVAL":               "1s",
		// The mails are unsigned and the posting address has no reverse
		// name: a DNS of the test's own answers that at once.
		"TLSRPT_RESOLVER":  dnstest.Start(t, "example.", "test-key.", "c2VjcmV0c2VjcmV0c2VjcmV0").Addr,
		"TLSRPT_LOG_LEVEL": "info",
		// Every sender posts from 127.0.0.1.
		"TLSRPT_RATE_PUBLIC": "100000/m,10000",
	}
	instances := []*failoverInstance{startFailoverInstance(t, "instance A", vars), startFailoverInstance(t, "instance B", vars)}
	taken := regexp.MustCompile(`msg="Mailbox lock taken"`)
	lockTakes := func() int {
		n := 0
		for _, in := range instances {
			n += in.count(taken)
		}
		return n
	}
	logs := func() string {
		var b strings.Builder
		for _, in := range instances {
			fmt.Fprintf(&b, "--- %s:\n%s\n", in.name, in.log.String())
		}
		return b.String()
	}
	waitUntil := func(what string, d time.Duration, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(d)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("waited %s for %s\n%s", d, what, logs())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitUntil("an instance to take the mailbox", time.Minute, func() bool { return lockTakes() == 1 })

	// The store as a checker sees it: the same multi-host URL.
	check, err := db.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer check.Close()
	stored := func(source string) int {
		var n int
		if err := check.Pool.QueryRow(ctx, `SELECT count(*) FROM reports WHERE source = $1`, source).Scan(&n); err != nil {
			return -1 // no primary now
		}
		return n
	}

	// Mail arrives every 40 ms; senders post with four connections,
	// each to the instances in turn.
	var (
		mu       sync.Mutex
		mailed   = map[string]bool{}
		posted   = map[string]bool{}
		attempts []postAttempt
		stop     = make(chan struct{})
		wg       sync.WaitGroup
		seq      atomic.Int64
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(40 * time.Millisecond):
			}
			id, _, mail := failoverReport(i)
			if err := appendMail(user, [][]byte{mail}); err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			mailed[id] = true
			mu.Unlock()
		}
	}()
	client := &http.Client{Timeout: 30 * time.Second}
	for s := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			next := s
			for {
				select {
				case <-stop:
					return
				default:
				}
				id, body, _ := failoverReport(1_000_000 + int(seq.Add(1)))
				// A sender retries until the report is taken; a real
				// one would wait Retry-After, this one 100 ms so that
				// the test sees the first moment each instance
				// takes reports again.
				for {
					in := next % len(instances)
					next++
					resp, err := client.Post(instances[in].base+"/tlsrpt", "application/tlsrpt+json", bytes.NewReader(body))
					a := postAttempt{at: time.Now(), instance: in}
					if err == nil {
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						a.status, a.retryAfter = resp.StatusCode, resp.Header.Get("Retry-After")
					}
					mu.Lock()
					attempts = append(attempts, a)
					if a.status == http.StatusOK {
						posted[id] = true
					}
					mu.Unlock()
					if a.status == http.StatusOK {
						break
					}
					if a.status != 0 && a.status != http.StatusServiceUnavailable {
						t.Errorf("POST %s to %s = %d, want 200 or 503", id, instances[in].name, a.status)
					}
					select {
					case <-stop:
						return // the test failed: the report is not acknowledged
					case <-time.After(100 * time.Millisecond):
					}
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	var stopOnce sync.Once
	stopLoad := func() {
		stopOnce.Do(func() {
			close(stop)
			wg.Wait()
		})
	}
	defer stopLoad()
	waitUntil("reports by both ways before the failover", time.Minute, func() bool {
		return stored("imap") >= 20 && stored("https") >= 20
	})

	// The health checks of each instance, from before the kill on.
	type probe struct {
		at     time.Time
		status int
	}
	var probes [2][]probe
	probeStop := make(chan struct{})
	var probeWG sync.WaitGroup
	for i, in := range instances {
		probeWG.Add(1)
		go func() {
			defer probeWG.Done()
			for {
				select {
				case <-probeStop:
					return
				case <-time.After(50 * time.Millisecond):
				}
				resp, err := client.Get(in.base + "/healthz")
				p := probe{at: time.Now()}
				if err == nil {
					resp.Body.Close()
					p.status = resp.StatusCode
				}
				mu.Lock()
				probes[i] = append(probes[i], p)
				mu.Unlock()
			}
		}()
	}

	// The INBOX while there is no primary: a message may leave it only
	// after its commit, so from a second after the kill (a commit
	// acknowledged just before it may still be moved) to the promotion
	// its count never falls.
	inbox := func() int {
		st, err := user.Status("INBOX", &imap.StatusOptions{NumMessages: true})
		if err != nil || st.NumMessages == nil {
			t.Fatalf("INBOX status: %v", err)
		}
		return int(*st.NumMessages)
	}

	killed := time.Now()
	if err := pair.Primary.Kill(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	low := inbox()
	for gap := time.Now().Add(2 * time.Second); time.Now().Before(gap); time.Sleep(20 * time.Millisecond) {
		n := inbox()
		if n < low {
			t.Errorf("%d messages left the INBOX while there was no primary", low-n)
		}
		low = max(low, n)
	}
	// A page with a session to look up answers 503 too, not 500.
	for _, in := range instances {
		req, _ := http.NewRequest("GET", in.base+"/reports", nil)
		req.AddCookie(&http.Cookie{Name: "tlsrpt_session", Value: randomHex(16)})
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Errorf("%s: GET /reports with no primary = %d, Retry-After %q; want 503 with it", in.name, resp.StatusCode, resp.Header.Get("Retry-After"))
		}
	}
	promoted := time.Now()
	if err := pair.Standby.Promote(ctx); err != nil {
		t.Fatal(err)
	}
	promoteTook := time.Since(promoted)

	// Back to normal: each instance's health check answers 200 and it
	// takes a POST; the mailbox is polled again (a report mailed after
	// the promotion is stored).
	var firstMail time.Time
	waitUntil("the IMAP poller to store a report on the new primary", 2*failoverRecovery, func() bool {
		var at *time.Time
		if err := check.Pool.QueryRow(ctx, `SELECT min(stored_at) FROM reports WHERE source = 'imap' AND stored_at > $1`, promoted).Scan(&at); err != nil || at == nil {
			return false
		}
		firstMail = *at
		return true
	})
	okAt := func(i int) (health, post time.Time) {
		mu.Lock()
		defer mu.Unlock()
		for _, p := range probes[i] {
			if p.at.After(promoted) && p.status == http.StatusOK {
				health = p.at
				break
			}
		}
		for _, a := range attempts {
			if a.instance == i && a.at.After(promoted) && a.status == http.StatusOK {
				post = a.at
				break
			}
		}
		return health, post
	}
	waitUntil("every instance to answer its health check and take a POST", 2*failoverRecovery, func() bool {
		for i := range instances {
			if h, p := okAt(i); h.IsZero() || p.IsZero() {
				return false
			}
		}
		return true
	})
	var firstWrite time.Time
	normal := firstMail
	for i, in := range instances {
		h, p := okAt(i)
		t.Logf("%s: health check 200 %v, first POST taken %v after the promotion started", in.name,
			h.Sub(promoted).Round(time.Millisecond), p.Sub(promoted).Round(time.Millisecond))
		if firstWrite.IsZero() || p.Before(firstWrite) {
			firstWrite = p
		}
		for _, at := range []time.Time{h, p} {
			if at.After(normal) {
				normal = at
			}
		}
	}
	if firstMail.Before(firstWrite) {
		firstWrite = firstMail
	}
	t.Logf("failover: primary killed, %v without a primary, pg_ctl promote took %v; from the promotion: first write %v, first IMAP commit %v, all instances normal %v",
		promoted.Sub(killed).Round(time.Millisecond), promoteTook.Round(time.Millisecond), firstWrite.Sub(promoted).Round(time.Millisecond),
		firstMail.Sub(promoted).Round(time.Millisecond), normal.Sub(promoted).Round(time.Millisecond))
	if d := normal.Sub(promoted); d > failoverRecovery {
		t.Errorf("back to normal %v after the promotion, want within %v", d.Round(time.Millisecond), failoverRecovery)
	}

	// A few more seconds of load on the new primary, then everything
	// mailed and posted must be stored exactly once.
	time.Sleep(2 * time.Second)
	stopLoad()
	close(probeStop)
	probeWG.Wait()
	mu.Lock()
	want := len(mailed)
	mu.Unlock()
	waitUntil("every mail to be moved out of the INBOX", time.Minute, func() bool { return inbox() == 0 })
	// The last pass's commit is visible before its mails are moved; a
	// mail moved and not stored is lost, which the count below names.
	for end := time.Now().Add(5 * time.Second); stored("imap") < want && time.Now().Before(end); {
		time.Sleep(20 * time.Millisecond)
	}
	rows, err := check.Pool.Query(ctx, `SELECT report_id, source, count(*) FROM reports GROUP BY report_id, source`)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	doubled := 0
	for rows.Next() {
		var id, source string
		var n int
		if err := rows.Scan(&id, &source, &n); err != nil {
			t.Fatal(err)
		}
		if n != 1 || got[id] != "" {
			doubled++
			t.Errorf("report %s stored %d times (%s)", id, n, source)
		}
		got[id] = source
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	lost := 0
	for _, set := range []struct {
		source string
		ids    map[string]bool
	}{{"imap", mailed}, {"https", posted}} {
		for id := range set.ids {
			if got[id] != set.source {
				lost++
				t.Errorf("report %s (%s) acknowledged but not stored", id, set.source)
			}
		}
	}
	extra := 0
	for id := range got {
		if !mailed[id] && !posted[id] {
			extra++
		}
	}
	if extra != 0 {
		// A POST whose batch committed while its answer was lost (a
		// 503 after the commit) is retried and then answered 200: it
		// is acknowledged too, so nothing may be extra.
		t.Errorf("%d reports stored that were neither mailed nor acknowledged", extra)
	}

	// The answers: 200, or 503 with Retry-After while there was no
	// primary; at least one 503, or the test saw no gap.
	codes := map[int]int{}
	for _, a := range attempts {
		codes[a.status]++
		if a.status == http.StatusServiceUnavailable && a.retryAfter == "" {
			t.Errorf("POST answered 503 without Retry-After at %v", a.at)
		}
	}
	if codes[http.StatusServiceUnavailable] == 0 {
		t.Errorf("no POST answered 503 while there was no primary: answers %v", codes)
	}

	// The IMAP side: a pass failed on the store (its mails stayed in the
	// INBOX and were fetched again), and the mailbox lock was taken once
	// more, on the new primary, by one instance.
	storeFailed := regexp.MustCompile(`msg="IMAP session ended, reconnecting" .*store unavailable`)
	commitFailed := regexp.MustCompile(`msg="IMAP session ended, reconnecting" .*store unavailable: .*storing a batch`)
	lockLost := regexp.MustCompile(`msg="Mailbox lock lost, stopped polling"`)
	var failedPasses, failedCommits, lockLosses int
	for _, in := range instances {
		failedPasses += in.count(storeFailed)
		failedCommits += in.count(commitFailed)
		lockLosses += in.count(lockLost)
	}
	if failedPasses == 0 {
		t.Errorf("no IMAP pass failed on the store: the poller did not run into the failover\n%s", logs())
	}
	if n := lockTakes(); n != 2 {
		t.Errorf("mailbox lock taken %d times in all, want twice (before the failover and once after)\n%s", n, logs())
	}
	if lockLosses == 0 {
		t.Errorf("no instance logged that it lost the mailbox lock\n%s", logs())
	}
	statuses := make([]string, 0, len(codes))
	for c, n := range codes {
		statuses = append(statuses, fmt.Sprintf("%d×%d", c, n))
	}
	sort.Strings(statuses)
	t.Logf("stored %d mailed and %d posted reports: lost %d, doubled %d; POST answers %s (0: no answer); IMAP passes failed on the store %d (of which at the commit of fetched mail %d)",
		len(mailed), len(posted), lost, doubled, strings.Join(statuses, " "), failedPasses, failedCommits)
	if t.Failed() {
		t.Log(logs())
	}
}

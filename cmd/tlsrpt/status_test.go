package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/db/dbtest"
	"github.com/tlsrpt/tlsrpt/rollout/dnstest"
)

const statusKey, statusSecret = "cli-key", "Y2xpLXRlc3Qtc2VjcmV0LWZvci10c2lnLWtleXM="

// publishEnv is a ready domain example.com in a fresh database, its zone
// on a loopback RFC 2136 server with TSIG and tlsrpt's policy host over
// TLS: what promote, rollback and status publish to and verify.
type publishEnv struct {
	url  string
	d    *db.DB
	zone *dnstest.Server
	// common are the publishing flags pointing at the zone and the
	// policy host.
	common []string
	// closedPort is a loopback port nothing listens on.
	closedPort string
}

func newPublishEnv(t *testing.T) *publishEnv {
	t.Helper()
	e := &publishEnv{url: dbtest.NewURL(t, true)}
	d, err := db.Open(context.Background(), e.url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	e.d = d
	seedReady(t, d, "example.com")
	e.zone = dnstest.Start(t, "example.com", statusKey, statusSecret)
	e.zone.Add(t, "example.com. 300 IN MX 10 mx1.example.com.", "mta-sts.example.com. 300 IN A 127.0.0.1",
		`_mta-sts.example.com. 300 IN TXT "v=STSv1; id=old"`)
	pki := t.TempDir()
	writeTestPKI(t, pki, "mta-sts.example.com")
	port := startPolicyHost(t, d, pki)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, e.closedPort, _ = net.SplitHostPort(ln.Addr().String())
	ln.Close()
	// How the domain is published is its stored setting: hosted, the
	// record by RFC 2136 with the key whose secret is TLSRPT_TSIG_SECRET.
	if _, err := d.SetPublishing(context.Background(), db.Publishing{Domain: "example.com", Policy: "hosted", Record: "rfc2136",
		Server: e.zone.Addr, TSIGKey: statusKey, Credential: "TSIG"}, "test"); err != nil {
		t.Fatal(err)
	}
	e.common = []string{"--resolver", e.zone.Addr,
		"--ca-file", filepath.Join(pki, "ca.pem"), "--allow-private", "--policy-port", port}
	return e
}

// run runs a command with the TSIG secret given (the right one unless
// the test says otherwise).
func (e *publishEnv) run(t *testing.T, secret string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	vars := map[string]string{"DATABASE_URL": e.url, "TLSRPT_TSIG_SECRET": secret}
	env := &Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut, Getenv: func(k string) string { return vars[k] }}
	code := Main(context.Background(), args, env)
	return code, out.String(), errOut.String()
}

// withFlags returns args with the publishing flags after the domain
// (flags go anywhere on the line) and extra ones after those.
func (e *publishEnv) withFlags(cmd, domain string, extra ...string) []string {
	return append(append([]string{cmd, domain}, e.common...), extra...)
}

// TestPromoteExitCodes: promote exits 1 naming the push when the DNS
// server refuses it (a wrong TSIG secret), status then says not live,
// and once the right secret pushes it, live; a rollback whose hosted
// policy verification cannot fetch exits 1 naming the policy step, and
// when --wait runs out it points at tlsrpt status, not at promoting again.
func TestPromoteExitCodes(t *testing.T) {
	e := newPublishEnv(t)
	code, _, errOut := e.run(t, "d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldA==", e.withFlags("promote", "example.com", "--reason", "ready")...)
	if code != exitFailed || !strings.Contains(errOut, "step record: pushing the TXT record by rfc2136 failed") {
		t.Errorf("promote with a wrong TSIG secret = %d, stderr %q; want %d naming the record push", code, errOut, exitFailed)
	}
	if strings.Contains(errOut, "api: ") || strings.Contains(errOut, "db: ") {
		t.Errorf("stderr carries a package prefix: %q", errOut)
	}
	if got := e.zone.TXT("_mta-sts.example.com"); len(got) != 1 || got[0] != "v=STSv1; id=old" {
		t.Errorf("TXT after the refused push = %q, want the old record", got)
	}
	if code, _, errOut := e.run(t, "d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldA==", e.withFlags("status", "example.com")...); code != exitFailed || !strings.Contains(errOut, "failed") {
		t.Errorf("status with the push failing = %d, stderr %q; want %d", code, errOut, exitFailed)
	}
	// The right secret: status retries the push and verifies; verify is
	// the same command.
	code, out, errOut := e.run(t, statusSecret, e.withFlags("verify", "example.com", "--json")...)
	var st struct {
		Live     bool   `json:"live"`
		Verified bool   `json:"verified"`
		Mode     string `json:"mode"`
		ID       string `json:"id"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("verify --json: %v\n%s", err, out)
	}
	if code != exitPublished || !st.Live || !st.Verified || st.Mode != "enforce" {
		t.Errorf("verify after fixing the secret = %d %+v, stderr %q; want 0, live and verified in enforce", code, st, errOut)
	}
	if got := e.zone.TXT("_mta-sts.example.com"); len(got) != 1 || got[0] != "v=STSv1; id="+st.ID {
		t.Errorf("TXT = %q, want id %s", got, st.ID)
	}

	// The policy host unreachable: nothing goes live, and the record
	// keeps naming the policy that is served.
	args := append(e.withFlags("rollback", "example.com"), "--policy-port", e.closedPort)
	code, _, errOut = e.run(t, statusSecret, args...)
	if code != exitFailed || !strings.Contains(errOut, "step policy: the hosted policy file is not served") ||
		!strings.Contains(errOut, `tlsrpt status example.com --wait 10m`) {
		t.Errorf("rollback with the policy host unreachable = %d, stderr %q; want %d naming the policy step and tlsrpt status", code, errOut, exitFailed)
	}
	if got := e.zone.TXT("_mta-sts.example.com"); len(got) != 1 || got[0] != "v=STSv1; id="+st.ID {
		t.Errorf("TXT = %q, want the enforce id %s untouched while the file is not served", got, st.ID)
	}
	// The host reachable again: status finishes the rollback.
	code, out, errOut = e.run(t, statusSecret, e.withFlags("status", "example.com")...)
	if code != exitPublished || !strings.Contains(out, "Live: yes") || !strings.Contains(out, "mode testing") {
		t.Errorf("status after the rollback = %d\n%s\n%s\nwant 0, live in testing", code, out, errOut)
	}
	// --wait running out points at tlsrpt status, not at running the
	// change again (it would be refused).
	args = append(e.withFlags("rollback", "example.com"), "--mode", "none", "--policy-port", e.closedPort, "--wait", "2s")
	code, _, errOut = e.run(t, statusSecret, args...)
	if code != exitFailed || !strings.Contains(errOut, "not live after 2s") || !strings.Contains(errOut, `tlsrpt status example.com --wait 10m`) ||
		strings.Contains(errOut, "run it again") {
		t.Errorf("rollback --mode none --wait 2s with the policy host unreachable = %d, stderr %q; want %d and the tlsrpt status advice", code, errOut, exitFailed)
	}
	entries, err := e.d.AuditLog(context.Background(), "example.com", 50)
	if err != nil {
		t.Fatal(err)
	}
	var pushes int
	for _, en := range entries {
		if en.Action == "policy.txt_push" {
			pushes++
			if en.Actor != "cli" {
				t.Errorf("push audited by %q, want cli", en.Actor)
			}
		}
	}
	if pushes < 3 {
		t.Errorf("policy.txt_push entries = %d, want the failed push and the two that worked", pushes)
	}
}

// TestStatusCommand: status refuses a domain without a version (3), takes
// a usage error as 2 and -h as 0.
func TestStatusCommand(t *testing.T) {
	e := newPublishEnv(t)
	if code, _, errOut := e.run(t, statusSecret, e.withFlags("status", "example.com")...); code != exitRefused ||
		!strings.Contains(errOut, "no policy version") || strings.Contains(errOut, "db: ") {
		t.Errorf("status without a version = %d, stderr %q; want %d, no package prefix", code, errOut, exitRefused)
	}
	for _, args := range [][]string{{"status"}, {"status", "a.example", "b.example"}, {"verify", "--wait", "x", "example.com"}, {"status", "example.com", "--nope"}} {
		if code, _, _ := e.run(t, statusSecret, args...); code != exitUsage {
			t.Errorf("%q = %d, want %d", args, code, exitUsage)
		}
	}
	if code, _, errOut := e.run(t, statusSecret, "status", "-h"); code != 0 || !strings.Contains(errOut, "0 live") {
		t.Errorf("status -h = %d %q, want 0 and the exit codes", code, errOut)
	}
	// promote and rollback take flags after the domain, and -h states
	// the exit codes.
	if code, _, errOut := e.run(t, statusSecret, "promote", "-h"); code != 0 || !strings.Contains(errOut, "1 failed: the failed step") {
		t.Errorf("promote -h = %d %q, want 0 and the exit codes", code, errOut)
	}
	if code, _, errOut := e.run(t, statusSecret, "rollback", "example.com", "--mode", "bogus"); code != exitUsage || !strings.Contains(errOut, "--mode") {
		t.Errorf("rollback DOMAIN --mode bogus = %d %q, want %d about --mode (the flag after the domain is read)", code, errOut, exitUsage)
	}
}

// TestStatusPush (review item 8): "tlsrpt status DOMAIN --push" pushes a
// drifted record again; without a record publisher it is refused (3).
func TestStatusPush(t *testing.T) {
	e := newPublishEnv(t)
	if code, _, errOut := e.run(t, statusSecret, e.withFlags("promote", "example.com", "--wait", "30s")...); code != exitPublished {
		t.Fatalf("promote --wait = %d, stderr %q", code, errOut)
	}
	v, err := e.d.LatestPolicyVersion(context.Background(), "example.com")
	if err != nil {
		t.Fatal(err)
	}
	e.zone.SetTXT(t, "_mta-sts.example.com", "v=STSv1; id=handmade1")
	if code, out, _ := e.run(t, statusSecret, e.withFlags("status", "example.com")...); code != exitFailed || !strings.Contains(out, "drifted") {
		t.Errorf("status of a drifted record = %d\n%s\nwant %d and drifted", code, out, exitFailed)
	}
	noPublisher := []string{"status", "example.com", "--push", "--resolver", e.zone.Addr, "--allow-private"}
	if code, _, errOut := e.run(t, statusSecret, noPublisher...); code != exitRefused || !strings.Contains(errOut, "cannot be pushed") {
		t.Errorf("status --push without a publisher = %d, stderr %q; want %d", code, errOut, exitRefused)
	}
	code, out, errOut := e.run(t, statusSecret, e.withFlags("status", "example.com", "--push")...)
	if code != exitPublished || !strings.Contains(out, "Live: yes") {
		t.Errorf("status --push = %d\n%s\n%s\nwant 0 and live", code, out, errOut)
	}
	if got := e.zone.TXT("_mta-sts.example.com"); len(got) != 1 || got[0] != "v=STSv1; id="+v.ID {
		t.Errorf("TXT after --push = %q, want id %s", got, v.ID)
	}
}

package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"net"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/db/dbtest"
	"github.com/tlsrpt/tlsrpt/rollout"
	"github.com/tlsrpt/tlsrpt/rollout/autopilot"
	"github.com/tlsrpt/tlsrpt/rollout/dnstest"
	"github.com/tlsrpt/tlsrpt/rollout/publish/publishtest"
)

// TestAutopilotCommand: "tlsrpt autopilot" shows and sets a domain's
// settings (flags anywhere, bounds checked), "autopilot run --dry-run"
// writes the plan and changes nothing, "autopilot run" promotes once the
// ready days are reached (published through RFC 2136 to a loopback DNS
// server and tlsrpt's policy host) and is idempotent for the day, and
// "promote --all-ready" lists the blocked domains and skips them. The
// commands run on the real clock; the reports are seeded by it.
func TestAutopilotCommand(t *testing.T) {
	url := dbtest.NewURL(t, true)
	d, err := db.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	seedReady(t, d, "example.com")
	if _, _, err := d.AddDomain(context.Background(), "example.com"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.AddDomain(context.Background(), "quiet.example.com"); err != nil {
		t.Fatal(err)
	}

	const key, secret = "cli-key", "Y2xpLXRlc3Qtc2VjcmV0LWZvci10c2lnLWtleXM="
	zone := dnstest.Start(t, "example.com", key, secret)
	zone.Add(t, "example.com. 300 IN MX 10 mx1.example.com.", "mta-sts.example.com. 300 IN A 127.0.0.1",
		`_mta-sts.example.com. 300 IN TXT "v=STSv1; id=old"`)
	pki := t.TempDir()
	writeTestPKI(t, pki, "mta-sts.example.com")
	port := startTestingPolicyHost(t, d, pki)
	run := func(args ...string) (int, string, string) {
		t.Helper()
		var out, errOut bytes.Buffer
		vars := map[string]string{"DATABASE_URL": url, "TLSRPT_TSIG_SECRET": secret}
		env := &Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut, Getenv: func(k string) string { return vars[k] }}
		code := Main(context.Background(), args, env)
		return code, out.String(), errOut.String()
	}
	// How the domain is published is its stored setting: hosted, the
	// record by RFC 2136 with the key whose secret is TLSRPT_TSIG_SECRET.
	if _, err := d.SetPublishing(context.Background(), db.Publishing{Domain: "example.com", Policy: "hosted", Record: "rfc2136",
		Server: zone.Addr, TSIGKey: key, Credential: "TSIG"}, "test"); err != nil {
		t.Fatal(err)
	}
	common := []string{"--resolver", zone.Addr, "--ca-file", filepath.Join(pki, "ca.pem"), "--allow-private", "--policy-port", port}

	code, out, errOut := run("autopilot", "example.com")
	if code != 0 || !strings.Contains(out, "autopilot off (default setting)") || !strings.Contains(out, "next: autopilot is off; with it on: promote to enforce with max_age 86400") {
		t.Fatalf("autopilot example.com = %d\n%s%s", code, out, errOut)
	}
	// Flags after the domain; the JSON status.
	code, out, errOut = run("autopilot", "example.com", "--on", "--final-max-age", "31557600", "--ready-days", "1", "--json")
	var st autopilot.Status
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || !st.Settings.Enabled || st.FinalStage != 4 || st.Settings.ReadyDays != 1 {
		t.Fatalf("autopilot --on --json = %d\n%s%s", code, out, errOut)
	}
	for _, bad := range [][]string{{"example.com", "--final-max-age", "5"}, {"example.com", "--ready-days", "99"}} {
		if code, _, errOut := run(append([]string{"autopilot"}, bad...)...); code != exitFailed || !strings.Contains(errOut, "want") {
			t.Errorf("autopilot %v = %d %q, want 1 with the bound", bad, code, errOut)
		}
	}
	// The hold days, on another domain so that the ramp below keeps the
	// default ones: a list of three, each in bounds; a list that is not
	// numbers is a usage error.
	code, out, errOut = run("autopilot", "quiet.example.com", "--hold-days", "2, 3,4", "--json")
	st = autopilot.Status{}
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || !slices.Equal(st.Settings.HoldDays, []int{2, 3, 4}) || st.Ramp[0].HoldDays != 2 || st.Ramp[1].HoldDays != 3 {
		t.Fatalf("autopilot --hold-days 2,3,4 --json = %d\n%s%s", code, out, errOut)
	}
	if code, out, _ := run("autopilot", "quiet.example.com"); code != 0 || !strings.Contains(out, "ramp: 86400 for 2 days → 604800 for 3 days → 2592000 (final)") {
		t.Errorf("autopilot quiet.example.com after --hold-days = %d\n%s", code, out)
	}
	for _, bad := range [][]string{{"quiet.example.com", "--hold-days", "7,14"}, {"quiet.example.com", "--hold-days", "0,14,30"}, {"quiet.example.com", "--hold-days", "7,14,366"}} {
		if code, _, errOut := run(append([]string{"autopilot"}, bad...)...); code != exitFailed || !strings.Contains(errOut, "hold days") {
			t.Errorf("autopilot %v = %d %q, want 1 naming the hold days", bad, code, errOut)
		}
	}
	for _, bad := range []string{"7,x,30", "7;14;30", "", "7,,30"} {
		if code, _, errOut := run("autopilot", "quiet.example.com", "--hold-days", bad); code != exitUsage || !strings.Contains(errOut, "hold-days") {
			t.Errorf("autopilot --hold-days %q = %d %q, want %d naming the flag", bad, code, errOut, exitUsage)
		}
	}
	for _, bad := range [][]string{{}, {"example.com", "--on", "--off"}, {"run", "--on"}, {"run", "--hold-days", "1,2,3"}, {"a.example", "b.example"}} {
		if code, _, _ := run(append([]string{"autopilot"}, bad...)...); code != exitUsage {
			t.Errorf("autopilot %v = %d, want %d", bad, code, exitUsage)
		}
	}

	// The dry run: the plan, no version.
	code, out, errOut = run(append([]string{"autopilot", "run", "--dry-run"}, common...)...)
	if code != 0 || !strings.Contains(out, "example.com: promote (stage 0): would promote to enforce with max_age 86400") {
		t.Fatalf("autopilot run --dry-run = %d\n%s%s", code, out, errOut)
	}
	if vs, _ := d.PolicyVersions(context.Background(), "example.com", 0); len(vs) != 0 {
		t.Fatalf("the dry run made %d versions", len(vs))
	}
	// The real run promotes at stage 1 and publishes.
	code, out, errOut = run(append([]string{"autopilot", "run"}, common...)...)
	if code != 0 || !strings.Contains(out, "example.com: promote (stage 0): promoted to enforce with max_age 86400") {
		t.Fatalf("autopilot run = %d\n%s%s", code, out, errOut)
	}
	vs, err := d.PolicyVersions(context.Background(), "example.com", 0)
	if err != nil || len(vs) != 1 || vs[0].Policy.Mode != rollout.ModeEnforce || vs[0].Policy.MaxAge != 86400 || vs[0].CreatedBy != autopilot.Actor {
		t.Fatalf("versions after the run = %+v, %v", vs, err)
	}
	if got := zone.TXT("_mta-sts.example.com"); !slices.Equal(got, []string{"v=STSv1; id=" + vs[0].ID}) {
		t.Errorf("TXT = %q, want id %s", got, vs[0].ID)
	}
	// Again the same day: nothing more.
	code, out, _ = run(append([]string{"autopilot", "run"}, common...)...)
	if code != 0 || !strings.Contains(out, "already") {
		t.Errorf("autopilot run again = %d\n%s", code, out)
	}
	if vs, _ := d.PolicyVersions(context.Background(), "example.com", 0); len(vs) != 1 {
		t.Errorf("a second run made a version: %d", len(vs))
	}
	code, out, _ = run("autopilot", "example.com")
	if code != 0 || !strings.Contains(out, "stage: 1 of 4 (enforce, max_age 86400)") || !strings.Contains(out, "raise max_age to 604800 (stage 2) on ") {
		t.Errorf("autopilot example.com after the promotion = %d\n%s", code, out)
	}

	// The fleet default.
	code, out, _ = run("autopilot", "--fleet", "--dry-run")
	if code != 0 || !strings.Contains(out, "fleet default: autopilot off, dry run true") || !strings.Contains(out, "hold days 7,14,30") {
		t.Errorf("autopilot --fleet --dry-run = %d %q", code, out)
	}

	// Bulk: the enforcing domain is skipped, the quiet one blocked.
	code, out, errOut = run(append([]string{"promote", "--dry-run"}, append(common, "--all-ready")...)...)
	if code != 0 || !strings.Contains(out, "example.com: skipped") || !strings.Contains(out, "quiet.example.com: blocked (blockers: ") {
		t.Errorf("promote --all-ready --dry-run = %d\n%s%s", code, out, errOut)
	}
}

// startTestingPolicyHost serves, over HTTPS with the certificate in pki,
// the policy tlsrpt hosts for the domain of the Host header, else the
// operator's own testing policy (a domain in testing before tlsrpt
// published anything for it); it returns the port.
func startTestingPolicyHost(t *testing.T, d *db.DB, pki string) string {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(filepath.Join(pki, "mta-sts.example.com.crt"), filepath.Join(pki, "mta-sts.example.com.key"))
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(publishtest.HostedOrTesting(d, func(domain string) string {
		return "version: STSv1\r\nmode: testing\r\nmx: mx1." + domain + "\r\nmax_age: 86400\r\n"
	}))
	hs.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	hs.StartTLS()
	t.Cleanup(hs.Close)
	_, port, _ := net.SplitHostPort(hs.Listener.Addr().String())
	return port
}

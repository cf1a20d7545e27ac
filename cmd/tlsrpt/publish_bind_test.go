package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/db/dbtest"
	"github.com/tlsrpt/tlsrpt/reports"
	"github.com/tlsrpt/tlsrpt/rollout"
	"github.com/tlsrpt/tlsrpt/rollout/bindtest"
)

// The tests below run the review items of the publishing rework through
// the real tlsrpt commands (Main) against a private BIND (RFC 2136 with
// TSIG; bindtest skips them when named is missing unless
// TLSRPT_TEST_REQUIRE lists bind), tlsrpt's policy host over TLS and a
// real PostgreSQL. The domain's publishing setting is stored: hosted, the
// record by rfc2136 to the BIND with the credential BIND, whose secret is
// TLSRPT_SECRET_BIND. No process has any other publishing variable.

// bindEnv is a ready example.com published to a private BIND.
type bindEnv struct {
	url    string
	d      *db.DB
	srv    *bindtest.Server
	common []string // the verification flags: the BIND, the CA, the policy port
}

func newBindEnv(t *testing.T) *bindEnv {
	t.Helper()
	srv := bindtest.Start(t, "example.com") // skips (or fails when required) without named
	e := &bindEnv{url: dbtest.NewURL(t, true), srv: srv}
	d, err := db.Open(context.Background(), e.url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	e.d = d
	seedReady(t, d, "example.com")
	srv.SetA("mta-sts.example.com", "127.0.0.1")
	srv.SetA("mx1.example.com", "127.0.0.1") // named refuses an MX without an address
	srv.AddRecord("example.com. 300 IN MX 10 mx1.example.com.", `_mta-sts.example.com. 300 IN TXT "v=STSv1; id=old"`)
	pki := t.TempDir()
	writeTestPKI(t, pki, "mta-sts.example.com")
	port := startPolicyHost(t, d, pki)
	if _, err := d.SetPublishing(context.Background(), db.Publishing{Domain: "example.com", Policy: rollout.PolicyHosted,
		Record: rollout.RecordRFC2136, Server: srv.Addr(), TSIGKey: srv.KeyName(), Credential: "BIND"}, "test"); err != nil {
		t.Fatal(err)
	}
	e.common = []string{"--resolver", srv.Addr(), "--ca-file", filepath.Join(pki, "ca.pem"), "--allow-private", "--policy-port", port}
	return e
}

// run runs tlsrpt with only DATABASE_URL and, unless secret is "", the
// credential's TLSRPT_SECRET_BIND in its environment; the verification
// flags follow the arguments of promote, rollback and status.
func (e *bindEnv) run(t *testing.T, secret string, args ...string) (int, string, string) {
	t.Helper()
	vars := map[string]string{"DATABASE_URL": e.url}
	if secret != "" {
		vars["TLSRPT_SECRET_BIND"] = secret
	}
	var out, errOut bytes.Buffer
	env := &Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut, Getenv: func(k string) string { return vars[k] }}
	if slices.Contains([]string{"promote", "rollback", "status"}, args[0]) {
		args = append(args, e.common...)
	}
	code := Main(context.Background(), args, env)
	return code, out.String(), errOut.String()
}

// txt is the one STSv1 record at BIND; it fails the test unless exactly one.
func (e *bindEnv) txt(t *testing.T) string {
	t.Helper()
	got := e.srv.TXT("_mta-sts.example.com")
	if len(got) != 1 {
		t.Fatalf("TXT _mta-sts.example.com at BIND = %q, want exactly one record", got)
	}
	return got[0]
}

// setTXT replaces the record by hand: a signed dynamic update as an
// operator's nsupdate would send, not through tlsrpt.
func (e *bindEnv) setTXT(t *testing.T, value string) {
	t.Helper()
	u := &rollout.DNSUpdate{Server: e.srv.Addr(), Zone: "example.com", KeyName: e.srv.KeyName(), Algorithm: e.srv.Algorithm(),
		Secret: e.srv.Secret(), Timeout: 5 * time.Second}
	if err := u.PublishTXT(context.Background(), "_mta-sts.example.com", value); err != nil {
		t.Fatalf("setting the TXT by hand: %v", err)
	}
}

// latest is the newest version tlsrpt made.
func (e *bindEnv) latest(t *testing.T) db.PolicyVersion {
	t.Helper()
	v, err := e.d.LatestPolicyVersion(context.Background(), "example.com")
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// promoteLive promotes and waits until the enforce version is verified.
func (e *bindEnv) promoteLive(t *testing.T) db.PolicyVersion {
	t.Helper()
	if code, out, errOut := e.run(t, e.srv.Secret(), "promote", "example.com", "--reason", "ready", "--wait", "30s"); code != exitPublished {
		t.Fatalf("promote --wait 30s = %d\n%s\n%s\n%s", code, out, errOut, e.srv.Log())
	}
	v := e.latest(t)
	if v.Policy.Mode != rollout.ModeEnforce || v.VerifiedAt == nil || e.txt(t) != "v=STSv1; id="+v.ID {
		t.Fatalf("after promote: version %+v, TXT %q; want enforce, verified, the TXT naming it", v, e.txt(t))
	}
	return v
}

// auditActions are the actions of the domain's entries as "tlsrpt audit
// --domain example.com --json" lists them.
func (e *bindEnv) auditActions(t *testing.T) []string {
	t.Helper()
	code, out, errOut := e.run(t, "", "audit", "--domain", "example.com", "--limit", "200", "--json")
	if code != 0 {
		t.Fatalf("tlsrpt audit = %d: %s", code, errOut)
	}
	var got struct {
		Entries []struct{ Action string }
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("tlsrpt audit --json: %v\n%s", err, out)
	}
	var actions []string
	for _, en := range got.Entries {
		actions = append(actions, en.Action)
	}
	return actions
}

// noPackagePrefix fails when a message shown to the user carries one.
func noPackagePrefix(t *testing.T, what, s string) {
	t.Helper()
	for _, p := range []string{"api: ", "db: ", "publish: ", "rollout: ", "pubconf: "} {
		if strings.Contains(s, p) {
			t.Errorf("%s carries the package prefix %q: %s", what, p, s)
		}
	}
}

// TestBindRollbackHosted (review item 1): a rollback from a shell with no
// publishing variable at all (only the credential's secret) keeps the
// domain hosted: the policy host serves mode testing and BIND carries the
// rollback's id. A second rollback is refused (3) with a clear message,
// and the domain is not stuck: status says live.
func TestBindRollbackHosted(t *testing.T) {
	e := newBindEnv(t)
	e.promoteLive(t)
	code, out, errOut := e.run(t, e.srv.Secret(), "rollback", "example.com", "--reason", "regression", "--json")
	if code != exitPublished {
		t.Fatalf("rollback = %d\n%s\n%s", code, out, errOut)
	}
	var v versionJSON
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("rollback --json: %v\n%s", err, out)
	}
	if v.PolicyMethod != rollout.PolicyHosted || v.RecordMethod != rollout.RecordRFC2136 || v.Mode != rollout.ModeTesting {
		t.Errorf("rollback version = %+v, want hosted, rfc2136, mode testing", v)
	}
	if got := e.txt(t); got != "v=STSv1; id="+v.ID {
		t.Errorf("TXT at BIND after rollback = %q, want the rollback id %s", got, v.ID)
	}
	code, out, errOut = e.run(t, "", "status", "example.com", "--json")
	var st statusJSON
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	if code != exitPublished || !st.Live || st.ID != v.ID || len(st.Steps) != 2 || !strings.Contains(st.Steps[0].Detail, "serves mode testing") {
		t.Errorf("status after rollback = %d %+v, stderr %q; want live, the policy host serving mode testing", code, st, errOut)
	}
	code, _, errOut = e.run(t, e.srv.Secret(), "rollback", "example.com")
	if code != exitRefused || !strings.Contains(errOut, "nothing to change") || !strings.Contains(errOut, "equal the live one (version "+v.ID+")") {
		t.Errorf("second rollback = %d, stderr %q; want %d: equal to the live version %s", code, errOut, exitRefused, v.ID)
	}
	noPackagePrefix(t, "second rollback", errOut)
	if got := e.txt(t); got != "v=STSv1; id="+v.ID {
		t.Errorf("TXT after the refused rollback = %q, want %s", got, v.ID)
	}
}

// seedEnforceDays stores reports of the last days (yesterday backwards)
// that saw the policy in enforce with id, failed sessions out of 500 per
// organisation and day: the reports of the enforce days, arriving after a
// rollback.
func seedEnforceDays(t *testing.T, d *db.DB, days int, id string, failed int64) {
	t.Helper()
	today := time.Now().UTC().Truncate(24 * time.Hour)
	for i := 1; i <= days; i++ {
		start := today.AddDate(0, 0, -i)
		for _, o := range []string{"Google Inc.", "Microsoft Corporation", "Yahoo Inc."} {
			pr := reports.PolicyResult{
				Policy: reports.Policy{Type: "sts", Domain: "example.com", MXHosts: []string{"mx1.example.com"},
					Strings: []string{"version: STSv1", "mode: enforce", "mx: mx1.example.com", "max_age: 604800"}},
				Summary: reports.Summary{TotalSuccessfulSessionCount: 500 - failed, TotalFailureSessionCount: failed}}
			if failed > 0 {
				pr.FailureDetails = []reports.FailureDetail{{ResultType: reports.ResultCertificateExpired,
					ReceivingMXHostname: "mx1.example.com", FailedSessionCount: failed}}
			}
			r := &reports.Report{OrganizationName: o, ReportID: fmt.Sprintf("enforce-%s-%s-%d", id, o, i),
				DateRange: reports.DateRange{Start: start, End: start.Add(24*time.Hour - time.Second)}, Policies: []reports.PolicyResult{pr}}
			raw, err := json.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := d.StoreReport(context.Background(), reports.Received{Report: r, JSON: raw,
				Source: reports.SourceFile, ReceivedAt: start.Add(30 * time.Hour)}); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestBindRepromoteAfterEnforceDays (review item 2): promote, roll back,
// then the reports of the enforce days arrive with failures. The verdict
// names its blockers, a re-promote is refused with a non-empty reason and
// audited with the blocker codes (never null), and an override promotes
// and pushes to BIND.
func TestBindRepromoteAfterEnforceDays(t *testing.T) {
	e := newBindEnv(t)
	p := e.promoteLive(t)
	if code, out, errOut := e.run(t, e.srv.Secret(), "rollback", "example.com", "--reason", "failures"); code != exitPublished {
		t.Fatalf("rollback = %d\n%s\n%s", code, out, errOut)
	}
	seedEnforceDays(t, e.d, 3, p.ID, 25)

	code, out, errOut := e.run(t, "", "rollout", "example.com", "--json", "--offline")
	var verdict struct {
		Ready    bool `json:"ready"`
		Blockers []struct {
			Code string `json:"code"`
		} `json:"blockers"`
	}
	if err := json.Unmarshal([]byte(out), &verdict); err != nil {
		t.Fatalf("rollout --json = %d: %v\n%s\n%s", code, err, out, errOut)
	}
	if verdict.Ready || len(verdict.Blockers) == 0 || code != rolloutBlocked {
		t.Errorf("rollout --json after the enforce days = %d %+v; want blocked with named blockers", code, verdict)
	}
	code, _, errOut = e.run(t, e.srv.Secret(), "promote", "example.com")
	if code != exitRefused || strings.Contains(errOut, "nothing to propose") || strings.Contains(errOut, "()") ||
		!strings.Contains(errOut, "blocked (") {
		t.Errorf("re-promote = %d, stderr %q; want %d, blocked with the blockers named", code, errOut, exitRefused)
	}
	noPackagePrefix(t, "re-promote", errOut)
	for _, b := range verdict.Blockers {
		if !strings.Contains(errOut, b.Code) {
			t.Errorf("re-promote refusal %q does not name the blocker %s", errOut, b.Code)
		}
	}
	entries, err := e.d.AuditLog(context.Background(), "example.com", 50)
	if err != nil {
		t.Fatal(err)
	}
	var refused bool
	for _, en := range entries {
		if en.Action != "policy.promote.refused" {
			continue
		}
		refused = true
		raw, _ := en.Detail.(json.RawMessage)
		var detail struct{ Blockers []string }
		if err := json.Unmarshal(raw, &detail); err != nil || len(detail.Blockers) == 0 {
			t.Errorf("policy.promote.refused detail = %s, want the blocker codes", raw)
		}
	}
	if !refused {
		t.Error("the refused re-promote is not audited")
	}
	// Not stuck: the override promotes and BIND gets the new id.
	code, out, errOut = e.run(t, e.srv.Secret(), "promote", "example.com", "--override", "--confirm", "example.com",
		"--reason", "failures were the expired certificate, renewed", "--wait", "30s")
	v := e.latest(t)
	if code != exitPublished || v.Kind != rollout.KindPromote || v.ID == p.ID || e.txt(t) != "v=STSv1; id="+v.ID {
		t.Errorf("override re-promote = %d (version %s %s, TXT %q)\n%s\n%s", code, v.Kind, v.ID, e.txt(t), out, errOut)
	}
}

// TestBindExitCodes (review items 3 and 7): BIND refusing the push
// (wrong secret: BADSIG) makes promote --wait exit 1 naming BADSIG; the
// credential's secret missing exits 1 naming the variable; status with the
// right secret pushes and exits 0; with BIND stopped a rollback exits 1
// and no advice sets the record while the file is not verified.
func TestBindExitCodes(t *testing.T) {
	e := newBindEnv(t)
	code, out, errOut := e.run(t, "d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldA==", "promote", "example.com", "--wait", "5s")
	if code != exitFailed || !strings.Contains(errOut, "BADSIG") || !strings.Contains(errOut, "tlsrpt status example.com") {
		t.Errorf("promote --wait 5s with a wrong secret = %d\n%s\nstderr %q; want %d naming BADSIG and tlsrpt status", code, out, errOut, exitFailed)
	}
	noPackagePrefix(t, "promote with a wrong secret", errOut)
	if got := e.txt(t); got != "v=STSv1; id=old" {
		t.Errorf("TXT after BADSIG = %q, want the old record", got)
	}
	code, _, errOut = e.run(t, "", "status", "example.com")
	if code != exitFailed || !strings.Contains(errOut, "TLSRPT_SECRET_BIND") {
		t.Errorf("status without the secret = %d, stderr %q; want %d naming TLSRPT_SECRET_BIND", code, errOut, exitFailed)
	}
	code, out, errOut = e.run(t, e.srv.Secret(), "status", "example.com", "--wait", "30s")
	v := e.latest(t)
	if code != exitPublished || !strings.Contains(out, "Live: yes") || e.txt(t) != "v=STSv1; id="+v.ID {
		t.Errorf("status --wait with the right secret = %d\n%s\n%s\nTXT %q, want 0, live, id %s", code, out, errOut, e.txt(t), v.ID)
	}
	e.srv.Stop()
	code, out, errOut = e.run(t, e.srv.Secret(), "rollback", "example.com", "--wait", "3s")
	if code != exitFailed || !strings.Contains(errOut, "step policy") {
		t.Errorf("rollback with BIND stopped = %d\n%s\nstderr %q; want %d naming the policy step", code, out, errOut, exitFailed)
	}
	if strings.Contains(out+errOut, "set the TXT record to") || strings.Contains(out+errOut, "tlsrpt promote") {
		t.Errorf("rollback with BIND stopped advises setting the record or promoting:\n%s\n%s", out, errOut)
	}
	noPackagePrefix(t, "rollback with BIND stopped", errOut)
}

// TestBindStatusWait (review item 4): status --wait exits 0 live, and 1
// once a second STSv1 record is added by hand at BIND; the advice never
// says to promote or to run anything again with --wait.
func TestBindStatusWait(t *testing.T) {
	e := newBindEnv(t)
	e.promoteLive(t)
	if code, out, errOut := e.run(t, e.srv.Secret(), "status", "example.com", "--wait", "30s"); code != exitPublished || !strings.Contains(out, "Live: yes") {
		t.Errorf("status --wait of a live version = %d\n%s\n%s", code, out, errOut)
	}
	e.srv.AddRecord(`_mta-sts.example.com. 300 IN TXT "v=STSv1; id=handmade"`)
	code, out, errOut := e.run(t, e.srv.Secret(), "status", "example.com", "--wait", "3s")
	if code != exitFailed || !strings.Contains(out, "drifted") || !strings.Contains(out, "2 v=STSv1 records") {
		t.Errorf("status --wait with two records = %d\n%s\n%s\nwant %d, drifted, the two records named", code, out, errOut, exitFailed)
	}
	for _, bad := range []string{"tlsrpt promote", "promote again", "run it again"} {
		if strings.Contains(out+errOut, bad) {
			t.Errorf("status advice says %q:\n%s\n%s", bad, out, errOut)
		}
	}
}

// TestBindDriftPushAgain (review items 5, 7 and 8): the record set back
// by hand to the id of tlsrpt's own earlier version is drift, never
// "someone changed it"; status --push pushes the right id to BIND; the
// pushes, verifications, drift and the push again are in tlsrpt audit.
func TestBindDriftPushAgain(t *testing.T) {
	e := newBindEnv(t)
	p := e.promoteLive(t)
	if code, out, errOut := e.run(t, e.srv.Secret(), "rollback", "example.com", "--wait", "30s"); code != exitPublished {
		t.Fatalf("rollback = %d\n%s\n%s", code, out, errOut)
	}
	r := e.latest(t)
	e.setTXT(t, "v=STSv1; id="+p.ID)
	code, out, errOut := e.run(t, e.srv.Secret(), "status", "example.com")
	if code != exitFailed || !strings.Contains(out, "drifted") || !strings.Contains(out, "earlier version tlsrpt published") ||
		!strings.Contains(out, "tlsrpt status example.com --push") || strings.Contains(out+errOut, "someone") {
		t.Errorf("status with tlsrpt's own earlier id = %d\n%s\n%s\nwant %d, drifted as an earlier version, the --push advice", code, out, errOut, exitFailed)
	}
	code, out, errOut = e.run(t, e.srv.Secret(), "status", "example.com", "--push")
	if code != exitPublished || !strings.Contains(out, "Live: yes") {
		t.Errorf("status --push = %d\n%s\n%s", code, out, errOut)
	}
	if got := e.txt(t); got != "v=STSv1; id="+r.ID {
		t.Errorf("TXT after --push = %q, want the rollback id %s", got, r.ID)
	}
	actions := e.auditActions(t)
	for _, want := range []string{"policy.promote", "policy.rollback", "policy.file_served", "policy.txt_push", "policy.verify",
		"policy.drift", "policy.push_again"} {
		if !slices.Contains(actions, want) {
			t.Errorf("tlsrpt audit --domain example.com lacks %s: %q", want, actions)
		}
	}
}

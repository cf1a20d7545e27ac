package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tlsrpt/tlsrpt/api"
	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/reports"
	"github.com/tlsrpt/tlsrpt/rollout/dnstest"
)

// evidenceReport is one day's sts report of org (contact-info contact) for
// domain with mx, ok successful sessions and failed ones of result from a
// single sending address.
func evidenceReport(org, contact, id, domain, mx string, day time.Time, ok, failed int64) *reports.Report {
	pr := reports.PolicyResult{
		Policy: reports.Policy{Type: "sts", Domain: domain, MXHosts: []string{mx},
			Strings: []string{"version: STSv1", "mode: testing", "mx: " + mx, "max_age: 86400"}},
		Summary: reports.Summary{TotalSuccessfulSessionCount: ok, TotalFailureSessionCount: failed},
	}
	if failed > 0 {
		pr.FailureDetails = []reports.FailureDetail{{ResultType: reports.ResultCertificateExpired,
			SendingMTAIP: "209.85.220.41", ReceivingMXHostname: mx, FailedSessionCount: failed}}
	}
	return &reports.Report{OrganizationName: org, ContactInfo: contact, ReportID: id,
		DateRange: reports.DateRange{Start: day, End: day.Add(24*time.Hour - time.Second)},
		Policies:  []reports.PolicyResult{pr}}
}

// verdictOf is what the evidence decides, without the parts that follow
// the clock (the proposal's id): the answer forged input must not move.
type verdictOf struct {
	Ready     bool
	Blockers  []string
	Policy    string
	Count     int // reporters counted
	Reporters []string
	Excluded  []string
}

func readVerdict(t *testing.T, client *http.Client, base, token, domain string) verdictOf {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"/api/v1/domains/"+domain+"/verdict", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v struct {
		Ready    bool `json:"ready"`
		Blockers []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"blockers"`
		Proposal *struct {
			Policy string `json:"policy"`
		} `json:"proposal"`
		Evidence struct {
			Reporters   int `json:"reporters"`
			PerReporter []struct {
				Organization string `json:"organization"`
			} `json:"per_reporter"`
			Excluded []struct {
				Organization string `json:"organization"`
			} `json:"excluded"`
		} `json:"evidence"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET verdict of %s = %d, %v", domain, resp.StatusCode, err)
	}
	out := verdictOf{Ready: v.Ready}
	for _, b := range v.Blockers {
		out.Blockers = append(out.Blockers, b.Code+": "+b.Message)
	}
	if v.Proposal != nil {
		out.Policy = v.Proposal.Policy
	}
	out.Count = v.Evidence.Reporters
	for _, r := range v.Evidence.PerReporter {
		out.Reporters = append(out.Reporters, r.Organization)
	}
	for _, r := range v.Evidence.Excluded {
		out.Excluded = append(out.Excluded, r.Organization)
	}
	return out
}

// TestForgedEvidence runs the attacks on the verdict against a real
// `tlsrpt serve` and PostgreSQL: clean reports POSTed in the names of
// other organisations (with a reverse DNS record the attacker set, which
// does not resolve back), for 20 backdated days, proposing another mx
// list; and one DKIM signer claiming three organisation names. The
// verdict, its blockers and the proposal stay as the trusted evidence
// says, the forged reports are listed as excluded, and promote still
// needs an override.
func TestForgedEvidence(t *testing.T) {
	dns := dnstest.Start(t, "example.", "test-key.", "c2VjcmV0c2VjcmV0c2VjcmV0")
	// The attacker controls the reverse zone of its address, not Microsoft's
	// forward zone: the name does not resolve back to it.
	dns.Add(t, "2.0.0.127.in-addr.arpa. 300 IN PTR mail-bn1on0065.outbound.protection.outlook.com.",
		"mail-bn1on0065.outbound.protection.outlook.com. 300 IN A 40.107.22.1")
	base, store, log := servedApp(t, map[string]string{
		"TLSRPT_ADMIN_PASSWORD": randomHex(12),
		"TLSRPT_RESOLVER":       dns.Addr,
		"TLSRPT_RATE_PUBLIC":    "off",
	})
	ctx := context.Background()
	admin := api.NewAPIToken()
	if _, err := store.CreateAPIToken(ctx, db.SecretHash(admin), "forged", db.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: time.Minute,
		Transport: &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}).DialContext}}
	today := time.Now().UTC().Truncate(24 * time.Hour)

	// The trusted evidence: one real reporter (imported by the operator)
	// for 20 days, failures on one MX from one address in the last three:
	// blocked, for too few reporters and for the failures.
	const victim = "victim.example"
	if _, _, err := store.AddDomain(ctx, victim); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 20; i++ {
		failed := int64(0)
		if i <= 3 {
			failed = 40
		}
		r := evidenceReport("Google Inc.", "smtp-tls-reporting@google.com", fmt.Sprintf("g-%d", i), victim, "mx1."+victim, today.AddDate(0, 0, -i), 500, failed)
		if _, _, err := store.StoreReport(ctx, reports.Received{Report: r, Source: reports.SourceFile, SourceRef: "import"}); err != nil {
			t.Fatal(err)
		}
	}
	before := readVerdict(t, client, base, admin, victim)
	if before.Ready || len(before.Blockers) < 2 || !strings.Contains(strings.Join(before.Blockers, "\n"), "too-few-reporters") {
		t.Fatalf("verdict before the attack = %+v; want blocked for too few reporters and the failures (else the test proves nothing)", before)
	}

	// 40 forged posts: two made-up reporters × 20 backdated days, clean,
	// naming another mx.
	for _, org := range []struct{ name, contact string }{
		{"Microsoft Corporation", "tlsrpt-noreply@microsoft.com"}, {"Yahoo", "postmaster@yahooinc.com"},
	} {
		for i := 1; i <= 20; i++ {
			r := evidenceReport(org.name, org.contact, fmt.Sprintf("forged-%s-%d", org.name, i), victim, "mx.evil.example", today.AddDate(0, 0, -i), 100000, 0)
			body, err := json.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := client.Post(base+"/tlsrpt", "application/tlsrpt+json", bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("forged POST = %d; want it stored (unverified), as any post is", resp.StatusCode)
			}
		}
	}
	after := readVerdict(t, client, base, admin, victim)
	if after.Ready != before.Ready || !slices.Equal(after.Blockers, before.Blockers) || after.Policy != before.Policy || after.Count != before.Count || !slices.Equal(after.Reporters, before.Reporters) {
		t.Errorf("forged posts moved the verdict:\nbefore %+v\nafter  %+v", before, after)
	}
	if strings.Contains(after.Policy, "evil") {
		t.Errorf("the forged reports' mx list reached the proposal:\n%s", after.Policy)
	}
	for _, name := range []string{"Microsoft Corporation", "Yahoo"} {
		if !slices.Contains(after.Excluded, name) {
			t.Errorf("the verdict's excluded list %v lacks the forged reporter %q: left out silently", after.Excluded, name)
		}
	}
	var unverified int
	if err := store.Pool.QueryRow(ctx, `SELECT count(*) FROM reports WHERE source = 'https' AND NOT trusted AND remote_name = ''`).Scan(&unverified); err != nil || unverified != 40 {
		t.Errorf("%d forged posts stored unverified (%v), want 40", unverified, err)
	}

	// Promote still needs the override.
	req, _ := http.NewRequest("POST", base+"/api/v1/domains/"+victim+"/promote", strings.NewReader(`{"reason":"forged evidence says ready"}`))
	req.Header.Set("Authorization", "Bearer "+admin)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode < 400 || resp.StatusCode >= 500 || !strings.Contains(string(msg), "blocked") {
		t.Errorf("promote without override after the forged posts = %d %s; want refused as blocked", resp.StatusCode, msg)
	}

	// One DKIM signer claiming three organisations is one reporter.
	const names = "names.example"
	if _, _, err := store.AddDomain(ctx, names); err != nil {
		t.Fatal(err)
	}
	for _, org := range []string{"Google Inc.", "Microsoft Corporation", "Yahoo"} {
		for i := 1; i <= 20; i++ {
			r := evidenceReport(org, "tlsrpt@example.net", fmt.Sprintf("%s-%d", org, i), names, "mx1."+names, today.AddDate(0, 0, -i), 1000, 0)
			if _, _, err := store.StoreReport(ctx, reports.Received{Report: r, Source: reports.SourceIMAP, SourceRef: "INBOX",
				From: "tlsrpt@example.net", DKIM: reports.DKIMPass, DKIMDomain: "example.net"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	v := readVerdict(t, client, base, admin, names)
	if v.Ready || !strings.Contains(strings.Join(v.Blockers, "\n"), "too-few-reporters") || v.Count != 1 || !slices.Equal(v.Reporters, []string{"example.net"}) {
		t.Errorf("verdict of one signer under three names = %+v; want one reporter, example.net, and blocked for too few", v)
	}
	var flagged int
	if err := store.Pool.QueryRow(ctx, `SELECT count(*) FROM reports WHERE reporter = 'example.net' AND name_mismatch <> ''`).Scan(&flagged); err != nil || flagged != 60 {
		t.Errorf("%d of the 60 reports flagged for a name that is not the signer's (%v)", flagged, err)
	}
	if t.Failed() {
		t.Logf("serve log:\n%s", log.String())
	}
}

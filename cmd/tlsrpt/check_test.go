package main

import (
	"context"
	"encoding/json"
	"net"
	"strings"
	"testing"

	"github.com/miekg/dns"
	"github.com/tlsrpt/tlsrpt/rollout"
)

// startCheckDNS serves zone lines over UDP on loopback, answering like a
// recursive resolver for the names it has and NXDOMAIN for the rest.
func startCheckDNS(t *testing.T, lines ...string) string {
	t.Helper()
	rrs := map[string][]dns.RR{}
	for _, l := range lines {
		rr, err := dns.NewRR(l)
		if err != nil {
			t.Fatalf("dns.NewRR(%q): %v", l, err)
		}
		rrs[strings.ToLower(rr.Header().Name)] = append(rrs[strings.ToLower(rr.Header().Name)], rr)
	}
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(req)
		q := req.Question[0]
		have, ok := rrs[strings.ToLower(q.Name)]
		if !ok {
			m.Rcode = dns.RcodeNameError
		}
		for _, rr := range have {
			if rr.Header().Rrtype == q.Qtype {
				m.Answer = append(m.Answer, rr)
			}
		}
		w.WriteMsg(m)
	})
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: handler}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go srv.ActivateAndServe()
	<-started
	t.Cleanup(func() { srv.Shutdown() })
	return pc.LocalAddr().String()
}

// checkZone is a domain whose DNS is complete and whose policy host
// resolves to loopback, which check must refuse without --allow-private.
func checkZone(t *testing.T) string {
	return startCheckDNS(t,
		`_mta-sts.example.com. 300 IN TXT "v=STSv1; id=20260701T120000Z"`,
		`mta-sts.example.com. 300 IN A 127.0.0.1`,
		`example.com. 300 IN MX 10 mx1.example.com.`,
		`_smtp._tls.example.com. 300 IN TXT "v=TLSRPTv1; rua=mailto:tlsrpt@example.com"`,
	)
}

func TestCheckCommandJSON(t *testing.T) {
	addr := checkZone(t)
	stdout, stderr, code := runCmd(t, "", "check", "--resolver", addr, "example.com", "--json")
	if code != 1 {
		t.Errorf("check exit %d, want 1 (an error-severity problem); stderr %q", code, stderr)
	}
	var res rollout.CheckResult
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("check --json output %q: %v", stdout, err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(stdout), &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"domain", "record", "policy", "mx", "tlsrpt", "problems"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("JSON lacks %q", k)
		}
	}
	if res.Domain != "example.com" || res.Record.ID != "20260701T120000Z" || !res.TLSRPT.Valid || len(res.MX) != 1 {
		t.Errorf("result = %+v", res)
	}
	if len(res.Problems) != 1 || res.Problems[0].Code != rollout.CodePolicyUnreachable || !strings.Contains(res.Problems[0].Message, "not public") {
		t.Errorf("problems = %+v, want policy-unreachable for the loopback policy host", res.Problems)
	}
}

func TestCheckCommandHuman(t *testing.T) {
	addr := checkZone(t)
	stdout, _, code := runCmd(t, "", "check", "--resolver="+addr, "example.com")
	if code != 1 {
		t.Errorf("check exit %d, want 1", code)
	}
	for _, want := range []string{
		"record  _mta-sts.example.com: v=STSv1; id=20260701T120000Z\n",
		"mx      mx1.example.com (10)\n",
		"error   policy-unreachable: mta-sts.example.com resolves to 127.0.0.1, which is not public",
		"; fix: point mta-sts.example.com at a public address",
		"note    no database",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
}

func TestCheckCommandUsage(t *testing.T) {
	for _, args := range [][]string{
		{"check"},
		{"check", "a.example", "b.example"},
		{"check", "--no-such-flag", "example.com"},
		{"check", "--resolver", "127.0.0.1:1", "not a domain"},
		{"check", "--ca-file", "/nonexistent/ca.pem", "example.com"},
	} {
		if _, _, code := runCmd(t, "", args...); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
	}
}

// TestCheckAndRolloutReadTheEnvironment: check and rollout take
// TLSRPT_RESOLVER, TLSRPT_CA_FILE and TLSRPT_ALLOW_PRIVATE like serve
// does (one setting for what DNS tlsrpt trusts), flags overriding them.
func TestCheckAndRolloutReadTheEnvironment(t *testing.T) {
	addr := checkZone(t)
	run := func(vars map[string]string, args ...string) (string, string, int) {
		var out, errOut strings.Builder
		env := &Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut, Getenv: func(k string) string { return vars[k] }}
		code := Main(context.Background(), args, env)
		return out.String(), errOut.String(), code
	}
	out, errOut, _ := run(map[string]string{"TLSRPT_RESOLVER": addr}, "check", "example.com", "--json")
	var res rollout.CheckResult
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Record.ID != "20260701T120000Z" {
		t.Fatalf("check with TLSRPT_RESOLVER = %q (%v) %s; want the test DNS's record", out, err, errOut)
	}
	if len(res.Problems) == 0 || !strings.Contains(res.Problems[0].Message, "not public") {
		t.Errorf("check without TLSRPT_ALLOW_PRIVATE: problems %+v, want the loopback policy host refused", res.Problems)
	}
	out, _, _ = run(map[string]string{"TLSRPT_RESOLVER": addr, "TLSRPT_ALLOW_PRIVATE": "1"}, "check", "example.com", "--json", "--timeout", "2s")
	if strings.Contains(out, "not public") {
		t.Errorf("check with TLSRPT_ALLOW_PRIVATE=1 still refuses the loopback policy host:\n%s", out)
	}
	if _, errOut, code := run(map[string]string{"TLSRPT_ALLOW_PRIVATE": "maybe"}, "check", "example.com"); code != 2 || !strings.Contains(errOut, "TLSRPT_ALLOW_PRIVATE") {
		t.Errorf("check with TLSRPT_ALLOW_PRIVATE=maybe = %d %q, want 2 naming it", code, errOut)
	}
	if _, errOut, code := run(map[string]string{"TLSRPT_ALLOW_PRIVATE": "maybe"}, "rollout", "example.com", "--offline"); code != 2 || !strings.Contains(errOut, "TLSRPT_ALLOW_PRIVATE") {
		t.Errorf("rollout with TLSRPT_ALLOW_PRIVATE=maybe = %d %q, want 2 naming it", code, errOut)
	}
	if _, errOut, code := run(map[string]string{"TLSRPT_CA_FILE": "/nonexistent/ca.pem"}, "check", "example.com"); code != 2 || !strings.Contains(errOut, "ca.pem") {
		t.Errorf("check with TLSRPT_CA_FILE of a missing file = %d %q, want 2 naming it", code, errOut)
	}
}

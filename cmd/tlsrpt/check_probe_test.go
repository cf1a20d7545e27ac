package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tlsrpt/tlsrpt/rollout"
	"github.com/tlsrpt/tlsrpt/rollout/smtptest"
)

// probeDomain serves mx.example with four MX hosts of two loopback
// addresses each (good, expired, wrong name, no STARTTLS) on one port,
// their certificates from a CA written to a --ca-file. The policy host
// has no address, so nothing but the SMTP servers is connected to.
func probeDomain(t *testing.T) (resolver, caFile string, port int) {
	t.Helper()
	now := time.Now().UTC()
	ca := smtptest.NewCA(t, now)
	wrong := smtptest.Host{Name: "mx3.mx.example", Cert: ca.Leaf(t, now.AddDate(0, 0, -1), now.AddDate(0, 0, 60), "other.example")}
	hosts := []smtptest.Host{
		{Name: "mx1.mx.example", Cert: ca.Leaf(t, now.AddDate(0, 0, -1), now.AddDate(0, 0, 60), "mx1.mx.example")},
		{Name: "mx2.mx.example", Cert: ca.Leaf(t, now.AddDate(0, -3, 0), now.AddDate(0, 0, -2), "mx2.mx.example")},
		wrong,
		{Name: "mx4.mx.example", Mode: smtptest.NoSTARTTLS},
	}
	zone := []string{
		`_mta-sts.mx.example. 300 IN TXT "v=STSv1; id=20261201T000000Z"`,
		`_smtp._tls.mx.example. 300 IN TXT "v=TLSRPTv1; rua=mailto:tlsrpt@mx.example"`,
	}
	for i := range hosts {
		n := i + 1
		hosts[i].Addrs = []string{fmt.Sprintf("127.0.0.%d1", n), fmt.Sprintf("127.0.0.%d2", n)}
		zone = append(zone, fmt.Sprintf("mx.example. 300 IN MX %d %s.", 10*n, hosts[i].Name),
			hosts[i].Name+". 300 IN A "+hosts[i].Addrs[0], hosts[i].Name+". 300 IN A "+hosts[i].Addrs[1])
	}
	srv := smtptest.Start(t, hosts...)
	caFile = filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, ca.PEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	return startCheckDNS(t, zone...), caFile, srv.Port
}

func TestCheckCommandProbeJSON(t *testing.T) {
	resolver, caFile, port := probeDomain(t)
	p := strconv.Itoa(port)
	stdout, stderr, code := runCmd(t, "", "check", "--resolver", resolver, "--ca-file", caFile, "--allow-private", "--smtp-port", p, "--json", "mx.example")
	if code != 1 {
		t.Errorf("check exit %d, want 1; stderr %q", code, stderr)
	}
	var res rollout.CheckResult
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("check --json output %q: %v", stdout, err)
	}
	var got []string
	for _, pr := range res.Problems {
		if pr.MX != "" {
			got = append(got, pr.Code+" "+pr.MX+" "+pr.Address)
		}
	}
	sort.Strings(got)
	want := []string{
		"mx-certificate-invalid mx2.mx.example 127.0.0.21:" + p, "mx-certificate-invalid mx2.mx.example 127.0.0.22:" + p,
		"mx-certificate-invalid mx3.mx.example 127.0.0.31:" + p, "mx-certificate-invalid mx3.mx.example 127.0.0.32:" + p,
		"mx-starttls-missing mx4.mx.example 127.0.0.41:" + p, "mx-starttls-missing mx4.mx.example 127.0.0.42:" + p,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("probe problems = %q, want %q", got, want)
	}
	// The JSON names of the new fields under each MX are a contract.
	var raw struct {
		MX []map[string]json.RawMessage `json:"mx"`
	}
	if err := json.Unmarshal([]byte(stdout), &raw); err != nil || len(raw.MX) != 4 {
		t.Fatalf("mx = %v, %v", raw.MX, err)
	}
	var addrs []map[string]any
	if err := json.Unmarshal(raw.MX[0]["addresses"], &addrs); err != nil || len(addrs) != 2 {
		t.Fatalf("mx[0].addresses = %s, %v", raw.MX[0]["addresses"], err)
	}
	for _, k := range []string{"address", "reachable", "banner", "starttls", "tls_version", "cipher_suite", "certificate", "verified"} {
		if _, ok := addrs[0][k]; !ok {
			t.Errorf("mx[0].addresses[0] lacks %q: %v", k, addrs[0])
		}
	}
	cert, _ := addrs[0]["certificate"].(map[string]any)
	for _, k := range []string{"subject", "sans", "issuer", "not_after", "days_left"} {
		if _, ok := cert[k]; !ok {
			t.Errorf("certificate lacks %q: %v", k, cert)
		}
	}
	if m := res.MX[1].Addresses[0]; m.Verified || !strings.Contains(m.VerifyError, "expired") {
		t.Errorf("mx2 = %+v, want an expired certificate", m)
	}
}

func TestCheckCommandProbeHuman(t *testing.T) {
	resolver, caFile, port := probeDomain(t)
	p := strconv.Itoa(port)
	stdout, _, code := runCmd(t, "", "check", "--resolver="+resolver, "--ca-file="+caFile, "--allow-private", "--smtp-port="+p, "mx.example")
	if code != 1 {
		t.Errorf("check exit %d, want 1", code)
	}
	for _, want := range []string{
		"  smtp    mx1.mx.example 127.0.0.11:" + p + ": STARTTLS, TLS 1.3 ",
		"certificate CN=mx1.mx.example for mx1.mx.example by CN=smtptest CA, until ",
		"(59 days left), valid\n",
		"  smtp    mx3.mx.example 127.0.0.32:" + p + ": STARTTLS",
		"not valid: x509: certificate is valid for other.example, not mx3.mx.example\n",
		"  smtp    mx4.mx.example 127.0.0.41:" + p + ": no STARTTLS\n",
		"error   mx-starttls-missing: MX mx4.mx.example at 127.0.0.42:" + p + " does not offer STARTTLS",
		"error   mx-certificate-invalid: MX mx2.mx.example at 127.0.0.21:" + p,
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	if _, _, code := runCmd(t, "", "check", "--smtp-port", "0", "mx.example"); code != 2 {
		t.Errorf("--smtp-port 0: exit %d, want 2", code)
	}
}

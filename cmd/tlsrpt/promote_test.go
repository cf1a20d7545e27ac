package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/db/dbtest"
	"github.com/tlsrpt/tlsrpt/reports"
	"github.com/tlsrpt/tlsrpt/rollout"
	"github.com/tlsrpt/tlsrpt/rollout/dnstest"
	"github.com/tlsrpt/tlsrpt/rollout/publish"
)

// writeTestPKI writes a CA (ca.pem) and a certificate for host
// (<host>.crt/.key) into dir.
func writeTestPKI(t *testing.T, dir, host string) {
	t.Helper()
	gen := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	caKey, leafKey := gen(), gen()
	caT := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	caDER, err := x509.CreateCertificate(rand.Reader, caT, caT, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	leafT := &x509.Certificate{SerialNumber: big.NewInt(2), DNSNames: []string{host}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafT, ca, &leafKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(leafKey)
	for name, b := range map[string][]byte{
		"ca.pem":      pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		host + ".crt": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER}),
		host + ".key": pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// seedReady stores 20 days of clean reports from three organisations for
// domain in testing, ending yesterday (the commands use the real clock).
func seedReady(t *testing.T, d *db.DB, domain string) {
	t.Helper()
	today := time.Now().UTC().Truncate(24 * time.Hour)
	for i := 20; i >= 1; i-- {
		start := today.AddDate(0, 0, -i)
		for _, o := range []string{"Google Inc.", "Microsoft Corporation", "Yahoo Inc."} {
			r := &reports.Report{OrganizationName: o, ReportID: fmt.Sprintf("%s-%d", o, i),
				DateRange: reports.DateRange{Start: start, End: start.Add(24*time.Hour - time.Second)},
				Policies: []reports.PolicyResult{{
					Policy: reports.Policy{Type: "sts", Domain: domain, MXHosts: []string{"mx1." + domain},
						Strings: []string{"version: STSv1", "mode: testing", "mx: mx1." + domain, "max_age: 86400"}},
					Summary: reports.Summary{TotalSuccessfulSessionCount: 500},
				}}}
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

// TestPromoteCommand: tlsrpt promote and tlsrpt rollback against a real
// PostgreSQL, an RFC 2136 server with TSIG and tlsrpt's policy host, all
// on loopback.
func TestPromoteCommand(t *testing.T) {
	url := dbtest.NewURL(t, true)
	d, err := db.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	seedReady(t, d, "example.com")

	const key, secret = "cli-key", "Y2xpLXRlc3Qtc2VjcmV0LWZvci10c2lnLWtleXM="
	zone := dnstest.Start(t, "example.com", key, secret)
	zone.Add(t, "example.com. 300 IN MX 10 mx1.example.com.", "mta-sts.example.com. 300 IN A 127.0.0.1",
		`_mta-sts.example.com. 300 IN TXT "v=STSv1; id=old"`)
	pki := t.TempDir()
	writeTestPKI(t, pki, "mta-sts.example.com")

	port := startPolicyHost(t, d, pki)

	run := func(args ...string) (int, string, string) {
		t.Helper()
		var out, errOut bytes.Buffer
		vars := map[string]string{"DATABASE_URL": url, "TLSRPT_TSIG_SECRET": secret}
		env := &Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut, Getenv: func(k string) string { return vars[k] }}
		name := args[0]
		code := commands[name].run(context.Background(), env, args[1:])
		return code, out.String(), errOut.String()
	}
	// How the domain is published is its stored setting: hosted, the
	// record by RFC 2136 with the key whose secret is TLSRPT_TSIG_SECRET.
	if _, err := d.SetPublishing(context.Background(), db.Publishing{Domain: "example.com", Policy: "hosted", Record: "rfc2136",
		Server: zone.Addr, TSIGKey: key, Credential: "TSIG"}, "test"); err != nil {
		t.Fatal(err)
	}
	common := []string{"--resolver", zone.Addr,
		"--ca-file", filepath.Join(pki, "ca.pem"), "--allow-private", "--policy-port", port}

	code, out, errOut := run(append(append([]string{"promote"}, common...), "--json", "--reason", "ready", "example.com")...)
	if code != exitPublished {
		t.Fatalf("promote = %d, stderr %s", code, errOut)
	}
	var v struct {
		Mode     rollout.Mode
		ID       string
		Verified bool
		Steps    []rollout.Step
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("promote --json: %v\n%s", err, out)
	}
	if v.Mode != rollout.ModeEnforce || v.ID == "old" || !v.Verified {
		t.Errorf("promote = %+v, want enforce, a new id, verified", v)
	}
	if got := zone.TXT("_mta-sts.example.com"); !slices.Equal(got, []string{"v=STSv1; id=" + v.ID}) {
		t.Errorf("TXT = %q, want id %s", got, v.ID)
	}
	if code, _, errOut := run(append(append([]string{"promote"}, common...), "example.com")...); code != exitRefused {
		t.Errorf("promote again = %d (%s), want %d: already enforce", code, errOut, exitRefused)
	}
	code, out, errOut = run(append(append([]string{"rollback"}, common...), "--mode", "none", "--reason", "leaving", "example.com")...)
	if code != exitPublished || !strings.Contains(out, "mode: none") || !strings.Contains(out, "may be removed after") {
		t.Errorf("rollback --mode none = %d\n%s\n%s", code, out, errOut)
	}
	if code, _, _ := run("rollback", "--mode", "enforce", "example.com"); code != exitUsage {
		t.Errorf("rollback --mode enforce = %d, want %d", code, exitUsage)
	}
	if code, _, _ := run("promote", "--dns-provider", "route53", "example.com"); code != exitUsage {
		t.Errorf("promote with an unknown provider = %d, want %d", code, exitUsage)
	}
	entries, err := d.AuditLog(context.Background(), "example.com", 10)
	if err != nil || len(entries) < 2 || entries[0].Actor != "cli" {
		t.Errorf("audit log = %+v %v, want the cli's entries", entries, err)
	}
}

// startPolicyHost serves the hosted policies of d over HTTPS with the
// certificates in pki, as tlsrpt serve's policy listener does, until the test ends; it
// returns the port.
func startPolicyHost(t *testing.T, d *db.DB, pki string) string {
	t.Helper()
	tc, err := publish.PolicyTLSConfig(publish.PolicyTLS{CertDir: pki}, d)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(publish.PolicyOnly(publish.PolicyFile(d)))
	hs.TLS = tc
	hs.StartTLS()
	t.Cleanup(hs.Close)
	_, port, _ := net.SplitHostPort(hs.Listener.Addr().String())
	return port
}

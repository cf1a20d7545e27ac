package publish

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tlsrpt/tlsrpt/rollout/publish/publishtest"
)

// TestPolicyTLSConfig: certificates by SNI from the directory, re-read
// when they change; names outside it fall back or fail; no path escapes.
func TestPolicyTLSConfig(t *testing.T) {
	ca := publishtest.NewCA(t)
	dir := t.TempDir()
	publishtest.WriteLeaf(t, ca, dir, "mta-sts.example.com")
	if _, err := PolicyTLSConfig(PolicyTLS{}, nil); err == nil {
		t.Error("PolicyTLSConfig without any source = nil error")
	}
	tc, err := PolicyTLSConfig(PolicyTLS{CertDir: dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	get := func(name string) (*tls.Certificate, error) {
		return tc.GetCertificate(&tls.ClientHelloInfo{ServerName: name})
	}
	c1, err := get("MTA-STS.example.com")
	if err != nil || c1 == nil {
		t.Fatalf("certificate for mta-sts.example.com: %v", err)
	}
	if c, err := get("mta-sts.example.com"); err != nil || c != c1 {
		t.Errorf("second handshake did not reuse the loaded certificate (%v)", err)
	}
	for _, bad := range []string{"mta-sts.example.org", "../mta-sts.example.com", ".hidden", ""} {
		if _, err := get(bad); err == nil {
			t.Errorf("certificate for %q: want an error", bad)
		}
	}
	// A renewal: new files, a later modification time.
	publishtest.WriteLeaf(t, ca, dir, "mta-sts.example.com")
	later := time.Now().Add(time.Minute)
	if err := os.Chtimes(filepath.Join(dir, "mta-sts.example.com.crt"), later, later); err != nil {
		t.Fatal(err)
	}
	if c2, err := get("mta-sts.example.com"); err != nil || c2 == c1 {
		t.Errorf("renewed certificate not loaded (%v)", err)
	}
	fb := &tls.Certificate{}
	tc, err = PolicyTLSConfig(PolicyTLS{CertDir: dir, Fallback: fb}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := tc.GetCertificate(&tls.ClientHelloInfo{ServerName: "tlsrpt.example.net"}); err != nil || c != fb {
		t.Errorf("other name = %v %v, want the fallback", c, err)
	}
}

func FuzzPolicyDomain(f *testing.F) {
	for _, s := range []string{"mta-sts.example.com", "MTA-STS.Example.COM.:443", "mta-sts.", "example.com", "mta-sts.xn--bcher-kva.example", "mta-sts.a..b", "[::1]:80", "mta-sts.ex ample.com"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, host string) {
		d, ok := PolicyDomain(host)
		if !ok {
			return
		}
		// An accepted host names a normalised domain that maps back to
		// itself.
		if d2, ok2 := PolicyDomain("mta-sts." + d); !ok2 || d2 != d {
			t.Errorf("PolicyDomain(%q) = %q, but PolicyDomain(mta-sts.%s) = %q %v", host, d, d, d2, ok2)
		}
		if strings.ContainsAny(d, "/\\: ") || d != strings.ToLower(d) {
			t.Errorf("PolicyDomain(%q) = %q: not a normalised name", host, d)
		}
	})
}

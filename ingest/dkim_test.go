package ingest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/tlsrpt/tlsrpt/reports"
)

const dkimTestMessage = "From: TLS Reports <noreply-smtp-tls-reporting@reports.example.com>\r\n" +
	"To: rua@example.net\r\n" +
	"Subject: Report Domain: example.net Submitter: example.com Report-ID: <1@example.com>\r\n" +
	"Message-ID: <1@example.com>\r\n" +
	"\r\n" +
	"This is an aggregate TLS report.\r\n"

// signTestMessage signs msg for domain with a fresh RSA key and returns the
// signed message and the TXT record of the key.
func signTestMessage(t *testing.T, domain, msg string) ([]byte, string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err = dkim.Sign(&out, strings.NewReader(msg), &dkim.SignOptions{Domain: domain, Selector: "s1", Signer: key})
	if err != nil {
		t.Fatalf("dkim.Sign: %v", err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return out.Bytes(), "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(pub)
}

func TestDKIMVerifier(t *testing.T) {
	signed, record := signTestMessage(t, "example.com", dkimTestMessage)
	lookups := 0
	lookup := func(ctx context.Context, name string) ([]string, error) {
		lookups++
		if name == "s1._domainkey.example.com" {
			return []string{record}, nil
		}
		return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
	}
	verify := NewDKIMVerifier(lookup)
	from := "noreply-smtp-tls-reporting@reports.example.com"

	tampered := bytes.Replace(signed, []byte("aggregate"), []byte("forged"), 1)
	tests := []struct {
		name       string
		raw        []byte
		want       reports.DKIMResult
		wantDomain string
	}{
		{"signed", signed, reports.DKIMPass, "example.com"},
		{"tampered body", tampered, reports.DKIMFail, "example.com"},
		{"unsigned", []byte(dkimTestMessage), reports.DKIMNone, ""},
		{"garbage", []byte("\x00\x01 not a message"), reports.DKIMNone, ""},
	}
	for _, tt := range tests {
		got, dom := verify(t.Context(), tt.raw, from)
		if got != tt.want || dom != tt.wantDomain {
			t.Errorf("%s: verify() = %s, %q; want %s, %q", tt.name, got, dom, tt.want, tt.wantDomain)
		}
	}
	if lookups == 0 {
		t.Errorf("the injected lookup was never called")
	}

	// A temporary DNS failure is temperror, to be retried, not a fail.
	temp := NewDKIMVerifier(func(ctx context.Context, name string) ([]string, error) {
		return nil, &net.DNSError{Err: "server misbehaving", Name: name, IsTemporary: true}
	})
	if got, dom := temp(t.Context(), signed, from); got != reports.DKIMTempError || dom != "example.com" {
		t.Errorf("verify() with DNS down = %s, %q; want temperror, example.com", got, dom)
	}
}

// TestDKIMVerifierPrefersAligned checks that of two valid signatures the
// one of the From: domain's organisation is reported.
func TestDKIMVerifierPrefersAligned(t *testing.T) {
	inner, rec1 := signTestMessage(t, "esp.example", dkimTestMessage)
	both, rec2 := signTestMessage(t, "example.com", string(inner))
	lookup := func(ctx context.Context, name string) ([]string, error) {
		switch name {
		case "s1._domainkey.esp.example":
			return []string{rec1}, nil
		case "s1._domainkey.example.com":
			return []string{rec2}, nil
		}
		return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
	}
	got, dom := NewDKIMVerifier(lookup)(t.Context(), both, "x@reports.example.com")
	if got != reports.DKIMPass || dom != "example.com" {
		t.Errorf("verify() = %s, %q; want pass, example.com", got, dom)
	}
}

func TestSameOrgDomain(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"google.com", "google.com", true},
		{"google.com", "smtp-tls.google.com", true},
		{"mail.ru", "corp.mail.ru", true},
		{"example.co.uk", "mail.example.co.uk", true},
		{"a.co.uk", "b.co.uk", false},
		{"evil.com", "google.com", false},
		{"", "google.com", false},
	}
	for _, tt := range tests {
		if got := SameOrgDomain(tt.a, tt.b); got != tt.want {
			t.Errorf("SameOrgDomain(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

// TestDKIMKeyCache: a key is looked up once for many messages; a
// temporary failure is not remembered; a hanging lookup is a temperror.
func TestDKIMKeyCache(t *testing.T) {
	signed, record := signTestMessage(t, "example.com", dkimTestMessage)
	calls, failing := 0, true
	verify := NewDKIMVerifier(func(ctx context.Context, name string) ([]string, error) {
		calls++
		if failing {
			return nil, &net.DNSError{Err: "server misbehaving", Name: name, IsTemporary: true}
		}
		return []string{record}, nil
	})
	from := "x@example.com"
	if got, _ := verify(t.Context(), signed, from); got != reports.DKIMTempError {
		t.Fatalf("verify() with DNS failing = %s, want temperror", got)
	}
	failing = false
	for range 5 {
		if got, _ := verify(t.Context(), signed, from); got != reports.DKIMPass {
			t.Fatalf("verify() = %s, want pass", got)
		}
	}
	if calls != 2 {
		t.Errorf("lookups = %d, want 2 (the failure is retried, the key then cached)", calls)
	}

	hang := NewDKIMVerifier(func(ctx context.Context, name string) ([]string, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	})
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if got, _ := hang(ctx, signed, from); got != reports.DKIMTempError {
		t.Errorf("verify() with a hanging lookup = %s, want temperror", got)
	}
}

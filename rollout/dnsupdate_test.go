package rollout

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/tlsrpt/tlsrpt/rollout/dnstest"
)

const testTSIGSecret = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0IQ==" // base64 of a 27-byte test secret

func TestDNSUpdate(t *testing.T) {
	srv := dnstest.Start(t, "example.com", "tlsrpt-key", testTSIGSecret)
	srv.Add(t, `_mta-sts.example.com. 300 IN TXT "v=STSv1; id=old1"`, `_mta-sts.example.com. 300 IN TXT "v=STSv1; id=old2"`,
		`example.com. 300 IN TXT "v=spf1 -all"`)
	ctx := context.Background()
	u := &DNSUpdate{Server: srv.Addr, Zone: "example.com", KeyName: "tlsrpt-key", Secret: testTSIGSecret, Timeout: 5 * time.Second}
	if err := u.PublishTXT(ctx, "_mta-sts.example.com.", "v=STSv1; id=20260701T120000Z"); err != nil {
		t.Fatalf("PublishTXT: %v", err)
	}
	if got, want := srv.TXT("_mta-sts.example.com"), []string{"v=STSv1; id=20260701T120000Z"}; !slices.Equal(got, want) {
		t.Errorf("TXT after the update = %q, want %q (the old records replaced)", got, want)
	}
	// Without a zone, the record's domain is the zone.
	own := &DNSUpdate{Server: srv.Addr, KeyName: "tlsrpt-key", Secret: testTSIGSecret, Timeout: 5 * time.Second}
	if err := own.PublishTXT(ctx, "_mta-sts.example.com", "v=STSv1; id=20260701T120000Z"); err != nil {
		t.Fatalf("PublishTXT without a zone: %v", err)
	}
	if got := srv.TXT("example.com"); len(got) != 1 {
		t.Errorf("TXT at the apex = %q, want it untouched", got)
	}

	// A wrong secret, an unknown key and no key are refused; a name
	// outside the zone is refused before sending.
	for name, bad := range map[string]*DNSUpdate{
		"wrong secret": {Server: srv.Addr, Zone: "example.com", KeyName: "tlsrpt-key", Secret: "d3Jvbmctc2VjcmV0", Timeout: 5 * time.Second},
		"unknown key":  {Server: srv.Addr, Zone: "example.com", KeyName: "other-key", Secret: testTSIGSecret, Timeout: 5 * time.Second},
		"unsigned":     {Server: srv.Addr, Zone: "example.com", Timeout: 5 * time.Second},
		"other zone":   {Server: srv.Addr, Zone: "example.org", KeyName: "tlsrpt-key", Secret: testTSIGSecret, Timeout: 5 * time.Second},
	} {
		err := bad.PublishTXT(ctx, "_mta-sts.example.com", "v=STSv1; id=evil")
		if err == nil {
			t.Errorf("%s: PublishTXT = nil, want an error", name)
		} else if name != "wrong secret" && name != "unknown key" && !errors.Is(err, ErrPublish) {
			t.Errorf("%s: PublishTXT = %v, want ErrPublish", name, err)
		}
	}
	if got := srv.TXT("_mta-sts.example.com"); !slices.Equal(got, []string{"v=STSv1; id=20260701T120000Z"}) {
		t.Errorf("TXT after refused updates = %q, want the published one", got)
	}
	if applied, _ := srv.Updates(); applied != 2 {
		t.Errorf("updates applied = %d, want 2", applied)
	}
}

func TestRelativeName(t *testing.T) {
	for _, tc := range []struct {
		name, zone, want string
		ok               bool
	}{
		{"_mta-sts.example.com.", "example.com", "_mta-sts", true},
		{"_MTA-STS.Example.com", "example.com.", "_mta-sts", true},
		{"example.com", "example.com", "@", true},
		{"_mta-sts.sub.example.com", "example.com", "_mta-sts.sub", true},
		{"_mta-sts.badexample.com", "example.com", "", false},
	} {
		got, ok := relativeName(tc.name, tc.zone)
		if got != tc.want || ok != tc.ok {
			t.Errorf("relativeName(%q, %q) = %q %v, want %q %v", tc.name, tc.zone, got, ok, tc.want, tc.ok)
		}
	}
}

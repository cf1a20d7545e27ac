package rollout

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tlsrpt/tlsrpt/rollout/bindtest"
)

// The tests below run DNSUpdate against a real BIND (Debian's bind9,
// started privately by bindtest): what named accepts and how it refuses
// is what operators meet, and dnstest only imitates it.

func bindUpdater(srv *bindtest.Server) *DNSUpdate {
	return &DNSUpdate{Server: srv.Addr(), Zone: "example.com", KeyName: srv.KeyName(), Algorithm: srv.Algorithm(),
		Secret: srv.Secret(), Timeout: 5 * time.Second}
}

// TestBindDNSUpdateReplaces pushes a TXT, then another: exactly one
// STSv1 record remains each time (RFC 8461 §3.1: several records mean
// none), records already there are replaced, and other names and types
// are untouched.
func TestBindDNSUpdateReplaces(t *testing.T) {
	srv := bindtest.Start(t, "example.com")
	srv.AddRecord(`_mta-sts.example.com. 300 IN TXT "v=STSv1; id=old1"`, `_mta-sts.example.com. 300 IN TXT "v=STSv1; id=old2"`,
		`example.com. 300 IN TXT "v=spf1 -all"`)
	srv.SetA("mta-sts.example.com", "192.0.2.7")
	if got := srv.TXT("_mta-sts.example.com"); len(got) != 2 {
		t.Fatalf("TXT before = %q, want the two old records", got)
	}
	ctx := context.Background()
	u := bindUpdater(srv)
	for _, id := range []string{"20260701T120000Z", "20260702T080000Z"} {
		want := "v=STSv1; id=" + id
		if err := u.PublishTXT(ctx, "_mta-sts.example.com", want); err != nil {
			t.Fatalf("PublishTXT(%q): %v\n%s", want, err, srv.Log())
		}
		if got := srv.TXT("_mta-sts.example.com"); !slices.Equal(got, []string{want}) {
			t.Errorf("TXT after PublishTXT(%q) = %q, want exactly that one", want, got)
		}
	}
	// Without a zone, the record's parent domain is the zone.
	own := bindUpdater(srv)
	own.Zone = ""
	if err := own.PublishTXT(ctx, "_mta-sts.example.com.", "v=STSv1; id=3"); err != nil {
		t.Fatalf("PublishTXT without a zone: %v", err)
	}
	if got := srv.TXT("_mta-sts.example.com"); !slices.Equal(got, []string{"v=STSv1; id=3"}) {
		t.Errorf("TXT after PublishTXT without a zone = %q", got)
	}
	if got := srv.TXT("example.com"); !slices.Equal(got, []string{"v=spf1 -all"}) {
		t.Errorf("TXT at the apex = %q, want it untouched", got)
	}
	addrs, err := srv.Resolver().LookupHost(ctx, "mta-sts.example.com")
	if err != nil || !slices.Equal(addrs, []string{"192.0.2.7"}) {
		t.Errorf("LookupHost(mta-sts) = %q, %v, want the A record untouched", addrs, err)
	}
}

// TestBindDNSUpdateQuoting: quotes, backslashes, semicolons and non-ASCII
// octets reach the wire as given (quoteTXT's escaping is undone by the
// zone-file parser, not doubled) and come back from BIND the same.
func TestBindDNSUpdateQuoting(t *testing.T) {
	srv := bindtest.Start(t, "example.com")
	u := bindUpdater(srv)
	for _, v := range []string{
		`v=STSv1; id="quoted"`,
		`v=STSv1; id=back\slash\\double`,
		`v=STSv1; id=\"; x=\065`,
		"v=STSv1; id=caf\u00e9",
		`"`, `\`,
	} {
		if err := u.PublishTXT(context.Background(), "_mta-sts.example.com", v); err != nil {
			t.Errorf("PublishTXT(%q): %v", v, err)
			continue
		}
		if got := srv.TXT("_mta-sts.example.com"); !slices.Equal(got, []string{v}) {
			t.Errorf("TXT after PublishTXT(%q) = %q", v, got)
		}
		txt, err := srv.Resolver().LookupTXT(context.Background(), "_mta-sts.example.com")
		if err != nil || !slices.Equal(txt, []string{v}) {
			t.Errorf("LookupTXT after PublishTXT(%q) = %q, %v", v, txt, err)
		}
	}
}

// TestBindDNSUpdateRefused: each way BIND refuses an update is an error
// wrapping ErrPublish that names the cause in the server's words and
// leaves the record as it was.
func TestBindDNSUpdateRefused(t *testing.T) {
	srv := bindtest.Start(t, "example.com")
	ctx := context.Background()
	good := bindUpdater(srv)
	if err := good.PublishTXT(ctx, "_mta-sts.example.com", "v=STSv1; id=good"); err != nil {
		t.Fatalf("PublishTXT: %v", err)
	}
	for _, tc := range []struct {
		name   string
		change func(u *DNSUpdate)
		record string
		want   []string
	}{
		{"wrong secret", func(u *DNSUpdate) { u.Secret = "d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldA==" }, "_mta-sts.example.com",
			[]string{"BADSIG", "secret of TSIG key " + srv.KeyName()}},
		{"unknown key", func(u *DNSUpdate) { u.KeyName = "other-key" }, "_mta-sts.example.com",
			[]string{"BADKEY", "does not know TSIG key other-key."}},
		{"unsigned", func(u *DNSUpdate) { u.KeyName = "" }, "_mta-sts.example.com",
			[]string{"REFUSED", "unsigned", "example.com."}},
		{"wrong zone", func(u *DNSUpdate) { u.Zone = "example.org" }, "_mta-sts.example.org",
			[]string{"NOTAUTH", "not authoritative for zone example.org."}},
		{"secret not base64", func(u *DNSUpdate) { u.Secret = "not base64!" }, "_mta-sts.example.com",
			[]string{"not base64"}},
	} {
		u := bindUpdater(srv)
		tc.change(u)
		err := u.PublishTXT(ctx, tc.record, "v=STSv1; id=evil")
		if err == nil {
			t.Errorf("%s: PublishTXT = nil, want an error", tc.name)
			continue
		}
		t.Logf("%s: %v", tc.name, err)
		if !errors.Is(err, ErrPublish) {
			t.Errorf("%s: PublishTXT = %v, want ErrPublish", tc.name, err)
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: PublishTXT = %v, want it to say %q", tc.name, err, w)
			}
		}
		if strings.Contains(err.Error(), "bad authentication") {
			t.Errorf("%s: PublishTXT = %v, want BIND's cause, not miekg/dns's", tc.name, err)
		}
	}
	if got := srv.TXT("_mta-sts.example.com"); !slices.Equal(got, []string{"v=STSv1; id=good"}) {
		t.Errorf("TXT after refused updates = %q, want the published one", got)
	}
}

// TestBindDNSUpdatePolicy: the narrow BIND grant docs/publishing.md
// recommends lets tlsrpt replace _mta-sts.<domain> and nothing else; a
// name outside the grant is REFUSED, said as such.
func TestBindDNSUpdatePolicy(t *testing.T) {
	srv := bindtest.StartUpdatePolicy(t, "example.com", "grant "+bindtest.KeyName+" name _mta-sts.example.com. TXT;")
	u := bindUpdater(srv)
	ctx := context.Background()
	if err := u.PublishTXT(ctx, "_mta-sts.example.com", "v=STSv1; id=1"); err != nil {
		t.Fatalf("PublishTXT under the grant: %v\n%s", err, srv.Log())
	}
	if got := srv.TXT("_mta-sts.example.com"); !slices.Equal(got, []string{"v=STSv1; id=1"}) {
		t.Errorf("TXT = %q, want the pushed record", got)
	}
	err := u.PublishTXT(ctx, "_mta-sts.sub.example.com", "v=STSv1; id=2")
	if err == nil || !errors.Is(err, ErrPublish) || !strings.Contains(err.Error(), "REFUSED") ||
		!strings.Contains(err.Error(), "does not let TSIG key "+srv.KeyName()) {
		t.Errorf("PublishTXT outside the grant = %v, want ErrPublish saying REFUSED for the key", err)
	}
	if got := srv.TXT("_mta-sts.sub.example.com"); len(got) != 0 {
		t.Errorf("TXT outside the grant = %q, want none", got)
	}
}

// TestBindDNSUpdateServerDown: a server that is gone or never answers
// gives a clear error within the timeout, not a hang.
func TestBindDNSUpdateServerDown(t *testing.T) {
	srv := bindtest.Start(t, "example.com")
	u := bindUpdater(srv)
	u.Timeout = 2 * time.Second
	srv.Stop()
	start := time.Now()
	err := u.PublishTXT(context.Background(), "_mta-sts.example.com", "v=STSv1; id=1")
	if err == nil || !errors.Is(err, ErrPublish) || !strings.Contains(err.Error(), "cannot be reached") ||
		!strings.Contains(err.Error(), srv.Addr()) {
		t.Errorf("PublishTXT to a stopped named = %v, want ErrPublish saying %s cannot be reached", err, srv.Addr())
	}
	if d := time.Since(start); d > u.Timeout+time.Second {
		t.Errorf("PublishTXT to a stopped named took %s, want under the %s timeout", d, u.Timeout)
	}

	// A server that accepts the connection and never answers.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	u.Server = ln.Addr().String()
	start = time.Now()
	err = u.PublishTXT(context.Background(), "_mta-sts.example.com", "v=STSv1; id=1")
	if err == nil || !errors.Is(err, ErrPublish) || !strings.Contains(err.Error(), "no answer within 2s") {
		t.Errorf("PublishTXT to a silent server = %v, want ErrPublish saying no answer within 2s", err)
	}
	if d := time.Since(start); d > u.Timeout+time.Second {
		t.Errorf("PublishTXT to a silent server took %s, want about the %s timeout", d, u.Timeout)
	}
}

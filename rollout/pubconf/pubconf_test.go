package pubconf

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/db/dbtest"
	"github.com/tlsrpt/tlsrpt/rollout"
	"github.com/tlsrpt/tlsrpt/rollout/dnstest"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }

func envOf(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }

func TestPublishingResolveMethods(t *testing.T) {
	secretFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(secretFile, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := envOf(map[string]string{"TLSRPT_SECRET_TSIG": "c2VjcmV0", "TLSRPT_SECRET_CF_FILE": secretFile, "TLSRPT_SECRET_HZ": "hz-token"})
	host, rec, err := Resolve(db.Publishing{Domain: "example.com", Policy: "hosted", Record: "manual"}, env)
	if err != nil || !host || rec != nil {
		t.Errorf("Resolve(hosted, manual) = %v, %v, %v; want hosted and no publisher", host, rec, err)
	}
	host, rec, err = Resolve(db.Publishing{Domain: "example.com", Policy: "download", Record: "rfc2136", Server: "192.0.2.53:53",
		Zone: "example.com", TSIGKey: "k", TSIGAlgorithm: "hmac-sha512", Credential: "tsig"}, env)
	u, ok := rec.(*rollout.DNSUpdate)
	if err != nil || host || !ok || u.Server != "192.0.2.53:53" || u.Zone != "example.com" || u.KeyName != "k" || u.Algorithm != "hmac-sha512" || u.Secret != "c2VjcmV0" {
		t.Errorf("Resolve(rfc2136) = %v, %#v, %v", host, rec, err)
	}
	_, rec, err = Resolve(db.Publishing{Domain: "example.com", Policy: "hosted", Record: "cloudflare", Zone: "example.com", Credential: "CF"}, env)
	if cf, ok := rec.(*rollout.Cloudflare); err != nil || !ok || cf.Token != "from-file" || cf.Zone != "example.com" || cf.ZoneID != "" {
		t.Errorf("Resolve(cloudflare, file secret) = %#v, %v", rec, err)
	}
	id := "0123456789abcdef0123456789abcdef"
	_, rec, err = Resolve(db.Publishing{Domain: "example.com", Policy: "hosted", Record: "cloudflare", Zone: id, Credential: "CF"}, env)
	if cf, ok := rec.(*rollout.Cloudflare); err != nil || !ok || cf.ZoneID != id || cf.Zone != "" {
		t.Errorf("Resolve(cloudflare, zone id) = %#v, %v", rec, err)
	}
	_, rec, err = Resolve(db.Publishing{Domain: "example.com", Policy: "hosted", Record: "hetzner", Zone: "zoneid1", Credential: "hz"}, env)
	if h, ok := rec.(*rollout.Hetzner); err != nil || !ok || h.Token != "hz-token" || h.Zone != "zoneid1" {
		t.Errorf("Resolve(hetzner) = %#v, %v", rec, err)
	}
	if _, rec, err := Resolve(db.Publishing{Domain: "example.com", Policy: "hosted", Record: "hetzner"}, env); !errors.Is(err, db.ErrBadPublishing) || rec != nil {
		t.Errorf("Resolve(invalid) = %v, %v; want ErrBadPublishing and no publisher", rec, err)
	}
}

func TestPublishingMissingSecret(t *testing.T) {
	p := db.Publishing{Domain: "example.com", Policy: "hosted", Record: "hetzner", Credential: "dns_prod"}
	host, rec, err := Resolve(p, envOf(nil))
	if !errors.Is(err, ErrMissingSecret) || !strings.Contains(err.Error(), "TLSRPT_SECRET_DNS_PROD") || !host {
		t.Fatalf("Resolve() without the secret = %v, %v; want ErrMissingSecret naming TLSRPT_SECRET_DNS_PROD", host, err)
	}
	// The publisher still has the method and fails each push with the
	// cause, so the step shows it instead of "set it by hand".
	if rec == nil || rec.Method() != rollout.RecordHetzner {
		t.Fatalf("Resolve() without the secret gave publisher %v", rec)
	}
	perr := rec.PublishTXT(context.Background(), "_mta-sts.example.com", "v=STSv1; id=1")
	if !errors.Is(perr, rollout.ErrPublish) || !errors.Is(perr, ErrMissingSecret) || !strings.Contains(perr.Error(), "TLSRPT_SECRET_DNS_PROD") {
		t.Errorf("PublishTXT() = %v, want the missing secret as the cause", perr)
	}
	st, ok := Check(p, envOf(nil))
	if !ok || st.Present || st.Variable != "TLSRPT_SECRET_DNS_PROD" || st.Problem != "" {
		t.Errorf("Check() = %+v, %v", st, ok)
	}
	st, _ = Check(p, envOf(map[string]string{"TLSRPT_SECRET_DNS_PROD": "x"}))
	if !st.Present || st.Problem != "" {
		t.Errorf("Check(set) = %+v", st)
	}
	// _FILE naming a file that is not there, both set, an empty file.
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, kv := range []map[string]string{
		{"TLSRPT_SECRET_DNS_PROD_FILE": filepath.Join(t.TempDir(), "absent")},
		{"TLSRPT_SECRET_DNS_PROD_FILE": empty},
		{"TLSRPT_SECRET_DNS_PROD_FILE": empty, "TLSRPT_SECRET_DNS_PROD": "x"},
	} {
		if _, _, err := Resolve(p, envOf(kv)); err == nil || !strings.Contains(err.Error(), "TLSRPT_SECRET_DNS_PROD") {
			t.Errorf("Resolve(%v) = %v, want an error naming the variable", kv, err)
		}
	}
	// The old secret variables still serve the imported credential names.
	_, rec, err = Resolve(db.Publishing{Domain: "*", Policy: "hosted", Record: "cloudflare", Credential: "CLOUDFLARE"}, envOf(map[string]string{"TLSRPT_CLOUDFLARE_TOKEN": "old"}))
	if cf, ok := rec.(*rollout.Cloudflare); err != nil || !ok || cf.Token != "old" {
		t.Errorf("Resolve(CLOUDFLARE with TLSRPT_CLOUDFLARE_TOKEN) = %#v, %v", rec, err)
	}
}

// TestPublishingResolvedPushes pushes through the resolved RFC 2136
// publisher to a server that checks the TSIG signature: the secret read by
// name is the one that signs.
func TestPublishingResolvedPushes(t *testing.T) {
	dns := dnstest.Start(t, "example.", "tlsrpt-key.", "c2VjcmV0c2VjcmV0c2VjcmV0")
	p := db.Publishing{Domain: "example", Policy: "hosted", Record: "rfc2136", Server: dns.Addr, Zone: "example", TSIGKey: "tlsrpt-key", Credential: "BIND"}
	_, rec, err := Resolve(p, envOf(map[string]string{"TLSRPT_SECRET_BIND": "c2VjcmV0c2VjcmV0c2VjcmV0"}))
	if err != nil {
		t.Fatal(err)
	}
	if err := rec.PublishTXT(context.Background(), "_mta-sts.example", "v=STSv1; id=20261201T000000Z"); err != nil {
		t.Fatalf("PublishTXT() = %v", err)
	}
	if got := dns.TXT("_mta-sts.example."); len(got) != 1 || got[0] != "v=STSv1; id=20261201T000000Z" {
		t.Errorf("TXT after the push = %q", got)
	}
	_, rec, _ = Resolve(p, envOf(map[string]string{"TLSRPT_SECRET_BIND": "d3Jvbmd3cm9uZ3dyb25n"}))
	if err := rec.PublishTXT(context.Background(), "_mta-sts.example", "v=STSv1; id=2"); !errors.Is(err, rollout.ErrPublish) {
		t.Errorf("PublishTXT() with the wrong secret = %v, want a refusal", err)
	}
}

func TestPublishingFromLegacy(t *testing.T) {
	p, vars, err := FromLegacy(envOf(nil))
	if err != nil || len(vars) != 0 {
		t.Fatalf("FromLegacy(empty) = %+v, %v, %v", p, vars, err)
	}
	p, vars, err = FromLegacy(envOf(map[string]string{"TLSRPT_HOST_POLICY": "1", "TLSRPT_DNS_UPDATE_SERVER": "127.0.0.1:53",
		"TLSRPT_DNS_UPDATE_ZONE": "example.com", "TLSRPT_TSIG_KEY": "k", "TLSRPT_TSIG_SECRET": "never stored"}))
	if err != nil || len(vars) != 4 || p.Policy != "hosted" || p.Record != "rfc2136" || p.Credential != "TSIG" || p.Zone != "example.com" {
		t.Errorf("FromLegacy(rfc2136) = %+v, %v, %v", p, vars, err)
	}
	p, _, err = FromLegacy(envOf(map[string]string{"TLSRPT_DNS_PROVIDER": "cloudflare", "TLSRPT_DNS_PROVIDER_ZONE": "example.com", "TLSRPT_CLOUDFLARE_ZONE_ID": "0123456789abcdef0123456789abcdef"}))
	if err != nil || p.Policy != "download" || p.Record != "cloudflare" || p.Credential != "CLOUDFLARE" || p.Zone != "0123456789abcdef0123456789abcdef" {
		t.Errorf("FromLegacy(cloudflare) = %+v, %v", p, err)
	}
	for _, tc := range []struct {
		kv   map[string]string
		name string
	}{
		{map[string]string{"TLSRPT_HOST_POLICY": "maybe"}, "TLSRPT_HOST_POLICY"},
		{map[string]string{"TLSRPT_DNS_PROVIDER": "route53"}, "TLSRPT_DNS_PROVIDER"},
		{map[string]string{"TLSRPT_DNS_PROVIDER": "hetzner", "TLSRPT_DNS_UPDATE_SERVER": "x:53"}, "TLSRPT_DNS_UPDATE_SERVER"},
		{map[string]string{"TLSRPT_DNS_UPDATE_SERVER": "nohostport"}, "TLSRPT_DNS_UPDATE_SERVER"},
	} {
		if _, _, err := FromLegacy(envOf(tc.kv)); err == nil || !strings.Contains(err.Error(), tc.name) {
			t.Errorf("FromLegacy(%v) = %v, want an error naming %s", tc.kv, err, tc.name)
		}
	}
}

func TestPublishingImportLegacyOnce(t *testing.T) {
	d := dbtest.New(t)
	ctx := context.Background()
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	// Without anything stored a domain is published by hand, from a
	// download: nothing changes DNS or serves on its own.
	if host, rec, err := ForDomain(ctx, d, "example.com", envOf(nil)); host || rec != nil || err != nil {
		t.Fatalf("ForDomain(nothing stored) = %v, %v, %v", host, rec, err)
	}
	if ok, err := ImportLegacy(ctx, d, envOf(nil), "serve", log); ok || err != nil || logs.Len() != 0 {
		t.Fatalf("ImportLegacy(no variables) = %v, %v, log %q", ok, err, logs.String())
	}
	if got, _ := d.Publishing(ctx, db.DefaultPublishing); got.Source != db.PublishingBuiltIn {
		t.Fatalf("after ImportLegacy(no variables) the default is %+v", got)
	}
	old := envOf(map[string]string{"TLSRPT_HOST_POLICY": "1", "TLSRPT_DNS_PROVIDER": "hetzner"})
	ok, err := ImportLegacy(ctx, d, old, "serve", log)
	if !ok || err != nil || !strings.Contains(logs.String(), "Imported the publishing variables") {
		t.Fatalf("ImportLegacy() = %v, %v, log %q", ok, err, logs.String())
	}
	got, _ := d.Publishing(ctx, "example.com")
	if got.Source != db.PublishingFromDefault || got.Policy != "hosted" || got.Record != "hetzner" || got.Credential != "HETZNER" {
		t.Errorf("after the import Publishing() = %+v", got)
	}
	host, rec, err := ForDomain(ctx, d, "example.com", envOf(map[string]string{"TLSRPT_HETZNER_TOKEN": "tok"}))
	if h, ok := rec.(*rollout.Hetzner); !host || err != nil || !ok || h.Token != "tok" {
		t.Errorf("ForDomain() after the import = %v, %#v, %v", host, rec, err)
	}
	// A second process, with other variables: nothing imported, one
	// warning naming the setting that wins.
	logs.Reset()
	other := envOf(map[string]string{"TLSRPT_DNS_UPDATE_SERVER": "127.0.0.1:53"})
	if ok, err := ImportLegacy(ctx, d, other, "cli", log); ok || err != nil {
		t.Fatalf("ImportLegacy() again = %v, %v", ok, err)
	}
	if s := logs.String(); strings.Count(s, "level=WARN") != 1 || !strings.Contains(s, "tlsrpt publishing --default") || !strings.Contains(s, "TLSRPT_DNS_UPDATE_SERVER") {
		t.Errorf("log of the second start = %q", s)
	}
	if got, _ := d.Publishing(ctx, "example.com"); got.Record != "hetzner" {
		t.Errorf("the second start changed the default: %+v", got)
	}
	// Invalid old variables do not stop a start once the default is stored.
	if _, err := ImportLegacy(ctx, d, envOf(map[string]string{"TLSRPT_DNS_PROVIDER": "route53"}), "serve", log); err != nil {
		t.Errorf("ImportLegacy(ignored, invalid) = %v", err)
	}
	entries, err := d.AuditLog(ctx, "", 10)
	n := 0
	for _, e := range entries {
		if e.Action == ImportAction {
			n++
		}
	}
	if err != nil || n != 1 {
		t.Errorf("audit log has %d import entries (%v), want 1", n, err)
	}
}

package db_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/db/dbtest"
	"github.com/tlsrpt/tlsrpt/internal/testclock"
	"github.com/tlsrpt/tlsrpt/rollout"
)

var publishingNow = testclock.Base(time.Date(2026, 12, 1, 9, 30, 0, 0, time.UTC))

func TestPublishingPrecedence(t *testing.T) {
	d := dbtest.New(t)
	d.Now = func() time.Time { return publishingNow }
	ctx := context.Background()
	got, err := d.Publishing(ctx, "example.com")
	if err != nil || got != db.BuiltInPublishing() || got.Policy != rollout.PolicyDownload || got.Record != rollout.RecordManual {
		t.Fatalf("Publishing() with nothing stored = %+v, %v; want the built-in download/manual", got, err)
	}
	def, err := d.SetPublishing(ctx, db.Publishing{Domain: db.DefaultPublishing, Policy: "Hosted", Record: "hetzner", Zone: "Example.COM.", Credential: "hz_token"}, "alice")
	if err != nil {
		t.Fatalf("SetPublishing(default) = %v", err)
	}
	if def.Credential != "HZ_TOKEN" || def.Zone != "Example.COM" || def.Source != db.PublishingFromDefault || !def.UpdatedAt.Equal(publishingNow) {
		t.Errorf("SetPublishing(default) = %+v", def)
	}
	got, err = d.Publishing(ctx, "Example.com.")
	if err != nil || got.Source != db.PublishingFromDefault || got.Record != rollout.RecordHetzner || got.Policy != rollout.PolicyHosted ||
		got.UpdatedBy != "alice" || !got.UpdatedAt.Equal(publishingNow) {
		t.Fatalf("Publishing() under the default = %+v, %v", got, err)
	}
	own, err := d.SetPublishing(ctx, db.Publishing{Domain: "Example.COM", Policy: "download", Record: "rfc2136",
		Server: "ns1.example.net:53", TSIGKey: "tlsrpt-key.", TSIGAlgorithm: "HMAC-SHA512", Credential: "tsig"}, "cli")
	if err != nil {
		t.Fatalf("SetPublishing(domain) = %v", err)
	}
	got, err = d.Publishing(ctx, "example.com")
	if err != nil || got.Source != db.PublishingFromDomain || got.Domain != "example.com" || got.Server != "ns1.example.net:53" ||
		got.TSIGKey != "tlsrpt-key" || got.TSIGAlgorithm != "hmac-sha512" || got.Credential != "TSIG" || got != own {
		t.Fatalf("Publishing(domain) = %+v, %v; stored %+v", got, err, own)
	}
	if other, _ := d.Publishing(ctx, "other.example"); other.Source != db.PublishingFromDefault {
		t.Errorf("Publishing(other) = %+v, want the default", other)
	}
	if def, _ := d.Publishing(ctx, db.DefaultPublishing); def.Source != db.PublishingFromDefault || def.Record != rollout.RecordHetzner {
		t.Errorf("Publishing(*) = %+v, want the default row", def)
	}
	list, err := d.PublishingList(ctx)
	if err != nil || len(list) != 2 || list[0].Domain != db.DefaultPublishing || list[1].Domain != "example.com" {
		t.Fatalf("PublishingList() = %+v, %v", list, err)
	}
	// Switching the method drops the fields the new one does not use.
	sw, err := d.SetPublishing(ctx, db.Publishing{Domain: "example.com", Policy: "hosted", Record: "manual", Server: "x:53", Zone: "z", Credential: "X"}, "cli")
	if err != nil || sw.Server != "" || sw.Zone != "" || sw.Credential != "" || sw.TSIGKey != "" {
		t.Errorf("SetPublishing(manual with leftovers) = %+v, %v", sw, err)
	}
	if ok, err := d.DeletePublishing(ctx, "example.com"); !ok || err != nil {
		t.Errorf("DeletePublishing() = %v, %v", ok, err)
	}
	if got, _ := d.Publishing(ctx, "example.com"); got.Source != db.PublishingFromDefault {
		t.Errorf("Publishing() after the delete = %+v, want the default", got)
	}
}

func TestPublishingValidation(t *testing.T) {
	d := dbtest.New(t)
	ctx := context.Background()
	rfc := func(mod func(*db.Publishing)) db.Publishing {
		p := db.Publishing{Domain: "example.com", Policy: "hosted", Record: "rfc2136", Server: "192.0.2.1:53", TSIGKey: "k", Credential: "TSIG"}
		mod(&p)
		return p
	}
	for _, tc := range []struct {
		p     db.Publishing
		field string
	}{
		{rfc(func(p *db.Publishing) { p.Policy = "served" }), "policy"},
		{rfc(func(p *db.Publishing) { p.Record = "route53" }), "record"},
		{rfc(func(p *db.Publishing) { p.Server = "" }), "server"},
		{rfc(func(p *db.Publishing) { p.Server = "ns1.example.net" }), "server"},
		{rfc(func(p *db.Publishing) { p.Server = "ns1.example.net:99999" }), "server"},
		{rfc(func(p *db.Publishing) { p.Server = ":53" }), "server"},
		{rfc(func(p *db.Publishing) { p.Zone = "exa mple.com" }), "zone"},
		{rfc(func(p *db.Publishing) { p.TSIGKey = "key/1" }), "tsig_key"},
		{rfc(func(p *db.Publishing) { p.TSIGAlgorithm = "hmac-md5" }), "tsig_algorithm"},
		{rfc(func(p *db.Publishing) { p.TSIGKey, p.TSIGAlgorithm, p.Credential = "", "hmac-sha256", "" }), "tsig_algorithm"},
		{rfc(func(p *db.Publishing) { p.Credential = "" }), "credential"},
		{rfc(func(p *db.Publishing) { p.TSIGKey = "" }), "tsig_key"},
		{rfc(func(p *db.Publishing) { p.Credential = "TLS-RPT" }), "credential"},
		{rfc(func(p *db.Publishing) { p.Credential = strings.Repeat("A", 65) }), "credential"},
		{rfc(func(p *db.Publishing) { p.Credential = "$(reboot)" }), "credential"},
		{db.Publishing{Domain: "example.com", Policy: "hosted", Record: "cloudflare"}, "credential"},
		{db.Publishing{Domain: "not a domain", Policy: "hosted", Record: "manual"}, "domain"},
	} {
		_, err := d.SetPublishing(ctx, tc.p, "test")
		var pe *db.PublishingError
		if !errors.As(err, &pe) || pe.Field != tc.field || !errors.Is(err, db.ErrBadPublishing) {
			t.Errorf("SetPublishing(%+v) = %v, want a PublishingError on %s", tc.p, err, tc.field)
		}
	}
	// Unsigned updates (no key, no credential) are a valid setting.
	if _, err := d.SetPublishing(ctx, rfc(func(p *db.Publishing) { p.TSIGKey, p.Credential = "", "" }), "test"); err != nil {
		t.Errorf("SetPublishing(unsigned rfc2136) = %v", err)
	}
	if list, _ := d.PublishingList(ctx); len(list) != 1 {
		t.Errorf("PublishingList() = %+v, want only the valid row", list)
	}
	// The table's own checks hold even for a writer that skips Validate.
	for _, q := range []string{
		`INSERT INTO domain_publishing (domain, policy, record, updated_at) VALUES ('a.example', 'served', 'manual', now())`,
		`INSERT INTO domain_publishing (domain, policy, record, updated_at) VALUES ('a.example', 'hosted', 'route53', now())`,
		`INSERT INTO domain_publishing (domain, policy, record, updated_at) VALUES ('a.example', 'hosted', 'rfc2136', now())`,
		`INSERT INTO domain_publishing (domain, policy, record, credential, updated_at) VALUES ('a.example', 'hosted', 'cloudflare', 'A-B', now())`,
		`INSERT INTO domain_publishing (domain, policy, record, updated_at) VALUES ('a.example', 'hosted', 'hetzner', now())`,
		`INSERT INTO domain_publishing (domain, policy, record, server, updated_at) VALUES ('a.example', 'hosted', 'manual', 'x:53', now())`,
		`INSERT INTO domain_publishing (domain, policy, record, server, tsig_key, updated_at) VALUES ('a.example', 'hosted', 'rfc2136', 'x:53', 'k', now())`,
		`INSERT INTO domain_publishing (domain, policy, record, updated_at) VALUES ('A Example', 'hosted', 'manual', now())`,
	} {
		if _, err := d.Pool.Exec(ctx, q); err == nil || !strings.Contains(err.Error(), "check constraint") {
			t.Errorf("%s = %v, want a check constraint violation", q, err)
		}
	}
}

func TestPublishingImportOnce(t *testing.T) {
	d := dbtest.New(t)
	d.Now = func() time.Time { return publishingNow }
	ctx := context.Background()
	p := db.Publishing{Domain: db.DefaultPublishing, Policy: "hosted", Record: "rfc2136", Server: "127.0.0.1:5353", TSIGKey: "k", Credential: "TSIG"}
	ok, err := d.ImportDefaultPublishing(ctx, p, db.AuditEntry{Actor: "serve", Action: "settings.publishing.imported", Detail: p.AuditDetail()})
	if err != nil || !ok {
		t.Fatalf("ImportDefaultPublishing() = %v, %v", ok, err)
	}
	p.Server = "127.0.0.1:9999"
	ok, err = d.ImportDefaultPublishing(ctx, p, db.AuditEntry{Actor: "cli", Action: "settings.publishing.imported"})
	if err != nil || ok {
		t.Fatalf("ImportDefaultPublishing() again = %v, %v; want nothing imported", ok, err)
	}
	got, _ := d.Publishing(ctx, "example.com")
	if got.Server != "127.0.0.1:5353" || got.Source != db.PublishingFromDefault || got.UpdatedBy != "serve" {
		t.Errorf("Publishing() after two imports = %+v, want the first", got)
	}
	log, err := d.AuditLog(ctx, "", 10)
	if err != nil || len(log) != 1 || log[0].Action != "settings.publishing.imported" || log[0].Actor != "serve" || !log[0].At.Equal(publishingNow) {
		t.Fatalf("AuditLog() = %+v, %v; want one import entry", log, err)
	}
	var detail map[string]any
	if err := json.Unmarshal(log[0].Detail.(json.RawMessage), &detail); err != nil || detail["server"] != "127.0.0.1:5353" || detail["scope"] != "default" {
		t.Errorf("audit detail = %v, %v", detail, err)
	}
}

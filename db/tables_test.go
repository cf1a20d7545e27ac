package db_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/db/dbtest"
	"github.com/tlsrpt/tlsrpt/reports"
)

func TestQuarantine(t *testing.T) {
	d := dbtest.New(t)
	ctx := context.Background()
	raw := []byte("From: x@example.org\r\n\r\nno report\x00here")
	id, err := d.Quarantine(ctx, raw, "no report", reports.SourceIMAP, "INBOX/7")
	if err != nil {
		t.Fatalf("Quarantine() = %v", err)
	}
	id2, err := d.Quarantine(ctx, raw, "no report (again)", reports.SourceIMAP, "INBOX/8")
	if err != nil || id2 != id {
		t.Fatalf("Quarantine() of the same bytes = %d, %v; want %d", id2, err, id)
	}
	other, err := d.Quarantine(ctx, []byte("other"), "bad \x00 reason", reports.SourceHTTPS, "192.0.2.1")
	if err != nil || other == id {
		t.Fatalf("Quarantine(other) = %d, %v", other, err)
	}
	list, err := d.QuarantineList(ctx, db.QuarantineFilter{})
	if err != nil || len(list) != 2 {
		t.Fatalf("QuarantineList() = %+v, %v", list, err)
	}
	e, err := d.QuarantineGet(ctx, id)
	if err != nil || string(e.Raw) != string(raw) || e.Reason != "no report (again)" || e.SourceRef != "INBOX/7" || e.Size != len(raw) {
		t.Fatalf("QuarantineGet() = %+v, %v", e, err)
	}
	if err := d.QuarantineResolved(ctx, id, time.Now()); err != nil {
		t.Fatalf("QuarantineResolved() = %v", err)
	}
	if list, _ := d.QuarantineList(ctx, db.QuarantineFilter{}); len(list) != 1 || list[0].ID != other {
		t.Errorf("QuarantineList() after resolving = %+v", list)
	}
	if list, _ := d.QuarantineList(ctx, db.QuarantineFilter{IncludeResolved: true}); len(list) != 2 {
		t.Errorf("QuarantineList(IncludeResolved) = %d entries, want 2", len(list))
	}
	if err := d.QuarantineDelete(ctx, other); err != nil {
		t.Fatalf("QuarantineDelete() = %v", err)
	}
	if err := d.QuarantineDelete(ctx, other); !errors.Is(err, db.ErrNotFound) {
		t.Errorf("QuarantineDelete() twice = %v, want ErrNotFound", err)
	}
	if _, err := d.QuarantineGet(ctx, other); !errors.Is(err, db.ErrNotFound) {
		t.Errorf("QuarantineGet(deleted) = %v, want ErrNotFound", err)
	}
	if err := d.QuarantineResolved(ctx, other, time.Now()); !errors.Is(err, db.ErrNotFound) {
		t.Errorf("QuarantineResolved(deleted) = %v, want ErrNotFound", err)
	}
}

func TestDomains(t *testing.T) {
	d := dbtest.New(t)
	ctx := context.Background()
	for _, tt := range []struct{ in, want string }{
		{"Example.COM.", "example.com"},
		{" bücher.example ", "xn--bcher-kva.example"},
		{"XN--BCHER-KVA.example", "xn--bcher-kva.example"},
	} {
		if got, err := db.NormalizeDomain(tt.in); err != nil || got != tt.want {
			t.Errorf("NormalizeDomain(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", ".", "localhost", "a..b", "-bad-.example\x00"} {
		if got, err := db.NormalizeDomain(bad); err == nil {
			t.Errorf("NormalizeDomain(%q) = %q, want an error", bad, got)
		}
	}
	if n, added, err := d.AddDomain(ctx, "Example.com."); err != nil || !added || n != "example.com" {
		t.Fatalf("AddDomain() = %q, %v, %v", n, added, err)
	}
	if _, added, err := d.AddDomain(ctx, "example.com"); err != nil || added {
		t.Fatalf("AddDomain() twice = %v, %v", added, err)
	}
	if _, _, err := d.AddDomain(ctx, "bücher.example"); err != nil {
		t.Fatal(err)
	}
	ds, err := d.Domains(ctx)
	if err != nil || len(ds) != 2 || ds[0].Name != "example.com" || ds[1].Name != "xn--bcher-kva.example" || ds[0].AddedAt.IsZero() {
		t.Fatalf("Domains() = %+v, %v", ds, err)
	}
	if ok, err := d.HasDomain(ctx, "EXAMPLE.COM"); err != nil || !ok {
		t.Errorf("HasDomain() = %v, %v", ok, err)
	}
	if _, removed, err := d.RemoveDomain(ctx, "example.com."); err != nil || !removed {
		t.Fatalf("RemoveDomain() = %v, %v", removed, err)
	}
	if _, removed, err := d.RemoveDomain(ctx, "example.com"); err != nil || removed {
		t.Fatalf("RemoveDomain() twice = %v, %v", removed, err)
	}
}

func TestIngestState(t *testing.T) {
	d := dbtest.New(t)
	ctx := context.Background()
	if v, l, err := d.IngestState(ctx, "imaps://rua@mail.example.com/INBOX"); err != nil || v != 0 || l != 0 {
		t.Fatalf("IngestState(unknown) = %d, %d, %v", v, l, err)
	}
	// UIDs use the whole uint32 range (RFC 9051 §2.3.1.1).
	if err := d.SetIngestState(ctx, "k", 4000000000, 17); err != nil {
		t.Fatal(err)
	}
	if err := d.SetIngestState(ctx, "k", 4000000000, 4294967295); err != nil {
		t.Fatal(err)
	}
	if v, l, err := d.IngestState(ctx, "k"); err != nil || v != 4000000000 || l != 4294967295 {
		t.Fatalf("IngestState() = %d, %d, %v", v, l, err)
	}
}

func TestAudit(t *testing.T) {
	d := dbtest.New(t)
	ctx := context.Background()
	at := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	if _, err := d.AddAudit(ctx, db.AuditEntry{At: at, Actor: "admin", Action: "promote", Domain: "example.com", Detail: map[string]any{"override": true}}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.AddAudit(ctx, db.AuditEntry{Actor: "cli", Action: "domain.add", Domain: "other.example"}); err != nil {
		t.Fatal(err)
	}
	log, err := d.AuditLog(ctx, "example.com", 10)
	if err != nil || len(log) != 1 || !log[0].At.Equal(at) || log[0].Actor != "admin" {
		t.Fatalf("AuditLog(example.com) = %+v, %v", log, err)
	}
	if got := string(log[0].Detail.(json.RawMessage)); got != `{"override": true}` {
		t.Errorf("detail = %s", got)
	}
	if all, err := d.AuditLog(ctx, "", 10); err != nil || len(all) != 2 || all[0].Action != "domain.add" {
		t.Errorf("AuditLog(all) = %+v, %v", all, err)
	}
	if _, err := d.AddAudit(ctx, db.AuditEntry{Action: "x", Detail: func() {}}); err == nil {
		t.Error("AddAudit(unencodable detail) = nil error")
	}
}

package db_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/db/dbtest"
	"github.com/tlsrpt/tlsrpt/rollout"
)

func TestProbes(t *testing.T) {
	d := dbtest.New(t)
	ctx := context.Background()
	if _, _, err := d.AddDomain(ctx, "example.com"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.LatestProbe(ctx, "example.com"); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("LatestProbe() without probes = %v, want ErrNotFound", err)
	}
	at := time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC)
	res := func(days int) rollout.CheckResult {
		return rollout.CheckResult{Domain: "example.com", Problems: []rollout.Problem{}, MX: []rollout.MXCheck{{Host: "mx1.example.com",
			Addresses: []rollout.SMTPProbe{{Address: "192.0.2.1:25", Reachable: true, STARTTLS: true, Verified: true,
				Certificate: &rollout.CertificateFacts{Subject: "CN=mx1.example.com", DaysLeft: days}}}}}}
	}
	old := at.AddDate(-2, 0, 0)
	if _, err := d.SaveProbe(ctx, db.Probe{Domain: "example.com", ProbedAt: old, Cause: db.ProbeDaily, Result: res(80)}); err != nil {
		t.Fatal(err)
	}
	var last int64
	for i := range 3 {
		id, err := d.SaveProbe(ctx, db.Probe{Domain: "example.com", ProbedAt: at.AddDate(0, 0, i), Cause: db.ProbeDaily, Result: res(20 - i),
			Alerts: map[bool][]string{true: {"the certificate of MX mx1.example.com at 192.0.2.1:25 expires in 13 days"}}[i == 2]})
		if err != nil {
			t.Fatalf("SaveProbe() = %v", err)
		}
		last = id
	}
	if err := d.MarkProbeNotified(ctx, last, at.AddDate(0, 0, 2), ""); err != nil {
		t.Fatalf("MarkProbeNotified() = %v", err)
	}
	p, err := d.LatestProbe(ctx, "example.com")
	if err != nil || p.ID != last || p.Cause != db.ProbeDaily || len(p.Alerts) != 1 || p.NotifiedAt == nil ||
		len(p.Result.MX) != 1 || p.Result.MX[0].Addresses[0].Certificate.DaysLeft != 18 {
		t.Fatalf("LatestProbe() = %+v, %v", p, err)
	}
	ps, err := d.Probes(ctx, "example.com", time.Time{}, 0)
	if err != nil || len(ps) != 3 || !ps[2].ProbedAt.Equal(at) {
		t.Errorf("Probes() = %d probes, %v; want the 3 recent ones (the 2-year-old one deleted)", len(ps), err)
	}
	if err := d.MarkProbeNotified(ctx, last+100, at, ""); !errors.Is(err, db.ErrNotFound) {
		t.Errorf("MarkProbeNotified(unknown) = %v, want ErrNotFound", err)
	}
	if _, _, err := d.RemoveDomain(ctx, "example.com"); err != nil {
		t.Fatal(err)
	}
	if ps, err := d.Probes(ctx, "example.com", time.Time{}, 0); err != nil || len(ps) != 0 {
		t.Errorf("Probes() after removing the domain = %d, %v; want none", len(ps), err)
	}
}

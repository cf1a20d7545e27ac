package db_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/db/dbtest"
	"github.com/tlsrpt/tlsrpt/reports"
	"github.com/tlsrpt/tlsrpt/rollout"
)

// storeBadgeReport stores a report with its own id, so that two reports of
// one organisation, domain and day hit the same rollup row (the store's
// ON CONFLICT DO UPDATE).
func storeBadgeReport(t *testing.T, d *db.DB, id, org, domain string, day time.Time) {
	t.Helper()
	rep := &reports.Report{OrganizationName: org, ReportID: id,
		DateRange: reports.DateRange{Start: day, End: day.Add(24*time.Hour - time.Second)},
		Policies: []reports.PolicyResult{{
			Policy:  reports.Policy{Type: "sts", Domain: domain, Strings: []string{"version: STSv1", "mode: testing", "mx: mx.example.com"}},
			Summary: reports.Summary{TotalSuccessfulSessionCount: 10},
		}}}
	js, _ := json.Marshal(rep)
	if _, dup, err := d.StoreReport(context.Background(), reports.Received{Report: rep, JSON: js, Source: reports.SourceFile, ReceivedAt: day.Add(26 * time.Hour)}); err != nil || dup {
		t.Fatalf("StoreReport(%s) = duplicate %v, %v", id, dup, err)
	}
}

// badgeOf reads domain's overview row as of today.
func badgeOf(t *testing.T, d *db.DB, domain string, today time.Time) db.OverviewRow {
	t.Helper()
	r, err := d.OverviewDomain(context.Background(), domain, today)
	if err != nil {
		t.Fatalf("OverviewDomain(%s) = %v", domain, err)
	}
	return r
}

// refresh stores badge b for domain through RefreshVerdict.
func refresh(t *testing.T, d *db.DB, domain string, b db.VerdictBadge) {
	t.Helper()
	done, err := d.RefreshVerdict(context.Background(), domain, func(context.Context) (db.VerdictBadge, error) { return b, nil })
	if err != nil || !done {
		t.Fatalf("RefreshVerdict(%s) = %v, %v", domain, done, err)
	}
}

// TestVerdictBadgeInvalidation: every input of a verdict marks the stored
// badge stale in the transaction that changes it, and a refresh clears it.
func TestVerdictBadgeInvalidation(t *testing.T) {
	d := dbtest.New(t)
	ctx := context.Background()
	today := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	day := today.AddDate(0, 0, -1)
	if _, _, err := d.AddDomain(ctx, "example.com"); err != nil {
		t.Fatal(err)
	}
	ready := db.VerdictBadge{Kind: db.BadgeReady, Label: "ready", Mode: "testing", ComputedAt: today.Add(time.Hour), ComputedDay: today}

	// Just added: no badge, stale.
	if r := badgeOf(t, d, "example.com", today); r.Badge != nil || !r.Stale {
		t.Fatalf("new domain: badge %+v, stale %v; want none, stale", r.Badge, r.Stale)
	}
	if names, err := d.StaleVerdicts(ctx, today, 10); err != nil || len(names) != 1 || names[0] != "example.com" {
		t.Fatalf("StaleVerdicts = %v, %v", names, err)
	}
	refresh(t, d, "example.com", ready)
	r := badgeOf(t, d, "example.com", today)
	if r.Stale || r.Badge == nil || r.Badge.Kind != db.BadgeReady || r.Badge.Mode != "testing" || !r.Badge.ComputedDay.Equal(today) {
		t.Fatalf("after refresh: %+v, stale %v", r.Badge, r.Stale)
	}
	if names, err := d.StaleVerdicts(ctx, today, 10); err != nil || len(names) != 0 {
		t.Fatalf("StaleVerdicts after refresh = %v, %v", names, err)
	}

	// A new UTC day: the windows moved.
	if r := badgeOf(t, d, "example.com", today.AddDate(0, 0, 1)); !r.Stale {
		t.Errorf("badge of yesterday is not stale")
	}

	steps := []struct {
		name   string
		change func()
	}{
		{"report (insert into the rollup)", func() { storeBadgeReport(t, d, "r1", "a.example", "example.com", day) }},
		{"report (ON CONFLICT DO UPDATE of the rollup)", func() { storeBadgeReport(t, d, "r2", "a.example", "example.com", day) }},
		{"thresholds", func() {
			th := rollout.DefaultThresholds()
			th.MinReporters = 3
			if err := d.SetDomainThresholds(ctx, "example.com", th); err != nil {
				t.Fatal(err)
			}
		}},
		{"thresholds reset", func() {
			if err := d.ResetDomainThresholds(ctx, "example.com"); err != nil {
				t.Fatal(err)
			}
		}},
		{"policy version", func() {
			v := db.PolicyVersion{Domain: "example.com", Kind: rollout.KindPromote, ID: "20261130T120000Z",
				Policy:       rollout.Policy{Mode: rollout.ModeEnforce, MX: []string{"mx.example.com"}, MaxAge: 604800},
				PolicyMethod: "hosted", RecordMethod: "manual", CreatedBy: "test"}
			if _, err := d.AddPolicyVersion(ctx, v); err != nil {
				t.Fatal(err)
			}
		}},
		{"policy published", func() {
			v, err := d.LatestPolicyVersion(ctx, "example.com")
			if err != nil {
				t.Fatal(err)
			}
			if err := d.MarkPolicyPublished(ctx, v.Seq, today.Add(2*time.Hour)); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, s := range steps {
		s.change()
		if r := badgeOf(t, d, "example.com", today); !r.Stale || r.Badge == nil || r.Badge.Kind != db.BadgeReady {
			t.Errorf("after %s: badge %+v, stale %v; want the last badge, stale", s.name, r.Badge, r.Stale)
		}
		refresh(t, d, "example.com", ready)
		if r := badgeOf(t, d, "example.com", today); r.Stale {
			t.Errorf("after %s and a refresh: still stale", s.name)
		}
	}

	// The verification poll's bookkeeping is no input of the verdict.
	v, err := d.LatestPolicyVersion(ctx, "example.com")
	if err != nil {
		t.Fatal(err)
	}
	if err := d.SetVersionSteps(ctx, v.Seq, nil, today.Add(3*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if r := badgeOf(t, d, "example.com", today); r.Stale {
		t.Errorf("SetVersionSteps made the badge stale")
	}

	// Reports for a domain nobody listed leave nothing behind; removing a
	// domain removes its badge.
	storeBadgeReport(t, d, "r3", "a.example", "unlisted.example", day)
	var n int
	if err := d.Pool.QueryRow(ctx, `SELECT count(*) FROM verdict_invalidations`).Scan(&n); err != nil || n != 0 {
		t.Errorf("invalidations after an unlisted report = %d, %v; want 0", n, err)
	}
	if _, _, err := d.RemoveDomain(ctx, "example.com"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.OverviewDomain(ctx, "example.com", today); !errors.Is(err, db.ErrNotFound) {
		t.Errorf("OverviewDomain of a removed domain = %v, want ErrNotFound", err)
	}
	if err := d.Pool.QueryRow(ctx, `SELECT count(*) FROM domain_verdicts`).Scan(&n); err != nil || n != 0 {
		t.Errorf("badges after removal = %d, %v; want 0", n, err)
	}
	// A refresh of a domain no longer listed stores nothing.
	refresh(t, d, "example.com", ready)
	if err := d.Pool.QueryRow(ctx, `SELECT count(*) FROM domain_verdicts`).Scan(&n); err != nil || n != 0 {
		t.Errorf("badges after refreshing a removed domain = %d, %v; want 0", n, err)
	}
}

// TestVerdictBadgeRaces: a report committed while the badge is computed
// leaves it stale (never a fresh badge that misses the report), an error
// keeps it stale, and two refreshers never compute one domain at once.
func TestVerdictBadgeRaces(t *testing.T) {
	d := dbtest.New(t)
	ctx := context.Background()
	today := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	if _, _, err := d.AddDomain(ctx, "example.com"); err != nil {
		t.Fatal(err)
	}
	b := db.VerdictBadge{Kind: db.BadgeBlocked, Label: "blocked", Reason: "too few days", ComputedAt: today, ComputedDay: today}

	done, err := d.RefreshVerdict(ctx, "example.com", func(context.Context) (db.VerdictBadge, error) {
		storeBadgeReport(t, d, "during", "a.example", "example.com", today.AddDate(0, 0, -1))
		return b, nil
	})
	if err != nil || !done {
		t.Fatal(done, err)
	}
	if r := badgeOf(t, d, "example.com", today); !r.Stale || r.Badge == nil || r.Badge.Reason != "too few days" {
		t.Errorf("report stored during the refresh: badge %+v, stale %v; want stored and stale", r.Badge, r.Stale)
	}
	refresh(t, d, "example.com", b)

	storeBadgeReport(t, d, "before-error", "a.example", "example.com", today.AddDate(0, 0, -2))
	boom := errors.New("boom")
	if _, err := d.RefreshVerdict(ctx, "example.com", func(context.Context) (db.VerdictBadge, error) { return b, boom }); !errors.Is(err, boom) {
		t.Errorf("RefreshVerdict with a failing compute = %v", err)
	}
	if r := badgeOf(t, d, "example.com", today); !r.Stale {
		t.Errorf("a failed refresh cleared the stale mark")
	}

	// Two refreshers: the second finds the lock taken while the first
	// computes.
	inside, release := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	var firstErr error
	go func() {
		defer wg.Done()
		_, firstErr = d.RefreshVerdict(ctx, "example.com", func(context.Context) (db.VerdictBadge, error) {
			close(inside)
			<-release
			return b, nil
		})
	}()
	<-inside
	calls := 0
	done, err = d.RefreshVerdict(ctx, "example.com", func(context.Context) (db.VerdictBadge, error) { calls++; return b, nil })
	close(release)
	wg.Wait()
	if err != nil || done || calls != 0 || firstErr != nil {
		t.Errorf("second refresher: done %v, err %v, computed %d times; first: %v; want skipped", done, err, calls, firstErr)
	}
	if r := badgeOf(t, d, "example.com", today); r.Stale {
		t.Errorf("after the first refresher: still stale")
	}
}

// TestOverviewDomains: paging, the name filter (LIKE's metacharacters are
// literal), the kind filter and the severity order.
func TestOverviewDomains(t *testing.T) {
	d := dbtest.New(t)
	ctx := context.Background()
	today := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	kinds := []string{db.BadgeReady, db.BadgeBlocked, db.BadgeEnforcing, db.BadgeRegression}
	for i := range 12 {
		name := fmt.Sprintf("d%02d.example", i)
		if _, _, err := d.AddDomain(ctx, name); err != nil {
			t.Fatal(err)
		}
		if i == 11 {
			continue // no badge yet: counts as unknown
		}
		refresh(t, d, name, db.VerdictBadge{Kind: kinds[i%4], Label: kinds[i%4], ComputedAt: today, ComputedDay: today})
	}
	names := func(rows []db.OverviewRow) string {
		var s []string
		for _, r := range rows {
			s = append(s, r.Domain)
		}
		return strings.Join(s, " ")
	}
	tests := []struct {
		q     db.OverviewQuery
		want  string
		total int
	}{
		{db.OverviewQuery{Limit: 5}, "d00.example d01.example d02.example d03.example d04.example", 12},
		{db.OverviewQuery{Limit: 5, Offset: 10}, "d10.example d11.example", 12},
		{db.OverviewQuery{Limit: 5, Offset: 20}, "", 12},
		{db.OverviewQuery{Name: "D1"}, "d10.example d11.example", 2},
		// LIKE's metacharacters match themselves, and no domain has one.
		{db.OverviewQuery{Name: "_"}, "", 0},
		{db.OverviewQuery{Name: "d0%"}, "", 0},
		{db.OverviewQuery{Kind: db.BadgeRegression}, "d03.example d07.example", 2},
		{db.OverviewQuery{Kind: db.BadgeUnknown}, "d11.example", 1},
		{db.OverviewQuery{Kind: db.BadgeReady, Name: "d0"}, "d00.example d04.example d08.example", 3},
		{db.OverviewQuery{BySeverity: true, Limit: 6}, "d03.example d07.example d01.example d05.example d09.example d11.example", 12},
	}
	for _, tt := range tests {
		tt.q.Today = today
		rows, total, err := d.OverviewDomains(ctx, tt.q)
		if err != nil || names(rows) != tt.want || total != tt.total {
			t.Errorf("OverviewDomains(%+v) = %q, %d, %v; want %q, %d", tt.q, names(rows), total, err, tt.want, tt.total)
		}
	}
	rows, _, err := d.OverviewDomains(ctx, db.OverviewQuery{Name: "d03", Today: today})
	if err != nil || len(rows) != 1 || rows[0].Stale || rows[0].Badge == nil || rows[0].Badge.Kind != db.BadgeRegression {
		t.Errorf("d03 = %+v, %v", rows, err)
	}
	stale, err := d.StaleVerdicts(ctx, today, 10)
	if err != nil || strings.Join(stale, " ") != "d11.example" {
		t.Errorf("StaleVerdicts = %v, %v; want the one without a badge", stale, err)
	}
}

// TestDomainsSeries reads the trusted daily totals of the domains asked
// for only.
func TestDomainsSeries(t *testing.T) {
	d := dbtest.New(t)
	ctx := context.Background()
	day := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	storeDashReport(t, d, "a.example", "one.example", day, 10, nil, reports.SourceFile)
	storeDashReport(t, d, "a.example", "two.example", day, 20, nil, reports.SourceFile)
	storeDashReport(t, d, "a.example", "three.example", day, 30, nil, reports.SourceFile)
	storeDashReport(t, d, "b.example", "two.example", day, 5, nil, reports.SourceIMAP) // untrusted
	got, err := d.DomainsSeries(ctx, []string{"ONE.example", "two.example", "none.example"}, day, day.AddDate(0, 0, 1))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || len(got["one.example"]) != 1 || got["one.example"][0].Successful != 10 ||
		len(got["two.example"]) != 1 || got["two.example"][0].Successful != 20 || got["two.example"][0].Reports != 1 {
		t.Errorf("DomainsSeries = %+v", got)
	}
	if got, err := d.DomainsSeries(ctx, nil, day, day); err != nil || len(got) != 0 {
		t.Errorf("DomainsSeries(nil) = %v, %v", got, err)
	}
}

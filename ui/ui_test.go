package ui

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"
)

const hostile = `<script>alert(1)</script>"'javascript:alert(2)`

func TestRenderEveryPageEscapes(t *testing.T) {
	r, err := New()
	if err != nil {
		t.Fatalf("New() = %v", err)
	}
	day := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	days := []Day{{Day: day, Sessions: 100, Failures: 1}, {Day: day.AddDate(0, 0, 1), Sessions: 50}}
	lay := Layout{Title: hostile, User: "admin", Role: "admin", CanEdit: true, CSRF: "tok", Notices: []string{hostile}}
	row := BreakdownRow{Label: hostile, Failures: 3, Share: "3%", Link: "javascript:alert(3)"}
	pages := map[string]any{
		"login":    LoginPage{Layout: lay, Error: hostile, Next: hostile},
		"error":    ErrorPage{Layout: lay, Status: 400, Message: hostile},
		"overview": OverviewPage{Layout: lay, Domains: []DomainRow{{Name: hostile, Mode: hostile, Trend: NewSparkline(days, 100, 24), Badge: Badge{Kind: "blocked", Label: "blocked", Reason: hostile}}}, Unlisted: []UnlistedRow{{Name: hostile}}},
		"domain": DomainPage{Layout: lay, Domain: hostile, Mode: "testing", Window: 30, Windows: []int{7, 30}, Chart: NewDailyChart(days, 720, 240),
			Breakdowns: []Breakdown{{Title: "By result type", Label: "Result", Rows: []BreakdownRow{row}}},
			Verdict:    &VerdictView{Badge: Badge{Kind: "blocked", Label: "blocked"}, Blockers: []Finding{{Code: hostile, Message: hostile, Evidence: []string{hostile}}}, Proposal: hostile},
			Check:      &CheckView{Problems: []Problem{{Code: "x", Severity: "error", Message: hostile, Fix: hostile}}}},
		"reports":    ReportsPage{Layout: lay, Filter: ReportFilter{Domain: hostile}, Rows: []ReportRow{{ID: 1, Org: hostile, ReportID: hostile, Unverified: true}}},
		"report":     ReportPage{Layout: lay, Org: hostile, ReportID: hostile, Contact: "javascript:alert(4)", Policies: []PolicyView{{Type: "sts", Domain: hostile, Strings: []string{hostile}, Failures: []FailureView{{ResultType: hostile, AdditionalInfo: "javascript:alert(5)"}}}}, RawJSON: hostile, RawJSONLink: "/reports/1/raw"},
		"quarantine": QuarantinePage{Layout: lay, Rows: []QuarantineRow{{ID: 1, Reason: hostile}}},
		"settings":   SettingsPage{Layout: lay, Domains: []DomainLink{{Domain: hostile}}, Publishing: PublishingForm{Zone: hostile, Secret: &SecretLine{Variable: hostile, Problem: hostile}}},
		"settings_domain": DomainSettingsPage{Layout: lay, DomainSettings: DomainSettings{Domain: hostile, Fields: []SettingField{{Name: "min_days", Label: "Days", Value: hostile}}}, RemoveError: hostile,
			Publishing: PublishingForm{Action: "javascript:alert(6)", Server: hostile, Policies: []Option{{Value: hostile, Label: hostile}}, Errors: map[string]string{"server": hostile}}},
		"users":   UsersPage{Layout: lay, Users: []UserRow{{Name: hostile, Role: "viewer"}, {Name: "me", Role: "admin", Self: true}}, Shown: hostile, ShownFor: hostile, MinPassword: 12},
		"tokens":  TokensPage{Layout: lay, Tokens: []TokenRow{{ID: 1, Name: hostile, Role: "admin", Created: "2026-11-30T12:00:00Z"}}, Created: hostile, CreatedID: 2},
		"account": AccountPage{Layout: lay, Error: hostile, MinPassword: 12},
		"audit":   AuditPage{Layout: lay, Domain: hostile, Rows: []AuditRow{{Actor: hostile, Action: hostile, Domain: hostile, Detail: hostile}}},
		"promotions": PromotionsPage{Layout: lay, DryRun: true, Counts: []KV{{Key: hostile, Value: hostile}},
			Results: []PromotionRow{{Domain: hostile, Outcome: hostile, ID: hostile, MaxAge: 86400, Blockers: hostile, Message: hostile}}},
	}
	for _, name := range pageNames {
		data, ok := pages[name]
		if !ok {
			t.Fatalf("no test data for page %s", name)
		}
		var buf bytes.Buffer
		if err := r.Render(&buf, name, data); err != nil {
			t.Fatalf("Render(%s) = %v", name, err)
		}
		out := buf.String()
		if strings.Contains(out, "<script>alert") {
			t.Errorf("Render(%s) contains an unescaped <script>", name)
		}
		if strings.Contains(out, `href="javascript:`) {
			t.Errorf("Render(%s) contains a javascript: link", name)
		}
		if !strings.Contains(out, "&lt;script&gt;") {
			t.Errorf("Render(%s) does not show the hostile string escaped", name)
		}
	}
	if err := r.Render(&bytes.Buffer{}, "nope", nil); err == nil {
		t.Errorf("Render(nope) = nil, want an error")
	}
}

func TestStaticHashedURL(t *testing.T) {
	r, err := New()
	if err != nil {
		t.Fatal(err)
	}
	u, err := r.StaticURL("style.css")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(u, "/static/style.") || !strings.HasSuffix(u, ".css") || len(u) < len("/static/style..css")+12 {
		t.Errorf("StaticURL(style.css) = %q, want a content-hash name", u)
	}
	a, ok := r.Asset(u)
	if !ok || !strings.HasPrefix(a.ContentType, "text/css") || len(a.Body) == 0 {
		t.Errorf("Asset(%q) = %+v, %v", u, a, ok)
	}
	if _, err := r.StaticURL("missing.css"); err == nil {
		t.Errorf("StaticURL(missing.css) = nil error")
	}
}

func TestDailyChart(t *testing.T) {
	day := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	var days []Day
	for i := range 400 {
		days = append(days, Day{Day: day.AddDate(0, 0, i), Sessions: int64(i * 10), Failures: int64(i % 7)})
	}
	c := NewDailyChart(days, 720, 240)
	if len(c.Bars) != maxChartDays {
		t.Errorf("NewDailyChart(400 days) has %d bars, want %d", len(c.Bars), maxChartDays)
	}
	for _, b := range c.Bars {
		if b.X < c.Left || b.X+b.W > c.Right+0.01 || b.Y < c.Top-0.01 || b.Y+b.H > c.Bottom+0.01 {
			t.Fatalf("bar %+v outside the plot %v..%v × %v..%v", b, c.Left, c.Right, c.Top, c.Bottom)
		}
	}
	if got := NewDailyChart(nil, 720, 240); !got.Empty {
		t.Errorf("NewDailyChart(nil).Empty = false")
	}
	// The tallest bar is the day with the most sessions.
	last := c.Bars[len(c.Bars)-1]
	if last.H != c.Bottom-c.Top {
		t.Errorf("tallest bar height = %v, want %v", last.H, c.Bottom-c.Top)
	}
}

func TestNumPercent(t *testing.T) {
	for _, tc := range []struct {
		n    int64
		want string
	}{{0, "0"}, {999, "999"}, {1000, "1,000"}, {1234567, "1,234,567"}, {-1000, "-1,000"}} {
		if got := Num(tc.n); got != tc.want {
			t.Errorf("Num(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
	for _, tc := range []struct {
		r    float64
		want string
	}{{0, "0%"}, {0.00001, "<0.01%"}, {0.0005, "0.05%"}, {0.25, "25.0%"}} {
		if got := Percent(tc.r); got != tc.want {
			t.Errorf("Percent(%v) = %q, want %q", tc.r, got, tc.want)
		}
	}
}

// TestFractionBounded: a failure rate from saturated totals stays in
// [0, 1], so the charts' coordinates and the printed percentages stay
// finite.
func TestFractionBounded(t *testing.T) {
	const max = math.MaxInt64
	for _, tc := range []struct {
		part, whole int64
		want        float64
	}{{1, 4, 0.25}, {max, 1, 1}, {max, max, 1}, {1, 0, 0}, {0, 0, 0}, {-5, 10, 0}} {
		if got := fraction(tc.part, tc.whole); got != tc.want {
			t.Errorf("fraction(%d, %d) = %v, want %v", tc.part, tc.whole, got, tc.want)
		}
	}
	c := NewDailyChart([]Day{{Sessions: max, Failures: max}, {Sessions: 1, Failures: max}}, 600, 200)
	for _, b := range c.Bars {
		if math.IsNaN(b.Y) || math.IsInf(b.Y, 0) || b.H < 0 {
			t.Errorf("bar %+v not finite", b)
		}
	}
}

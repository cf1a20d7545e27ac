package api

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/tlsrpt/tlsrpt/db"
)

// benchEnv is a server over a year of reports for five domains (three
// reporters a day each: 5,475 reports), the size a busy small operator
// reaches after a year.
func benchEnv(b *testing.B) (*testEnv, who, who) {
	b.Helper()
	e := newTestEnv(b, func(c *Config) { c.MetricsToken = metricsToken })
	ctx := context.Background()
	for i := range 5 {
		d := fmt.Sprintf("bench%d.example", i)
		seedReports(b, e.d, testNow, seedOptions{domain: d, days: 365})
		if _, _, err := e.d.AddDomain(ctx, d); err != nil {
			b.Fatal(err)
		}
	}
	return e, e.login(db.RoleViewer), e.token(db.RoleViewer)
}

func benchGet(b *testing.B, e *testEnv, w who, path string) {
	b.Helper()
	b.ResetTimer()
	for b.Loop() {
		rec := e.do(w, request{method: "GET", path: path})
		if rec.Code != http.StatusOK {
			b.Fatalf("GET %s = %d", path, rec.Code)
		}
	}
}

func BenchmarkDashboard(b *testing.B) {
	e, viewer, tok := benchEnv(b)
	b.Run("overview", func(b *testing.B) { benchGet(b, e, viewer, "/") })
	b.Run("domain-30d", func(b *testing.B) { benchGet(b, e, viewer, "/domains/bench0.example?days=30") })
	b.Run("domain-365d", func(b *testing.B) { benchGet(b, e, viewer, "/domains/bench0.example?days=365") })
	b.Run("reports-page", func(b *testing.B) { benchGet(b, e, viewer, "/reports?domain=bench0.example") })
	b.Run("reports-drilldown-mx", func(b *testing.B) {
		benchGet(b, e, viewer, "/reports?domain=bench0.example&mx=mx2.bench0.example")
	})
	b.Run("api-series-365d", func(b *testing.B) { benchGet(b, e, tok, "/api/v1/domains/bench0.example/series?days=365") })
	b.Run("api-breakdown-ip-365d", func(b *testing.B) {
		benchGet(b, e, tok, "/api/v1/domains/bench0.example/breakdown/ip?days=365")
	})
	b.Run("metrics", func(b *testing.B) { benchGet(b, e, anonymous, "/metrics") })
	// With the token: the per-domain series, the recent window's failure
	// rate and the newest policy version of every listed domain too.
	b.Run("metrics-token", func(b *testing.B) { benchGet(b, e, who{bearer: metricsToken}, "/metrics") })
}

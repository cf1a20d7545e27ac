package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/internal/torture"
	"github.com/tlsrpt/tlsrpt/reports"
)

// tortureKey is a report's identity as the reports table has it.
func tortureKey(org, id string, start, end time.Time) string {
	return fmt.Sprintf("%s|%s|%s|%s", storedText(org), storedText(id), start.UTC().Truncate(time.Microsecond).Format(time.RFC3339Nano), end.UTC().Truncate(time.Microsecond).Format(time.RFC3339Nano))
}

// storedText is a sender's string as the store keeps it (db/reports.go
// clean): PostgreSQL text holds no NUL byte and only valid UTF-8.
func storedText(s string) string {
	return strings.ToValidUTF8(strings.ReplaceAll(s, "\x00", ""), "\uFFFD")
}

func storedReportKeys(t *testing.T, d *db.DB) map[string]int {
	t.Helper()
	rows, err := d.Pool.Query(context.Background(), `SELECT organization_name, report_id, start_time, end_time FROM reports`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	seen := map[string]int{}
	for rows.Next() {
		var org, id string
		var start, end time.Time
		if err := rows.Scan(&org, &id, &start, &end); err != nil {
			t.Fatal(err)
		}
		seen[tortureKey(org, id, start, end)]++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return seen
}

// TestPostTorture sends mutated reports to POST /tlsrpt through the
// router: no 5xx, every refusal a 4xx with a reason, every report the
// parser accepts stored exactly once.
func TestPostTorture(t *testing.T) {
	const maxBody = 1 << 20
	e := newTestEnv(t, func(c *Config) { c.MaxReportBytes = maxBody })
	c, err := torture.LoadCorpus(filepath.Join("..", "testdata", "corpus"), "/work/shared/corpus/tlsrpt")
	if err != nil {
		t.Fatal(err)
	}
	seed := torture.Seed(t)
	n := torture.Count(300, 10000)
	t.Logf("seed %d, %d requests", seed, n)
	m := torture.NewMutator(c, seed)
	want := map[string]bool{}
	codes := map[int]int{}
	var crashes, noReason, wrong int
	heap := torture.WatchHeap()
	start := time.Now()
	for i := range n {
		in := m.Report()
		ctype := "application/tlsrpt+json"
		if len(in.Data) > 1 && in.Data[0] == 0x1f && in.Data[1] == 0x8b {
			ctype = "application/tlsrpt+gzip"
		}
		parsed, _, perr := reports.ParseBytes(in.Data, reports.DefaultLimits())
		rec := e.do(who{remote: fmt.Sprintf("192.0.2.%d:1", i%250+1)}, request{method: "POST", path: "/tlsrpt", body: string(in.Data), ctype: ctype})
		codes[rec.Code]++
		var res struct {
			Message string
			Error   struct{ Message string }
		}
		jerr := json.Unmarshal(rec.Body.Bytes(), &res)
		switch {
		case rec.Code >= 500:
			crashes++
			t.Errorf("request %d (%s): %d %.300s", i, in.Kind, rec.Code, rec.Body)
		case rec.Code == http.StatusOK:
			if perr != nil {
				wrong++
				t.Errorf("request %d (%s): 200 for a body the parser refuses (%v)", i, in.Kind, perr)
			} else {
				want[tortureKey(parsed.OrganizationName, parsed.ReportID, parsed.DateRange.Start, parsed.DateRange.End)] = true
			}
		default:
			if jerr != nil || (res.Message == "" && res.Error.Message == "") {
				noReason++
				t.Errorf("request %d (%s): %d without a reason: %.300s", i, in.Kind, rec.Code, rec.Body)
			}
			if perr == nil && len(in.Data) <= maxBody {
				wrong++
				t.Errorf("request %d (%s): %d for a report the parser accepts: %.300s", i, in.Kind, rec.Code, rec.Body)
			}
		}
	}
	elapsed := time.Since(start)
	peak := heap.Stop()
	seen := storedReportKeys(t, e.d)
	lost, dup := 0, 0
	for k := range want {
		if seen[k] == 0 {
			lost++
			t.Errorf("report %s answered 200 but not stored", k)
		}
	}
	for k, c := range seen {
		if c > 1 {
			dup++
		}
		if !want[k] {
			t.Errorf("report %s stored without a 200", k)
		}
	}
	torture.Record(t, map[string]any{"seed": seed, "inputs": n, "status_codes": codes, "stored": len(seen),
		"lost": lost, "duplicated": dup, "crashes": crashes, "refused_without_reason": noReason, "wrong_answer": wrong,
		"peak_heap_mib": torture.MiB(peak), "seconds": int(elapsed.Seconds())})
	if codes[http.StatusOK] == 0 || codes[http.StatusBadRequest] == 0 {
		t.Errorf("status codes %v: want both stored and refused reports", codes)
	}
}

// hostileNames are report strings that try to break out of HTML, URLs,
// headers and logs.
var hostileNames = []string{
	`<script>alert(1)</script>`, `javascript:alert(1)`, "x\r\nSet-Cookie: pwned=1", `"><svg onload=alert(1)>`,
}

// TestHostileReportNames posts reports whose organisation and MX names are
// hostile, then reads every page and API response that shows them: no
// raw markup, no javascript: link, no injected header.
func TestHostileReportNames(t *testing.T) {
	e := newTestEnv(t, nil)
	ctx := context.Background()
	if _, _, err := e.d.AddDomain(ctx, "example.com"); err != nil {
		t.Fatal(err)
	}
	for i, h := range hostileNames {
		body := reportJSONBody(t, h, fmt.Sprintf("hostile-%d-%s", i, h))
		if rec := e.do(who{remote: "192.0.2.1:1"}, request{method: "POST", path: "/tlsrpt", body: string(body), ctype: "application/tlsrpt+json"}); rec.Code != http.StatusOK {
			t.Fatalf("POST hostile %q = %d %s", h, rec.Code, rec.Body)
		}
	}
	v, tok := e.login(db.RoleViewer), e.token(db.RoleViewer)
	rows, err := e.d.DashboardReports(ctx, db.ReportListFilter{Domain: "example.com"})
	if err != nil || len(rows) != len(hostileNames) {
		t.Fatalf("stored %d reports, %v; want %d", len(rows), err, len(hostileNames))
	}
	pages := []string{"/", "/domains/example.com?days=30", "/reports", "/reports?domain=example.com"}
	apis := []string{"/api/v1/reports?domain=example.com", "/api/v1/domains/example.com/breakdown/org"}
	for _, r := range rows {
		pages = append(pages, fmt.Sprintf("/reports/%d", r.ID))
		apis = append(apis, fmt.Sprintf("/api/v1/reports/%d", r.ID))
	}
	checked := 0
	for _, p := range pages {
		rec := e.do(v, request{method: "GET", path: p})
		if rec.Code != http.StatusOK {
			t.Errorf("GET %s = %d", p, rec.Code)
			continue
		}
		b := rec.Body.String()
		for _, bad := range []string{"<script>alert", "<svg onload", `href="javascript:`, `src="javascript:`} {
			if strings.Contains(b, bad) {
				t.Errorf("GET %s: %q unescaped in the page", p, bad)
			}
		}
		for k := range rec.Header() {
			if strings.EqualFold(k, "Set-Cookie") && strings.Contains(strings.Join(rec.Header()[k], ";"), "pwned") {
				t.Errorf("GET %s: a report string became a header", p)
			}
		}
		checked++
	}
	for _, p := range apis {
		rec := e.do(tok, request{method: "GET", path: p})
		if rec.Code != http.StatusOK || !json.Valid(rec.Body.Bytes()) {
			t.Errorf("GET %s = %d, valid JSON %v", p, rec.Code, json.Valid(rec.Body.Bytes()))
			continue
		}
		if b := rec.Body.String(); strings.Contains(b, "<script>") || strings.Contains(b, "<svg") {
			t.Errorf("GET %s: raw markup in the JSON", p)
		}
		checked++
	}
	torture.Record(t, map[string]any{"hostile_strings": len(hostileNames), "responses_checked": checked})
}

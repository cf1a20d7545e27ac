package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/tlsrpt/tlsrpt/api"
	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/ingest"
	"github.com/tlsrpt/tlsrpt/reports"
)

// maxWebRequests bounds the requests per page of "tlsrpt-bench web".
const maxWebRequests = 100_000

// benchPage is one page or API call timed by "tlsrpt-bench web"; path
// gives the URL of the i-th request.
type benchPage struct {
	name string
	path func(i int) string
}

// fixed is a benchPage path that is the same for every request.
func fixed(p string) func(int) string { return func(int) string { return p } }

// runBenchWeb times the overview page, a domain page over 365 days and a
// verdict through the real router (api.New, the handler the server runs,
// authenticated by an API token as a script would be), with the store
// seeded by "tlsrpt-bench seed". The time is server-side: from the request
// entering the handler to the last byte written, without a network.
func runBenchWeb(ctx context.Context, env *Env, args []string) int {
	fs := flag.NewFlagSet("web", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	dbURL := fs.String("db", "", "PostgreSQL URL (default DATABASE_URL, else the embedded server)")
	requests := fs.Int("requests", 200, "timed requests per page")
	warmup := fs.Int("warmup", 5, "untimed requests per page first")
	domain := fs.String("domain", benchDomain(1), "the domain of the domain page and the verdict")
	only := fs.String("only", "", "time only the pages whose name contains this (overview, domain, verdict)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the timed requests to this file")
	listedFlag := fs.Int("listed", -1, "first make the allow-list exactly the first N seeded domains (-1: leave it)")
	spread := fs.Int("spread", 1, "the domain page and the verdict of request i are those of seeded domain i mod N (1: always --domain), so that most are not in PostgreSQL's cache")
	setUsage(fs, env, "web", "[flags]")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if *requests < 1 || *requests > maxWebRequests || *warmup < 0 || *warmup > maxWebRequests || *spread < 1 || *spread > maxSeedDomains {
		fmt.Fprintf(env.Stderr, "tlsrpt-bench web: --requests and --warmup are 1..%d, --spread 1..%d\n", maxWebRequests, maxSeedDomains)
		return 2
	}
	d, closeDB, err := openDatabase(ctx, env, *dbURL)
	if err != nil {
		fmt.Fprintf(env.Stderr, "tlsrpt-bench web: %v\n", err)
		return 1
	}
	defer closeDB()
	if *listedFlag >= 0 {
		if err := setListed(ctx, d, *listedFlag); err != nil {
			fmt.Fprintf(env.Stderr, "tlsrpt-bench web: %v\n", err)
			return 1
		}
	}
	srv, token, err := newBenchServer(ctx, d, api.Rate{})
	if err != nil {
		fmt.Fprintf(env.Stderr, "tlsrpt-bench web: %v\n", err)
		return 1
	}
	h := srv.Handler()
	var listed, nReports int64
	if err := d.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM domains), (SELECT count(*) FROM reports)`).Scan(&listed, &nReports); err != nil {
		fmt.Fprintf(env.Stderr, "tlsrpt-bench web: counting: %v\n", err)
		return 1
	}
	fmt.Fprintf(env.Stdout, "store: %d reports, %d listed domains; %d requests per page after %d warm-up\n", nReports, listed, *requests, *warmup)
	if err := printTableSizes(ctx, env, d); err != nil {
		fmt.Fprintf(env.Stderr, "tlsrpt-bench web: %v\n", err)
		return 1
	}
	// The overview reads stored verdict badges: compute them all first,
	// as the server's refresher does in the background, and say how long
	// that takes (it is also what a new UTC day costs).
	n, el, err := refreshAllBadges(ctx, srv)
	if err != nil {
		fmt.Fprintf(env.Stderr, "tlsrpt-bench web: %v\n", err)
		return 1
	}
	per := "-"
	if n > 0 {
		per = ms(el / time.Duration(n))
	}
	fmt.Fprintf(env.Stdout, "verdict badges: refreshed %d in %s (%s per domain)\n", n, el.Round(time.Millisecond), per)
	dom := func(i int) string {
		if *spread == 1 {
			return *domain
		}
		return benchDomain(i % *spread)
	}
	pages := []benchPage{
		{"overview", fixed("/")},
		{"overview by severity", fixed("/?sort=severity")},
		{"overview filtered", fixed("/?q=" + *domain)},
		{"domains API", fixed("/api/v1/domains")},
		{"domain page 365 days", func(i int) string { return "/domains/" + dom(i) + "?days=365" }},
		{"verdict (API)", func(i int) string { return "/api/v1/domains/" + dom(i) + "/verdict" }},
	}
	stopProfile, err := startCPUProfile(*cpuProfile)
	if err != nil {
		fmt.Fprintf(env.Stderr, "tlsrpt-bench web: %v\n", err)
		return 1
	}
	defer stopProfile()
	// CPU per request, of this process (router, handlers, templates) and
	// of the embedded PostgreSQL: unlike the wall-clock figures, it does
	// not grow with the load of a shared machine.
	pgDir := embeddedDataDir(env, *dbURL)
	fmt.Fprintf(env.Stdout, "%-22s %10s %10s %10s %12s %12s\n", "page", "p50", "p95", "max", "go cpu/req", "pg cpu/req")
	for _, p := range pages {
		if !strings.Contains(p.name, *only) {
			continue
		}
		pg0 := postgresCPU(pgDir)
		cpu0 := processCPU()
		ds, err := timePage(ctx, h, token, p.path, *warmup, *requests)
		if err != nil {
			fmt.Fprintf(env.Stderr, "tlsrpt-bench web: %s: %v\n", p.name, err)
			return 1
		}
		all := time.Duration(*warmup + *requests)
		goCPU, pgCPU := ms((processCPU()-cpu0)/all), "-"
		if pg0 != nil {
			pgCPU = ms(cpuSince(pg0, postgresCPU(pgDir)) / all)
		}
		s := percentiles(ds)
		fmt.Fprintf(env.Stdout, "%-22s %10s %10s %10s %12s %12s\n", p.name, ms(s.p50), ms(s.p95), ms(s.max), goCPU, pgCPU)
	}
	return 0
}

// newBenchServer builds the real web server over d, with a pipeline for
// POST /tlsrpt and the given public rate limit (zero: the default), and an
// admin API token for the bench's requests.
func newBenchServer(ctx context.Context, d *db.DB, public api.Rate) (*api.Server, string, error) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	pipe := &ingest.Pipeline{Store: d, Limits: reports.DefaultLimits(), Log: log}
	srv, err := api.New(api.Config{DB: d, Pipeline: pipe, Log: log, PublicRate: public})
	if err != nil {
		return nil, "", fmt.Errorf("creating server: %w", err)
	}
	token := api.NewAPIToken()
	if _, err := d.CreateAPIToken(ctx, db.SecretHash(token), "bench "+time.Now().UTC().Format(time.RFC3339Nano), db.RoleAdmin); err != nil {
		return nil, "", fmt.Errorf("creating api token: %w", err)
	}
	return srv, token, nil
}

// refreshAllBadges recomputes every stale verdict badge, in the
// refresher's batches, and returns how many and how long it took.
func refreshAllBadges(ctx context.Context, srv *api.Server) (int, time.Duration, error) {
	t0 := time.Now()
	total := 0
	for {
		n, err := srv.RefreshVerdicts(ctx, 100)
		if err != nil {
			return total, time.Since(t0), fmt.Errorf("refreshing verdict badges: %w", err)
		}
		total += n
		if n == 0 {
			return total, time.Since(t0), nil
		}
	}
}

// timePage requests path(i) for i in 0..warmup+n-1 in a row and returns
// the n timed durations; any status but 200 is an error.
func timePage(ctx context.Context, h http.Handler, token string, path func(int) string, warmup, n int) ([]time.Duration, error) {
	ds := make([]time.Duration, 0, n)
	for i := range warmup + n {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		req := httptest.NewRequestWithContext(ctx, http.MethodGet, path(i), nil)
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		t0 := time.Now()
		h.ServeHTTP(rec, req)
		el := time.Since(t0)
		if rec.Code != http.StatusOK {
			return nil, fmt.Errorf("GET %s = %d: %.200s", path(i), rec.Code, rec.Body.String())
		}
		if i >= warmup {
			ds = append(ds, el)
		}
	}
	return ds, nil
}

// benchTables are the tables whose size "tlsrpt-bench web" prints, for
// the storage figures of SCALING.md.
var benchTables = []string{"reports", "report_policies", "failure_details", "daily_policy_rollups",
	"daily_failure_rollups", "daily_mode_rollups", "daily_sender_rollups", "daily_ip_rollups", "domain_verdicts"}

// printTableSizes prints the rows and the bytes (heap, TOAST and indexes)
// of benchTables; a partitioned table's are the sums over its partitions.
func printTableSizes(ctx context.Context, env *Env, d *db.DB) error {
	fmt.Fprintf(env.Stdout, "%-22s %12s %12s %10s\n", "table", "rows", "bytes", "bytes/row")
	for _, t := range benchTables {
		var rows, size int64
		// t comes from benchTables, never from input.
		err := d.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM `+t+`),
			coalesce((SELECT sum(pg_total_relation_size(relid))::bigint FROM pg_partition_tree($1::regclass)),
				pg_total_relation_size($1::regclass))`, t).Scan(&rows, &size)
		if err != nil {
			return fmt.Errorf("measuring table %s: %w", t, err)
		}
		fmt.Fprintf(env.Stdout, "%-22s %12d %12d %10d\n", t, rows, size, size/max(rows, 1))
	}
	return nil
}

// setListed makes the allow-list the first n domains of "bench seed": the
// overview's cost grows with the listed domains, not with the history.
func setListed(ctx context.Context, d *db.DB, n int) error {
	if n > maxSeedDomains {
		return fmt.Errorf("listing %d domains: at most %d", n, maxSeedDomains)
	}
	if _, err := d.Pool.Exec(ctx, `DELETE FROM domains`); err != nil {
		return fmt.Errorf("clearing the allow-list: %w", err)
	}
	for i := range n {
		if _, _, err := d.AddDomain(ctx, benchDomain(i)); err != nil {
			return fmt.Errorf("listing domains: %w", err)
		}
	}
	return nil
}

package api

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tlsrpt/tlsrpt/internal/browsertest"
	"github.com/tlsrpt/tlsrpt/internal/testreq"
)

// TestBrowserDashboard logs in with headless Chromium, checks that the
// overview lists the domains and that a domain page draws its chart and
// tables, with no script error and no CSP violation. With
// TLSRPT_WALK_SHOTS=dir it saves api-overview.png and api-domain.png there
// (the README's screenshots come from the demo: make screenshots).
func TestBrowserDashboard(t *testing.T) {
	testreq.Chromium(t)
	const password = "browser-test-password"
	e := newTestEnv(t, func(c *Config) {
		c.AdminPassword = password
		c.Now = time.Now
	})
	ctx := context.Background()
	now := time.Now().UTC()
	seedReports(t, e.d, now, seedOptions{domain: "example.com", days: 90})
	seedReports(t, e.d, now, seedOptions{domain: "example.org", days: 20})
	seedReports(t, e.d, now, seedOptions{domain: "stranger.example", days: 3})
	for _, d := range []string{"example.com", "example.org"} {
		if _, _, err := e.d.AddDomain(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.s.EnsureAdmin(ctx); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srvCtx, stopSrv := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := e.s.Serve(srvCtx, ln, "", ""); err != nil {
			t.Errorf("Serve() = %v", err)
		}
	}()
	defer func() { stopSrv(); wg.Wait() }()
	base := "http://" + ln.Addr().String()

	bctx := browsertest.New(t, 1280, 1000)
	// The console subscription starts the browser, on a context without a
	// timeout (chromedp's rule); the steps run under one.
	consoleCtx, stopConsole := context.WithCancel(bctx)
	messages := chromedp.Console(consoleCtx)
	var problems []string
	consoleDone := make(chan struct{})
	go func() {
		defer close(consoleDone)
		for m, err := range messages {
			if err != nil {
				return
			}
			// CSP violations and script errors are errors or exceptions.
			if m.Type == chromedp.ConsoleError || m.IsException() {
				problems = append(problems, m.String()+" ("+m.URL+")")
			}
		}
	}()
	tctx, cancelT := context.WithTimeout(bctx, 90*time.Second)
	defer cancelT()

	err = chromedp.Do(tctx,
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.CSS(`input[name="password"]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), password),
		chromedp.Submit(chromedp.CSS(`input[name="password"]`)),
		chromedp.WaitVisible(chromedp.CSS(`table.overview`)),
	)
	if err != nil {
		t.Fatalf("log in and open the overview: %v", err)
	}
	overview, err := chromedp.Run(tctx, chromedp.Text(chromedp.CSS(`main`)))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"example.com", "example.org", "stranger.example", "testing"} {
		if !strings.Contains(overview, want) {
			t.Errorf("overview text lacks %q", want)
		}
	}
	if rows := evalInt(t, tctx, `document.querySelectorAll("table.overview tbody tr").length`); rows != 2 {
		t.Errorf("overview lists %d domains, want 2", rows)
	}
	if n := evalInt(t, tctx, `document.querySelectorAll("table.overview svg.spark polyline").length`); n != 2 {
		t.Errorf("overview draws %d trend lines, want 2", n)
	}
	shot(t, tctx, "overview.png")

	err = chromedp.Do(tctx,
		chromedp.Click(chromedp.CSS(`a[href="/domains/example.com"]`)),
		chromedp.WaitVisible(chromedp.CSS(`svg.chart`)),
		chromedp.Click(chromedp.CSS(`nav.windows a[href="?days=90"]`)),
		chromedp.WaitVisible(chromedp.CSS(`nav.windows a.active[href="?days=90"]`)),
		chromedp.WaitVisible(chromedp.CSS(`svg.chart`)),
	)
	if err != nil {
		t.Fatalf("open the domain page: %v", err)
	}
	if bars := evalInt(t, tctx, `document.querySelectorAll("svg.chart .bars rect").length`); bars != 90 {
		t.Errorf("the 90-day chart draws %d bars, want 90", bars)
	}
	if w := evalInt(t, tctx, `Math.round(document.querySelector("svg.chart").getBoundingClientRect().width)`); w < 400 {
		t.Errorf("the chart is %d px wide: not laid out", w)
	}
	if n := evalInt(t, tctx, `document.querySelectorAll("section.breakdown table").length`); n != 4 {
		t.Errorf("the domain page has %d breakdown tables, want 4", n)
	}
	if n := evalInt(t, tctx, `document.querySelectorAll("section.breakdown table tbody tr").length`); n < 4 {
		t.Errorf("the breakdown tables have %d rows, want at least one each", n)
	}
	shot(t, tctx, "domain.png")

	// A phone: the page does not scroll sideways (wide tables scroll in
	// their own box).
	err = chromedp.Do(tctx,
		chromedp.EmulateViewport(390, 844),
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.CSS(`table.overview`)),
	)
	if err != nil {
		t.Fatalf("phone overview: %v", err)
	}
	if n := evalInt(t, tctx, `document.documentElement.scrollWidth - window.innerWidth`); n > 1 {
		t.Errorf("on a 390 px phone the page is %d px too wide", n)
	}
	stopConsole()
	<-consoleDone
	if len(problems) > 0 {
		t.Errorf("the browser reported problems (CSP violations, script errors): %s", strings.Join(problems, "; "))
	}
}

func evalInt(t *testing.T, ctx context.Context, expr string) int {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[int](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// shot saves a full-page screenshot as api-<name> in the directory
// TLSRPT_WALK_SHOTS names, if any. It writes nothing under docs: the
// README's screenshots show the demo (cmd/tlsrpt TestWalkDemo).
func shot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("TLSRPT_WALK_SHOTS")
	if dir == "" {
		return
	}
	name = "api-" + name
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s (%d bytes)", filepath.Join(dir, name), len(png))
}

package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/tlsrpt/tlsrpt/db/pgembed"
	"github.com/tlsrpt/tlsrpt/internal/browsertest"
	"github.com/tlsrpt/tlsrpt/internal/testreq"
	"github.com/tlsrpt/tlsrpt/reports/reportgen"
)

// walkWidths are the widths a newcomer looks at the dashboard with: a
// laptop and a phone.
var walkWidths = []int64{1280, 390}

// overflowJS lists the elements that stick out of the viewport on the
// right, except those inside a box that scrolls sideways (wide tables),
// and the document itself when it scrolls sideways.
const overflowJS = `(() => {
  const w = document.documentElement.clientWidth;
  const scrolls = e => {
    for (let a = e.parentElement; a && a !== document.body; a = a.parentElement) {
      const o = getComputedStyle(a).overflowX;
      if (o === "auto" || o === "scroll") return true;
    }
    return false;
  };
  const name = e => e.tagName.toLowerCase() + (e.id ? "#" + e.id : "") +
    (e.className && typeof e.className === "string" ? "." + e.className.trim().split(/\s+/).join(".") : "") +
    " " + JSON.stringify((e.textContent || "").trim().slice(0, 40));
  const out = [];
  for (const e of document.querySelectorAll("body *")) {
    const r = e.getBoundingClientRect();
    if (r.right > w + 1 && !scrolls(e)) out.push(name(e) + " ends at " + Math.round(r.right));
  }
  const sw = document.documentElement.scrollWidth;
  if (sw > w + 1) out.push("the page is " + sw + " px wide");
  return out.slice(0, 12);
})()`

// controlsJS lists the checkboxes and radio buttons that do not sit on the
// first line of their label's text, before it, and the code in a label
// that breaks across lines ("mode: none").
const controlsJS = `(() => {
  const out = [];
  for (const input of document.querySelectorAll('label > input[type="checkbox"], label > input[type="radio"]')) {
    const label = input.parentElement, box = input.getBoundingClientRect();
    if (box.width === 0) continue;
    let text = input.nextSibling;
    while (text && !(text.textContent || "").trim()) text = text.nextSibling;
    if (!text) continue;
    const range = document.createRange();
    range.selectNodeContents(text);
    const first = range.getClientRects()[0];
    const mid = box.top + box.height / 2;
    if (!first || mid < first.top || mid > first.bottom || box.right > first.left + 1) {
      out.push(input.type + " " + (input.name || input.id) + " is not before the first line of " + JSON.stringify(label.textContent.trim().slice(0, 40)));
    }
  }
  for (const code of document.querySelectorAll("label code")) {
    const lines = new Set([...code.getClientRects()].map(r => Math.round(r.top)));
    if (lines.size > 1) out.push("label code " + JSON.stringify(code.textContent) + " breaks across lines");
  }
  return out;
})()`

// TestWalkDemo walks the demo as a newcomer does, in headless Chromium at
// 1280 px and at 390 px: log in, the overview, every domain's page, the
// reports and a report, the quarantine and the settings. It fails on any
// 4xx or 5xx answer for a page or what it loads, any console error or
// uncaught exception, and any element sticking out of the viewport on the
// right (outside a box that scrolls sideways), and any checkbox or radio
// button that does not sit before its label's text.
//
// TLSRPT_WALK_SHOTS=dir saves a full-page PNG of every page at both widths
// into dir; TLSRPT_UPDATE_SCREENSHOTS=1 writes the README's screenshots
// into docs/screenshots (make screenshots).
func TestWalkDemo(t *testing.T) {
	testreq.Chromium(t)
	if _, err := pgembed.FindBinDir(context.Background()); err != nil {
		if testreq.Required("postgres") {
			t.Fatalf("PostgreSQL server binaries: %v", err)
		}
		t.Skipf("PostgreSQL server binaries: %v", err)
	}
	base, user, password := startDemo(t)
	c := login(t, base, user, password)
	waitDemoVerdicts(t, c, base)

	b := newWalkBrowser(t)
	err := chromedp.Do(b.ctx,
		chromedp.Navigate(base+"/login"),
		chromedp.WaitVisible(chromedp.CSS(`input[name="password"]`)),
		chromedp.SetValue(chromedp.CSS(`input[name="username"]`), user),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), password),
		chromedp.Submit(chromedp.CSS(`input[name="password"]`)),
		chromedp.WaitVisible(chromedp.CSS(`table.overview`)),
	)
	if err != nil {
		t.Fatalf("log in: %v", err)
	}
	// A report to open: the newest in the list.
	err = chromedp.Do(b.ctx, chromedp.Navigate(base+"/reports"), chromedp.WaitVisible(chromedp.CSS(`main table`)))
	if err != nil {
		t.Fatalf("open the reports: %v", err)
	}
	report, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.querySelector('main table a[href^="/reports/"]').getAttribute("href")`))
	if err != nil || report == "" {
		t.Fatalf("no report linked from /reports: %q %v", report, err)
	}

	pages := []struct{ name, path string }{{"overview", "/"}}
	for _, d := range append(append([]string{}, reportgen.DemoDomains...), reportgen.DemoStranger) {
		pages = append(pages, struct{ name, path string }{"domain-" + d, "/domains/" + d})
	}
	pages = append(pages, []struct{ name, path string }{
		{"reports", "/reports"}, {"report", report}, {"quarantine", "/quarantine"}, {"settings", "/settings"},
		{"settings-domain", "/settings/domains/" + reportgen.DemoDomains[0]}, {"users", "/settings/users"},
		{"tokens", "/settings/tokens"}, {"account", "/account"}, {"audit", "/audit"},
	}...)
	// The check sees an element too wide for the page, and not one in a
	// box that scrolls sideways.
	probe, err := chromedp.Run(b.ctx, chromedp.Evaluate[[]string](`(() => {
  const wide = document.createElement("div"); wide.id = "probe-wide"; wide.style.width = "4000px";
  const box = document.createElement("div"); box.className = "scroll"; box.id = "probe-box";
  const inner = document.createElement("div"); inner.id = "probe-inner"; inner.style.width = "4000px";
  box.append(inner); document.querySelector("main").append(wide, box);
  const found = `+overflowJS+`;
  wide.remove(); box.remove();
  return found;
})()`))
	if err != nil || len(probe) == 0 || !strings.Contains(probe[0], "probe-wide") || strings.Contains(strings.Join(probe, " "), "probe-inner") {
		t.Fatalf("the overflow check on a 4000 px element, and on one in a scrolling box = %q %v, want the first only", probe, err)
	}
	shots := os.Getenv("TLSRPT_WALK_SHOTS")
	for _, w := range walkWidths {
		if err := chromedp.Do(b.ctx, viewport(w)); err != nil {
			t.Fatalf("width %d: %v", w, err)
		}
		for _, p := range pages {
			at := fmt.Sprintf("%s at %d px", p.path, w)
			b.visit(t, at, base+p.path)
			if over, err := chromedp.Run(b.ctx, chromedp.Evaluate[[]string](overflowJS)); err != nil {
				t.Errorf("%s: %v", at, err)
			} else if len(over) > 0 {
				t.Errorf("%s: sticks out on the right:\n  %s", at, strings.Join(over, "\n  "))
			}
			if bad, err := chromedp.Run(b.ctx, chromedp.Evaluate[[]string](controlsJS)); err != nil {
				t.Errorf("%s: %v", at, err)
			} else if len(bad) > 0 {
				t.Errorf("%s: form controls:\n  %s", at, strings.Join(bad, "\n  "))
			}
			if shots != "" {
				b.save(t, filepath.Join(shots, fmt.Sprintf("%d-%s.png", w, p.name)), chromedp.FullScreenshot(100))
			}
		}
	}
	if os.Getenv("TLSRPT_UPDATE_SCREENSHOTS") == "1" {
		b.readmeShots(t, base)
	}
	for _, p := range b.done() {
		t.Error(p)
	}
}

// readmeShots writes docs/screenshots: the overview, a blocked domain's
// page and the promote panel of the ready domain at 1280 px, and the
// overview on a phone.
func (b *walkBrowser) readmeShots(t *testing.T, base string) {
	t.Helper()
	dir := filepath.Join("..", "..", "docs", "screenshots")
	for _, s := range []struct {
		width  int64
		path   string
		name   string
		action chromedp.Action[[]byte]
	}{
		{1280, "/", "overview.png", chromedp.FullScreenshot(100)},
		{1280, "/domains/" + reportgen.DemoExpired, "domain.png", chromedp.FullScreenshot(100)},
		{1280, "/domains/" + reportgen.DemoReady, "promote.png", chromedp.Screenshot(chromedp.CSS(`#promote`))},
		{390, "/", "overview-phone.png", chromedp.FullScreenshot(100)},
	} {
		if err := chromedp.Do(b.ctx, viewport(s.width)); err != nil {
			t.Fatal(err)
		}
		b.visit(t, s.path, base+s.path)
		b.save(t, filepath.Join(dir, s.name), s.action)
	}
}

// viewport emulates a window w px wide; below 600 px a phone, whose
// scroll bars overlay the page as on a real one (a desktop scroll bar would
// take 15 px of the 390).
func viewport(w int64) chromedp.Action[chromedp.Void] {
	if w < 600 {
		return chromedp.EmulateViewport(w, 844, chromedp.EmulateMobile)
	}
	return chromedp.EmulateViewport(w, 900)
}

// startDemo runs tlsrpt demo in process on a loopback port until the test
// ends, and returns the dashboard's address and the login it prints.
func startDemo(t *testing.T) (base, user, password string) {
	t.Helper()
	base, user, password, _ = startDemoPrinted(t)
	return base, user, password
}

// startDemoPrinted is startDemo that also returns what the demo printed
// when ready (the addresses of its DNS server and policy host).
func startDemoPrinted(t *testing.T) (base, user, password, printed string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := &readyWriter{ready: make(chan struct{})}
	errOut := &syncBuilder{}
	env := &Env{Stdin: strings.NewReader(""), Stdout: out, Stderr: errOut, Getenv: func(string) string { return "" }}
	done := make(chan int, 1)
	go func() { done <- Main(ctx, []string{"demo", "--listen", "127.0.0.1:0"}, env) }()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("demo exited %d; stderr:\n%s", code, errOut.String())
		}
	})
	select {
	case <-out.ready:
	case code := <-done:
		done <- code
		t.Fatalf("demo exited %d before it was ready; stderr:\n%s", code, errOut.String())
	case <-time.After(3 * time.Minute):
		t.Fatalf("demo not ready in 3 minutes; stderr:\n%s", errOut.String())
	}
	out.mu.Lock()
	printed = out.b.String()
	out.mu.Unlock()
	u := regexp.MustCompile(`Dashboard: (http://\S+)/`).FindStringSubmatch(printed)
	l := regexp.MustCompile(`Login:\s+(\S+) / (\S+)`).FindStringSubmatch(printed)
	if u == nil || l == nil {
		t.Fatalf("demo printed no address or login:\n%s", printed)
	}
	return u[1], l[1], l[2], printed
}

// walkBrowser is headless Chromium with what it reported: error answers,
// failed loads, console errors and uncaught exceptions, each with the
// page it happened on.
type walkBrowser struct {
	ctx context.Context

	mu       sync.Mutex
	at       string
	problems []string

	stopConsole context.CancelFunc
	consoleDone chan struct{}
}

func newWalkBrowser(t *testing.T) *walkBrowser {
	t.Helper()
	bctx := browsertest.New(t, 1280, 900)
	b := &walkBrowser{consoleDone: make(chan struct{})}
	// The console subscription starts the browser, on a context without a
	// timeout (chromedp's rule); the steps run under one.
	var consoleCtx context.Context
	consoleCtx, b.stopConsole = context.WithCancel(bctx)
	messages := chromedp.Console(consoleCtx)
	go func() {
		defer close(b.consoleDone)
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				b.problem("console: " + m.String() + " (" + m.URL + ")")
			}
		}
	}()
	// The listener only records: it must not run commands.
	err := chromedp.Listen(bctx, func(ev any) {
		switch e := ev.(type) {
		case *network.EventResponseReceived:
			if e.Response.Status >= 400 {
				b.problem(fmt.Sprintf("%d %s for %s", e.Response.Status, e.Response.StatusText, e.Response.URL))
			}
		case *network.EventLoadingFailed:
			if !e.Canceled {
				b.problem(fmt.Sprintf("loading %s failed: %s", e.Type, e.ErrorText))
			}
		}
	})
	if err != nil {
		t.Fatalf("listening to the browser: %v", err)
	}
	ctx, cancelT := context.WithTimeout(bctx, 4*time.Minute)
	t.Cleanup(cancelT)
	b.ctx = ctx
	return b
}

func (b *walkBrowser) problem(p string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.problems = append(b.problems, b.at+": "+p)
}

// visit opens u and waits until its scripts have run.
func (b *walkBrowser) visit(t *testing.T, at, u string) {
	t.Helper()
	b.mu.Lock()
	b.at = at
	b.mu.Unlock()
	err := chromedp.Do(b.ctx,
		chromedp.Navigate(u),
		chromedp.WaitReady(chromedp.CSS(`main`)),
		chromedp.Poll[chromedp.Void](`document.readyState === "complete"`),
	)
	if err != nil {
		t.Fatalf("%s: %v", at, err)
	}
}

func (b *walkBrowser) save(t *testing.T, path string, shot chromedp.Action[[]byte]) {
	t.Helper()
	png, err := chromedp.Run(b.ctx, shot)
	if err != nil {
		t.Fatalf("screenshot %s: %v", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s (%d bytes)", path, len(png))
}

// done stops listening to the console and returns every problem seen.
func (b *walkBrowser) done() []string {
	b.stopConsole()
	<-b.consoleDone
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.problems
}

package api

import (
	"context"
	"encoding/json"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tlsrpt/tlsrpt/internal/browsertest"
	"github.com/tlsrpt/tlsrpt/internal/testreq"
)

// TestBrowserPromote drives the promote panel in headless Chromium: a
// ready domain is promoted after the confirmation dialog and ends
// verified; a blocked domain is refused without the override and promoted
// with it; the audit log keeps the refusal and the override with the typed
// domain and the reason.
func TestBrowserPromote(t *testing.T) {
	testreq.Chromium(t)
	const password = "browser-promote-password"
	f := newFlowEnv(t, true, func(c *Config) {
		c.AdminPassword = password
		c.Now = time.Now
	})
	ctx := context.Background()
	now := time.Now().UTC()
	seedDomain(t, f.d, now, "example.com", 20, 0)
	seedDomain(t, f.d, now, "shop.example.com", 20, 3)
	if _, err := f.s.EnsureAdmin(ctx); err != nil {
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
		if err := f.s.Serve(srvCtx, ln, "", ""); err != nil {
			t.Errorf("Serve() = %v", err)
		}
	}()
	defer func() { stopSrv(); wg.Wait() }()
	base := "http://" + ln.Addr().String()

	bctx := browsertest.New(t, 1280, 1000)
	// Every confirmation dialog is accepted and its text kept.
	dialogs := browsertest.AcceptDialogs(t, bctx)
	tctx, cancelT := context.WithTimeout(bctx, 120*time.Second)
	defer cancelT()

	err = chromedp.Do(tctx,
		chromedp.Navigate(base+"/domains/example.com"),
		chromedp.WaitVisible(chromedp.CSS(`input[name="password"]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), password),
		chromedp.Submit(chromedp.CSS(`input[name="password"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#promote-form`)),
	)
	if err != nil {
		t.Fatalf("log in and open the domain page: %v", err)
	}
	id, err := chromedp.Run(tctx, chromedp.Evaluate[string](`document.querySelector("#promote-form input[name=id]").value`))
	if err != nil {
		t.Fatal(err)
	}
	panel, err := chromedp.Run(tctx, chromedp.Text(chromedp.CSS(`#promote`)))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"mode: enforce", "v=STSv1; id=" + id, "_mta-sts.example.com.", "The verdict is ready"} {
		if !strings.Contains(panel, want) {
			t.Errorf("the panel lacks %q", want)
		}
	}
	err = chromedp.Do(tctx,
		chromedp.SendKeys(chromedp.CSS(`#reason`), "verdict ready"),
		chromedp.Click(chromedp.CSS(`#promote-button`)),
		chromedp.WaitVisible(chromedp.CSS(`li[data-step="record"][data-state="done"]`)),
		chromedp.WaitVisible(chromedp.CSS(`li[data-step="policy"][data-state="done"]`)),
	)
	if err != nil {
		t.Fatalf("promote the ready domain: %v", err)
	}
	if got := f.pub.DNS.TXT("_mta-sts.example.com"); len(got) != 1 || got[0] != "v=STSv1; id="+id {
		t.Errorf("TXT after the browser's promotion = %q, want id %s", got, id)
	}
	if got := dialogs.Texts(); len(got) != 1 || !strings.Contains(got[0], "enforce for example.com") {
		t.Errorf("confirmation dialogs = %q, want one about enforce for example.com", got)
	}

	// The blocked domain: refused without the override.
	err = chromedp.Do(tctx,
		chromedp.Navigate(base+"/domains/shop.example.com"),
		chromedp.WaitVisible(chromedp.CSS(`#promote-form .blocked`)),
		chromedp.SendKeys(chromedp.CSS(`#reason`), "just try"),
		chromedp.Click(chromedp.CSS(`#promote-button`)),
		chromedp.WaitNotPresent(chromedp.CSS(`#promote-form`)),
	)
	if err != nil {
		t.Fatalf("promote the blocked domain without override: %v", err)
	}
	refusal, err := chromedp.Run(tctx, chromedp.Text(chromedp.CSS(`main`)))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(refusal, "blocked") || !strings.Contains(refusal, "override") {
		t.Errorf("refusal page = %q, want it to name the block and the override", refusal)
	}
	// With the override: the domain typed again and a reason.
	err = chromedp.Do(tctx,
		chromedp.Navigate(base+"/domains/shop.example.com"),
		chromedp.WaitVisible(chromedp.CSS(`#override`)),
		chromedp.Click(chromedp.CSS(`#override`)),
		chromedp.SendKeys(chromedp.CSS(`#confirm`), "shop.example.com"),
		chromedp.SendKeys(chromedp.CSS(`#reason`), "the failing MX leaves today"),
		chromedp.Click(chromedp.CSS(`#promote-button`)),
		chromedp.WaitVisible(chromedp.CSS(`li[data-step="policy"][data-state="done"]`)),
	)
	if err != nil {
		t.Fatalf("promote the blocked domain with override: %v", err)
	}
	entries, err := f.d.AuditLog(ctx, "shop.example.com", 20)
	if err != nil {
		t.Fatal(err)
	}
	var refused, override bool
	for _, e := range entries {
		raw, _ := e.Detail.(json.RawMessage)
		detail := string(raw)
		switch e.Action {
		case "policy.promote.refused":
			refused = e.Actor == AdminUser
		case "policy.override":
			override = e.Actor == AdminUser && strings.Contains(detail, "shop.example.com") && strings.Contains(detail, "the failing MX leaves today")
		}
	}
	if !refused || !override {
		t.Errorf("audit log of shop.example.com = %+v, want the admin's refusal and override with the typed domain and the reason", entries)
	}
}

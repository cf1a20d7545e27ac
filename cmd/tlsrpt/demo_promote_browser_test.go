package main

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tlsrpt/tlsrpt/db/pgembed"
	"github.com/tlsrpt/tlsrpt/internal/browsertest"
	"github.com/tlsrpt/tlsrpt/internal/testreq"
	"github.com/tlsrpt/tlsrpt/reports/reportgen"
)

// TestDemoPromoteBrowser runs the demo in process and drives the whole
// publishing loop in headless Chromium on its ready domain: the live
// check (the demo's DNS, CA and policy host) agrees with the verdict,
// Promote goes live and verified within seconds (the demo's DNS carries
// the new id, its policy host serves mode enforce), and rolling back from
// the page makes testing live again with another id.
func TestDemoPromoteBrowser(t *testing.T) {
	testreq.Chromium(t)
	if _, err := pgembed.FindBinDir(context.Background()); err != nil {
		if testreq.Required("postgres") {
			t.Fatalf("PostgreSQL server binaries: %v", err)
		}
		t.Skipf("PostgreSQL server binaries: %v", err)
	}
	base, user, password, printed := startDemoPrinted(t)
	dnsM := regexp.MustCompile(`Demo DNS:\s+(\S+)`).FindStringSubmatch(printed)
	polM := regexp.MustCompile(`Policy host:\s+https://(\S+)/\.well-known/mta-sts\.txt`).FindStringSubmatch(printed)
	if dnsM == nil || polM == nil {
		t.Fatalf("the demo printed no DNS server or policy host:\n%s", printed)
	}
	dnsAddr, policyAddr := dnsM[1], polM[1]
	d := reportgen.DemoReady

	c := login(t, base, user, password)
	waitDemoVerdicts(t, c, base)

	// Before anything is promoted the demo serves the starting testing
	// policy, and the live check agrees with the reports: no blocker on
	// the ready domain, while the unlisted MX's domain is still blocked
	// (its DNS lists mx3, which its policy does not).
	txtBefore := demoTXT(t, dnsAddr, d)
	if !strings.HasPrefix(txtBefore, "v=STSv1; id=") {
		t.Fatalf("demo DNS _mta-sts.%s TXT = %q before promoting", d, txtBefore)
	}
	if body := demoPolicy(t, policyAddr, d); !strings.Contains(body, "mode: testing\r\n") {
		t.Fatalf("demo policy host serves for %s before promoting:\n%s", d, body)
	}
	for domain, blocker := range map[string]string{d: "", reportgen.DemoUnlistedMX: "mx-not-in-policy"} {
		var v struct {
			Ready    bool `json:"ready"`
			Blockers []struct {
				Code string `json:"code"`
			} `json:"blockers"`
			Evidence struct {
				Policy struct {
					Source string `json:"source"`
				} `json:"policy"`
			} `json:"evidence"`
		}
		getJSON(t, c, base+"/api/v1/domains/"+domain+"/verdict?check=1", &v)
		var codes []string
		for _, b := range v.Blockers {
			codes = append(codes, b.Code)
		}
		if blocker == "" && (!v.Ready || len(codes) > 0) {
			t.Errorf("%s with the live check: ready=%v blockers=%v, want ready without blockers", domain, v.Ready, codes)
		}
		if blocker != "" && (v.Ready || !contains(codes, blocker)) {
			t.Errorf("%s with the live check: ready=%v blockers=%v, want blocked by %s", domain, v.Ready, codes, blocker)
		}
	}

	b := newDialogBrowser(t)
	err := chromedp.Do(b.ctx,
		chromedp.Navigate(base+"/login"),
		chromedp.WaitVisible(chromedp.CSS(`input[name="password"]`)),
		chromedp.SetValue(chromedp.CSS(`input[name="username"]`), user),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), password),
		chromedp.Submit(chromedp.CSS(`input[name="password"]`)),
		chromedp.WaitVisible(chromedp.CSS(`table.overview`)),
		chromedp.Navigate(base+"/domains/"+d+"?check=1"),
		chromedp.WaitVisible(chromedp.CSS(`#promote-form`)),
	)
	if err != nil {
		t.Fatalf("log in and open %s with the live check: %v", d, err)
	}
	notice, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`[...document.querySelectorAll("p.notice")].map(p => p.textContent).join("\n")`))
	for _, want := range []string{"simulated", "DNS", "certificate authority", "policy host", "mailbox"} {
		if !strings.Contains(notice, want) {
			t.Errorf("the demo notice does not say %q is simulated:\n%s", want, notice)
		}
	}
	panel, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS(`#promote`)))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(panel, "The verdict is ready") {
		t.Errorf("with the live check the promote panel is not ready:\n%s", panel)
	}
	check, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS(`#check`)))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(check, "testing-mode") || strings.Contains(check, "error") {
		t.Errorf("the live check of %s:\n%s\nwant only the testing-mode note", d, check)
	}
	id, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.querySelector("#promote-form input[name=id]").value`))
	if err != nil || id == "" {
		t.Fatalf("the id promoting publishes: %q %v", id, err)
	}

	// Promote: the confirmation is accepted, and the page shows both
	// steps done within seconds.
	start := time.Now()
	err = chromedp.Do(b.ctx,
		chromedp.SendKeys(chromedp.CSS(`#reason`), "the demo's ready domain"),
		chromedp.Click(chromedp.CSS(`#promote-button`)),
	)
	if err != nil {
		t.Fatalf("click Promote: %v", err)
	}
	b.waitLive(t, base+"/domains/"+d, "promote", "enforce")
	t.Logf("promoted: live and verified on the page after %s", time.Since(start).Round(100*time.Millisecond))
	if got := demoTXT(t, dnsAddr, d); got != "v=STSv1; id="+id {
		t.Errorf("demo DNS _mta-sts.%s TXT after Promote = %q, want id %s", d, got, id)
	}
	if body := demoPolicy(t, policyAddr, d); !strings.Contains(body, "mode: enforce\r\n") {
		t.Errorf("demo policy host after Promote:\n%s\nwant mode enforce", body)
	}

	// Roll back from the page: testing goes live with a new id.
	start = time.Now()
	err = chromedp.Do(b.ctx,
		chromedp.WaitVisible(chromedp.CSS(`#rollback-form`)),
		chromedp.Click(chromedp.CSS(`#rollback-form input[name="mode"][value="testing"]`)),
		chromedp.SendKeys(chromedp.CSS(`#rollback-form input[name="reason"]`), "the demo rolls back"),
		chromedp.Click(chromedp.CSS(`#rollback-button`)),
	)
	if err != nil {
		t.Fatalf("roll back: %v", err)
	}
	b.waitLive(t, base+"/domains/"+d, "rollback", "testing")
	t.Logf("rolled back: live and verified on the page after %s", time.Since(start).Round(100*time.Millisecond))
	txt := demoTXT(t, dnsAddr, d)
	if txt == "v=STSv1; id="+id || txt == txtBefore || !strings.HasPrefix(txt, "v=STSv1; id=") {
		t.Errorf("demo DNS _mta-sts.%s TXT after the rollback = %q, want a new id (not %s nor %q)", d, txt, id, txtBefore)
	}
	if body := demoPolicy(t, policyAddr, d); !strings.Contains(body, "mode: testing\r\n") {
		t.Errorf("demo policy host after the rollback:\n%s\nwant mode testing", body)
	}
	if got := b.dialogs.Texts(); len(got) != 2 || !strings.Contains(got[0], "enforce for "+d) || !strings.Contains(got[1], d) {
		t.Errorf("confirmation dialogs = %q, want one for Promote and one for the rollback of %s", got, d)
	}
}

// dialogBrowser is headless Chromium that accepts every confirmation
// dialog and keeps its text.
type dialogBrowser struct {
	ctx     context.Context
	dialogs *browsertest.Dialogs
}

func newDialogBrowser(t *testing.T) *dialogBrowser {
	t.Helper()
	bctx := browsertest.New(t, 1280, 1000)
	b := &dialogBrowser{dialogs: browsertest.AcceptDialogs(t, bctx)}
	ctx, cancelT := context.WithTimeout(bctx, 4*time.Minute)
	t.Cleanup(cancelT)
	b.ctx = ctx
	return b
}

// waitLive reloads the domain page until its newest version is of kind
// and mode with both steps done and verified, for at most 20 seconds.
func (b *dialogBrowser) waitLive(t *testing.T, u, kind, mode string) {
	t.Helper()
	const js = `(() => {
  const h = [...document.querySelectorAll("#promote h3")].find(e => e.textContent.startsWith("Publishing version"));
  const steps = [...document.querySelectorAll("#steps li[data-step]")].map(li => li.dataset.step + "=" + li.dataset.state);
  const muted = h && h.parentElement.querySelector("ol#steps + p.muted");
  return (h ? h.textContent : "no version") + " | " + steps.join(" ") + " | " + (muted ? muted.textContent : "");
})()`
	want := "(" + kind + ", mode " + mode + ")"
	deadline := time.Now().Add(20 * time.Second)
	var state string
	for {
		// The first look is at the page the form's answer led to.
		got, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](js))
		if err != nil {
			t.Fatalf("reading the steps: %v", err)
		}
		state = got
		if strings.Contains(state, want) && strings.Contains(state, "policy=done") && strings.Contains(state, "record=done") &&
			strings.Contains(state, "Verified live") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not live and verified within 20 s: %s", want, state)
		}
		time.Sleep(time.Second)
		if err := chromedp.Do(b.ctx, chromedp.Navigate(u), chromedp.WaitVisible(chromedp.CSS(`#promote`))); err != nil {
			t.Fatalf("reloading %s: %v", u, err)
		}
	}
}

// demoTXT is the _mta-sts TXT record of domain as the demo's DNS server
// answers it.
func demoTXT(t *testing.T, dnsAddr, domain string) string {
	t.Helper()
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, dnsAddr)
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	txt, err := r.LookupTXT(ctx, "_mta-sts."+domain)
	if err != nil {
		t.Fatalf("asking the demo DNS for _mta-sts.%s: %v", domain, err)
	}
	return strings.Join(txt, " / ")
}

// demoPolicy is the policy file the demo's policy host serves for
// domain. The certificate is the demo CA's, checked by the page's live
// state; here only the body matters.
func demoPolicy(t *testing.T, policyAddr, domain string) string {
	t.Helper()
	host := "mta-sts." + domain
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{ServerName: host, InsecureSkipVerify: true}, //nolint:gosec // the demo CA's root is not exposed; verification is the product's, checked above
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, policyAddr)
		},
	}}
	resp, err := c.Get("https://" + host + "/.well-known/mta-sts.txt")
	if err != nil {
		t.Fatalf("fetching the policy of %s from the demo's policy host: %v", domain, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the demo's policy host for %s: %s\n%s", domain, resp.Status, body)
	}
	return string(body)
}

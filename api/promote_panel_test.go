package api

import (
	"net/http"
	"strings"
	"testing"
)

// TestPromotePanelDownload: an operator hosting the file is offered the
// proposed policy while tlsrpt has published no version (the newest
// version's download is a 404 then), and the newest version once there is
// one.
func TestPromotePanelDownload(t *testing.T) {
	f := newFlowEnv(t, false, nil)
	seedDomain(t, f.d, testNow, "shop.example.com", 20, 0)
	admin := f.login("admin")
	body := f.do(admin, request{method: http.MethodGet, path: "/domains/shop.example.com"}).Body.String()
	if !strings.Contains(body, `href="/domains/shop.example.com/mta-sts.txt?proposed=1"`) || !strings.Contains(body, "Download the proposed policy file") {
		t.Error("with no version the panel does not offer the proposed policy")
	}
	if strings.Contains(body, `href="/domains/shop.example.com/mta-sts.txt"`) {
		t.Error("with no version the panel links the newest version's download")
	}
	if rec := f.do(admin, request{method: http.MethodGet, path: "/domains/shop.example.com/mta-sts.txt"}); rec.Code != http.StatusNotFound {
		t.Errorf("newest version's download with no version = %d, want 404", rec.Code)
	}
	dl := f.do(admin, request{method: http.MethodGet, path: "/domains/shop.example.com/mta-sts.txt?proposed=1"})
	if dl.Code != http.StatusOK || !strings.Contains(dl.Body.String(), "mode: enforce\r\n") || !strings.Contains(dl.Body.String(), "mx: mx1.shop.example.com\r\n") ||
		!strings.Contains(dl.Header().Get("Content-Disposition"), "attachment") {
		t.Errorf("proposed download = %d %q %q, want the enforce policy as an attachment", dl.Code, dl.Body, dl.Header().Get("Content-Disposition"))
	}

	rec := f.do(f.token("admin"), jsonReq(http.MethodPost, "/api/v1/domains/shop.example.com/promote", `{}`))
	if rec.Code != http.StatusCreated {
		t.Fatalf("POST promote = %d %s", rec.Code, rec.Body)
	}
	body = f.do(admin, request{method: http.MethodGet, path: "/domains/shop.example.com"}).Body.String()
	if !strings.Contains(body, `href="/domains/shop.example.com/mta-sts.txt"`) || strings.Contains(body, "?proposed=1") {
		t.Error("with a version the panel does not link the newest version's download alone")
	}
	// In enforce nothing is proposed.
	if rec := f.do(admin, request{method: http.MethodGet, path: "/domains/shop.example.com/mta-sts.txt?proposed=1"}); rec.Code != http.StatusNotFound {
		t.Errorf("proposed download in enforce = %d, want 404", rec.Code)
	}
}

// TestPromotePanelWaysBack: a domain in testing is not offered "Back to
// testing", only retirement (checked, so the form cannot send a
// rollback); a domain in enforce is offered both.
func TestPromotePanelWaysBack(t *testing.T) {
	f := newFlowEnv(t, true, nil)
	seedDomain(t, f.d, testNow, "example.com", 20, 0)
	admin := f.login("admin")
	body := f.do(admin, request{method: http.MethodGet, path: "/domains/example.com"}).Body.String()
	if strings.Contains(body, "Back to testing") || strings.Contains(body, `value="testing"`) {
		t.Error("a domain in testing is offered Back to testing")
	}
	if !strings.Contains(body, `<input type="radio" name="mode" value="none" checked>`) {
		t.Error("a domain in testing is not offered retirement, checked")
	}
	rec := f.do(f.token("admin"), jsonReq(http.MethodPost, "/api/v1/domains/example.com/promote", `{}`))
	if rec.Code != http.StatusCreated {
		t.Fatalf("POST promote = %d %s", rec.Code, rec.Body)
	}
	body = f.do(admin, request{method: http.MethodGet, path: "/domains/example.com"}).Body.String()
	if !strings.Contains(body, `<input type="radio" name="mode" value="testing" checked> Back to testing`) ||
		!strings.Contains(body, `<input type="radio" name="mode" value="none">`) {
		t.Error("a domain in enforce is not offered Back to testing (checked) and retirement")
	}
}

// TestPromotePanelProposalOnce: the policy a promotion publishes is shown
// once, in the panel; the verdict points there.
func TestPromotePanelProposalOnce(t *testing.T) {
	f := newFlowEnv(t, true, nil)
	seedDomain(t, f.d, testNow, "example.com", 20, 0)
	body := f.do(f.login("viewer"), request{method: http.MethodGet, path: "/domains/example.com"}).Body.String()
	if n := strings.Count(body, "mode: enforce"); n != 1 {
		t.Errorf("the domain page shows the proposed policy %d times, want once", n)
	}
	if strings.Contains(body, "<h3>Proposed policy</h3>") || !strings.Contains(body, `under <a href="#promote">Promote</a>`) {
		t.Error("the verdict repeats the proposal instead of pointing at the panel")
	}
}

// TestPromotePanelMaxAge: one day of max_age reads "1 day".
func TestPromotePanelMaxAge(t *testing.T) {
	f := newFlowEnv(t, true, nil)
	seedDomain(t, f.d, testNow, "example.com", 20, 0) // max_age: 86400
	body := f.do(f.login("viewer"), request{method: http.MethodGet, path: "/domains/example.com"}).Body.String()
	if !strings.Contains(body, "at least max_age (1 day)") || strings.Contains(body, "1 days") {
		t.Error(`the mx move steps do not say "max_age (1 day)"`)
	}
	for _, tc := range []struct {
		sec  int64
		want string
	}{{86400, "1 day"}, {604800, "7 days"}, {3600, "1h0m0s (3600 s)"}, {90000, "25h0m0s (90000 s)"}} {
		if got := age(tc.sec); got != tc.want {
			t.Errorf("age(%d) = %q, want %q", tc.sec, got, tc.want)
		}
	}
}

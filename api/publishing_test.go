package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/rollout/pubconf"
)

// newPublishingEnv is a server whose environment holds the secret
// TLSRPT_SECRET_TSIG only, with example.com on the list.
func newPublishingEnv(t *testing.T) *testEnv {
	t.Helper()
	vars := map[string]string{"TLSRPT_SECRET_TSIG": "c2VjcmV0"}
	e := newTestEnv(t, func(c *Config) { c.Getenv = func(k string) string { return vars[k] } })
	if _, _, err := e.d.AddDomain(context.Background(), "example.com"); err != nil {
		t.Fatal(err)
	}
	return e
}

func decodeView(t *testing.T, body []byte) pubconf.View {
	t.Helper()
	var v pubconf.View
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("decoding %s: %v", body, err)
	}
	return v
}

func TestPublishingAPI(t *testing.T) {
	e := newPublishingEnv(t)
	viewer, admin := e.token(db.RoleViewer), e.token(db.RoleAdmin)
	put := func(w who, path, body string) *http.Response {
		t.Helper()
		return e.do(w, request{method: http.MethodPut, path: path, body: body, ctype: "application/json", withCSRF: w.cookie != ""}).Result()
	}
	const domainPath, defaultPath = "/api/v1/domains/example.com/publishing", "/api/v1/publishing/default"
	for _, p := range []string{domainPath, defaultPath} {
		if rec := e.do(anonymous, request{method: http.MethodGet, path: p}); rec.Code != http.StatusUnauthorized {
			t.Errorf("GET %s anonymous = %d, want 401", p, rec.Code)
		}
		if r := put(viewer, p, `{"policy":"hosted"}`); r.StatusCode != http.StatusForbidden {
			t.Errorf("PUT %s as viewer = %d, want 403", p, r.StatusCode)
		}
		if r := put(e.login(db.RoleViewer), p, `{"policy":"hosted"}`); r.StatusCode != http.StatusForbidden {
			t.Errorf("PUT %s as viewer session = %d, want 403", p, r.StatusCode)
		}
	}
	rec := e.do(viewer, request{method: http.MethodGet, path: domainPath})
	if v := decodeView(t, rec.Body.Bytes()); rec.Code != http.StatusOK || v.Setting.Source != db.PublishingBuiltIn || v.Setting.Policy != "download" || v.Secret != nil {
		t.Fatalf("GET publishing with nothing stored = %d, %+v", rec.Code, v)
	}
	// 422 names the field; an unknown field is a 400.
	rec = e.do(admin, request{method: http.MethodPut, path: domainPath, body: `{"record":"rfc2136","server":"no-port"}`, ctype: "application/json"})
	var eb struct {
		Error struct {
			Status  int
			Message string
			Field   string
		}
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &eb); rec.Code != http.StatusUnprocessableEntity || err != nil || eb.Error.Field != "server" ||
		!strings.HasPrefix(eb.Error.Message, "server: ") || strings.Contains(eb.Error.Message, "db: ") {
		t.Errorf("PUT a bad server = %d %s, want 422 naming server", rec.Code, rec.Body)
	}
	if rec := e.do(admin, request{method: http.MethodPut, path: domainPath, body: `{"secret":"x"}`, ctype: "application/json"}); rec.Code != http.StatusBadRequest {
		t.Errorf("PUT with an unknown field = %d, want 400", rec.Code)
	}
	if rec := e.do(admin, request{method: http.MethodPut, path: "/api/v1/domains/other.example/publishing", body: `{"policy":"hosted"}`, ctype: "application/json"}); rec.Code != http.StatusNotFound {
		t.Errorf("PUT for a domain not on the list = %d, want 404", rec.Code)
	}
	rec = e.do(admin, request{method: http.MethodPut, path: defaultPath, body: `{"policy":"hosted","record":"hetzner","credential":"hz"}`, ctype: "application/json"})
	v := decodeView(t, rec.Body.Bytes())
	if rec.Code != http.StatusOK || v.Domain != "*" || v.Setting.Source != db.PublishingFromDefault || v.Secret == nil || v.Secret.Present || v.Secret.Variable != "TLSRPT_SECRET_HZ" {
		t.Fatalf("PUT default = %d, %+v (secret %+v)", rec.Code, v, v.Secret)
	}
	rec = e.do(viewer, request{method: http.MethodGet, path: domainPath})
	if v := decodeView(t, rec.Body.Bytes()); v.Setting.Source != db.PublishingFromDefault || v.Setting.Record != "hetzner" {
		t.Errorf("GET domain under the default = %+v", v)
	}
	// A session needs the CSRF header; a token does not.
	sess := e.login(db.RoleAdmin)
	body := `{"record":"rfc2136","server":"192.0.2.53:53","tsig_key":"k","credential":"tsig"}`
	if rec := e.do(sess, request{method: http.MethodPut, path: domainPath, body: body, ctype: "application/json"}); rec.Code != http.StatusForbidden {
		t.Errorf("PUT as admin session without the CSRF token = %d, want 403", rec.Code)
	}
	r := put(sess, domainPath, body)
	var got pubconf.View
	if err := json.NewDecoder(r.Body).Decode(&got); r.StatusCode != http.StatusOK || err != nil {
		t.Fatalf("PUT domain as admin session = %d, %v", r.StatusCode, err)
	}
	if got.Setting.Source != db.PublishingFromDomain || got.Setting.Policy != "hosted" || got.Setting.Credential != "TSIG" ||
		got.Secret == nil || !got.Secret.Present || got.Setting.UpdatedBy != "admin-user" {
		t.Errorf("PUT domain = %+v (secret %+v); want its own setting, the policy kept from the default, the secret present", got.Setting, got.Secret)
	}
	entries, err := e.d.AuditLog(context.Background(), "example.com", 10)
	if err != nil || len(entries) != 1 || entries[0].Action != "settings.publishing" || entries[0].Actor != "admin-user" {
		t.Fatalf("audit log of example.com = %+v, %v", entries, err)
	}
	var detail map[string]any
	if err := json.Unmarshal(entries[0].Detail.(json.RawMessage), &detail); err != nil || detail["server"] != "192.0.2.53:53" || detail["previous_source"] != "default" {
		t.Errorf("audit detail = %v, %v", detail, err)
	}
	all, _ := e.d.AuditLog(context.Background(), "", 10)
	if len(all) != 2 || all[1].Action != "settings.publishing" || all[1].Domain != "" {
		t.Errorf("audit log = %+v, want the default's entry too", all)
	}
	if rec := e.do(viewer, request{method: http.MethodDelete, path: domainPath}); rec.Code != http.StatusForbidden {
		t.Errorf("DELETE as viewer = %d, want 403", rec.Code)
	}
	rec = e.do(admin, request{method: http.MethodDelete, path: domainPath})
	if v := decodeView(t, rec.Body.Bytes()); rec.Code != http.StatusOK || v.Setting.Source != db.PublishingFromDefault || v.Setting.Record != "hetzner" {
		t.Errorf("DELETE = %d, %+v; want the default again", rec.Code, v)
	}
	if entries, _ := e.d.AuditLog(context.Background(), "example.com", 1); len(entries) != 1 || entries[0].Action != "settings.publishing.reset" {
		t.Errorf("audit log after DELETE = %+v", entries)
	}
}

func TestPublishingForm(t *testing.T) {
	e := newPublishingEnv(t)
	admin := e.login(db.RoleAdmin)
	const action = "/settings/domains/example.com/publishing"
	form := url.Values{"policy": {"hosted"}, "record": {"rfc2136"}, "server": {"<script>alert(1)</script>"}, "tsig_key": {"k"}, "credential": {"TSIG"}}
	if rec := e.do(admin, request{method: http.MethodPost, path: action, form: form}); rec.Code != http.StatusForbidden {
		t.Errorf("POST the form without the CSRF token = %d, want 403", rec.Code)
	}
	if rec := e.do(e.login(db.RoleViewer), request{method: http.MethodPost, path: action, form: form, withCSRF: true}); rec.Code != http.StatusForbidden {
		t.Errorf("POST the form as viewer = %d, want 403", rec.Code)
	}
	rec := e.do(admin, request{method: http.MethodPost, path: action, form: form, withCSRF: true})
	page := rec.Body.String()
	if rec.Code != http.StatusUnprocessableEntity || !strings.Contains(page, `<small class="error">&#34;&lt;script&gt;alert(1)&lt;/script&gt;&#34; is not host:port`) ||
		strings.Contains(page, "<script>alert(1)") || !strings.Contains(page, `value="&lt;script&gt;alert(1)&lt;/script&gt;"`) {
		t.Fatalf("POST a bad server = %d; want 422 with the message next to the field and the typed value escaped:\n%s", rec.Code, page)
	}
	if got, _ := e.d.Publishing(context.Background(), "example.com"); got.Source != db.PublishingBuiltIn {
		t.Errorf("a refused form stored %+v", got)
	}
	form.Set("server", "192.0.2.53:53")
	rec = e.do(admin, request{method: http.MethodPost, path: action, form: form, withCSRF: true})
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/settings/domains/example.com?done=publishing#publishing" {
		t.Fatalf("POST the form = %d, %q", rec.Code, rec.Header().Get("Location"))
	}
	rec = e.do(admin, request{method: http.MethodGet, path: "/settings/domains/example.com"})
	if page := rec.Body.String(); !strings.Contains(page, "This domain&#39;s own setting") || !strings.Contains(page, "secret TLSRPT_SECRET_TSIG: set in this server's environment") {
		t.Errorf("settings page after saving:\n%s", page)
	}
	if got, _ := e.d.Publishing(context.Background(), "example.com"); got.Server != "192.0.2.53:53" || got.UpdatedBy != "admin-user" {
		t.Errorf("stored %+v", got)
	}
	if !strings.Contains(rec.Body.String(), `action="/settings/domains/example.com/publishing/reset"`) {
		t.Errorf("no \"Use the fleet default\" on a domain with its own setting")
	}
	if rec := e.do(admin, request{method: http.MethodPost, path: action + "/reset", withCSRF: true}); rec.Code != http.StatusSeeOther {
		t.Errorf("POST reset = %d", rec.Code)
	}
	if got, _ := e.d.Publishing(context.Background(), "example.com"); got.Source != db.PublishingBuiltIn {
		t.Errorf("after the reset = %+v, want the built-in default", got)
	}
	// The fleet default on the settings page.
	rec = e.do(admin, request{method: http.MethodPost, path: "/settings/publishing", withCSRF: true,
		form: url.Values{"policy": {"download"}, "record": {"cloudflare"}, "credential": {"cf_prod"}}})
	if rec.Code != http.StatusSeeOther {
		t.Fatalf("POST the default form = %d: %s", rec.Code, rec.Body)
	}
	rec = e.do(e.login(db.RoleViewer), request{method: http.MethodGet, path: "/settings"})
	if page := rec.Body.String(); !strings.Contains(page, "secret TLSRPT_SECRET_CF_PROD: missing in this server's environment") ||
		!strings.Contains(page, "The stored fleet default") {
		t.Errorf("settings page after saving the default:\n%s", page)
	}
	rec = e.do(admin, request{method: http.MethodPost, path: "/settings/publishing", withCSRF: true, form: url.Values{"policy": {"sometimes"}, "record": {"manual"}}})
	if rec.Code != http.StatusUnprocessableEntity || !strings.Contains(rec.Body.String(), `<small class="error">&#34;sometimes&#34; is not hosted or download`) {
		t.Errorf("POST a bad default policy = %d", rec.Code)
	}
	n := 0
	entries, _ := e.d.AuditLog(context.Background(), "", 10)
	for _, en := range entries {
		if en.Action == "settings.publishing" {
			n++
		}
	}
	if n != 2 {
		t.Errorf("%d settings.publishing entries, want 2 (refused forms are not audited)", n)
	}
}

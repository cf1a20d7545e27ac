package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/tlsrpt/tlsrpt/api"
	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/db/dbtest"
	"github.com/tlsrpt/tlsrpt/rollout"
	"github.com/tlsrpt/tlsrpt/rollout/pubconf"
)

// runWithEnv runs a command with the variables vars (and no others).
func runWithEnv(vars map[string]string, args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	env := &Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut, Getenv: func(k string) string { return vars[k] }}
	code = Main(context.Background(), args, env)
	return code, out.String(), errOut.String()
}

func TestPublishingCommand(t *testing.T) {
	url := dbtest.NewURL(t, true)
	vars := map[string]string{"DATABASE_URL": url, "TLSRPT_SECRET_TSIG": "c2VjcmV0"}
	run := func(args ...string) (int, string, string) {
		t.Helper()
		return runWithEnv(vars, append([]string{"publishing"}, args...)...)
	}
	if code, _, errOut := runWithEnv(vars, "domain", "add", "example.com"); code != 0 {
		t.Fatalf("domain add = %d, %s", code, errOut)
	}
	for _, args := range [][]string{
		{"a.example", "b.example"},
		{"example.com", "--default"},
		{"--policy", "hosted"},
		{"example.com", "--bogus"},
		{"example.com", "--policy", "served"},
		{"example.com", "--record", "rfc2136", "--server", "no-port"},
		{"example.com", "--record", "manual", "--server", "192.0.2.1:53"},
		{"example.com", "--record", "cloudflare", "--credential", "not-a-name"},
		{"not a domain"},
	} {
		if code, _, errOut := run(args...); code != exitUsage {
			t.Errorf("publishing %s = %d (%s), want %d", strings.Join(args, " "), code, errOut, exitUsage)
		}
	}
	if _, _, errOut := run("example.com", "--policy", "served"); !strings.Contains(errOut, "--policy") || strings.Contains(errOut, "db: ") {
		t.Errorf("publishing --policy served says %q, want the flag named without a package prefix", errOut)
	}
	code, out, errOut := run("example.com")
	if code != 0 || !strings.Contains(out, "example.com: from the built-in default") || !strings.Contains(out, "download") || !strings.Contains(out, "manual") {
		t.Fatalf("publishing example.com = %d, %q, %q", code, out, errOut)
	}
	code, out, errOut = run("--default", "--policy", "hosted", "--record", "hetzner", "--credential", "hz")
	if code != 0 || !strings.Contains(out, "fleet default: from the stored fleet default") || !strings.Contains(out, "TLSRPT_SECRET_HZ: missing in this environment") {
		t.Fatalf("publishing --default --record hetzner = %d, %q, %q", code, out, errOut)
	}
	code, out, _ = run("example.com")
	if code != 0 || !strings.Contains(out, "from the fleet default") || !strings.Contains(out, "record          hetzner") {
		t.Errorf("publishing example.com under the default = %d, %q", code, out)
	}
	// Flags after the domain; the fields not given keep the default's.
	code, out, errOut = run("example.com", "--record", "rfc2136", "--server", "127.0.0.1:53", "--tsig-key", "k", "--credential", "tsig")
	if code != 0 || !strings.Contains(out, "example.com: from its own setting") || !strings.Contains(out, "TLSRPT_SECRET_TSIG: set in this environment") ||
		!strings.Contains(out, "hosted") {
		t.Fatalf("publishing example.com --record rfc2136 ... = %d, %q, %q", code, out, errOut)
	}
	code, out, _ = run("--json", "example.com")
	var v pubconf.View
	if err := json.Unmarshal([]byte(out), &v); code != 0 || err != nil {
		t.Fatalf("publishing --json = %d, %v: %s", code, err, out)
	}
	if v.Domain != "example.com" || v.Setting.Source != db.PublishingFromDomain || v.Setting.Server != "127.0.0.1:53" || v.Setting.Credential != "TSIG" ||
		v.Setting.UpdatedBy != "cli" || v.Secret == nil || !v.Secret.Present || v.Secret.Variable != "TLSRPT_SECRET_TSIG" {
		t.Errorf("publishing --json = %+v (secret %+v)", v, v.Secret)
	}
	// The secret itself is never printed or stored.
	if strings.Contains(out, "c2VjcmV0") {
		t.Errorf("publishing --json shows the secret: %s", out)
	}
	// Another domain still follows the default.
	code, out, _ = run("other.example", "--json")
	if err := json.Unmarshal([]byte(out), &v); code != 0 || err != nil || v.Setting.Source != db.PublishingFromDefault || v.Setting.Record != "hetzner" {
		t.Errorf("publishing other.example = %d, %+v, %v", code, v, err)
	}
	// Changing a domain that is not on the list fails.
	if code, _, errOut := run("other.example", "--policy", "hosted"); code != exitFailed || !strings.Contains(errOut, "tlsrpt domain add other.example") {
		t.Errorf("publishing other.example --policy hosted = %d, %q; want 1", code, errOut)
	}
	// Switching method drops the fields the new one does not use.
	if code, out, _ := run("example.com", "--record", "manual", "--json"); code != 0 || !strings.Contains(out, `"server": ""`) {
		t.Errorf("publishing --record manual = %d, %s", code, out)
	}
	if code, _, _ := run("example.com", "--reset", "--policy", "hosted"); code != exitUsage {
		t.Errorf("publishing --reset with a change = %d, want %d", code, exitUsage)
	}
	if code, _, _ := run("--default", "--reset"); code != exitUsage {
		t.Errorf("publishing --default --reset = %d, want %d", code, exitUsage)
	}
	code, out, _ = run("--json")
	var list []pubconf.View
	if err := json.Unmarshal([]byte(out), &list); code != 0 || err != nil || len(list) != 2 || list[0].Domain != "*" || list[1].Domain != "example.com" {
		t.Errorf("publishing (list) = %d, %v: %s", code, err, out)
	}
	code, out, _ = run("example.com", "--reset")
	if code != 0 || !strings.Contains(out, "example.com: from the fleet default") {
		t.Errorf("publishing example.com --reset = %d, %q", code, out)
	}
	d, err := db.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if resets, _ := d.AuditLog(context.Background(), "example.com", 1); len(resets) != 1 || resets[0].Action != "settings.publishing.reset" {
		t.Errorf("audit log after --reset = %+v", resets)
	}
	entries, err := d.AuditLog(context.Background(), "", 20)
	var perDomain, fleet int
	for _, e := range entries {
		if e.Action == "settings.publishing" && e.Actor == "cli" {
			if e.Domain == "example.com" {
				perDomain++
			} else if e.Domain == "" {
				fleet++
			}
		}
	}
	if err != nil || perDomain != 2 || fleet != 1 {
		t.Errorf("audit log has %d domain and %d default publishing entries (%v), want 2 and 1", perDomain, fleet, err)
	}
}

// TestPublishingLegacyImport: tlsrpt migrate writes the old variables
// into the fleet default once; a later start with other variables keeps
// it and warns.
func TestPublishingLegacyImport(t *testing.T) {
	url := dbtest.NewURL(t, false)
	old := map[string]string{"DATABASE_URL": url, "TLSRPT_HOST_POLICY": "1", "TLSRPT_DNS_UPDATE_SERVER": "127.0.0.1:5353",
		"TLSRPT_TSIG_KEY": "old-key", "TLSRPT_TSIG_SECRET": "b2xkLXNlY3JldA=="}
	code, _, errOut := runWithEnv(old, "migrate")
	if code != 0 || !strings.Contains(errOut, "Imported the publishing variables") {
		t.Fatalf("migrate with the old variables = %d, %q", code, errOut)
	}
	code, out, _ := runWithEnv(old, "publishing", "--default", "--json")
	var v pubconf.View
	if err := json.Unmarshal([]byte(out), &v); code != 0 || err != nil {
		t.Fatalf("publishing --default = %d, %v", code, err)
	}
	if v.Setting.Source != db.PublishingFromDefault || v.Setting.Policy != "hosted" || v.Setting.Record != "rfc2136" ||
		v.Setting.Server != "127.0.0.1:5353" || v.Setting.Credential != "TSIG" || v.Secret == nil || !v.Secret.Present || v.Secret.Variable != "TLSRPT_TSIG_SECRET" {
		t.Errorf("imported default = %+v (secret %+v)", v.Setting, v.Secret)
	}
	if strings.Contains(out, "b2xkLXNlY3JldA==") {
		t.Errorf("the secret was shown: %s", out)
	}
	other := map[string]string{"DATABASE_URL": url, "TLSRPT_DNS_PROVIDER": "cloudflare"}
	code, _, errOut = runWithEnv(other, "migrate")
	if code != 0 || strings.Contains(errOut, "Imported") || strings.Count(errOut, "level=WARN") != 1 || !strings.Contains(errOut, "tlsrpt publishing --default") {
		t.Errorf("migrate with other variables = %d, %q; want one warning naming the setting that wins", code, errOut)
	}
	code, out, _ = runWithEnv(other, "publishing", "--default", "--json")
	if err := json.Unmarshal([]byte(out), &v); code != 0 || err != nil || v.Setting.Record != "rfc2136" {
		t.Errorf("default after the second migrate = %+v, %v", v.Setting, err)
	}
	d, err := db.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	entries, _ := d.AuditLog(context.Background(), "", 20)
	n := 0
	for _, e := range entries {
		if e.Action == pubconf.ImportAction {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d import entries in the audit log, want 1", n)
	}
}

// TestPublishingServeStart starts serve with the old variables and
// without the token they name: it imports them, audits it as serve, and
// starts (the missing secret is a warning naming the variable, not a
// refusal to start).
func TestPublishingServeStart(t *testing.T) {
	store := dbtest.New(t)
	var stderr syncBuilder
	vars := map[string]string{"TLSRPT_HOST_POLICY": "1", "TLSRPT_DNS_PROVIDER": "hetzner"}
	env := &Env{Stdout: &strings.Builder{}, Stderr: &stderr, Getenv: func(k string) string { return vars[k] }}
	ready := make(chan string, 1)
	a := &app{env: env, cfg: &serveConfig{web: api.Settings{Listen: "127.0.0.1:0"}}, log: newLogger(env, &serveConfig{}), store: store,
		ready: func(addr, _ string) { ready <- addr }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.run(ctx) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("run() = %v before it was ready; stderr:\n%s", err, stderr.String())
	case <-time.After(time.Minute):
		t.Fatal("server not ready within a minute")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("run() after cancel = %v", err)
	}
	log := stderr.String()
	if !strings.Contains(log, "Imported the publishing variables") || !strings.Contains(log, "TLSRPT_SECRET_HETZNER") {
		t.Errorf("serve's log does not tell the import and the missing secret:\n%s", log)
	}
	p, err := store.Publishing(context.Background(), "example.com")
	if err != nil || p.Source != db.PublishingFromDefault || p.Policy != "hosted" || p.Record != "hetzner" || p.UpdatedBy != "serve" {
		t.Errorf("default after serve's start = %+v, %v", p, err)
	}
}

// The promoter's per-domain hook publishes every domain by its stored
// setting (its own row, else the default), with the secret read by name
// from the process's environment: a missing secret is the push's cause.
func TestPublishingHook(t *testing.T) {
	d := dbtest.New(t)
	ctx := context.Background()
	vars := map[string]string{}
	getenv := func(k string) string { return vars[k] }
	hook := publishingHook(d, getenv, false)
	if c, err := hook(ctx, "example.com"); err != nil || c.HostPolicy || c.Records != nil {
		t.Fatalf("hook(nothing stored) = %+v, %v; want download and by hand", c, err)
	}
	if c, err := publishingHook(d, getenv, true)(ctx, "example.com"); err != nil || !c.HostPolicy {
		t.Errorf("hook(forced hosting) = %+v, %v", c, err)
	}
	if _, err := d.SetPublishing(ctx, db.Publishing{Domain: db.DefaultPublishing, Policy: "hosted", Record: "rfc2136", Server: "127.0.0.1:53", TSIGKey: "k", Credential: "DNS"}, "test"); err != nil {
		t.Fatal(err)
	}
	c, err := hook(ctx, "example.com")
	if err != nil || !c.HostPolicy || c.Records == nil || c.Records.Method() != rollout.RecordRFC2136 {
		t.Fatalf("hook(missing secret) = %+v, %v", c, err)
	}
	if err := c.Records.PublishTXT(ctx, "_mta-sts.example.com", "v=STSv1; id=1"); err == nil || !strings.Contains(err.Error(), "TLSRPT_SECRET_DNS") {
		t.Errorf("a push without the secret = %v, want the variable named", err)
	}
	vars["TLSRPT_SECRET_DNS"] = "c2VjcmV0"
	if c, err = hook(ctx, "example.com"); err != nil {
		t.Fatal(err)
	}
	if u, ok := c.Records.(*rollout.DNSUpdate); !ok || u.Secret != "c2VjcmV0" || u.KeyName != "k" || u.Server != "127.0.0.1:53" {
		t.Errorf("hook() publisher = %#v", c.Records)
	}
	// A domain's own row wins over the default.
	if _, err := d.SetPublishing(ctx, db.Publishing{Domain: "example.org", Policy: "download", Record: "manual"}, "test"); err != nil {
		t.Fatal(err)
	}
	if c, err := hook(ctx, "example.org"); err != nil || c.HostPolicy || c.Records != nil {
		t.Errorf("hook(example.org, own row download/manual) = %+v, %v", c, err)
	}
}

package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tlsrpt/tlsrpt/rollout"
)

// TestServeVerificationPolicyPort (review item 5): serve's own
// verification uses its live-check inspector on TLSRPT_POLICY_PORT, the
// same checks as "tlsrpt status". Fails on the old code: serve's checker
// was nil and the server fell back to the inspector without the policy
// port, dialling 443 and staying pending.
func TestServeVerificationPolicyPort(t *testing.T) {
	e := newPublishEnv(t)
	if code, _, errOut := e.run(t, statusSecret, e.withFlags("promote", "example.com", "--wait", "30s")...); code != exitPublished {
		t.Fatalf("promote --wait = %d, stderr %q", code, errOut)
	}
	port := ""
	for i, a := range e.common {
		if a == "--policy-port" {
			port = e.common[i+1]
		}
	}
	pki := ""
	for i, a := range e.common {
		if a == "--ca-file" {
			pki = filepath.Dir(e.common[i+1])
		}
	}
	roots, err := loadCheckRoots(filepath.Join(pki, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{"TLSRPT_POLICY_PORT": port, "TLSRPT_HOST_POLICY": "1"}
	env := &Env{Getenv: func(k string) string { return vars[k] }, Stderr: &strings.Builder{}, Stdout: &strings.Builder{}}
	serveInspector := &rollout.Inspector{Resolver: e.zone.Addr, AllowPrivate: true, RootCAs: roots}
	sp, err := publishingFromEnv(env, serveInspector)
	if err != nil {
		t.Fatal(err)
	}
	if sp.cfg.Checker == nil {
		t.Fatal("serve's publishing has no checker")
	}
	if !sp.cfg.Checker.SkipSMTP {
		t.Error("serve's verification runs the STARTTLS probe")
	}
	res := sp.cfg.Checker.Check(context.Background(), "example.com")
	if !res.Policy.Valid || res.Policy.Mode != rollout.ModeEnforce {
		t.Errorf("serve's verification of the hosted policy = %+v, want the enforce policy fetched on port %s", res.Policy, port)
	}
}

// TestMXMoveCommand: mx-move publishes the new mx list with a new id in
// the same mode like promote; without --mx it is a usage error, the same
// list again is refused.
func TestMXMoveCommand(t *testing.T) {
	e := newPublishEnv(t)
	if code, _, errOut := e.run(t, statusSecret, e.withFlags("promote", "example.com", "--wait", "30s")...); code != exitPublished {
		t.Fatalf("promote --wait = %d, stderr %q", code, errOut)
	}
	if code, _, errOut := e.run(t, statusSecret, e.withFlags("mx-move", "example.com")...); code != exitUsage || !strings.Contains(errOut, "--mx") {
		t.Errorf("mx-move without --mx = %d %q, want %d", code, errOut, exitUsage)
	}
	code, out, errOut := e.run(t, statusSecret, e.withFlags("mx-move", "example.com", "--mx", "mx1.example.com,mx.new.example", "--wait", "30s", "--json")...)
	if code != exitPublished {
		t.Fatalf("mx-move --wait = %d\n%s\n%s", code, out, errOut)
	}
	v, err := e.d.LatestPolicyVersion(context.Background(), "example.com")
	if err != nil || v.Kind != rollout.KindMXMove || v.Policy.Mode != rollout.ModeEnforce || strings.Join(v.Policy.MX, " ") != "mx1.example.com mx.new.example" || v.VerifiedAt == nil {
		t.Errorf("version after mx-move = %+v %v, want an enforce mx-move with the new list, verified", v, err)
	}
	if got := e.zone.TXT("_mta-sts.example.com"); len(got) != 1 || got[0] != "v=STSv1; id="+v.ID {
		t.Errorf("TXT after mx-move = %q, want id %s", got, v.ID)
	}
	if code, _, errOut := e.run(t, statusSecret, e.withFlags("mx-move", "example.com", "--mx", "mx1.example.com mx.new.example")...); code != exitRefused {
		t.Errorf("the same mx list again = %d %q, want %d", code, errOut, exitRefused)
	}
}

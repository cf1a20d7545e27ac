package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/rollout"
	"github.com/tlsrpt/tlsrpt/rollout/publish"
)

// domainAudit returns the actions of domain's audit entries, oldest
// first, with each entry's detail decoded.
func domainAudit(t *testing.T, f *flowEnv, domain string) ([]string, []map[string]any) {
	t.Helper()
	entries, err := f.d.AuditLog(context.Background(), domain, 100)
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	var details []map[string]any
	for i := len(entries) - 1; i >= 0; i-- {
		actions = append(actions, entries[i].Action)
		var m map[string]any
		b, _ := json.Marshal(entries[i].Detail)
		if raw, ok := entries[i].Detail.(json.RawMessage); ok {
			b = raw
		}
		_ = json.Unmarshal(b, &m)
		details = append(details, m)
	}
	return actions, details
}

func countAction(actions []string, want string) int {
	n := 0
	for _, a := range actions {
		if a == want {
			n++
		}
	}
	return n
}

// TestPublishAudit: a TXT push and the verifications are in the audit
// log with their outcome, a refused push too (once, though every poll
// retries it), and a poll that changes nothing adds no entry.
func TestPublishAudit(t *testing.T) {
	f := newFlowEnv(t, true, nil)
	seedDomain(t, f.d, testNow, "example.com", 20, 0)
	ctx := context.Background()
	p := f.s.Promoter()
	v, err := p.Change(ctx, publish.ChangeRequest{Domain: "example.com", Kind: rollout.KindPromote, Actor: "test"})
	if err != nil || v.VerifiedAt != nil {
		t.Fatalf("Change = %+v %v, want a version not verified yet (Change does not wait)", v, err)
	}
	if v, err = p.Verify(ctx, "example.com"); err != nil || v.VerifiedAt == nil {
		t.Fatalf("Verify after Change = %+v %v, want verified", v, err)
	}
	if _, err := p.Verify(ctx, "example.com"); err != nil {
		t.Fatal(err)
	}
	actions, details := domainAudit(t, f, "example.com")
	if countAction(actions, "policy.txt_push") != 1 || countAction(actions, "policy.verify") != 1 {
		t.Fatalf("audit actions = %v, want one policy.txt_push and one policy.verify (the second poll changed nothing)", actions)
	}
	for i, a := range actions {
		switch a {
		case "policy.txt_push":
			if details[i]["outcome"] != "pushed" || details[i]["id"] != v.ID || details[i]["method"] != rollout.RecordRFC2136 {
				t.Errorf("policy.txt_push detail = %v, want outcome pushed, id %s, method rfc2136", details[i], v.ID)
			}
		case "policy.verify":
			if details[i]["outcome"] != "live" || details[i]["id"] != v.ID {
				t.Errorf("policy.verify detail = %v, want outcome live, id %s", details[i], v.ID)
			}
		}
	}

	// A push refused by the DNS server (a wrong TSIG secret): audited
	// once with the error, though the next poll retries it.
	bad := &publish.Promoter{DB: f.d, PromoteConfig: f.s.Promoter().PromoteConfig, Now: f.s.Promoter().Now, Actor: "publisher"}
	bad.Records = f.pub.Update("d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldA==")
	if _, err := bad.Change(ctx, publish.ChangeRequest{Domain: "example.com", Kind: rollout.KindRollback, Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	if _, err := bad.Verify(ctx, "example.com"); err != nil {
		t.Fatal(err)
	}
	// Every poll retries the push.
	if _, err := bad.Verify(ctx, "example.com"); err != nil {
		t.Fatal(err)
	}
	actions, details = domainAudit(t, f, "example.com")
	failed := 0
	for i, a := range actions {
		if a == "policy.txt_push" && details[i]["outcome"] == "failed" {
			failed++
			if e, _ := details[i]["error"].(string); e == "" {
				t.Errorf("failed push detail = %v, want the error", details[i])
			}
		}
	}
	if failed != 1 {
		t.Errorf("failed pushes in the audit log = %d (%v), want 1", failed, actions)
	}
}

// TestDriftNotified: when the live record stops naming the newest
// version, the notifier is told once per drift episode, and the audit log
// has the drift; back live and drifting again is a new episode.
func TestDriftNotified(t *testing.T) {
	var (
		mu    sync.Mutex
		hooks []string
	)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]any
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
			http.Error(w, "bad", http.StatusBadRequest)
			return
		}
		text, _ := m["text"].(string)
		mu.Lock()
		hooks = append(hooks, text)
		mu.Unlock()
	}))
	defer hook.Close()
	f := newFlowEnv(t, true, func(c *Config) { c.Promote.Notifier = &publish.Notifier{WebhookURL: hook.URL} })
	seedDomain(t, f.d, testNow, "example.com", 20, 0)
	ctx := context.Background()
	p := f.s.Promoter()
	if _, err := p.Change(ctx, publish.ChangeRequest{Domain: "example.com", Kind: rollout.KindPromote, Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	v, err := p.Reconcile(ctx, "example.com")
	if err != nil || v.VerifiedAt == nil {
		t.Fatalf("Reconcile after Change = %+v %v, want verified", v, err)
	}
	got := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), hooks...)
	}
	if n := len(got()); n != 0 {
		t.Fatalf("webhook calls before any drift = %d, want 0", n)
	}
	f.pub.DNS.SetTXT(t, "_mta-sts.example.com", "v=STSv1; id=someoneelse1")
	for range 2 {
		if _, err := p.Verify(ctx, "example.com"); err != nil {
			t.Fatal(err)
		}
	}
	h := got()
	if len(h) != 1 {
		t.Fatalf("webhook calls after two drifted polls = %d, want 1", len(h))
	}
	for _, want := range []string{"MTA-STS drift on example.com", v.ID, "someoneelse1", "/domains/example.com"} {
		if !strings.Contains(h[0], want) {
			t.Errorf("drift notification lacks %q:\n%s", want, h[0])
		}
	}
	actions, _ := domainAudit(t, f, "example.com")
	if countAction(actions, "policy.drift") != 1 {
		t.Errorf("audit actions = %v, want one policy.drift", actions)
	}
	// Back to the version's record, then drifting again: a new episode.
	f.pub.DNS.SetTXT(t, "_mta-sts.example.com", "v=STSv1; id="+v.ID)
	if _, err := p.Verify(ctx, "example.com"); err != nil {
		t.Fatal(err)
	}
	f.pub.DNS.SetTXT(t, "_mta-sts.example.com", "v=STSv1; id=someoneelse2")
	if _, err := p.Verify(ctx, "example.com"); err != nil {
		t.Fatal(err)
	}
	if h := got(); len(h) != 2 || !strings.Contains(h[1], "someoneelse2") {
		t.Errorf("webhook calls after the second episode = %q, want 2, the second naming someoneelse2", h)
	}
}

// TestPlainMessage: the messages people read name no package, whether the
// sentinel starts the message or is wrapped, and errors.Is still works.
func TestPlainMessage(t *testing.T) {
	wrapped := fmt.Errorf("promoting example.com: %w (rise): promote with the override", publish.ErrBlocked)
	for _, tc := range []struct {
		err  error
		want string
	}{
		{publish.ErrUnchanged, "nothing to change"},
		{wrapped, "promoting example.com: the verdict is blocked (rise): promote with the override"},
		{fmt.Errorf("verifying x: no policy version: %w", db.ErrNotFound), "verifying x: no policy version: not found"},
		{errors.New("the id: a db: b"), "the id: a db: b"},
	} {
		if got := PlainMessage(tc.err); got != tc.want {
			t.Errorf("PlainMessage(%q) = %q, want %q", tc.err, got, tc.want)
		}
	}
	if !errors.Is(wrapped, publish.ErrBlocked) {
		t.Error("errors.Is lost the sentinel")
	}
}

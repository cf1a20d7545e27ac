package publish

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/rollout"
	"github.com/tlsrpt/tlsrpt/rollout/publish/publishtest"
)

// TestReconcileSteps: Change only records the version (the hosted file is
// served at once, the TXT record is untouched); Reconcile pushes the
// record once the file is live and verifies both; a second pass changes
// nothing: no push, no audit entry.
func TestReconcileSteps(t *testing.T) {
	e := newEnv(t)
	seedDomain(t, e.d, testNow, "example.com", 20, 0, rollout.ModeTesting)
	ctx := context.Background()
	p := e.promoter(nil)
	v, err := p.Change(ctx, ChangeRequest{Domain: "example.com", Kind: rollout.KindPromote, Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if v.PolicyPublishedAt == nil || v.RecordPublishedAt != nil || len(v.Steps) != 0 || v.VerifiedAt != nil {
		t.Errorf("after Change: policy published %v, record published %v, steps %v, want the file served and nothing else", v.PolicyPublishedAt, v.RecordPublishedAt, v.Steps)
	}
	if got := e.DNS.TXT("_mta-sts.example.com"); !slices.Equal(got, []string{"v=STSv1; id=" + publishtest.OldID}) {
		t.Errorf("TXT after Change = %q, want the old record (Change pushes nothing)", got)
	}
	if st, body := e.fetchPolicy(t); st != 200 || !strings.Contains(body, "mode: enforce\r\n") {
		t.Errorf("hosted policy after Change = %d %q, want enforce served", st, body)
	}
	if served := audits(t, e.d, "example.com", "policy.file_served"); len(served) != 1 || served[0].Actor != "test" {
		t.Errorf("policy.file_served entries = %+v, want one by the actor of the change", served)
	}
	v, err = p.Reconcile(ctx, "example.com")
	if err != nil {
		t.Fatal(err)
	}
	if st := states(v); st[rollout.StepPolicy] != rollout.StateDone || st[rollout.StepRecord] != rollout.StateDone || v.VerifiedAt == nil {
		t.Fatalf("after Reconcile: steps %v verified %v, want both done", v.Steps, v.VerifiedAt)
	}
	if got := e.DNS.TXT("_mta-sts.example.com"); !slices.Equal(got, []string{"v=STSv1; id=" + v.ID}) {
		t.Errorf("TXT after Reconcile = %q, want id %s", got, v.ID)
	}
	applied, _ := e.DNS.Updates()
	pushes, verifies := len(audits(t, e.d, "example.com", "policy.txt_push")), len(audits(t, e.d, "example.com", "policy.verify"))
	if _, err := p.Reconcile(ctx, "example.com"); err != nil {
		t.Fatal(err)
	}
	if a, _ := e.DNS.Updates(); a != applied || applied != 1 {
		t.Errorf("DNS updates after a second pass = %d, before %d, want 1 and no new push", a, applied)
	}
	if n, m := len(audits(t, e.d, "example.com", "policy.txt_push")), len(audits(t, e.d, "example.com", "policy.verify")); n != pushes || m != verifies {
		t.Errorf("audit after a pass that changed nothing: %d pushes, %d verifications; before %d, %d", n, m, pushes, verifies)
	}
}

// TestReconcileConcurrent: passes running at once from two promoters (two
// processes: serve and a CLI) push the record exactly once.
func TestReconcileConcurrent(t *testing.T) {
	e := newEnv(t)
	seedDomain(t, e.d, testNow, "example.com", 20, 0, rollout.ModeTesting)
	ctx := context.Background()
	serve, cli := e.promoter(nil), e.promoter(func(p *Promoter) { p.Actor = "cli" })
	if _, err := cli.Change(ctx, ChangeRequest{Domain: "example.com", Kind: rollout.KindPromote, Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		p := serve
		if i%2 == 1 {
			p = cli
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := p.Reconcile(ctx, "example.com"); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if applied, _ := e.DNS.Updates(); applied != 1 {
		t.Errorf("DNS updates from 8 concurrent passes = %d, want exactly 1", applied)
	}
	if n := len(audits(t, e.d, "example.com", "policy.txt_push")); n != 1 {
		t.Errorf("audited pushes = %d, want 1", n)
	}
	// Without waiting, a pass finds the lock taken and says so.
	locked := make(chan struct{})
	release := make(chan struct{})
	go func() {
		_, _ = e.d.WithPublishLock(ctx, "example.com", true, func() error {
			close(locked)
			<-release
			return nil
		})
	}()
	<-locked
	_, err := serve.reconcile(ctx, "example.com", false, false)
	close(release)
	if !errors.Is(err, ErrBusy) {
		t.Errorf("a pass while another holds the lock = %v, want ErrBusy", err)
	}
}

// TestChangeDoesNotWait: making versions runs no DNS or HTTPS traffic,
// even with DNS unreachable, so bulk promotion is quick; serve's loop or
// the CLI's --wait publishes them.
func TestChangeDoesNotWait(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	const n = 50
	for i := range n {
		seedDomain(t, e.d, testNow, domainN(i), 20, 0, rollout.ModeTesting)
	}
	dead := (&rollout.Inspector{Resolver: "127.0.0.1:1", Timeout: 20 * time.Second, SkipSMTP: true})
	p := e.promoter(func(p *Promoter) { p.Checker = dead })
	start := time.Now()
	for i := range n {
		v, err := p.Change(ctx, ChangeRequest{Domain: domainN(i), Kind: rollout.KindPromote, Actor: "test"})
		if err != nil || v.Policy.Mode != rollout.ModeEnforce {
			t.Fatalf("Change(%s) = %+v %v", domainN(i), v, err)
		}
	}
	took := time.Since(start)
	t.Logf("%d promotions in %s (%s each)", n, took.Round(time.Millisecond), (took / n).Round(time.Microsecond))
	// One live check against the dead resolver would take its timeout.
	if took > 20*time.Second {
		t.Errorf("%d promotions took %s: Change waits for live checks", n, took)
	}
	if applied, refused := e.DNS.Updates(); applied+refused != 0 {
		t.Errorf("Change sent %d DNS updates, want none", applied+refused)
	}
}

func domainN(i int) string { return "d" + string(rune('a'+i/26)) + string(rune('a'+i%26)) + ".example" }

// TestRollbackFromAnotherShell (review item 1): a rollback made by a
// process without hosting settings (a shell without TLSRPT_HOST_POLICY,
// while serve hosts the policy) is still hosted and pushed by the
// domain's methods, so serve serves mode testing; and a version that never
// went live can be replaced. Fails on the old code: the rollback was
// "download" and every retry "nothing to change".
func TestRollbackFromAnotherShell(t *testing.T) {
	e := newEnv(t)
	seedDomain(t, e.d, testNow, "example.com", 20, 0, rollout.ModeTesting)
	ctx := context.Background()
	serve := e.promoter(nil)
	if _, err := serve.Change(ctx, ChangeRequest{Domain: "example.com", Kind: rollout.KindPromote, Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	if v, err := serve.Reconcile(ctx, "example.com"); err != nil || v.VerifiedAt == nil {
		t.Fatalf("promotion not live: %+v %v", v, err)
	}
	shell := e.promoter(func(p *Promoter) { p.HostPolicy, p.Records, p.Checker, p.Actor = false, nil, nil, "cli" })
	rb, err := shell.Change(ctx, ChangeRequest{Domain: "example.com", Kind: rollout.KindRollback, Actor: "cli"})
	if err != nil {
		t.Fatal(err)
	}
	if rb.PolicyMethod != rollout.PolicyHosted || rb.RecordMethod != rollout.RecordRFC2136 {
		t.Errorf("rollback from the shell: methods %s/%s, want hosted/rfc2136 (the domain's)", rb.PolicyMethod, rb.RecordMethod)
	}
	if st, body := e.fetchPolicy(t); st != 200 || !strings.Contains(body, "mode: testing\r\n") {
		t.Errorf("hosted policy after the shell's rollback = %d %q, want mode testing", st, body)
	}
	// The shell's own pass pushes nothing (it has no publisher); serve's
	// does.
	if _, err := shell.Reconcile(ctx, "example.com"); err != nil {
		t.Fatal(err)
	}
	if v, err := serve.Reconcile(ctx, "example.com"); err != nil || v.VerifiedAt == nil || v.ID != rb.ID {
		t.Fatalf("serve's pass over the rollback = %+v %v, want it live", v, err)
	}

	// Per-domain settings decide, not the process: with the hook saying
	// "download, by hand", a new version records that.
	byHand := e.promoter(func(p *Promoter) {
		p.Domains = func(context.Context, string) (DomainConfig, error) { return DomainConfig{}, nil }
	})
	pend, err := byHand.Change(ctx, ChangeRequest{Domain: "example.com", Kind: rollout.KindRetire, Actor: "test"})
	if err != nil || pend.PolicyMethod != rollout.PolicyDownload || pend.RecordMethod != rollout.RecordManual {
		t.Fatalf("retire with the hook saying by hand = %+v %v, want download/manual", pend, err)
	}
	// Not live; the same policy the same way needs no new version and
	// says what publishes the pending one...
	_, err = byHand.Change(ctx, ChangeRequest{Domain: "example.com", Kind: rollout.KindRetire, Actor: "test"})
	if !errors.Is(err, ErrUnchanged) || !strings.Contains(err.Error(), pend.ID) || !strings.Contains(err.Error(), "tlsrpt status example.com") {
		t.Errorf("the same retirement again = %v, want ErrUnchanged naming the pending version and tlsrpt status", err)
	}
	// ...but published another way it is a new version, and another
	// policy always is.
	again, err := serve.Change(ctx, ChangeRequest{Domain: "example.com", Kind: rollout.KindRetire, Actor: "test"})
	if err != nil || again.PolicyMethod != rollout.PolicyHosted || again.ID == pend.ID {
		t.Fatalf("the retirement hosted after a pending download one = %+v %v, want a new hosted version", again, err)
	}
	if _, err := serve.Change(ctx, ChangeRequest{Domain: "example.com", Kind: rollout.KindRollback, Actor: "test"}); err != nil {
		t.Errorf("a rollback replacing the pending retirement = %v, want a new version", err)
	}
}

// TestRepromoteAfterRollbackWithEnforceDays (review item 2): after a
// rollback, reports from the enforce days arrive; promoting again is
// refused with the blockers named (never an empty reason) and the audit
// entry lists them (never null), and the override promotes.
func TestRepromoteAfterRollbackWithEnforceDays(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	publishtest.SeedDays(t, e.d, testNow, "example.com", 20, 4, 0, rollout.ModeTesting)
	p := e.promoter(nil)
	if _, err := p.Change(ctx, ChangeRequest{Domain: "example.com", Kind: rollout.KindPromote, Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Reconcile(ctx, "example.com"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Change(ctx, ChangeRequest{Domain: "example.com", Kind: rollout.KindRollback, Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Reconcile(ctx, "example.com"); err != nil {
		t.Fatal(err)
	}
	// The enforce days, with failures on the last two.
	publishtest.SeedDays(t, e.d, testNow, "example.com", 3, 1, 2, rollout.ModeEnforce)
	pl, err := p.PlanChange(ctx, ChangeRequest{Domain: "example.com", Kind: rollout.KindPromote})
	if err != nil {
		t.Fatal(err)
	}
	if pl.Verdict.Blockers == nil || (pl.Next == nil && pl.NoPlan == "") || (!pl.Verdict.Ready && len(pl.Verdict.Blockers) == 0) {
		t.Fatalf("plan = ready %v blockers %v next %v no_plan %q: want a proposal or a reason, and the blockers that block it",
			pl.Verdict.Ready, pl.Verdict.Blockers, pl.Next != nil, pl.NoPlan)
	}
	_, err = p.Change(ctx, ChangeRequest{Domain: "example.com", Kind: rollout.KindPromote, Actor: "test"})
	if !errors.Is(err, ErrBlocked) || strings.Contains(err.Error(), "()") || strings.HasSuffix(err.Error(), ": ") {
		t.Fatalf("re-promote with failing enforce days = %v, want ErrBlocked naming the blockers", err)
	}
	refused := audits(t, e.d, "example.com", "policy.promote.refused")
	if len(refused) != 1 {
		t.Fatalf("refusals audited = %d, want 1", len(refused))
	}
	var detail struct {
		Blockers []string `json:"blockers"`
	}
	if err := json.Unmarshal(refused[0].Detail.(json.RawMessage), &detail); err != nil || len(detail.Blockers) == 0 {
		t.Errorf("refusal detail = %s (%v), want a non-empty blockers list", refused[0].Detail, err)
	}
	v, err := p.Change(ctx, ChangeRequest{Domain: "example.com", Kind: rollout.KindPromote, Actor: "test", Override: true,
		Confirm: "example.com", Reason: "fixed the certificate"})
	if err != nil || v.Policy.Mode != rollout.ModeEnforce || !v.Override {
		t.Errorf("override re-promote = %+v %v, want an enforce version", v, err)
	}
}

// TestMaxAgeAndRamp: ChangeRequest.MaxAge sets the max_age of a promotion
// (0: the domain's default); a ramp is enforce → enforce with another
// max_age and a new id, refused without a max_age, from testing, or to
// the same max_age.
func TestMaxAgeAndRamp(t *testing.T) {
	e := newEnv(t)
	seedDomain(t, e.d, testNow, "example.com", 20, 0, rollout.ModeTesting)
	ctx := context.Background()
	p := e.promoter(nil)
	if _, err := p.Change(ctx, ChangeRequest{Domain: "example.com", Kind: rollout.KindRamp, MaxAge: 604800, Actor: "test"}); !errors.Is(err, ErrUnchanged) || !strings.Contains(err.Error(), "mode testing") {
		t.Errorf("ramp of a testing domain = %v, want refused naming the mode", err)
	}
	v, err := p.Change(ctx, ChangeRequest{Domain: "example.com", Kind: rollout.KindPromote, MaxAge: 86400, Actor: "test"})
	if err != nil || v.Policy.MaxAge != 86400 || v.Policy.Mode != rollout.ModeEnforce {
		t.Fatalf("promote with max_age 86400 = %+v %v", v, err)
	}
	if v, err = p.Reconcile(ctx, "example.com"); err != nil || v.VerifiedAt == nil {
		t.Fatalf("promotion not live: %+v %v", v, err)
	}
	if _, err := p.Change(ctx, ChangeRequest{Domain: "example.com", Kind: rollout.KindRamp, Actor: "test"}); !errors.Is(err, ErrUnchanged) || !strings.Contains(err.Error(), "needs the new max_age") {
		t.Errorf("ramp without max_age = %v, want refused", err)
	}
	if _, err := p.Change(ctx, ChangeRequest{Domain: "example.com", Kind: rollout.KindRamp, MaxAge: 86400, Actor: "test"}); !errors.Is(err, ErrUnchanged) {
		t.Errorf("ramp to the live max_age = %v, want ErrUnchanged", err)
	}
	r, err := p.Change(ctx, ChangeRequest{Domain: "example.com", Kind: rollout.KindRamp, MaxAge: 604800, Actor: "test"})
	if err != nil || r.Kind != rollout.KindRamp || r.Policy.Mode != rollout.ModeEnforce || r.Policy.MaxAge != 604800 || r.ID == v.ID ||
		!slices.Equal(r.Policy.MX, v.Policy.MX) {
		t.Fatalf("ramp = %+v %v, want enforce, max_age 604800, the same mx, a new id", r, err)
	}
	if r, err = p.Reconcile(ctx, "example.com"); err != nil || r.VerifiedAt == nil {
		t.Errorf("ramp not live after a pass: %+v %v", r, err)
	}
	if _, err := p.Change(ctx, ChangeRequest{Domain: "example.com", Kind: rollout.KindRamp, MaxAge: 99999999, Actor: "test"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("ramp to max_age 99999999 = %v, want ErrInvalid", err)
	}
}

// TestPushAgain (review item 8): a record that carries the id of an
// earlier version tlsrpt published is named so (not "someone changed
// it"); Push puts this version's record back; it refuses while the policy
// file is not live, or when the record is set by hand.
func TestPushAgain(t *testing.T) {
	e := newEnv(t)
	seedDomain(t, e.d, testNow, "example.com", 20, 0, rollout.ModeTesting)
	ctx := context.Background()
	p := e.promoter(nil)
	if _, err := p.Change(ctx, ChangeRequest{Domain: "example.com", Kind: rollout.KindPromote, Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	first, err := p.Reconcile(ctx, "example.com")
	if err != nil || first.VerifiedAt == nil {
		t.Fatalf("promotion not live: %+v %v", first, err)
	}
	if _, err := p.Change(ctx, ChangeRequest{Domain: "example.com", Kind: rollout.KindRollback, Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	v, err := p.Reconcile(ctx, "example.com")
	if err != nil || v.VerifiedAt == nil {
		t.Fatalf("rollback not live: %+v %v", v, err)
	}
	// A restore puts the promotion's record back.
	e.DNS.SetTXT(t, "_mta-sts.example.com", "v=STSv1; id="+first.ID)
	v, err = p.Reconcile(ctx, "example.com")
	if err != nil {
		t.Fatal(err)
	}
	rec := v.Steps[1]
	if rec.State != rollout.StateDrifted || !strings.Contains(rec.Detail, "earlier version tlsrpt published") ||
		strings.Contains(rec.Fix, "someone") || !strings.Contains(rec.Fix, "push the record again") {
		t.Errorf("record step with an earlier id of tlsrpt's = %+v, want drifted, named tlsrpt's own, the push-again fix", rec)
	}
	v, err = p.Push(ctx, "example.com", "test")
	if err != nil || !rollout.StepsDone(v.Steps) {
		t.Fatalf("Push = %+v %v, want the record back and both steps done", v.Steps, err)
	}
	if got := e.DNS.TXT("_mta-sts.example.com"); !slices.Equal(got, []string{"v=STSv1; id=" + v.ID}) {
		t.Errorf("TXT after Push = %q, want id %s", got, v.ID)
	}
	// Not pushable: a record set by hand, a policy file not live.
	byHand := e.promoter(func(p *Promoter) { p.Records = nil })
	if _, err := byHand.Push(ctx, "example.com", "test"); !errors.Is(err, ErrNotPushable) {
		t.Errorf("Push without a publisher = %v, want ErrNotPushable", err)
	}
	download := e.promoter(func(p *Promoter) {
		p.Domains = func(context.Context, string) (DomainConfig, error) {
			return DomainConfig{Records: e.records(publishtest.Secret)}, nil
		}
	})
	if _, err := download.Change(ctx, ChangeRequest{Domain: "example.com", Kind: rollout.KindRetire, Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	if _, err := download.Push(ctx, "example.com", "test"); !errors.Is(err, ErrNotPushable) || !strings.Contains(err.Error(), "not live") {
		t.Errorf("Push while the policy file is not served = %v, want ErrNotPushable", err)
	}
	if got := e.DNS.TXT("_mta-sts.example.com"); !slices.Equal(got, []string{"v=STSv1; id=" + v.ID}) {
		t.Errorf("TXT after the refused push = %q, want it untouched (%s)", got, v.ID)
	}
}

// TestRunKicked: serve's loop publishes a change made in the process at
// once (Kick), not at the next interval.
func TestRunKicked(t *testing.T) {
	e := newEnv(t)
	seedDomain(t, e.d, testNow, "example.com", 20, 0, rollout.ModeTesting)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := e.promoter(nil)
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.Run(ctx, time.Hour)
	}()
	// Let the first round (nothing to do) pass.
	time.Sleep(300 * time.Millisecond)
	if _, err := p.Change(ctx, ChangeRequest{Domain: "example.com", Kind: rollout.KindPromote, Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	var v db.PolicyVersion
	for time.Now().Before(deadline) {
		var err error
		if v, err = e.d.LatestPolicyVersion(ctx, "example.com"); err == nil && v.VerifiedAt != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if v.VerifiedAt == nil {
		t.Errorf("the kicked loop did not publish the version within 15 s (interval 1 h): %+v", v.Steps)
	}
	cancel()
	<-done
}

package autopilot_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/rollout"
	"github.com/tlsrpt/tlsrpt/rollout/autopilot"
	"github.com/tlsrpt/tlsrpt/rollout/publish/publishtest"
)

// simDay moves the clock to simulated day n (06:00 UTC), stores the
// reports of the day before as the domain served then, and runs the day's
// evaluation.
func (e *env) simDay(t *testing.T, domain string, n int, failing bool) autopilot.Result {
	t.Helper()
	now := start.AddDate(0, 0, n)
	mode := e.mode(t, domain)
	e.clock.set(now)
	publishtest.SeedDay(t, e.d, domain, day(now).AddDate(0, 0, -1), mode, failing)
	r, err := e.engine.EvaluateDomain(context.Background(), domain, autopilot.Options{})
	if err != nil {
		t.Fatalf("day %d: EvaluateDomain() = %v", n, err)
	}
	return r
}

func boolp(b bool) *bool { return &b }

func versionsOf(t *testing.T, d *db.DB, domain string) []db.PolicyVersion {
	t.Helper()
	vs, err := d.PolicyVersions(context.Background(), domain, 0)
	if err != nil {
		t.Fatal(err)
	}
	slices.Reverse(vs) // oldest first
	return vs
}

func auditActions(t *testing.T, d *db.DB, domain, prefix string) []db.AuditEntry {
	t.Helper()
	all, err := d.AuditLog(context.Background(), domain, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []db.AuditEntry
	for _, a := range all {
		if strings.HasPrefix(a.Action, prefix) {
			out = append(out, a)
		}
	}
	slices.Reverse(out)
	return out
}

// TestAutopilotRamp drives a domain from testing through the ready days,
// stage 1 (max_age 1 day), 2 (7 days), 3 (30 days) to the final max_age
// (a year) over simulated weeks: one audited, notified and published
// version per step, each on the day the rules allow it, and no step on a
// day the live check has a blocker (the policy host down).
func TestAutopilotRamp(t *testing.T) {
	const domain = "example.com"
	e := newEnv(t, domain)
	ctx := context.Background()
	e.seedTesting(t, domain, 20)
	final := autopilot.MaxFinalMaxAge
	if err := e.engine.Set(ctx, db.AutopilotSettings{Domain: domain, Enabled: boolp(true), FinalMaxAge: &final}, "admin"); err != nil {
		t.Fatal(err)
	}
	s, err := e.engine.Settings(ctx, domain)
	if err != nil {
		t.Fatal(err)
	}
	ramp := s.Ramp()
	if ramp.Final() != 4 || ramp.Stage(1).MaxAge != 86400 || ramp.Stage(2).MaxAge != 604800 || ramp.Stage(3).MaxAge != 2592000 || ramp.Stage(4).MaxAge != final {
		t.Fatalf("ramp = %+v, want 86400, 604800, 2592000, %d", ramp, final)
	}

	// The days the rules allow each step: the policy host is down on day
	// 1, which breaks the ready days, so the third ready day after it
	// promotes; each stage holds for its days from the day its version
	// went live, and the policy host is down again the day stage 2 is
	// due.
	readyBlockedDay := 1
	promoteDay := readyBlockedDay + s.ReadyDays
	stage2Due := promoteDay + ramp.Stage(1).HoldDays
	blockedDay := stage2Due
	stage2Day := stage2Due + 1
	stage3Day := stage2Day + ramp.Stage(2).HoldDays
	finalDay := stage3Day + ramp.Stage(3).HoldDays
	want := map[int]struct {
		action string
		maxAge int64
	}{
		promoteDay: {autopilot.ActionPromote, 86400},
		stage2Day:  {autopilot.ActionRamp, 604800},
		stage3Day:  {autopilot.ActionRamp, 2592000},
		finalDay:   {autopilot.ActionRamp, final},
	}
	made := map[string]int{} // version id → day
	for n := 0; n <= finalDay+2; n++ {
		e.down.Store(n == blockedDay || n == readyBlockedDay)
		r := e.simDay(t, domain, n, false)
		e.down.Store(false)
		if r.Skipped != "" {
			t.Fatalf("day %d: skipped (%s), want an evaluation", n, r.Skipped)
		}
		w, step := want[n]
		switch {
		case step && r.Action != w.action:
			t.Fatalf("day %d: action %s (%s, blockers %v), want %s", n, r.Action, r.Plan, r.Blockers, w.action)
		case step && r.VersionID == "":
			t.Fatalf("day %d: %s made no version (%s, error %q)", n, r.Action, r.Plan, r.Error)
		case !step && r.VersionID != "":
			t.Fatalf("day %d: action %s made version %s (%s), want no change", n, r.Action, r.VersionID, r.Plan)
		case (n == blockedDay || n == readyBlockedDay) && (r.Action != autopilot.ActionPause || r.Verdict != autopilot.VerdictBlocked || !slices.Contains(r.Blockers, "policy-unreachable")):
			t.Fatalf("day %d (policy host down): %s %s %v (%s), want a pause on policy-unreachable", n, r.Action, r.Verdict, r.Blockers, r.Plan)
		case n < promoteDay && n != readyBlockedDay && (r.Action != autopilot.ActionWait || !strings.Contains(r.Plan, "would promote")):
			t.Fatalf("day %d: %s (%s), want a wait saying when it would promote", n, r.Action, r.Plan)
		case n > finalDay && r.Action != autopilot.ActionNone:
			t.Fatalf("day %d after the final step: %s (%s), want none", n, r.Action, r.Plan)
		}
		if step {
			made[r.VersionID] = n
		}
		if r.Error != "" {
			t.Fatalf("day %d: error %s", n, r.Error)
		}
		// Running again the same day changes nothing.
		if n == promoteDay || n == stage2Day {
			again, err := e.engine.EvaluateDomain(ctx, domain, autopilot.Options{Again: true})
			if err != nil || again.Skipped == "" || again.VersionID != r.VersionID {
				t.Fatalf("day %d: second run = %+v, %v; want skipped with the same version", n, again, err)
			}
		}
	}

	// One version per step, verified live, with the ramp's max_age, each
	// made on its day with a new id; the TXT carries the last.
	vs := versionsOf(t, e.d, domain)
	if len(vs) != len(want) {
		t.Fatalf("%d versions, want %d: %+v", len(vs), len(want), vs)
	}
	seen := map[string]bool{publishtest.OldID: true}
	for i, v := range vs {
		n, ok := made[v.ID]
		if !ok || seen[v.ID] {
			t.Errorf("version %d id %s: not made by a step, or used twice", i, v.ID)
		}
		seen[v.ID] = true
		w := want[n]
		if v.Policy.Mode != rollout.ModeEnforce || v.Policy.MaxAge != w.maxAge || v.CreatedBy != autopilot.Actor || v.VerifiedAt == nil {
			t.Errorf("version %s (day %d) = mode %s max_age %d by %s verified %v; want enforce, %d, by autopilot, verified",
				v.ID, n, v.Policy.Mode, v.Policy.MaxAge, v.CreatedBy, v.VerifiedAt, w.maxAge)
		}
		// created_at is the database's clock; the publishing steps carry
		// the simulated one.
		if v.PolicyPublishedAt == nil || !day(*v.PolicyPublishedAt).Equal(day(start.AddDate(0, 0, n))) {
			t.Errorf("version %s published at %v, want day %d", v.ID, v.PolicyPublishedAt, n)
		}
		if !slices.Equal(v.Policy.MX, []string{"mx1." + domain, "mx2." + domain}) {
			t.Errorf("version %s mx = %v", v.ID, v.Policy.MX)
		}
	}
	if got := e.DNS.TXT("_mta-sts." + domain); !slices.Equal(got, []string{"v=STSv1; id=" + vs[len(vs)-1].ID}) {
		t.Errorf("TXT = %q, want the final version's id %s", got, vs[len(vs)-1].ID)
	}

	// Audited as the autopilot's, with the evidence; notified.
	acts := auditActions(t, e.d, domain, "autopilot.")
	var kinds []string
	for _, a := range acts {
		if a.Action == "autopilot.settings" {
			continue
		}
		kinds = append(kinds, a.Action)
		var detail struct {
			Outcome  string         `json:"outcome"`
			ID       string         `json:"id"`
			Verdict  string         `json:"verdict"`
			Evidence map[string]any `json:"evidence"`
		}
		if err := json.Unmarshal(a.Detail.(json.RawMessage), &detail); err != nil {
			t.Fatal(err)
		}
		if a.Actor != autopilot.Actor || detail.Outcome != "done" || !seen[detail.ID] || detail.Verdict != autopilot.VerdictReady || detail.Evidence["verdict"] == nil {
			t.Errorf("audit %s = actor %s %+v, want by autopilot, done, a version id and the verdict evidence", a.Action, a.Actor, detail)
		}
	}
	if wantKinds := []string{"autopilot.promote", "autopilot.ramp", "autopilot.ramp", "autopilot.ramp"}; !slices.Equal(kinds, wantKinds) {
		t.Errorf("audit actions = %v, want %v", kinds, wantKinds)
	}
	alerts := e.hook.got()
	if len(alerts) != len(want) {
		t.Errorf("%d alerts, want one per step: %+v", len(alerts), alerts)
	}
	for _, a := range alerts {
		if a.Domain != domain || !strings.Contains(a.Subject, "autopilot") || !strings.Contains(a.Message, "version ") {
			t.Errorf("alert = %+v, want the autopilot's with the version", a)
		}
	}

	// One evaluation per day.
	evs, err := e.d.AutopilotEvaluations(ctx, domain, 0)
	if err != nil || len(evs) != finalDay+3 {
		t.Fatalf("evaluations = %d, %v; want %d", len(evs), err, finalDay+3)
	}
	st, err := e.engine.Status(ctx, domain)
	if err != nil || st.Stage != st.FinalStage || st.NextDate != nil || !strings.Contains(st.Next, "complete") {
		t.Errorf("Status() = %+v, %v; want the final stage and nothing next", st, err)
	}
}

// TestAutopilotRampHoldDays: a domain whose own hold days are 2, 3 and 4
// (over a fleet default of 10, 20 and 40) is raised on that schedule over
// simulated days: promoted on the third ready day, then each stage raised
// once its version has been live for its hold, and nothing in between.
func TestAutopilotRampHoldDays(t *testing.T) {
	const domain = "example.com"
	e := newEnv(t, domain)
	ctx := context.Background()
	e.seedTesting(t, domain, 20)
	if err := e.engine.Set(ctx, db.AutopilotSettings{Domain: db.FleetDefault, HoldDays: []int{10, 20, 40}}, "admin"); err != nil {
		t.Fatal(err)
	}
	final := autopilot.MaxFinalMaxAge
	if err := e.engine.Set(ctx, db.AutopilotSettings{Domain: domain, Enabled: boolp(true), FinalMaxAge: &final, HoldDays: []int{2, 3, 4}}, "admin"); err != nil {
		t.Fatal(err)
	}
	s, err := e.engine.Settings(ctx, domain)
	if err != nil || !slices.Equal(s.HoldDays, []int{2, 3, 4}) {
		t.Fatalf("Settings() hold days = %v, %v; want the domain's 2, 3, 4", s.HoldDays, err)
	}
	promoteDay := s.ReadyDays - 1
	want := map[int]int64{promoteDay: 86400, promoteDay + 2: 604800, promoteDay + 2 + 3: 2592000, promoteDay + 2 + 3 + 4: final}
	finalDay := promoteDay + 2 + 3 + 4
	made := map[string]int{} // version id → day
	for n := 0; n <= finalDay+1; n++ {
		r := e.simDay(t, domain, n, false)
		if r.Error != "" || r.Skipped != "" {
			t.Fatalf("day %d: error %q, skipped %q", n, r.Error, r.Skipped)
		}
		maxAge, step := want[n]
		if step {
			made[r.VersionID] = n
		}
		switch {
		case step && r.VersionID == "":
			t.Fatalf("day %d: %s made no version (%s); want a change to max_age %d", n, r.Action, r.Plan, maxAge)
		case !step && r.VersionID != "":
			t.Fatalf("day %d: %s made version %s (%s), want no change", n, r.Action, r.VersionID, r.Plan)
		}
		if n == promoteDay+1 {
			st, err := e.engine.Status(ctx, domain)
			if err != nil || st.NextDate == nil || !st.NextDate.Equal(day(start.AddDate(0, 0, promoteDay+2))) {
				t.Fatalf("day %d: Status() = %+v, %v; want stage 2 due two days after the promotion", n, st, err)
			}
			if !strings.Contains(r.Plan, "would raise max_age to 604800 on "+start.AddDate(0, 0, promoteDay+2).Format(time.DateOnly)) {
				t.Errorf("day %d: plan %q, want the raise two days after the promotion", n, r.Plan)
			}
		}
	}
	vs := versionsOf(t, e.d, domain)
	if len(vs) != len(want) {
		t.Fatalf("%d versions, want %d", len(vs), len(want))
	}
	for _, v := range vs {
		if n, ok := made[v.ID]; !ok || v.Policy.MaxAge != want[n] {
			t.Errorf("version %s: max_age %d, made on day %d (%v); want the max_age of that day's step", v.ID, v.Policy.MaxAge, n, ok)
		}
	}
}

// TestAutopilotRegression: a domain at stage 2 whose failures rise is
// rolled back to testing with a new id, published, audited with the
// watch's numbers and alerted through the webhook; it then pauses.
func TestAutopilotRegression(t *testing.T) {
	const domain = "example.com"
	e := newEnv(t, domain)
	ctx := context.Background()
	e.seedTesting(t, domain, 20)
	if err := e.engine.Set(ctx, db.AutopilotSettings{Domain: db.FleetDefault, Enabled: boolp(true)}, "admin"); err != nil {
		t.Fatal(err)
	}
	s, _ := e.engine.Settings(ctx, domain)
	stage2Day := s.ReadyDays - 1 + s.Ramp().Stage(1).HoldDays
	failFrom := stage2Day + 2 // the reports of this day's eve fail
	var rollbackDay int
	for n := 0; n <= failFrom+3; n++ {
		r := e.simDay(t, domain, n, n >= failFrom)
		if n == stage2Day && (r.Action != autopilot.ActionRamp || r.Stage != 1) {
			t.Fatalf("day %d: %s at stage %d (%s), want the ramp to stage 2", n, r.Action, r.Stage, r.Plan)
		}
		if n < failFrom && r.Action == autopilot.ActionRollback {
			t.Fatalf("day %d: rollback before any failure (%s)", n, r.Plan)
		}
		if r.Action == autopilot.ActionRollback {
			if rollbackDay != 0 {
				t.Fatalf("day %d: a second rollback", n)
			}
			rollbackDay = n
			if r.Stage != 2 || r.VersionID == "" || !slices.Contains(r.Blockers, rollout.WarningRegression) {
				t.Fatalf("rollback = %+v, want from stage 2 with a version and the regression", r.AutopilotEvaluation)
			}
		}
	}
	if rollbackDay != failFrom {
		t.Fatalf("rolled back on day %d, want day %d (the first evaluation that sees the failures)", rollbackDay, failFrom)
	}
	vs := versionsOf(t, e.d, domain)
	if len(vs) != 3 {
		t.Fatalf("%d versions, want promote, ramp, rollback", len(vs))
	}
	rb := vs[2]
	if rb.Kind != rollout.KindRollback || rb.Policy.Mode != rollout.ModeTesting || rb.ID == vs[0].ID || rb.ID == vs[1].ID || rb.ID == publishtest.OldID || rb.VerifiedAt == nil {
		t.Errorf("rollback version = %s %s id %s verified %v, want testing with a new id, verified", rb.Kind, rb.Policy.Mode, rb.ID, rb.VerifiedAt)
	}
	if got := e.DNS.TXT("_mta-sts." + domain); !slices.Equal(got, []string{"v=STSv1; id=" + rb.ID}) {
		t.Errorf("TXT = %q, want the rollback's id %s", got, rb.ID)
	}
	hosted, err := e.d.HostedPolicy(ctx, domain)
	if err != nil || !strings.Contains(hosted.Body, "mode: testing") {
		t.Errorf("hosted policy = %q, %v; want mode testing", hosted.Body, err)
	}
	acts := auditActions(t, e.d, domain, "autopilot.rollback")
	if len(acts) != 1 {
		t.Fatalf("autopilot.rollback audited %d times, want once", len(acts))
	}
	var detail struct {
		Evidence struct {
			Regression *rollout.Finding `json:"regression"`
		} `json:"evidence"`
		ID string `json:"id"`
	}
	if err := json.Unmarshal(acts[0].Detail.(json.RawMessage), &detail); err != nil {
		t.Fatal(err)
	}
	if reg := detail.Evidence.Regression; reg == nil || reg.Failures == nil || *reg.Failures == 0 || detail.ID != rb.ID {
		t.Errorf("rollback audit = %+v, want the watch's numbers and the version id", detail)
	}
	var rolled bool
	for _, a := range e.hook.got() {
		if strings.Contains(a.Subject, "rolled back") && strings.Contains(a.Message, rb.ID) {
			rolled = true
		}
	}
	if !rolled {
		t.Errorf("alerts = %+v, want the rollback's", e.hook.got())
	}
	// After the rollback the verdict is blocked: the autopilot pauses.
	last, err := e.d.AutopilotEvaluation(ctx, domain, start.AddDate(0, 0, failFrom+3))
	if err != nil || last.Action != autopilot.ActionPause || last.Stage != 0 {
		t.Errorf("evaluation after the rollback = %+v, %v; want a pause in testing", last, err)
	}
}

// TestAutopilotDryRun: a domain in dry run gets its evaluations with what
// would be done and when, and nothing changes: no version, no record, no
// audit entry of an action, no alert. A dry run of the CLI on a domain
// that is not in dry run leaves the day open to the real run.
func TestAutopilotDryRun(t *testing.T) {
	const dry, real = "example.com", "shop.example.com"
	e := newEnv(t, dry, real)
	ctx := context.Background()
	for _, d := range []string{dry, real} {
		e.seedTesting(t, d, 20)
		if err := e.engine.Set(ctx, db.AutopilotSettings{Domain: d, Enabled: boolp(true), DryRun: boolp(d == dry)}, "admin"); err != nil {
			t.Fatal(err)
		}
	}
	s, _ := e.engine.Settings(ctx, dry)
	promoteDay := s.ReadyDays - 1
	for n := 0; n <= promoteDay+1; n++ {
		r := e.simDay(t, dry, n, false)
		if !r.DryRun || r.VersionID != "" {
			t.Fatalf("day %d: %+v, want a dry-run evaluation without a version", n, r.AutopilotEvaluation)
		}
		if n >= promoteDay {
			want := "would promote to enforce with max_age 86400"
			on := "on " + day(start.AddDate(0, 0, n)).Format(time.DateOnly)
			if r.Action != autopilot.ActionPromote || !strings.Contains(r.Plan, want) || !strings.HasSuffix(r.Plan, on) {
				t.Errorf("day %d: %s %q, want promote with %q ... %q", n, r.Action, r.Plan, want, on)
			}
		}
		// The other domain: the CLI's dry run first, then serve's loop.
		publishtest.SeedDay(t, e.d, real, day(start.AddDate(0, 0, n-1)), e.mode(t, real), false)
		if _, err := e.engine.EvaluateDomain(ctx, real, autopilot.Options{DryRun: true}); err != nil {
			t.Fatal(err)
		}
		if n == promoteDay {
			if vs := versionsOf(t, e.d, real); len(vs) != 0 {
				t.Fatalf("a dry run made %d versions", len(vs))
			}
			r, err := e.engine.EvaluateDomain(ctx, real, autopilot.Options{})
			if err != nil || r.Action != autopilot.ActionPromote || r.VersionID == "" || r.DryRun {
				t.Fatalf("real run after the dry run = %+v, %v; want the promotion", r.AutopilotEvaluation, err)
			}
		}
	}
	if vs := versionsOf(t, e.d, dry); len(vs) != 0 {
		t.Errorf("dry run made %d versions", len(vs))
	}
	if got := e.DNS.TXT("_mta-sts." + dry); !slices.Equal(got, []string{"v=STSv1; id=" + publishtest.OldID}) {
		t.Errorf("TXT of the dry-run domain = %q, want it untouched", got)
	}
	if acts := auditActions(t, e.d, dry, "autopilot.promote"); len(acts) != 0 {
		t.Errorf("dry run audited %d promotions", len(acts))
	}
	for _, a := range e.hook.got() {
		if a.Domain == dry {
			t.Errorf("dry run alerted: %+v", a)
		}
	}
	if vs := versionsOf(t, e.d, real); len(vs) != 1 || vs[0].Policy.MaxAge != 86400 {
		t.Errorf("versions of %s = %+v, want the one promotion at stage 1", real, vs)
	}
}

package db_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/db/dbtest"
	"github.com/tlsrpt/tlsrpt/rollout"
)

func TestPolicyVersions(t *testing.T) {
	d := dbtest.New(t)
	ctx := context.Background()
	t0 := time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)
	add := func(v db.PolicyVersion) db.PolicyVersion {
		t.Helper()
		out, err := d.AddPolicyVersion(ctx, v)
		if err != nil {
			t.Fatalf("AddPolicyVersion(%s %s): %v", v.Domain, v.ID, err)
		}
		return out
	}
	if _, err := d.LatestPolicyVersion(ctx, "example.com"); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("LatestPolicyVersion of no version = %v, want ErrNotFound", err)
	}
	if _, err := d.HostedPolicy(ctx, "example.com"); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("HostedPolicy of no version = %v, want ErrNotFound", err)
	}
	v1 := add(db.PolicyVersion{Domain: "Example.COM.", Kind: rollout.KindPromote,
		Policy: rollout.Policy{Mode: rollout.ModeEnforce, MX: []string{"mx.example.com"}, MaxAge: 604800},
		ID:     "20260701T120000Z", CreatedBy: "admin", Reason: "ready", Evidence: []byte(`{"ready":true}`),
		PolicyMethod: "hosted", RecordMethod: "rfc2136"})
	if v1.Domain != "example.com" || v1.Seq == 0 || v1.Body != v1.Policy.String() || v1.PrevMaxAge != 0 {
		t.Errorf("AddPolicyVersion = %+v, want normalised domain, a seq, the body and prev_max_age 0", v1)
	}
	if _, err := d.HostedPolicy(ctx, "example.com"); !errors.Is(err, db.ErrNotFound) {
		t.Errorf("HostedPolicy before the policy step = %v, want ErrNotFound", err)
	}
	if err := d.MarkPolicyPublished(ctx, v1.Seq, t0); err != nil {
		t.Fatal(err)
	}
	h, err := d.HostedPolicy(ctx, "example.com")
	if err != nil || h.ID != v1.ID {
		t.Fatalf("HostedPolicy = %v %v, want version %s", h.ID, err, v1.ID)
	}
	// The same id again is refused, whatever the policy.
	_, err = d.AddPolicyVersion(ctx, db.PolicyVersion{Domain: "example.com", Kind: rollout.KindRollback,
		Policy: rollout.Policy{Mode: rollout.ModeTesting, MX: []string{"mx.example.com"}, MaxAge: 86400},
		ID:     v1.ID, CreatedBy: "admin", PolicyMethod: "hosted", RecordMethod: "manual"})
	if !errors.Is(err, db.ErrIDUsed) {
		t.Errorf("AddPolicyVersion with a used id = %v, want ErrIDUsed", err)
	}
	v2 := add(db.PolicyVersion{Domain: "example.com", Kind: rollout.KindRetire,
		Policy: rollout.Policy{Mode: rollout.ModeNone, MaxAge: 86400},
		ID:     "20260702T120000Z", CreatedBy: "cli", PolicyMethod: "hosted", RecordMethod: "manual"})
	if v2.PrevMaxAge != 604800 {
		t.Errorf("PrevMaxAge of the retirement = %d, want 604800 (the enforce max_age before)", v2.PrevMaxAge)
	}
	if err := d.MarkRecordPublished(ctx, v2.Seq, t0, "refused"); err != nil {
		t.Fatal(err)
	}
	steps := []rollout.Step{{Name: rollout.StepPolicy, State: rollout.StateDone}, {Name: rollout.StepRecord, State: rollout.StatePending}}
	if err := d.SetVersionSteps(ctx, v2.Seq, steps, t0); err != nil {
		t.Fatal(err)
	}
	got, err := d.LatestPolicyVersion(ctx, "example.com")
	if err != nil {
		t.Fatal(err)
	}
	if got.Seq != v2.Seq || got.RecordError != "refused" || got.VerifiedAt != nil || len(got.Steps) != 2 || got.Steps[1].State != rollout.StatePending {
		t.Errorf("LatestPolicyVersion = %+v, want v2 with the error, two steps and not verified", got)
	}
	steps[1].State = rollout.StateDone
	if err := d.SetVersionSteps(ctx, v2.Seq, steps, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := d.SetVersionSteps(ctx, v2.Seq, steps, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	got, _ = d.LatestPolicyVersion(ctx, "example.com")
	if got.VerifiedAt == nil || !got.VerifiedAt.Equal(t0.Add(time.Minute)) {
		t.Errorf("VerifiedAt = %v, want the first all-done poll %v", got.VerifiedAt, t0.Add(time.Minute))
	}
	all, err := d.PolicyVersions(ctx, "example.com", 10)
	if err != nil || len(all) != 2 || all[0].Seq != v2.Seq {
		t.Errorf("PolicyVersions = %d versions %v, want 2, newest first", len(all), err)
	}
	enf, err := d.EnforcedDomains(ctx)
	if err != nil || len(enf) != 0 {
		t.Errorf("EnforcedDomains after retirement = %v %v, want none", enf, err)
	}
	if err := d.SetVersionSteps(ctx, 99999, steps, t0); !errors.Is(err, db.ErrNotFound) {
		t.Errorf("SetVersionSteps of a missing version = %v, want ErrNotFound", err)
	}
}

func TestWatchEpisodes(t *testing.T) {
	d := dbtest.New(t)
	ctx := context.Background()
	t0 := time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)
	e1, opened, err := d.OpenWatchEpisode(ctx, "example.com", 1, t0, map[string]string{"code": "regression"})
	if err != nil || !opened {
		t.Fatalf("OpenWatchEpisode = %v %v, want opened", opened, err)
	}
	e2, opened, err := d.OpenWatchEpisode(ctx, "example.com", 1, t0.Add(time.Hour), nil)
	if err != nil || opened || e2.ID != e1.ID {
		t.Fatalf("OpenWatchEpisode again = %d %v %v, want episode %d, not opened", e2.ID, opened, err, e1.ID)
	}
	if err := d.MarkEpisodeNotified(ctx, e1.ID, t0, ""); err != nil {
		t.Fatal(err)
	}
	e2, _, _ = d.OpenWatchEpisode(ctx, "example.com", 1, t0.Add(time.Hour), nil)
	if e2.NotifiedAt == nil {
		t.Error("NotifiedAt not kept")
	}
	closed, err := d.CloseWatchEpisode(ctx, "example.com", t0.Add(2*time.Hour))
	if err != nil || !closed {
		t.Fatalf("CloseWatchEpisode = %v %v, want closed", closed, err)
	}
	if closed, _ := d.CloseWatchEpisode(ctx, "example.com", t0.Add(3*time.Hour)); closed {
		t.Error("CloseWatchEpisode closed a second time")
	}
	e3, opened, err := d.OpenWatchEpisode(ctx, "example.com", 1, t0.Add(4*time.Hour), nil)
	if err != nil || !opened || e3.ID == e1.ID || e3.NotifiedAt != nil || e3.VersionSeq != 1 {
		t.Errorf("OpenWatchEpisode after closing = %+v %v %v, want a new, unnotified episode of version 1", e3, opened, err)
	}
	// A new version (a re-promote) gets its own episode at once: the open
	// one of version 1 closes.
	e4, opened, err := d.OpenWatchEpisode(ctx, "example.com", 2, t0.Add(5*time.Hour), nil)
	if err != nil || !opened || e4.ID == e3.ID || e4.VersionSeq != 2 {
		t.Errorf("OpenWatchEpisode of version 2 = %+v %v %v, want a new episode of version 2", e4, opened, err)
	}
}

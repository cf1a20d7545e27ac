package publish

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tlsrpt/tlsrpt/rollout"
)

// TestWatchOnlyAfterLive (review item 6): the watch compares only the
// days after the version went live, and each version has its own
// episode. Fails on the old code: a promotion made now raised "failures
// rose after enforce" from the days before it, and a new version inside
// an open episode was never notified.
func TestWatchOnlyAfterLive(t *testing.T) {
	var (
		mu    sync.Mutex
		hooks []string
	)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hooks = append(hooks, r.URL.Path)
		mu.Unlock()
	}))
	defer hook.Close()
	notified := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(hooks)
	}
	e := newEnv(t)
	// Clean for 17 days, failing with a quarter of the sessions on the
	// last 3 before now.
	seedDomain(t, e.d, testNow, "example.com", 20, 3, rollout.ModeTesting)
	ctx := context.Background()
	clock := testNow
	p := e.promoter(func(p *Promoter) {
		p.Now = func() time.Time { return clock }
		p.Notifier = &Notifier{WebhookURL: hook.URL}
	})
	// Promoted now (the override: the rise blocks it) and live: the
	// failing days are before it.
	if _, err := p.Change(ctx, ChangeRequest{Domain: "example.com", Kind: rollout.KindPromote, Actor: "test",
		Override: true, Confirm: "example.com", Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	if v, err := p.Reconcile(ctx, "example.com"); err != nil || v.VerifiedAt == nil {
		t.Fatalf("promotion not live: %+v %v", v, err)
	}
	res, err := p.Watch(ctx, "example.com")
	if err != nil || res.Regression != nil || notified() != 0 {
		t.Fatalf("Watch right after the promotion = %+v %v (%d notified), want nothing: the failing days are before it", res, err, notified())
	}

	// Live four days ago instead (a ramp made then): the three failing
	// days are after it.
	clock = testNow.AddDate(0, 0, -4)
	a, err := p.Change(ctx, ChangeRequest{Domain: "example.com", Kind: rollout.KindRamp, MaxAge: 86400, Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Reconcile(ctx, "example.com"); err != nil {
		t.Fatal(err)
	}
	clock = testNow
	res, err = p.Watch(ctx, "example.com")
	if err != nil || res.Regression == nil || !res.Opened || !res.Notified || notified() != 1 {
		t.Fatalf("Watch of a version live for 4 days = %+v %v (%d notified), want a regression, opened and notified", res, err, notified())
	}
	if !strings.Contains(res.Regression.Message, "after enforce") {
		t.Errorf("regression message = %q", res.Regression.Message)
	}
	// A second poll of the same version stays quiet.
	if res, err = p.Watch(ctx, "example.com"); err != nil || res.Opened || res.Notified || notified() != 1 {
		t.Errorf("second Watch = %+v %v, want no new episode", res, err)
	}
	// Another version, live from the same time, inside the open episode:
	// its own episode and its own notification.
	clock = testNow.AddDate(0, 0, -4).Add(time.Hour)
	b, err := p.Change(ctx, ChangeRequest{Domain: "example.com", Kind: rollout.KindRamp, MaxAge: 172800, Actor: "test"})
	if err != nil || b.Seq == a.Seq {
		t.Fatalf("second ramp = %+v %v", b, err)
	}
	if _, err := p.Reconcile(ctx, "example.com"); err != nil {
		t.Fatal(err)
	}
	clock = testNow
	res, err = p.Watch(ctx, "example.com")
	if err != nil || res.Regression == nil || !res.Opened || !res.Notified || notified() != 2 {
		t.Errorf("Watch of the new version = %+v %v (%d notified), want its own episode, notified", res, err, notified())
	}
	if n := len(audits(t, e.d, "example.com", "watch.regression")); n != 2 {
		t.Errorf("watch.regression entries = %d, want one per version (2)", n)
	}
}

package db_test

import (
	"context"
	"testing"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/db/dbtest"
	"github.com/tlsrpt/tlsrpt/rollout"
)

// The store is the inspector's SeenStore.
var _ rollout.SeenStore = (*db.DB)(nil)

func TestSeenPolicy(t *testing.T) {
	d := dbtest.New(t)
	ctx := context.Background()
	t0 := time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)
	seen := func(domain, id, body string, at time.Time) string {
		t.Helper()
		first, err := d.SeenPolicy(ctx, domain, id, body, at)
		if err != nil {
			t.Fatalf("SeenPolicy(%s, %s): %v", domain, id, err)
		}
		return first
	}
	if got := seen("example.com", "1", "A", t0); got != "A" {
		t.Errorf("SeenPolicy of a new id = %q, want A", got)
	}
	if got := seen("Example.COM", "1", "B", t0.Add(time.Hour)); got != "A" {
		t.Errorf("SeenPolicy of a changed body = %q, want the first, A", got)
	}
	if got := seen("example.com", "2", "B", t0.Add(2*time.Hour)); got != "B" {
		t.Errorf("SeenPolicy of a new id = %q, want B", got)
	}
	if got := seen("example.org", "1", "C", t0); got != "C" {
		t.Errorf("SeenPolicy of another domain = %q, want C", got)
	}
	obs, err := d.PolicyObservations(ctx, "example.com", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(obs) != 2 || obs[0].ID != "2" || obs[1].ID != "1" || obs[1].FirstBody != "A" || obs[1].LastBody != "B" ||
		!obs[1].FirstSeen.Equal(t0) || !obs[1].LastSeen.Equal(t0.Add(time.Hour)) {
		t.Errorf("PolicyObservations = %+v", obs)
	}
}

package db_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/db/dbtest"
)

func TestSessionsAndTokens(t *testing.T) {
	d := dbtest.New(t)
	ctx := context.Background()
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	if _, err := d.UserByName(ctx, "admin"); !errors.Is(err, db.ErrNoCredential) {
		t.Fatalf("UserByName(missing) = %v, want ErrNoCredential", err)
	}
	created, err := d.CreateUserIfAbsent(ctx, "admin", "hash1", db.RoleAdmin)
	if err != nil || !created {
		t.Fatalf("CreateUserIfAbsent = %v, %v", created, err)
	}
	if created, err := d.CreateUserIfAbsent(ctx, "admin", "hash2", db.RoleAdmin); err != nil || created {
		t.Fatalf("second CreateUserIfAbsent = %v, %v; want false", created, err)
	}
	u, err := d.PutUser(ctx, "admin", "hash3", db.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := d.UserByName(ctx, "admin"); got.PasswordHash != "hash3" || got.ID != u.ID {
		t.Errorf("after PutUser: %+v, want hash3 on the same id %d", got, u.ID)
	}
	if _, err := d.PutUser(ctx, "eve", "h", "root"); err == nil {
		t.Errorf("PutUser with role root succeeded")
	}

	live, old := db.SecretHash("live"), db.SecretHash("old")
	if err := d.CreateSession(ctx, live, u.ID, "csrf1", now.Add(time.Hour), "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	if err := d.CreateSession(ctx, old, u.ID, "csrf2", now.Add(-time.Minute), "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	s, err := d.SessionByHash(ctx, live, now)
	if err != nil || s.User.Username != "admin" || s.CSRFToken != "csrf1" || s.User.Role != db.RoleAdmin {
		t.Fatalf("SessionByHash(live) = %+v, %v", s, err)
	}
	if _, err := d.SessionByHash(ctx, old, now); !errors.Is(err, db.ErrNoCredential) {
		t.Errorf("SessionByHash(expired) = %v, want ErrNoCredential", err)
	}
	if n, err := d.DeleteExpiredSessions(ctx, now); err != nil || n != 1 {
		t.Errorf("DeleteExpiredSessions = %d, %v; want 1", n, err)
	}
	if err := d.DeleteUserSessions(ctx, u.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := d.SessionByHash(ctx, live, now); !errors.Is(err, db.ErrNoCredential) {
		t.Errorf("session survived DeleteUserSessions: %v", err)
	}

	tok := db.SecretHash("tlsrpt_x")
	id, err := d.CreateAPIToken(ctx, tok, "ci", db.RoleViewer)
	if err != nil {
		t.Fatal(err)
	}
	got, err := d.APITokenByHash(ctx, tok)
	if err != nil || got.ID != id || got.Role != db.RoleViewer || got.LastUsedAt == nil {
		t.Fatalf("APITokenByHash = %+v, %v; want the token with its use recorded", got, err)
	}
	if list, err := d.APITokens(ctx); err != nil || len(list) != 1 {
		t.Errorf("APITokens = %v, %v", list, err)
	}
	if err := d.RevokeAPIToken(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := d.APITokenByHash(ctx, tok); !errors.Is(err, db.ErrNoCredential) {
		t.Errorf("revoked token = %v, want ErrNoCredential", err)
	}
	if err := d.RevokeAPIToken(ctx, id); !errors.Is(err, db.ErrNoCredential) {
		t.Errorf("second revoke = %v, want ErrNoCredential", err)
	}
}

// TestLastAdminKept: DeleteUser and SetUserRole never take the last admin
// away, even when two admins remove each other at once; a store of
// viewers only (the CLI's) is left alone.
func TestLastAdminKept(t *testing.T) {
	d := dbtest.New(t)
	ctx := context.Background()
	for _, u := range []struct{ name, role string }{{"ann", db.RoleAdmin}, {"ben", db.RoleAdmin}, {"val", db.RoleViewer}} {
		if _, err := d.PutUser(ctx, u.name, "h", u.role); err != nil {
			t.Fatal(err)
		}
	}
	// Two admins removing each other at once: one wins.
	errs := make(chan error, 2)
	for _, name := range []string{"ann", "ben"} {
		go func() { errs <- d.DeleteUser(ctx, name) }()
	}
	e1, e2 := <-errs, <-errs
	if (e1 == nil) == (e2 == nil) || !errors.Is(errors.Join(e1, e2), db.ErrLastAdmin) {
		t.Fatalf("concurrent DeleteUser of both admins = %v, %v; want one nil, one ErrLastAdmin", e1, e2)
	}
	us, err := d.Users(ctx)
	if err != nil || len(us) != 2 {
		t.Fatalf("Users = %+v, %v; want one admin and val", us, err)
	}
	last := us[0].Username
	if us[0].Role != db.RoleAdmin {
		last = us[1].Username
	}
	if err := d.SetUserRole(ctx, last, db.RoleViewer); !errors.Is(err, db.ErrLastAdmin) {
		t.Errorf("SetUserRole(last admin, viewer) = %v, want ErrLastAdmin", err)
	}
	if err := d.SetUserRole(ctx, "val", db.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	if err := d.SetUserRole(ctx, last, db.RoleViewer); err != nil {
		t.Errorf("SetUserRole(an admin of two, viewer) = %v", err)
	}
	if err := d.SetUserRole(ctx, "nobody", db.RoleViewer); !errors.Is(err, db.ErrNoCredential) {
		t.Errorf("SetUserRole(nobody) = %v, want ErrNoCredential", err)
	}
	// No admin at all: removing a viewer is fine.
	if _, err := d.Pool.Exec(ctx, `DELETE FROM users WHERE role = 'admin'`); err != nil {
		t.Fatal(err)
	}
	if err := d.DeleteUser(ctx, last); err != nil {
		t.Errorf("DeleteUser(viewer) without admins = %v", err)
	}
}

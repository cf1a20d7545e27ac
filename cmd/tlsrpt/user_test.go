package main

import (
	"context"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/db/dbtest"
)

func TestUserCommand(t *testing.T) {
	url := dbtest.NewURL(t, true)
	code, out, errOut := runStoreCmd(t, "user", "add", "alice", "--role", "viewer", "--db", url)
	pw := strings.TrimSpace(out)
	if code != 0 || len(pw) < 16 || !strings.Contains(errOut, "only this once") {
		t.Fatalf("user add = %d, %q, %q", code, out, errOut)
	}
	d, err := db.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	u, err := d.UserByName(context.Background(), "alice")
	if err != nil || u.Role != db.RoleViewer || bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(pw)) != nil {
		t.Fatalf("stored alice = %+v, %v; want a viewer whose hash matches the printed password", u, err)
	}
	if code, out, _ := runStoreCmd(t, "user", "list", "--db", url); code != 0 || out != "alice\tviewer\n" {
		t.Errorf("user list = %d, %q", code, out)
	}
	for _, args := range [][]string{{"user", "add", "bad name"}, {"user", "add", "bob", "--role", "root"}, {"user", "frobnicate"}} {
		if code, _, _ := runStoreCmd(t, append(args, "--db", url)...); code != 2 {
			t.Errorf("%v = %d, want 2", args, code)
		}
	}
	if code, out, _ := runStoreCmd(t, "user", "remove", "alice", "--db", url); code != 0 || !strings.Contains(out, "removed alice") {
		t.Errorf("user remove = %d, %q", code, out)
	}
	if code, _, _ := runStoreCmd(t, "user", "remove", "alice", "--db", url); code != 1 {
		t.Errorf("second remove = %d, want 1", code)
	}
}

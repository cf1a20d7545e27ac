package main

import (
	"context"
	"strings"
	"testing"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/db/dbtest"
)

func TestTokenCommand(t *testing.T) {
	url := dbtest.NewURL(t, true)
	code, out, errOut := runStoreCmd(t, "token", "create", "--role", "viewer", "--name", "grafana", "--db", url)
	tok := strings.TrimSpace(out)
	if code != 0 || !strings.HasPrefix(tok, "tlsrpt_") || len(tok) < 40 || !strings.Contains(errOut, "only this once") {
		t.Fatalf("token create = %d, %q, %q", code, out, errOut)
	}
	d, err := db.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	got, err := d.APITokenByHash(context.Background(), db.SecretHash(tok))
	if err != nil || got.Role != db.RoleViewer || got.Name != "grafana" {
		t.Fatalf("stored token = %+v, %v", got, err)
	}
	var stored int
	if err := d.Pool.QueryRow(context.Background(), `SELECT count(*) FROM api_tokens WHERE position($1 in encode(token_hash, 'escape')) > 0`, tok).Scan(&stored); err != nil || stored != 0 {
		t.Errorf("the token itself is in the table (%d, %v)", stored, err)
	}
	code, out, _ = runStoreCmd(t, "token", "list", "--db", url)
	if code != 0 || !strings.Contains(out, "viewer\tgrafana") || !strings.Contains(out, "last used") {
		t.Errorf("token list = %d, %q", code, out)
	}
	if code, _, _ := runStoreCmd(t, "token", "create", "--role", "root", "--db", url); code != 2 {
		t.Errorf("token create --role root = %d, want 2", code)
	}
	id := strings.Fields(out)[0]
	if code, out, _ := runStoreCmd(t, "token", "revoke", id, "--db", url); code != 0 || !strings.Contains(out, "revoked") {
		t.Errorf("token revoke = %d, %q", code, out)
	}
	if _, err := d.APITokenByHash(context.Background(), db.SecretHash(tok)); err == nil {
		t.Errorf("revoked token still accepted")
	}
	if code, _, _ := runStoreCmd(t, "token", "revoke", id, "--db", url); code != 1 {
		t.Errorf("second revoke = %d, want 1", code)
	}
}

package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tlsrpt/tlsrpt/api"
	"github.com/tlsrpt/tlsrpt/db/dbtest"
)

// TestServeWithReadReplica starts serve with DATABASE_URL on a private
// primary and DATABASE_READ_URL_FILE naming its streaming replica: the
// server says it reads from the replica, answers its health check, and
// the admin account it creates at start (a write) is on the primary.
func TestServeWithReadReplica(t *testing.T) {
	d := dbtest.NewReplicated(t)
	file := filepath.Join(t.TempDir(), "read-url")
	if err := os.WriteFile(file, []byte(d.Read.Config().ConnString()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{"DATABASE_URL": d.Pool.Config().ConnString(), "DATABASE_READ_URL_FILE": file}
	var stderr syncBuilder
	env := &Env{Stdout: &strings.Builder{}, Stderr: &stderr, Getenv: func(k string) string { return vars[k] }}
	cfg := &serveConfig{web: api.Settings{Listen: "127.0.0.1:0"}}
	ready := make(chan string, 1)
	a := &app{env: env, cfg: cfg, log: newLogger(env, cfg), ready: func(addr, _ string) { ready <- addr }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.run(ctx) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run() after cancel = %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("server did not stop within 30s")
		}
	}()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("run() = %v before it was ready; stderr:\n%s", err, stderr.String())
	case <-time.After(time.Minute):
		t.Fatal("server not ready within a minute")
	}
	if !strings.Contains(stderr.String(), "read from the replica") {
		t.Errorf("serve with DATABASE_READ_URL_FILE did not say it reads from the replica; stderr:\n%s", stderr.String())
	}
	if code := Main(context.Background(), []string{"healthcheck", "--addr", addr}, env); code != 0 {
		t.Errorf("healthcheck = %d; stderr:\n%s", code, stderr.String())
	}
	if _, err := d.UserByName(context.Background(), api.AdminUser); err != nil {
		t.Errorf("the admin created at start is not on the primary: %v", err)
	}
}

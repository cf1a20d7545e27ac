package main

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tlsrpt/tlsrpt/api"
	"github.com/tlsrpt/tlsrpt/db/dbtest"
)

func TestServeSettingErrors(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{env: map[string]string{"TLSRPT_TLS_CERT": "/x.pem"}, want: "TLSRPT_TLS_KEY"},
		{args: []string{"--listen", "nonsense"}, want: "--listen"},
		{env: map[string]string{"TLSRPT_MIGRATE": "maybe"}, want: "TLSRPT_MIGRATE"},
		{env: map[string]string{"TLSRPT_ADMIN_PASSWORD": "a", "TLSRPT_ADMIN_PASSWORD_FILE": "/f"}, want: "TLSRPT_ADMIN_PASSWORD_FILE"},
		{env: map[string]string{"TLSRPT_LOG_LEVEL": "loud"}, want: "TLSRPT_LOG_LEVEL"},
		{env: map[string]string{"TLSRPT_IMAP_URL": "ftp://x"}, want: "TLSRPT_IMAP_URL"},
	} {
		var stderr strings.Builder
		env := &Env{Stdout: &strings.Builder{}, Stderr: &stderr, Getenv: func(k string) string { return tc.env[k] }}
		code := Main(context.Background(), append([]string{"serve"}, tc.args...), env)
		lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
		if code != 2 || len(lines) != 1 || !strings.Contains(lines[0], tc.want) {
			t.Errorf("serve %v with %v = %d, %q; want 2 and one line naming %s", tc.args, tc.env, code, stderr.String(), tc.want)
		}
	}
}

// TestServeRunsAndStops starts the whole server on port 0 against a real
// database, asks it for /healthz the way the container health check does,
// and stops it.
func TestServeRunsAndStops(t *testing.T) {
	store := dbtest.New(t)
	var stderr syncBuilder // the logger and the command both write to it
	env := &Env{Stdout: &strings.Builder{}, Stderr: &stderr, Getenv: func(string) string { return "" }}
	ready := make(chan string, 1)
	a := &app{env: env, cfg: &serveConfig{web: api.Settings{Listen: "127.0.0.1:0"}}, log: newLogger(env, &serveConfig{}), store: store,
		ready: func(addr, pw string) {
			if pw == "" {
				t.Errorf("first start printed no generated admin password")
			}
			ready <- addr
		}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.run(ctx) }()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("run() = %v before it was ready; stderr:\n%s", err, stderr.String())
	case <-time.After(time.Minute):
		t.Fatal("server not ready within a minute")
	}
	if code := Main(context.Background(), []string{"healthcheck", "--addr", addr}, env); code != 0 {
		t.Errorf("healthcheck against a running server = %d; stderr:\n%s", code, stderr.String())
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run() after cancel = %v, want nil", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("server did not stop within 30s")
	}
	if code := Main(context.Background(), []string{"healthcheck", "--addr", addr}, env); code != 1 {
		t.Errorf("healthcheck against a stopped server = %d, want 1", code)
	}
}

// syncBuilder is a strings.Builder safe for concurrent writers.
type syncBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuilder) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuilder) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestServeRefusesOldSchema: on a database with pending migrations the
// server does not start unless told to migrate (docs/cli.md, docs/store.md).
func TestServeRefusesOldSchema(t *testing.T) {
	url := dbtest.NewURL(t, false)
	var stderr syncBuilder
	env := &Env{Stdout: &strings.Builder{}, Stderr: &stderr, Getenv: func(string) string { return "" }}
	code := Main(context.Background(), []string{"serve", "--db", url, "--listen", "127.0.0.1:0", "--no-imap"}, env)
	if code != 1 || !strings.Contains(stderr.String(), "schema is outdated") {
		t.Errorf("serve on an unmigrated database = %d, %q; want 1 and the schema hint", code, stderr.String())
	}
}

package main

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/db/dbtest"
)

// readyWriter collects what a command prints and closes ready once the
// output holds "Dashboard:".
type readyWriter struct {
	mu    sync.Mutex
	b     strings.Builder
	ready chan struct{}
	once  sync.Once
}

func (w *readyWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.b.Write(p)
	if strings.Contains(w.b.String(), "Dashboard:") {
		w.once.Do(func() { close(w.ready) })
	}
	return len(p), nil
}

// runDemoUntilReady runs tlsrpt demo in process with getenv until it prints
// its dashboard address, then stops it; it returns the exit code and what
// the demo printed on standard error.
func runDemoUntilReady(t *testing.T, getenv func(string) string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &readyWriter{ready: make(chan struct{})}
	errOut := &syncBuilder{}
	env := &Env{Stdin: strings.NewReader(""), Stdout: out, Stderr: errOut, Getenv: getenv}
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, append([]string{"demo", "--listen", "127.0.0.1:0"}, args...), env)
	}()
	select {
	case <-out.ready:
		cancel()
		return <-done, errOut.String()
	case code := <-done:
		return code, errOut.String()
	case <-time.After(3 * time.Minute):
		cancel()
		<-done
		t.Fatalf("demo did not get ready in 3 minutes; stderr: %s", errOut.String())
	}
	return 0, ""
}

// productionLike is a tlsrpt database in use: a domain, an admin and
// what the test reads back to see that nothing changed.
type productionLike struct {
	url     string
	d       *db.DB
	adminPW string // the admin's password hash
}

func newProductionLike(t *testing.T) productionLike {
	t.Helper()
	url := dbtest.NewURL(t, true)
	d, err := db.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	ctx := context.Background()
	if _, _, err := d.AddDomain(ctx, "production.example"); err != nil {
		t.Fatal(err)
	}
	u, err := d.PutUser(ctx, "admin", "$2a$10$productionproductionproductionproductionproductionpro", db.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	return productionLike{url: url, d: d, adminPW: u.PasswordHash}
}

// unchanged fails the test when the demo wrote to p's database.
func (p productionLike) unchanged(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	var domains, reportRows int
	if err := p.d.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM domains), (SELECT count(*) FROM reports)`).Scan(&domains, &reportRows); err != nil {
		t.Fatal(err)
	}
	if domains != 1 || reportRows != 0 {
		t.Errorf("the database holds %d domains and %d reports after the demo, want the 1 domain and 0 reports it had", domains, reportRows)
	}
	u, err := p.d.UserByName(ctx, "admin")
	if err != nil || u == nil || u.PasswordHash != p.adminPW {
		t.Errorf("the admin's password hash changed under the demo (%v)", err)
	}
}

// TestDemoIgnoresDatabaseURL: DATABASE_URL is a production setting; the
// demo runs on its own cluster and leaves that database as it was.
func TestDemoIgnoresDatabaseURL(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster")
	}
	p := newProductionLike(t)
	dataDir := t.TempDir()
	code, errOut := runDemoUntilReady(t, func(k string) string {
		switch k {
		case "DATABASE_URL":
			return p.url
		case "TLSRPT_DATA_DIR":
			return dataDir
		}
		return ""
	})
	if code != 0 {
		t.Fatalf("demo with DATABASE_URL set = %d, want 0 (on its own cluster); stderr: %s", code, errOut)
	}
	p.unchanged(t)
}

// TestDemoExplicitDatabase: --db is taken only when the database is empty.
func TestDemoExplicitDatabase(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the demo")
	}
	p := newProductionLike(t)
	code, errOut := runDemoUntilReady(t, func(string) string { return "" }, "--db", p.url)
	if code != 2 || !strings.Contains(errOut, "already has tables") || !strings.Contains(errOut, "public.") {
		t.Errorf("demo --db <database with tables> = %d, stderr %q; want 2 naming the tables", code, errOut)
	}
	p.unchanged(t)

	empty := dbtest.NewURL(t, false)
	code, errOut = runDemoUntilReady(t, func(string) string { return "" }, "--db", empty)
	if code != 0 {
		t.Fatalf("demo --db <empty database> = %d, want 0; stderr: %s", code, errOut)
	}
	d, err := db.Open(context.Background(), empty)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var domains int
	if err := d.Pool.QueryRow(context.Background(), `SELECT count(*) FROM domains`).Scan(&domains); err != nil || domains == 0 {
		t.Errorf("the empty database holds %d domains after the demo (%v), want the demo's", domains, err)
	}
}

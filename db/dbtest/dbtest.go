// Package dbtest gives tests a fresh, migrated PostgreSQL database each.
//
// A test package uses it from its TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }
//
// and calls New(t) in each test. Main starts one private cluster (package
// pgembed) for the whole test binary, or uses the server of
// TLSRPT_TEST_DATABASE_URL (a postgres:// URL of a user allowed to create
// databases) when it is set.
package dbtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/db/pgembed"
	"github.com/tlsrpt/tlsrpt/internal/testreq"
)

// server is the one server of the test binary, set by Main before any test
// runs and read-only afterwards; test helpers have no other way to reach
// what TestMain started.
var server struct {
	adminURL string
	err      error // why no server is available
	main     bool  // Main ran

	once     sync.Once
	template string // a migrated database that New copies
	tmplErr  error
}

// Main starts the test server, runs the tests and stops the server.
// Without PostgreSQL it still runs the tests: New then fails or skips them.
func Main(m *testing.M) int {
	server.main = true
	ctx := context.Background()
	if u := os.Getenv("TLSRPT_TEST_DATABASE_URL"); u != "" {
		server.adminURL = u
	} else {
		dir, err := os.MkdirTemp("", "tlsrpt-dbtest-")
		if err != nil {
			server.err = fmt.Errorf("creating cluster directory: %w", err)
			return m.Run()
		}
		defer os.RemoveAll(dir)
		// The postgres user must traverse it when the tests run as root.
		if err := os.Chmod(dir, 0o755); err != nil {
			server.err = fmt.Errorf("opening cluster directory: %w", err)
			return m.Run()
		}
		s, err := pgembed.Start(ctx, pgembed.Config{Dir: dir + "/pg", NoFsync: true})
		if err != nil {
			server.err = err
			return m.Run()
		}
		// A test binary killed by a timeout must not leave its cluster.
		if err := s.WatchProcess(os.Getpid(), dir); err != nil {
			fmt.Fprintln(os.Stderr, "dbtest:", err)
		}
		defer func() {
			if err := s.Stop(); err != nil {
				fmt.Fprintln(os.Stderr, "dbtest:", err)
			}
		}()
		server.adminURL = s.URL("postgres")
	}
	code := m.Run()
	if server.template != "" {
		if err := dropDatabase(ctx, server.template); err != nil {
			fmt.Fprintln(os.Stderr, "dbtest:", err)
		}
	}
	return code
}

// Required reports whether TLSRPT_TEST_REQUIRE lists postgres: tests must
// then fail, not skip, when PostgreSQL is missing.
func Required() bool { return testreq.Required("postgres") }

func unavailable(t testing.TB, err error) {
	t.Helper()
	testreq.Need(t, "postgres", "PostgreSQL", err)
}

// New returns the store on a fresh, migrated database that is dropped when
// the test ends.
func New(t testing.TB) *db.DB {
	t.Helper()
	u := NewURL(t, true)
	ctx := context.Background()
	d, err := db.Open(ctx, u)
	if err != nil {
		t.Fatalf("opening test database: %v", err)
	}
	t.Cleanup(d.Close)
	return d
}

// NewURL creates a fresh database dropped when the test ends and returns
// its URL: migrated when migrated is true, else empty (for tests of the
// migrations themselves).
func NewURL(t testing.TB, migrated bool) string {
	t.Helper()
	if !server.main {
		t.Fatalf("dbtest: the package's TestMain must call dbtest.Main")
	}
	if server.err != nil {
		unavailable(t, server.err)
	}
	ctx := context.Background()
	tmpl := "template0"
	if migrated {
		server.once.Do(func() { server.template, server.tmplErr = makeTemplate(ctx) })
		if server.tmplErr != nil {
			var me migrateError
			if errors.As(server.tmplErr, &me) {
				t.Fatalf("dbtest: migrating the template database: %v", me.err)
			}
			unavailable(t, fmt.Errorf("preparing migrated template: %w", server.tmplErr))
		}
		tmpl = server.template
	}
	name := "tlsrpt_test_" + randomHex()
	if err := exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" TEMPLATE "+pgx.Identifier{tmpl}.Sanitize()); err != nil {
		unavailable(t, err)
	}
	t.Cleanup(func() {
		if err := dropDatabase(ctx, name); err != nil {
			t.Errorf("dbtest: %v", err)
		}
	})
	return databaseURL(server.adminURL, name)
}

// makeTemplate creates and migrates the database that New copies: copying
// is much faster than migrating each test's database.
func makeTemplate(ctx context.Context) (string, error) {
	name := "tlsrpt_template_" + randomHex()
	if err := exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" TEMPLATE template0"); err != nil {
		return "", err
	}
	d, err := db.Open(ctx, databaseURL(server.adminURL, name))
	if err != nil {
		return name, err
	}
	defer d.Close()
	if err := d.Migrate(ctx); err != nil {
		return name, migrateError{err}
	}
	return name, nil
}

// migrateError is a failing migration: a bug to report, not a missing
// server to skip for.
type migrateError struct{ err error }

func (e migrateError) Error() string { return e.err.Error() }

func exec(ctx context.Context, sql string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, server.adminURL)
	if err != nil {
		return fmt.Errorf("connecting to test server: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("running %q: %w", sql, err)
	}
	return nil
}

func dropDatabase(ctx context.Context, name string) error {
	return exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
}

// databaseURL is adminURL naming another database.
func databaseURL(adminURL, name string) string {
	u, err := url.Parse(adminURL)
	if err != nil || u.Scheme == "" {
		// A key=value connection string.
		return adminURL + " dbname=" + name
	}
	u.Path = "/" + name
	return u.String()
}

func randomHex() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Outage returns a switch that takes the database of d down (it refuses
// new connections and those open are terminated) or brings it back up. It
// works through the server's postgres database, since a database cannot
// lock itself out; the test's cleanup closes that connection.
func Outage(t testing.TB, d *db.DB) (setDown func(down bool)) {
	t.Helper()
	ctx := context.Background()
	cfg := d.Pool.Config().ConnConfig.Copy()
	name := cfg.Database
	cfg.Database = "postgres"
	admin, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close(ctx) })
	return func(down bool) {
		t.Helper()
		if _, err := admin.Exec(ctx, fmt.Sprintf(`ALTER DATABASE %s ALLOW_CONNECTIONS %t`, pgx.Identifier{name}.Sanitize(), !down)); err != nil {
			t.Fatal(err)
		}
		if down {
			if _, err := admin.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1`, name); err != nil {
				t.Fatal(err)
			}
		}
	}
}

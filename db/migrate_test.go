package db_test

import (
	"context"
	"errors"
	"os"
	"sync"
	"testing"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/db/dbtest"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }

func TestMigrate(t *testing.T) {
	ctx := context.Background()
	d, err := db.Open(ctx, dbtest.NewURL(t, false))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.CheckSchema(ctx); !errors.Is(err, db.ErrSchemaOutdated) {
		t.Fatalf("CheckSchema() on empty database = %v, want ErrSchemaOutdated", err)
	}
	// Concurrent migrations, as from two processes starting at once.
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = d.Migrate(ctx)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Migrate() #%d = %v", i, err)
		}
	}
	if err := d.CheckSchema(ctx); err != nil {
		t.Fatalf("CheckSchema() after Migrate = %v", err)
	}
	ms, err := db.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := d.Pool.QueryRow(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != len(ms) {
		t.Fatalf("schema_migrations has %d rows, want %d", n, len(ms))
	}
	// A migration recorded as not applied makes the schema outdated again.
	if _, err := d.Pool.Exec(ctx, `DELETE FROM schema_migrations WHERE version = $1`, ms[len(ms)-1].Version); err != nil {
		t.Fatal(err)
	}
	if err := d.CheckSchema(ctx); !errors.Is(err, db.ErrSchemaOutdated) {
		t.Fatalf("CheckSchema() with one pending = %v, want ErrSchemaOutdated", err)
	}
}

func TestNewIsMigrated(t *testing.T) {
	d := dbtest.New(t)
	if err := d.CheckSchema(context.Background()); err != nil {
		t.Fatalf("CheckSchema() on dbtest.New = %v", err)
	}
}

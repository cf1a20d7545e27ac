package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/db/pgembed"
)

// defaultDataDir is where the embedded PostgreSQL and other state live
// when TLSRPT_DATA_DIR is not set.
const defaultDataDir = "./tlsrpt-data"

// embeddedDatabase is the database name on the embedded cluster.
const embeddedDatabase = "tlsrpt"

// openDatabase opens the store for a command: the --db flag first, then
// DATABASE_URL (with DATABASE_READ_URL, a read replica for the pages'
// reads), else the embedded PostgreSQL under the data directory
// (TLSRPT_DATA_DIR, default ./tlsrpt-data). The embedded default is
// migrated automatically; an explicit database with pending migrations is
// refused with a one-line hint to run "tlsrpt migrate". The returned
// function closes the pool and stops the embedded server; call it once.
func openDatabase(ctx context.Context, env *Env, flagURL string) (*db.DB, func(), error) {
	d, closeFn, embedded, err := openDatabaseUnchecked(ctx, env, flagURL)
	if err != nil {
		return nil, nil, err
	}
	if embedded {
		err = d.Migrate(ctx)
	} else if err = d.CheckSchema(ctx); errors.Is(err, db.ErrSchemaOutdated) {
		err = fmt.Errorf("the database schema is outdated: run \"tlsrpt migrate\" with the same --db/DATABASE_URL first")
	}
	if err != nil {
		closeFn()
		return nil, nil, err
	}
	return d, closeFn, nil
}

// dataDir is the data directory of the embedded PostgreSQL:
// TLSRPT_DATA_DIR, default ./tlsrpt-data.
func dataDir(env *Env) string {
	if d := env.Getenv("TLSRPT_DATA_DIR"); d != "" {
		return d
	}
	return defaultDataDir
}

// openDatabaseUnchecked is openDatabase without the schema check, for the
// commands that decide about migrations themselves (migrate, serve).
// embedded says whether the embedded default is used.
func openDatabaseUnchecked(ctx context.Context, env *Env, flagURL string) (d *db.DB, closeFn func(), embedded bool, err error) {
	url := flagURL
	if url == "" {
		url = env.Getenv("DATABASE_URL")
	}
	readURL, err := readDatabaseURL(env)
	if err != nil {
		return nil, nil, false, err
	}
	if url != "" {
		if url, err = databasePassword(env, url); err != nil {
			return nil, nil, false, err
		}
		d, err := db.Open(ctx, url)
		if err != nil {
			return nil, nil, false, fmt.Errorf("opening database: %w", err)
		}
		// The pages', the API's and the verdict's reads go to the
		// replica (db/replica.go).
		if readURL != "" {
			if err := d.OpenReplica(ctx, readURL); err != nil {
				d.Close()
				return nil, nil, false, fmt.Errorf("opening the read replica of DATABASE_READ_URL: %w", err)
			}
		}
		return d, d.Close, false, nil
	}
	if readURL != "" {
		return nil, nil, false, errors.New("DATABASE_READ_URL is set without DATABASE_URL or --db: a read replica needs its primary's URL too")
	}
	dir := dataDir(env)
	// 0711: the postgres user (when running as root) must traverse it.
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return nil, nil, false, fmt.Errorf("creating data directory: %w", err)
	}
	srv, err := pgembed.Start(ctx, pgembed.Config{Dir: filepath.Join(dir, "postgres")})
	if err != nil {
		return nil, nil, false, fmt.Errorf("starting embedded postgresql (or set DATABASE_URL): %w", err)
	}
	stop := func() {
		if err := srv.Stop(); err != nil {
			fmt.Fprintf(env.Stderr, "tlsrpt: %v\n", err)
		}
	}
	if err := srv.CreateDatabase(ctx, embeddedDatabase); err != nil {
		stop()
		return nil, nil, false, err
	}
	d, err = db.Open(ctx, srv.URL(embeddedDatabase))
	if err != nil {
		stop()
		return nil, nil, false, fmt.Errorf("opening embedded database: %w", err)
	}
	return d, func() { d.Close(); stop() }, true, nil
}

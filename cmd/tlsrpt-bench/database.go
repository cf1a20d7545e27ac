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

// openDatabase opens the store the way tlsrpt's commands do, in short:
// --db, else DATABASE_URL (whose schema must be current: run "tlsrpt
// migrate" first), else the embedded PostgreSQL under TLSRPT_DATA_DIR
// (default ./tlsrpt-data), migrated here. The returned function closes the
// pool and stops the embedded server.
func openDatabase(ctx context.Context, env *Env, flagURL string) (*db.DB, func(), error) {
	url := flagURL
	if url == "" {
		url = env.Getenv("DATABASE_URL")
	}
	if url != "" {
		d, err := db.Open(ctx, url)
		if err != nil {
			return nil, nil, fmt.Errorf("opening database: %w", err)
		}
		if err := d.CheckSchema(ctx); err != nil {
			d.Close()
			if errors.Is(err, db.ErrSchemaOutdated) {
				return nil, nil, fmt.Errorf("the database schema is outdated: run \"tlsrpt migrate\" with the same --db/DATABASE_URL first")
			}
			return nil, nil, err
		}
		return d, d.Close, nil
	}
	dir := dataDir(env)
	// 0711: the postgres user (when running as root) must traverse it.
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return nil, nil, fmt.Errorf("creating data directory: %w", err)
	}
	srv, err := pgembed.Start(ctx, pgembed.Config{Dir: filepath.Join(dir, "postgres")})
	if err != nil {
		return nil, nil, fmt.Errorf("starting embedded postgresql (or set DATABASE_URL): %w", err)
	}
	stop := func() {
		if err := srv.Stop(); err != nil {
			fmt.Fprintf(env.Stderr, "tlsrpt-bench: %v\n", err)
		}
	}
	const name = "tlsrpt" // the embedded database of tlsrpt itself
	if err := srv.CreateDatabase(ctx, name); err != nil {
		stop()
		return nil, nil, err
	}
	d, err := db.Open(ctx, srv.URL(name))
	if err != nil {
		stop()
		return nil, nil, fmt.Errorf("opening embedded database: %w", err)
	}
	if err := d.Migrate(ctx); err != nil {
		d.Close()
		stop()
		return nil, nil, err
	}
	return d, func() { d.Close(); stop() }, nil
}

// dataDir is the data directory of the embedded PostgreSQL:
// TLSRPT_DATA_DIR, default ./tlsrpt-data, as for tlsrpt.
func dataDir(env *Env) string {
	if d := env.Getenv("TLSRPT_DATA_DIR"); d != "" {
		return d
	}
	return "./tlsrpt-data"
}

// embeddedDataDir is dataDir when a part given flagURL uses the embedded
// PostgreSQL (no --db, no DATABASE_URL), else "".
func embeddedDataDir(env *Env, flagURL string) string {
	if flagURL != "" || env.Getenv("DATABASE_URL") != "" {
		return ""
	}
	return dataDir(env)
}

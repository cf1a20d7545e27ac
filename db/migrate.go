package db

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// ErrSchemaOutdated is returned by CheckSchema when migrations are pending:
// run "tlsrpt migrate" (or start the server with its migrate option).
var ErrSchemaOutdated = errors.New("db: database schema is outdated, run tlsrpt migrate")

// migrationLock is the advisory lock key that serialises Migrate across
// processes ("tlsrpt" in ASCII).
const migrationLock = 0x746c73727074

// Migration is one numbered schema change from db/migrations.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// Migrations returns the embedded migrations in version order. Files are
// named NNN_name.sql; ranges are split between packages (core 001-009,
// rollout 010-019, api/ui 020-029, ingest 030-039, promote 040-049).
func Migrations() ([]Migration, error) {
	files, err := fs.Glob(migrationFS, "migrations/*.sql")
	if err != nil {
		return nil, fmt.Errorf("db: listing migrations: %w", err)
	}
	var ms []Migration
	seen := map[int]string{}
	for _, f := range files {
		base := strings.TrimSuffix(path.Base(f), ".sql")
		num, name, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("db: migration file %s is not named NNN_name.sql", f)
		}
		if other, dup := seen[v]; dup {
			return nil, fmt.Errorf("db: migrations %s and %s share version %d", other, f, v)
		}
		seen[v] = f
		b, err := migrationFS.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("db: reading migration %s: %w", f, err)
		}
		ms = append(ms, Migration{Version: v, Name: name, SQL: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	return ms, nil
}

const createMigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version integer PRIMARY KEY,
	name text NOT NULL,
	applied_at timestamptz NOT NULL DEFAULT now()
)`

// Migrate applies every pending migration, each in its own transaction
// together with its row in schema_migrations. Concurrent calls, also from
// other processes, are serialised by an advisory lock.
func (d *DB) Migrate(ctx context.Context) error {
	return d.MigrateTo(ctx, 0)
}

// MigrateTo applies the pending migrations up to version (all when version
// is 0), as Migrate does. Tests use it to build a database as an older
// release left it and then migrate it.
func (d *DB) MigrateTo(ctx context.Context, version int) error {
	ms, err := Migrations()
	if err != nil {
		return err
	}
	conn, err := d.Pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("db: acquiring connection to migrate: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, int64(migrationLock)); err != nil {
		return fmt.Errorf("db: taking migration lock: %w", err)
	}
	defer func() {
		// A fresh context: the lock must go even when ctx was cancelled.
		_, _ = conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, int64(migrationLock))
	}()
	if _, err := conn.Exec(ctx, createMigrationsTable); err != nil {
		return fmt.Errorf("db: creating schema_migrations: %w", err)
	}
	applied, err := appliedVersions(ctx, conn.Conn())
	if err != nil {
		return err
	}
	for _, m := range ms {
		if applied[m.Version] || version > 0 && m.Version > version {
			continue
		}
		err := pgx.BeginFunc(ctx, conn.Conn(), func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, m.Version, m.Name)
			return err
		})
		if err != nil {
			return fmt.Errorf("db: applying migration %03d_%s: %w", m.Version, m.Name, err)
		}
	}
	if version == 0 || version >= reportersMigration {
		if err := reattributeLegacy(ctx, conn.Conn()); err != nil {
			return fmt.Errorf("db: moving unverified HTTPS reports out of the evidence: %w", err)
		}
	}
	return nil
}

func appliedVersions(ctx context.Context, conn *pgx.Conn) (map[int]bool, error) {
	rows, err := conn.Query(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return nil, fmt.Errorf("db: reading schema_migrations: %w", err)
	}
	vs, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		return nil, fmt.Errorf("db: reading schema_migrations: %w", err)
	}
	m := make(map[int]bool, len(vs))
	for _, v := range vs {
		m[v] = true
	}
	return m, nil
}

// CheckSchema returns an error wrapping ErrSchemaOutdated when a migration
// of this binary has not been applied to the database.
func (d *DB) CheckSchema(ctx context.Context) error {
	ms, err := Migrations()
	if err != nil {
		return err
	}
	var exists bool
	if err := d.Pool.QueryRow(ctx, `SELECT to_regclass('schema_migrations') IS NOT NULL`).Scan(&exists); err != nil {
		return fmt.Errorf("db: checking schema: %w", err)
	}
	if !exists {
		return fmt.Errorf("%w (%d migrations pending)", ErrSchemaOutdated, len(ms))
	}
	conn, err := d.Pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("db: checking schema: %w", err)
	}
	defer conn.Release()
	applied, err := appliedVersions(ctx, conn.Conn())
	if err != nil {
		return err
	}
	var pending []string
	for _, m := range ms {
		if !applied[m.Version] {
			pending = append(pending, fmt.Sprintf("%03d_%s", m.Version, m.Name))
		}
	}
	if len(pending) > 0 {
		return fmt.Errorf("%w (pending: %s)", ErrSchemaOutdated, strings.Join(pending, ", "))
	}
	return nil
}

// AppliedMigrations returns the versions recorded in schema_migrations, in
// order; none when the table does not exist yet.
func (d *DB) AppliedMigrations(ctx context.Context) ([]int, error) {
	var exists bool
	if err := d.Pool.QueryRow(ctx, `SELECT to_regclass('schema_migrations') IS NOT NULL`).Scan(&exists); err != nil {
		return nil, fmt.Errorf("db: checking schema: %w", err)
	}
	if !exists {
		return nil, nil
	}
	rows, err := d.Pool.Query(ctx, `SELECT version FROM schema_migrations ORDER BY version`)
	if err != nil {
		return nil, fmt.Errorf("db: reading schema_migrations: %w", err)
	}
	vs, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		return nil, fmt.Errorf("db: reading schema_migrations: %w", err)
	}
	return vs, nil
}

// UserTables lists up to limit tables, views, sequences and schemas of
// the database outside PostgreSQL's own (schemas as "schema name"):
// an empty list means an empty database, one a command that fills a
// database with sample data may take (tlsrpt demo --db).
func (d *DB) UserTables(ctx context.Context, limit int) ([]string, error) {
	rows, err := d.Pool.Query(ctx, `SELECT name FROM (
			SELECT n.nspname || '.' || c.relname AS name FROM pg_class c
			JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
				AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
				AND n.nspname NOT LIKE 'pg\_temp\_%' AND n.nspname NOT LIKE 'pg\_toast\_temp\_%'
			UNION ALL
			SELECT 'schema ' || nspname FROM pg_namespace
			WHERE nspname NOT IN ('public', 'pg_catalog', 'information_schema', 'pg_toast')
				AND nspname NOT LIKE 'pg\_%') t
		ORDER BY 1 LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("db: listing tables: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("db: listing tables: %w", err)
	}
	return names, nil
}

package db_test

import (
	"context"
	"os"
	"path"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/tlsrpt/tlsrpt/db/dbtest"
)

// citusPlan is the table of SCALING.md's Citus section: how each table
// (or table name pattern) would be placed.
type citusPlan struct {
	pattern string // a table name or a path.Match pattern (daily_*_rollups)
	kind    string // distributed, reference or local
	column  string // the distribution column of a distributed table
}

// readCitusPlan parses the table of SCALING.md's section on Citus: rows of
// `| `name`, `name` | kind ... | `column` |`.
func readCitusPlan(t *testing.T) []citusPlan {
	t.Helper()
	b, err := os.ReadFile("../SCALING.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	start := strings.Index(doc, "## When one primary is not enough: Citus")
	if start < 0 {
		t.Fatal("SCALING.md has no section on Citus")
	}
	sec := doc[start+3:]
	if end := strings.Index(sec, "\n## "); end >= 0 {
		sec = sec[:end]
	}
	name := regexp.MustCompile("`([a-z_*]+)`")
	var plan []citusPlan
	for _, line := range strings.Split(sec, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) != 5 || !strings.Contains(cells[1], "`") {
			continue
		}
		kind := strings.TrimRight(strings.Fields(strings.TrimSpace(cells[2]) + " ?")[0], ",:;")
		var column string
		if m := name.FindStringSubmatch(cells[3]); m != nil {
			column = m[1]
		}
		for _, m := range name.FindAllStringSubmatch(cells[1], -1) {
			plan = append(plan, citusPlan{pattern: m[1], kind: kind, column: column})
		}
	}
	if len(plan) == 0 {
		t.Fatal("SCALING.md's Citus section has no table of tables")
	}
	return plan
}

// TestCitusReadySchema checks the migrated schema against SCALING.md's
// Citus section, on the live catalog: every table of the schema is placed
// (distributed, reference or local) by exactly one row, and every row
// names a table; a distributed table has its distribution column, NOT
// NULL and of one type for all (so that they can be co-located), and
// every primary key, unique constraint and unique index includes it;
// foreign keys run only into a reference table, between local tables, or
// between distributed tables through the distribution column on both
// sides; never into a distributed table from elsewhere, nor from a
// distributed or reference table into a local one.
func TestCitusReadySchema(t *testing.T) {
	d := dbtest.New(t)
	ctx := context.Background()
	plan := readCitusPlan(t)

	rows, err := d.Pool.Query(ctx, `SELECT c.relname FROM pg_class c
		WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relispartition`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, n)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	placed := map[string]citusPlan{}
	used := map[string]bool{}
	for _, tb := range tables {
		for _, p := range plan {
			if ok, _ := path.Match(p.pattern, tb); !ok {
				continue
			}
			if prev, dup := placed[tb]; dup {
				t.Errorf("table %s placed twice in SCALING.md: by %s and by %s", tb, prev.pattern, p.pattern)
			}
			placed[tb] = p
			used[p.pattern] = true
		}
		if _, ok := placed[tb]; !ok {
			t.Errorf("table %s is not placed in SCALING.md's Citus section (distributed, reference or local)", tb)
		}
	}
	for _, p := range plan {
		if !used[p.pattern] {
			t.Errorf("SCALING.md's Citus section names %s, which is no table of the schema", p.pattern)
		}
		switch {
		case p.kind != "distributed" && p.kind != "reference" && p.kind != "local":
			t.Errorf("SCALING.md places %s as %q: want distributed, reference or local", p.pattern, p.kind)
		case (p.kind == "distributed") != (p.column != ""):
			t.Errorf("SCALING.md places %s as %s with distribution column %q", p.pattern, p.kind, p.column)
		}
	}

	// The distribution column: present, NOT NULL, one type for all.
	types := map[string][]string{}
	for tb, p := range placed {
		if p.kind != "distributed" {
			continue
		}
		var typ string
		var notNull bool
		err := d.Pool.QueryRow(ctx, `SELECT format_type(atttypid, atttypmod), attnotnull FROM pg_attribute
			WHERE attrelid = ('public.' || quote_ident($1))::regclass AND attname = $2 AND NOT attisdropped`, tb, p.column).Scan(&typ, &notNull)
		if err != nil {
			t.Errorf("distributed table %s has no distribution column %s: %v", tb, p.column, err)
			continue
		}
		if !notNull {
			t.Errorf("distribution column %s.%s may be NULL", tb, p.column)
		}
		types[typ] = append(types[typ], tb)
	}
	if len(types) > 1 {
		t.Errorf("the distribution columns have several types, so the tables cannot be co-located: %v", types)
	}

	// Every unique index (primary keys and unique constraints have one)
	// of a distributed table includes its distribution column.
	rows, err = d.Pool.Query(ctx, `SELECT c.relname, i.relname,
			coalesce(array_agg(a.attname ORDER BY a.attname) FILTER (WHERE a.attname IS NOT NULL), '{}')
		FROM pg_index x
		JOIN pg_class c ON c.oid = x.indrelid
		JOIN pg_class i ON i.oid = x.indexrelid
		LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY (x.indkey)
		WHERE x.indisunique AND c.relnamespace = 'public'::regnamespace AND NOT c.relispartition
		GROUP BY c.relname, i.relname`)
	if err != nil {
		t.Fatal(err)
	}
	uniques := 0
	for rows.Next() {
		var tb, idx string
		var cols []string
		if err := rows.Scan(&tb, &idx, &cols); err != nil {
			t.Fatal(err)
		}
		if p := placed[tb]; p.kind == "distributed" {
			uniques++
			if !slices.Contains(cols, p.column) {
				t.Errorf("unique index %s of distributed table %s is on %v, without the distribution column %s", idx, tb, cols, p.column)
			}
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if uniques == 0 {
		t.Error("no unique index of a distributed table was checked")
	}

	// Foreign keys.
	rows, err = d.Pool.Query(ctx, `SELECT f.conname, c.relname, r.relname,
			(SELECT array_agg(attname ORDER BY attname) FROM pg_attribute WHERE attrelid = f.conrelid AND attnum = ANY (f.conkey)),
			(SELECT array_agg(attname ORDER BY attname) FROM pg_attribute WHERE attrelid = f.confrelid AND attnum = ANY (f.confkey))
		FROM pg_constraint f
		JOIN pg_class c ON c.oid = f.conrelid
		JOIN pg_class r ON r.oid = f.confrelid
		WHERE f.contype = 'f' AND f.connamespace = 'public'::regnamespace AND NOT c.relispartition`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var name, from, to string
		var fromCols, toCols []string
		if err := rows.Scan(&name, &from, &to, &fromCols, &toCols); err != nil {
			t.Fatal(err)
		}
		pf, pt := placed[from], placed[to]
		switch {
		case pt.kind == "reference", pf.kind == "local" && pt.kind == "local":
			// Into a reference table from anywhere, or between tables
			// of the coordinator.
		case pf.kind == "distributed" && pt.kind == "distributed":
			if !slices.Contains(fromCols, pf.column) || !slices.Contains(toCols, pt.column) {
				t.Errorf("foreign key %s from %s %v to %s %v does not run through the distribution columns: it would cross shards", name, from, fromCols, to, toCols)
			}
		default:
			t.Errorf("foreign key %s from %s table %s to %s table %s: Citus takes foreign keys only into reference tables or between co-located distributed tables", name, pf.kind, from, pt.kind, to)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
}

package db

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"golang.org/x/net/idna"
)

// Domain is one of the operator's domains (the allow-list).
type Domain struct {
	Name    string
	AddedAt time.Time
}

// domainProfile converts names as a resolver looks them up: Unicode to
// punycode (IDNA 2008, lookup rules), lower case.
var domainProfile = idna.Lookup

// NormalizeDomain returns the stored form of a domain name: lower case,
// without a trailing dot, internationalised names in punycode (A-labels).
func NormalizeDomain(name string) (string, error) {
	n := strings.TrimSuffix(strings.TrimSpace(name), ".")
	if n == "" {
		return "", errors.New("empty domain name")
	}
	if !utf8.ValidString(n) {
		return "", fmt.Errorf("domain name %q: not valid UTF-8", name)
	}
	a, err := domainProfile.ToASCII(n)
	if err != nil {
		return "", fmt.Errorf("domain name %q: %w", name, err)
	}
	a = strings.ToLower(a)
	// The stored form must itself be a valid name (punycode that decodes
	// to something IDNA refuses is not).
	if again, err := domainProfile.ToASCII(a); err != nil || again != a {
		return "", fmt.Errorf("domain name %q: not a valid internationalised name", name)
	}
	if len(a) > 253 || !strings.Contains(a, ".") {
		return "", fmt.Errorf("domain name %q: not a fully qualified name", name)
	}
	for _, label := range strings.Split(a, ".") {
		if label == "" || len(label) > 63 {
			return "", fmt.Errorf("domain name %q: empty or over-long label", name)
		}
	}
	return a, nil
}

// AddDomain adds a domain to the allow-list, normalised by NormalizeDomain,
// and returns its stored name; added is false when it was there already.
func (d *DB) AddDomain(ctx context.Context, name string) (stored string, added bool, err error) {
	n, err := NormalizeDomain(name)
	if err != nil {
		return "", false, err
	}
	tag, err := d.Pool.Exec(ctx, `INSERT INTO domains (name) VALUES ($1) ON CONFLICT (name) DO NOTHING`, n)
	if err != nil {
		return "", false, fmt.Errorf("adding domain %s: %w", n, err)
	}
	return n, tag.RowsAffected() == 1, nil
}

// RemoveDomain removes a domain from the allow-list (its reports stay);
// removed is false when it was not there.
func (d *DB) RemoveDomain(ctx context.Context, name string) (stored string, removed bool, err error) {
	n, err := NormalizeDomain(name)
	if err != nil {
		return "", false, err
	}
	tag, err := d.Pool.Exec(ctx, `DELETE FROM domains WHERE name = $1`, n)
	if err != nil {
		return "", false, fmt.Errorf("removing domain %s: %w", n, err)
	}
	return n, tag.RowsAffected() == 1, nil
}

// Domains returns the allow-list in name order.
func (d *DB) Domains(ctx context.Context) ([]Domain, error) {
	rows, err := d.Pool.Query(ctx, `SELECT name, added_at FROM domains ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("listing domains: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Domain])
	if err != nil {
		return nil, fmt.Errorf("listing domains: %w", err)
	}
	return out, nil
}

// HasDomain reports whether name (normalised) is on the allow-list.
func (d *DB) HasDomain(ctx context.Context, name string) (bool, error) {
	n, err := NormalizeDomain(name)
	if err != nil {
		return false, err
	}
	var ok bool
	if err := d.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM domains WHERE name = $1)`, n).Scan(&ok); err != nil {
		return false, fmt.Errorf("looking up domain %s: %w", n, err)
	}
	return ok, nil
}

// DomainKnown reports whether name is on the allow-list or named by any
// stored report (a rollup row of any day): a page for a name that is
// neither has nothing to show.
func (d *DB) DomainKnown(ctx context.Context, name string) (bool, error) {
	n, err := NormalizeDomain(name)
	if err != nil {
		return false, err
	}
	var ok bool
	if err := d.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM domains WHERE name = $1)
		OR EXISTS (SELECT 1 FROM daily_policy_rollups WHERE policy_domain = $1)`, n).Scan(&ok); err != nil {
		return false, fmt.Errorf("looking up domain %s: %w", n, err)
	}
	return ok, nil
}

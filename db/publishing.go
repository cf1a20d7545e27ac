package db

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tlsrpt/tlsrpt/rollout"
)

// DefaultPublishing is the Domain of the fleet default publishing setting:
// every domain without a row of its own is published this way.
const DefaultPublishing = "*"

// Where an effective publishing setting comes from (Publishing.Source).
const (
	PublishingFromDomain  = "domain"   // the domain's own row
	PublishingFromDefault = "default"  // the fleet default row
	PublishingBuiltIn     = "built-in" // nothing stored: download and manual
)

// Publishing is how a domain's policy versions are published
// (docs/publishing.md "Settings"): who serves the policy file and how the
// _mta-sts TXT record reaches DNS. It lives in the database so that every
// process (serve, the CLI) publishes a domain the same way. Secrets are
// never stored: Credential is the name of one, which each process reads
// from its environment (package rollout/pubconf).
type Publishing struct {
	// Domain is the domain, or DefaultPublishing for the fleet default.
	Domain string `json:"domain"`
	// Policy is rollout.PolicyHosted or rollout.PolicyDownload.
	Policy string `json:"policy"`
	// Record is rollout.RecordManual, RecordRFC2136, RecordCloudflare or
	// RecordHetzner.
	Record string `json:"record"`
	// Server is the primary's host:port (rfc2136 only).
	Server string `json:"server"`
	// Zone is the zone of the record, "" meaning the domain; for
	// cloudflare and hetzner it may be the provider's zone id.
	Zone string `json:"zone"`
	// TSIGKey and TSIGAlgorithm are the TSIG key's name and algorithm
	// (rfc2136 only; no key means unsigned updates; "" is hmac-sha256).
	TSIGKey       string `json:"tsig_key"`
	TSIGAlgorithm string `json:"tsig_algorithm"`
	// Credential is the name of the secret (the TSIG secret, the API
	// token), uppercase: the secret is TLSRPT_SECRET_<Credential>.
	Credential string `json:"credential"`
	// Source says where the effective setting came from (reads only).
	Source    string    `json:"source"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
	UpdatedBy string    `json:"updated_by,omitempty"`
}

// BuiltInPublishing is the setting when nothing is stored: the policy
// file handed over for download and the record set by hand, the one that
// never changes DNS or serves anything on its own.
func BuiltInPublishing() Publishing {
	return Publishing{Domain: DefaultPublishing, Policy: rollout.PolicyDownload, Record: rollout.RecordManual, Source: PublishingBuiltIn}
}

// ErrBadPublishing is wrapped by every invalid publishing setting
// (*PublishingError names the field).
var ErrBadPublishing = errors.New("db: invalid publishing setting")

// PublishingError is an invalid field of a publishing setting; Field is
// its JSON name (the CLI flag and the form field have the same name, with
// "-" for "_").
type PublishingError struct {
	Field   string
	Message string
}

func (e *PublishingError) Error() string { return e.Field + ": " + e.Message }

// Is makes errors.Is(err, ErrBadPublishing) hold.
func (e *PublishingError) Is(target error) bool { return target == ErrBadPublishing }

var (
	credentialName = regexp.MustCompile(`^[A-Za-z0-9_]{1,64}$`)
	zoneName       = regexp.MustCompile(`^[A-Za-z0-9._-]{1,253}$`)
)

// TSIGAlgorithms are the TSIG algorithms a setting may name (RFC 8945
// §6; hmac-md5 is left out on purpose).
var TSIGAlgorithms = []string{"hmac-sha1", "hmac-sha224", "hmac-sha256", "hmac-sha384", "hmac-sha512"}

// Normalize trims the fields, lowercases the methods, zone, key and
// algorithm, uppercases the credential name, and empties the fields the
// record method does not use: switching a domain from rfc2136 to a
// provider does not keep a server nobody asks for.
func (p *Publishing) Normalize() {
	for _, f := range []*string{&p.Policy, &p.Record, &p.Server, &p.Zone, &p.TSIGKey, &p.TSIGAlgorithm, &p.Credential} {
		*f = strings.TrimSpace(clean(*f))
	}
	p.Policy, p.Record = strings.ToLower(p.Policy), strings.ToLower(p.Record)
	p.TSIGKey = strings.TrimSuffix(strings.ToLower(p.TSIGKey), ".")
	p.TSIGAlgorithm = strings.TrimSuffix(strings.ToLower(p.TSIGAlgorithm), ".")
	p.Credential = strings.ToUpper(p.Credential)
	if p.Record != rollout.RecordCloudflare && p.Record != rollout.RecordHetzner {
		// A provider's zone id keeps its case; a zone name need not.
		p.Zone = strings.ToLower(p.Zone)
	}
	p.Zone = strings.TrimSuffix(p.Zone, ".")
	switch p.Record {
	case rollout.RecordManual:
		p.Server, p.Zone, p.TSIGKey, p.TSIGAlgorithm, p.Credential = "", "", "", "", ""
	case rollout.RecordCloudflare, rollout.RecordHetzner:
		p.Server, p.TSIGKey, p.TSIGAlgorithm = "", "", ""
	}
}

// Validate checks a normalized setting; the error is a *PublishingError
// naming the first bad field.
func (p Publishing) Validate() error {
	bad := func(field, format string, args ...any) error {
		return &PublishingError{Field: field, Message: fmt.Sprintf(format, args...)}
	}
	switch p.Policy {
	case rollout.PolicyHosted, rollout.PolicyDownload:
	default:
		return bad("policy", "%q is not hosted or download", p.Policy)
	}
	switch p.Record {
	case rollout.RecordManual, rollout.RecordRFC2136, rollout.RecordCloudflare, rollout.RecordHetzner:
	default:
		return bad("record", "%q is not manual, rfc2136, cloudflare or hetzner", p.Record)
	}
	if p.Record == rollout.RecordRFC2136 {
		if p.Server == "" {
			return bad("server", "rfc2136 needs the primary server as host:port")
		}
		host, port, err := net.SplitHostPort(p.Server)
		n, perr := strconv.Atoi(port)
		if err != nil || host == "" || strings.ContainsAny(host, " \t/") || perr != nil || n < 1 || n > 65535 || len(p.Server) > 300 {
			return bad("server", "%q is not host:port (e.g. ns1.example.com:53 or [2001:db8::1]:53)", p.Server)
		}
	}
	if p.Zone != "" && !zoneName.MatchString(p.Zone) {
		return bad("zone", "%q is not a zone name (letters, digits, '.', '-', '_')", p.Zone)
	}
	if p.TSIGKey != "" && !zoneName.MatchString(p.TSIGKey) {
		return bad("tsig_key", "%q is not a key name (letters, digits, '.', '-', '_')", p.TSIGKey)
	}
	if p.TSIGAlgorithm != "" {
		if p.TSIGKey == "" {
			return bad("tsig_algorithm", "set only with tsig_key")
		}
		known := false
		for _, a := range TSIGAlgorithms {
			known = known || a == p.TSIGAlgorithm
		}
		if !known {
			return bad("tsig_algorithm", "%q is not one of %s", p.TSIGAlgorithm, strings.Join(TSIGAlgorithms, ", "))
		}
	}
	if p.Credential != "" && !credentialName.MatchString(p.Credential) {
		return bad("credential", "%q is not a secret name: 1-64 letters, digits and '_' (the secret is TLSRPT_SECRET_<NAME>)", p.Credential)
	}
	switch {
	case p.Record == rollout.RecordRFC2136 && p.TSIGKey != "" && p.Credential == "":
		return bad("credential", "a TSIG key needs the name of its secret")
	case p.Record == rollout.RecordRFC2136 && p.TSIGKey == "" && p.Credential != "":
		return bad("tsig_key", "a credential needs the TSIG key name (or neither, for unsigned updates)")
	case (p.Record == rollout.RecordCloudflare || p.Record == rollout.RecordHetzner) && p.Credential == "":
		return bad("credential", "%s needs the name of its API token's secret", p.Record)
	}
	return nil
}

// AuditDetail is the setting as the audit log records it (page, API, CLI
// and the import of the old environment variables alike).
func (p Publishing) AuditDetail() map[string]any {
	return map[string]any{"scope": p.scope(), "policy": p.Policy, "record": p.Record, "server": p.Server, "zone": p.Zone,
		"tsig_key": p.TSIGKey, "tsig_algorithm": p.TSIGAlgorithm, "credential": p.Credential}
}

func (p Publishing) scope() string {
	if p.Domain == DefaultPublishing {
		return "default"
	}
	return "domain"
}

// AuditDomain is the domain an audit entry of the setting names: "" for
// the fleet default.
func (p Publishing) AuditDomain() string {
	if p.Domain == DefaultPublishing {
		return ""
	}
	return p.Domain
}

// publishingKey is the stored key of domain: DefaultPublishing or the
// normalized domain name.
func publishingKey(domain string) (string, error) {
	if domain == DefaultPublishing {
		return domain, nil
	}
	n, err := NormalizeDomain(domain)
	if err != nil {
		return "", &PublishingError{Field: "domain", Message: err.Error()}
	}
	return n, nil
}

const publishingColumns = `domain, policy, record, server, zone, tsig_key, tsig_algorithm, credential, updated_at, updated_by`

func (p *Publishing) scanTargets() []any {
	return []any{&p.Domain, &p.Policy, &p.Record, &p.Server, &p.Zone, &p.TSIGKey, &p.TSIGAlgorithm, &p.Credential, &p.UpdatedAt, &p.UpdatedBy}
}

// Publishing returns the effective publishing setting of domain: its own
// row, else the fleet default, else BuiltInPublishing; Source says which,
// Domain is the row's ("*" for the default). Publishing(ctx,
// DefaultPublishing) is the fleet default (or the built-in one).
func (d *DB) Publishing(ctx context.Context, domain string) (Publishing, error) {
	key, err := publishingKey(domain)
	if err != nil {
		return Publishing{}, fmt.Errorf("reading the publishing setting of %s: %w", domain, err)
	}
	var p Publishing
	err = d.Pool.QueryRow(ctx, `SELECT `+publishingColumns+` FROM domain_publishing
		WHERE domain = $1 OR domain = '*' ORDER BY domain = '*' LIMIT 1`, key).Scan(p.scanTargets()...)
	if errors.Is(err, pgx.ErrNoRows) {
		return BuiltInPublishing(), nil
	}
	if err != nil {
		return p, fmt.Errorf("reading the publishing setting of %s: %w", domain, err)
	}
	p.UpdatedAt = p.UpdatedAt.UTC()
	p.Source = PublishingFromDomain
	if p.Domain == DefaultPublishing {
		p.Source = PublishingFromDefault
	}
	return p, nil
}

// SetPublishing normalizes, checks and stores p (p.Domain a domain or
// DefaultPublishing), stamped with the store's clock and by; it returns
// what was stored. An invalid setting is a *PublishingError.
func (d *DB) SetPublishing(ctx context.Context, p Publishing, by string) (Publishing, error) {
	key, err := publishingKey(p.Domain)
	if err != nil {
		return p, fmt.Errorf("storing the publishing setting: %w", err)
	}
	p.Domain = key
	p.Normalize()
	if err := p.Validate(); err != nil {
		return p, fmt.Errorf("storing the publishing setting of %s: %w", key, err)
	}
	p.UpdatedAt, p.UpdatedBy = d.now().UTC().Truncate(time.Microsecond), clean(by)
	p.Source = PublishingFromDomain
	if key == DefaultPublishing {
		p.Source = PublishingFromDefault
	}
	_, err = d.Pool.Exec(ctx, `INSERT INTO domain_publishing (`+publishingColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
		ON CONFLICT (domain) DO UPDATE SET policy = EXCLUDED.policy, record = EXCLUDED.record,
			server = EXCLUDED.server, zone = EXCLUDED.zone, tsig_key = EXCLUDED.tsig_key,
			tsig_algorithm = EXCLUDED.tsig_algorithm, credential = EXCLUDED.credential,
			updated_at = EXCLUDED.updated_at, updated_by = EXCLUDED.updated_by`,
		p.Domain, p.Policy, p.Record, p.Server, p.Zone, p.TSIGKey, p.TSIGAlgorithm, p.Credential, p.UpdatedAt, p.UpdatedBy)
	if err != nil {
		return p, fmt.Errorf("storing the publishing setting of %s: %w", key, err)
	}
	return p, nil
}

// ImportDefaultPublishing stores p as the fleet default only when there is
// none yet, together with the audit entry e (one transaction), and says
// whether it did: of several processes starting with the same old
// environment variables, exactly one imports them.
func (d *DB) ImportDefaultPublishing(ctx context.Context, p Publishing, e AuditEntry) (bool, error) {
	p.Domain = DefaultPublishing
	p.Normalize()
	if err := p.Validate(); err != nil {
		return false, fmt.Errorf("importing the default publishing setting: %w", err)
	}
	detail, err := json.Marshal(e.Detail)
	if err != nil {
		return false, fmt.Errorf("encoding audit detail of %s: %w", e.Action, err)
	}
	at := d.now().UTC().Truncate(time.Microsecond)
	imported := false
	err = pgx.BeginFunc(ctx, d.Pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO domain_publishing (`+publishingColumns+`)
			VALUES ('*', $1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (domain) DO NOTHING`,
			p.Policy, p.Record, p.Server, p.Zone, p.TSIGKey, p.TSIGAlgorithm, p.Credential, at, clean(e.Actor))
		if err != nil || tag.RowsAffected() == 0 {
			return err
		}
		imported = true
		_, err = tx.Exec(ctx, `INSERT INTO audit_log (at, actor, action, domain, detail) VALUES ($1, $2, $3, '', $4)`,
			at, clean(e.Actor), clean(e.Action), string(detail))
		return err
	})
	if err != nil {
		return false, fmt.Errorf("importing the default publishing setting: %w", err)
	}
	return imported, nil
}

// PublishingList returns every stored publishing setting: the fleet
// default first (when stored), then the domains by name.
func (d *DB) PublishingList(ctx context.Context) ([]Publishing, error) {
	rows, err := d.Pool.Query(ctx, `SELECT `+publishingColumns+` FROM domain_publishing ORDER BY domain <> '*', domain`)
	if err != nil {
		return nil, fmt.Errorf("listing publishing settings: %w", err)
	}
	out := []Publishing{}
	var p Publishing
	_, err = pgx.ForEachRow(rows, p.scanTargets(), func() error {
		q := p
		q.UpdatedAt = q.UpdatedAt.UTC()
		q.Source = PublishingFromDomain
		if q.Domain == DefaultPublishing {
			q.Source = PublishingFromDefault
		}
		out = append(out, q)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing publishing settings: %w", err)
	}
	return out, nil
}

// DeletePublishing removes domain's own setting, so that the fleet
// default applies to it again; ok is false when it had none.
func (d *DB) DeletePublishing(ctx context.Context, domain string) (ok bool, err error) {
	key, err := publishingKey(domain)
	if err != nil {
		return false, fmt.Errorf("removing the publishing setting of %s: %w", domain, err)
	}
	tag, err := d.Pool.Exec(ctx, `DELETE FROM domain_publishing WHERE domain = $1`, key)
	if err != nil {
		return false, fmt.Errorf("removing the publishing setting of %s: %w", domain, err)
	}
	return tag.RowsAffected() > 0, nil
}

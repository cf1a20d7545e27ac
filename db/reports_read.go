package db

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/klauspost/compress/gzip"

	"github.com/tlsrpt/tlsrpt/reports"
)

// StoredReport is a stored report with its provenance. Report is rebuilt
// from the stored rows (policy domains in their stored, lower-case form);
// JSON is not filled in: ReportJSON returns the report as received.
type StoredReport struct {
	ID int64
	reports.Received
	Day      time.Time // the UTC day the report counts for
	Trusted  bool      // counts for the verdict (docs/reporters.md)
	StoredAt time.Time
	// Who sent it, as far as proven (reports.Attribute): the verified
	// reporter domain, how it was verified, and why the organisation name
	// does not belong to it ("" when it may).
	Reporter       string
	ReporterMethod reports.ReporterMethod
	NameMismatch   string
	// Excluded by an operator: when, by whom and why (nil: counts).
	ExcludedAt     *time.Time
	ExcludedBy     string
	ExcludedReason string
}

// Report returns the stored report id, or ErrNotFound.
func (d *DB) Report(ctx context.Context, id int64) (*StoredReport, error) {
	s := &StoredReport{ID: id}
	rp := &reports.Report{}
	s.Report = rp
	var source, dkim, method string
	var remote *netip.Addr
	err := d.Pool.QueryRow(ctx, `SELECT organization_name, report_id, start_time, end_time, day, contact_info,
		source, source_ref, received_at, stored_at, message_id, from_address, submitter, dkim, dkim_domain, trusted,
		reporter, reporter_method, name_mismatch, remote_addr, remote_name, excluded_at, excluded_by, excluded_reason
		FROM reports WHERE id = $1`, id).Scan(&rp.OrganizationName, &rp.ReportID, &rp.DateRange.Start, &rp.DateRange.End,
		&s.Day, &rp.ContactInfo, &source, &s.SourceRef, &s.ReceivedAt, &s.StoredAt, &s.MessageID, &s.From,
		&s.Submitter, &dkim, &s.DKIMDomain, &s.Trusted,
		&s.Reporter, &method, &s.NameMismatch, &remote, &s.RemoteName, &s.ExcludedAt, &s.ExcludedBy, &s.ExcludedReason)
	s.ReporterMethod = reports.ReporterMethod(method)
	if remote != nil {
		s.RemoteAddr = *remote
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("reading report %d: %w", id, err)
	}
	s.Source, s.DKIM = reports.Source(source), reports.DKIMResult(dkim)
	rp.DateRange.Start, rp.DateRange.End = rp.DateRange.Start.UTC(), rp.DateRange.End.UTC()
	s.Day = s.Day.UTC()

	// The children are read in the report's month only (its partition).
	rows, err := d.Pool.Query(ctx, `SELECT id, policy_type, policy_domain, policy_strings, mx_hosts, successful, failed
		FROM report_policies WHERE report_id = $1 AND day = $2 ORDER BY position`, id, s.Day)
	if err != nil {
		return nil, fmt.Errorf("reading policies of report %d: %w", id, err)
	}
	byID := map[int64]int{}
	var pids []int64
	var (
		pid int64
		p   reports.PolicyResult
	)
	_, err = pgx.ForEachRow(rows, []any{&pid, &p.Policy.Type, &p.Policy.Domain, &p.Policy.Strings, &p.Policy.MXHosts,
		&p.Summary.TotalSuccessfulSessionCount, &p.Summary.TotalFailureSessionCount}, func() error {
		byID[pid] = len(rp.Policies)
		pids = append(pids, pid)
		rp.Policies = append(rp.Policies, p)
		p = reports.PolicyResult{}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading policies of report %d: %w", id, err)
	}
	rows, err = d.Pool.Query(ctx, `SELECT policy_id, result_type, sending_mta_ip, sending_mta_ip_text,
		receiving_mx_hostname, receiving_mx_helo, receiving_ip, receiving_ip_text, failed_session_count,
		additional_information, failure_reason_code
		FROM failure_details WHERE policy_id = ANY($1) AND day = $2 ORDER BY policy_id, position`, pids, s.Day)
	if err != nil {
		return nil, fmt.Errorf("reading failure details of report %d: %w", id, err)
	}
	var (
		f                  reports.FailureDetail
		sendIP, recvIP     *netip.Prefix
		sendText, recvText string
	)
	_, err = pgx.ForEachRow(rows, []any{&pid, &f.ResultType, &sendIP, &sendText, &f.ReceivingMXHostname,
		&f.ReceivingMXHelo, &recvIP, &recvText, &f.FailedSessionCount, &f.AdditionalInformation, &f.FailureReasonCode}, func() error {
		// The sender's text is kept as written; the inet column is for
		// queries.
		f.SendingMTAIP, f.ReceivingIP = sendText, recvText
		i := byID[pid]
		rp.Policies[i].FailureDetails = append(rp.Policies[i].FailureDetails, f)
		f = reports.FailureDetail{}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading failure details of report %d: %w", id, err)
	}
	return s, nil
}

// ReportJSON returns the report id as it was received (decompressed), or
// ErrNotFound.
func (d *DB) ReportJSON(ctx context.Context, id int64) ([]byte, error) {
	var raw []byte
	err := d.Pool.QueryRow(ctx, `SELECT raw_gzip FROM reports WHERE id = $1`, id).Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("reading raw report %d: %w", id, err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("decompressing raw report %d: %w", id, err)
	}
	b, err := io.ReadAll(io.LimitReader(zr, maxRawJSON+1))
	if err != nil {
		return nil, fmt.Errorf("decompressing raw report %d: %w", id, err)
	}
	if int64(len(b)) > maxRawJSON {
		return nil, fmt.Errorf("decompressing raw report %d: over %d bytes", id, maxRawJSON)
	}
	return b, nil
}

// ReportFilter selects reports for ListReports. Zero fields select all.
type ReportFilter struct {
	Domain       string    // a policy domain of the report
	Organization string    // organization-name
	Since, Until time.Time // the report's day is in [Since, Until)
	Source       reports.Source
	TrustedOnly  bool
	// Limit is the page size (default 50, at most 1000); Offset skips rows.
	Limit, Offset int
}

// Page sizes of ListReports.
const (
	defaultPageSize = 50
	maxPageSize     = 1000
)

// ReportSummary is one line of a report list.
type ReportSummary struct {
	ID               int64
	OrganizationName string
	ReportID         string
	Start, End       time.Time
	Day              time.Time
	Source           reports.Source
	SourceRef        string
	ReceivedAt       time.Time
	DKIM             reports.DKIMResult
	DKIMDomain       string
	Trusted          bool
	Domains          []string // policy domains, sorted
	Successful       int64    // sessions over all policies
	Failed           int64
}

// ListReports returns the reports that match f, newest range first, and
// how many match in total (for paging).
func (d *DB) ListReports(ctx context.Context, f ReportFilter) ([]ReportSummary, int, error) {
	where := "TRUE"
	var args []any
	add := func(cond string, v any) {
		args = append(args, v)
		where += fmt.Sprintf(" AND "+cond, len(args))
	}
	if f.Domain != "" {
		add("EXISTS (SELECT 1 FROM report_policies p WHERE p.report_id = r.id AND p.day = r.day AND p.policy_domain = $%d)", normDomain(f.Domain))
	}
	if f.Organization != "" {
		add("r.organization_name = $%d", f.Organization)
	}
	if !f.Since.IsZero() {
		add("r.day >= $%d", f.Since.UTC())
	}
	if !f.Until.IsZero() {
		add("r.day < $%d", f.Until.UTC())
	}
	if f.Source != "" {
		add("r.source = $%d", string(f.Source))
	}
	if f.TrustedOnly {
		where += " AND r.trusted"
	}
	var total int
	if err := d.Pool.QueryRow(ctx, `SELECT count(*) FROM reports r WHERE `+where, args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("counting reports: %w", err)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = defaultPageSize
	}
	limit = min(limit, maxPageSize)
	args = append(args, limit, max(f.Offset, 0))
	q := fmt.Sprintf(`SELECT r.id, r.organization_name, r.report_id, r.start_time, r.end_time, r.day, r.source, r.source_ref,
		r.received_at, r.dkim, r.dkim_domain, r.trusted,
		coalesce((SELECT array_agg(DISTINCT p.policy_domain ORDER BY p.policy_domain) FROM report_policies p WHERE p.report_id = r.id AND p.day = r.day), '{}'),
		least(coalesce((SELECT sum(p.successful) FROM report_policies p WHERE p.report_id = r.id AND p.day = r.day), 0), 9223372036854775807)::bigint,
		least(coalesce((SELECT sum(p.failed) FROM report_policies p WHERE p.report_id = r.id AND p.day = r.day), 0), 9223372036854775807)::bigint
		FROM reports r WHERE %s ORDER BY r.start_time DESC, r.id DESC LIMIT $%d OFFSET $%d`, where, len(args)-1, len(args))
	rows, err := d.Pool.Query(ctx, q, args...)
	if err != nil {
		return nil, 0, fmt.Errorf("listing reports: %w", err)
	}
	var (
		out          []ReportSummary
		s            ReportSummary
		source, dkim string
	)
	_, err = pgx.ForEachRow(rows, []any{&s.ID, &s.OrganizationName, &s.ReportID, &s.Start, &s.End, &s.Day, &source,
		&s.SourceRef, &s.ReceivedAt, &dkim, &s.DKIMDomain, &s.Trusted, &s.Domains, &s.Successful, &s.Failed}, func() error {
		s.Source, s.DKIM = reports.Source(source), reports.DKIMResult(dkim)
		s.Start, s.End, s.Day = s.Start.UTC(), s.End.UTC(), s.Day.UTC()
		out = append(out, s)
		s = ReportSummary{}
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("listing reports: %w", err)
	}
	return out, total, nil
}

package db

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// ReportListFilter selects reports for the dashboard's list and its
// drill-downs. Empty fields do not filter. The list is newest first and
// pages by keyset: pass the last row's Start and ID as Before.
type ReportListFilter struct {
	Domain     string
	Org        string
	ResultType string
	MX         string
	SendingIP  string
	From, To   time.Time // days, [From, To)
	Before     *ReportCursor
	Limit      int
}

// ReportCursor is a position in the list.
type ReportCursor struct {
	Start time.Time
	ID    int64
}

// String encodes the cursor for a URL.
func (c ReportCursor) String() string {
	return strconv.FormatInt(c.Start.UnixMicro(), 10) + "-" + strconv.FormatInt(c.ID, 10)
}

// ParseReportCursor decodes ReportCursor.String.
func ParseReportCursor(s string) (ReportCursor, error) {
	a, b, ok := strings.Cut(s, "-")
	us, err1 := strconv.ParseInt(a, 10, 64)
	id, err2 := strconv.ParseInt(b, 10, 64)
	if !ok || err1 != nil || err2 != nil {
		return ReportCursor{}, fmt.Errorf("parsing report cursor %q: not <micros>-<id>", s)
	}
	return ReportCursor{Start: time.UnixMicro(us).UTC(), ID: id}, nil
}

// ReportListRow is one report of the list; the totals are those of the
// filtered domain's policies (of all policies without a domain filter).
type ReportListRow struct {
	ID               int64     `json:"id"`
	OrganizationName string    `json:"organization_name"`
	ReportID         string    `json:"report_id"`
	Start            time.Time `json:"start"`
	End              time.Time `json:"end"`
	Day              time.Time `json:"day"`
	Domains          []string  `json:"domains"`
	Successful       int64     `json:"successful"`
	Failed           int64     `json:"failed"`
	Source           string    `json:"source"`
	DKIM             string    `json:"dkim"`
	Trusted          bool      `json:"trusted"`
	// Reporter is the verified reporter domain ("" when unverified),
	// ReporterMethod how it was verified, NameMismatch why the
	// organisation name does not belong to it (StoredReport).
	Reporter       string     `json:"reporter,omitempty"`
	ReporterMethod string     `json:"reporter_method,omitempty"`
	NameMismatch   string     `json:"name_mismatch,omitempty"`
	ExcludedAt     *time.Time `json:"excluded_at,omitempty"`
}

// DashboardReports lists reports matching f, newest first, at most
// f.Limit (bounded by MaxDashboardRows).
func (d *DB) DashboardReports(ctx context.Context, f ReportListFilter) ([]ReportListRow, error) {
	var conds, pconds []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	domainCond := ""
	if f.Domain != "" {
		domainCond = " AND p.policy_domain = " + arg(normDomain(f.Domain))
		pconds = append(pconds, "p.policy_domain = $"+strconv.Itoa(len(args)))
	}
	if f.Org != "" {
		conds = append(conds, "r.organization_name = "+arg(f.Org))
	}
	if !f.From.IsZero() {
		conds = append(conds, "r.day >= "+arg(f.From))
	}
	if !f.To.IsZero() {
		conds = append(conds, "r.day < "+arg(f.To))
	}
	if f.Before != nil {
		conds = append(conds, fmt.Sprintf("(r.start_time, r.id) < (%s, %s)", arg(f.Before.Start), arg(f.Before.ID)))
	}
	var detail []string
	if f.ResultType != "" {
		detail = append(detail, "fd.result_type = "+arg(f.ResultType))
	}
	if f.MX != "" {
		detail = append(detail, "lower(rtrim(fd.receiving_mx_hostname, '.')) = "+arg(strings.TrimSuffix(strings.ToLower(f.MX), ".")))
	}
	if f.SendingIP != "" {
		a := arg(f.SendingIP)
		detail = append(detail, "(host(fd.sending_mta_ip) = "+a+" OR fd.sending_mta_ip_text = "+a+")")
	}
	if len(detail) > 0 {
		pconds = append(pconds, "EXISTS (SELECT 1 FROM failure_details fd WHERE fd.policy_id = p.id AND fd.day = p.day AND "+strings.Join(detail, " AND ")+")")
	}
	var page string
	if f.Domain != "" {
		// One domain's reports are a small share of all: its policies
		// (index by policy_domain in each month) are read first, then
		// each report by its key. Walking every report newest first and
		// probing its policies read the whole table (2.5 s at 1,000
		// domains × 3 years); LIMIT 1 keeps the lookup a nested loop.
		// f.From and f.To bound the policies' months too.
		pwhere := append([]string{}, pconds...)
		if !f.From.IsZero() {
			pwhere = append(pwhere, "p.day >= "+arg(f.From))
		}
		if !f.To.IsZero() {
			pwhere = append(pwhere, "p.day < "+arg(f.To))
		}
		rwhere := append([]string{"r.id = pol.report_id", "r.day = pol.day"}, conds...)
		page = `WITH pol AS MATERIALIZED (
				SELECT DISTINCT p.report_id, p.day FROM report_policies p WHERE ` + strings.Join(pwhere, " AND ") + `),
			page AS (
			SELECT r.id, r.day FROM pol CROSS JOIN LATERAL (
				SELECT r.id, r.day, r.start_time FROM reports r WHERE ` + strings.Join(rwhere, " AND ") + ` LIMIT 1) r
			ORDER BY r.start_time DESC, r.id DESC LIMIT ` + arg(limitRows(f.Limit)) + `)`
	} else {
		if len(pconds) > 0 {
			conds = append(conds, "EXISTS (SELECT 1 FROM report_policies p WHERE p.report_id = r.id AND p.day = r.day AND "+strings.Join(pconds, " AND ")+")")
		}
		where := ""
		if len(conds) > 0 {
			where = "WHERE " + strings.Join(conds, " AND ")
		}
		// The page is chosen first, walking the (start_time, id) index
		// newest first and stopping at the limit; only its reports are
		// then summed.
		page = `WITH page AS (
			SELECT r.id, r.day FROM reports r ` + where + `
			ORDER BY r.start_time DESC, r.id DESC LIMIT ` + arg(limitRows(f.Limit)) + `)`
	}
	q := page + `
		SELECT r.id, r.organization_name, r.report_id, r.start_time, r.end_time, r.day,
			array_agg(DISTINCT p.policy_domain ORDER BY p.policy_domain), least(sum(p.successful), 9223372036854775807)::bigint, least(sum(p.failed), 9223372036854775807)::bigint,
			r.source, r.dkim, r.trusted, r.reporter, r.reporter_method, r.name_mismatch, r.excluded_at
		FROM page JOIN reports r ON r.id = page.id AND r.day = page.day
		JOIN report_policies p ON p.report_id = r.id AND p.day = r.day` + domainCond + `
		GROUP BY r.id, r.day ORDER BY r.start_time DESC, r.id DESC`
	rows, err := d.reader(ctx).Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("listing reports: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ReportListRow, error) {
		var x ReportListRow
		err := r.Scan(&x.ID, &x.OrganizationName, &x.ReportID, &x.Start, &x.End, &x.Day, &x.Domains,
			&x.Successful, &x.Failed, &x.Source, &x.DKIM, &x.Trusted, &x.Reporter, &x.ReporterMethod, &x.NameMismatch, &x.ExcludedAt)
		x.Start, x.End, x.Day = x.Start.UTC(), x.End.UTC(), x.Day.UTC()
		if x.ExcludedAt != nil {
			t := x.ExcludedAt.UTC()
			x.ExcludedAt = &t
		}
		return x, err
	})
	if err != nil {
		return nil, fmt.Errorf("listing reports: %w", err)
	}
	return out, nil
}

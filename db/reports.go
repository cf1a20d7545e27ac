package db

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/klauspost/compress/gzip"

	"github.com/tlsrpt/tlsrpt/reports"
)

// maxRawJSON bounds the decompressed raw JSON read back by ReportJSON; the
// parser refuses larger reports anyway (reports.DefaultMaxReportBytes).
const maxRawJSON = reports.DefaultMaxReportBytes

// RejectedError is a report or message that PostgreSQL refused for its
// content (a data exception, SQLSTATE class 22), not because the database
// is down: retrying cannot help, the input belongs in quarantine.
type RejectedError struct{ Err error }

func (e *RejectedError) Error() string { return "db: rejected: " + e.Err.Error() }
func (e *RejectedError) Unwrap() error { return e.Err }

// Rejected marks the error as caused by the input (see ingest.Store).
func (e *RejectedError) Rejected() bool { return true }

// classify wraps data exceptions in RejectedError.
func classify(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && strings.HasPrefix(pe.Code, "22") {
		return &RejectedError{Err: err}
	}
	return err
}

// Trusted says whether a report counts for the verdict, trends and alerts
// (docs/reporters.md): its reporter is verified by the rules of
// reports.Attribute with the built-in rules only. The store itself
// attributes with the operator's rules too (DB.trustTable).
func Trusted(r reports.Received) bool {
	return reports.Attribute(&r, reports.TrustTable{}).Verified()
}

// clean makes a sender's string storable as PostgreSQL text: no NUL bytes,
// valid UTF-8.
func clean(s string) string {
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "")
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// normDomain is the stored form of a policy domain or MX host name.
func normDomain(s string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(clean(s))), ".")
}

// parseIP returns the address for an inet column, nil when s is not one.
func parseIP(s string) *netip.Addr {
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil {
		return nil
	}
	a = a.WithZone("")
	return &a
}

// StoreResult is the outcome of storing one report.
type StoreResult struct {
	ID        int64
	Duplicate bool
}

// StoreReport stores one report with its policies, failure details and the
// daily rollups, in one transaction. It is idempotent: a report with the same
// (organization-name, report-id, date range) as a stored one, also one being
// stored at the same time by another process, is not stored again and
// duplicate is true, with the id of the stored one.
func (d *DB) StoreReport(ctx context.Context, r reports.Received) (id int64, duplicate bool, err error) {
	res, err := d.StoreReports(ctx, []reports.Received{r})
	if err != nil {
		return 0, false, err
	}
	return res[0].ID, res[0].Duplicate, nil
}

// StoreBatch is StoreReports in the shape ingest.BatchStore takes: the id
// of each report and whether it was already stored, in input order.
func (d *DB) StoreBatch(ctx context.Context, rs []reports.Received) (ids []int64, duplicate []bool, err error) {
	return d.storeBatch(ctx, rs, false)
}

// ImportBatch is StoreBatch for reports read from files that stay where
// they are (tlsrpt import): its transactions commit asynchronously
// (synchronous_commit off), without waiting for their WAL to reach the
// disk. A crash of the database server can then lose the last moments of
// commits, never part of one: the store stays consistent, and importing
// the files again stores what was lost and nothing twice. Waiting for
// each commit was a seventh of a million-report import's time
// (docs/bench-import.md). Durable, called at the end of the import,
// makes all of it durable. Mail and posted reports are acknowledged to
// their sender, so they are stored with StoreBatch.
func (d *DB) ImportBatch(ctx context.Context, rs []reports.Received) (ids []int64, duplicate []bool, err error) {
	return d.storeBatch(ctx, rs, true)
}

// Durable returns once every transaction committed so far, also
// asynchronously (ImportBatch), is as durable as the server's
// synchronous_commit makes a commit: on disk, and on the synchronous
// standbys it names. It commits, at the session's default setting, a
// transaction that writes WAL (a transactional logical message, which
// nothing decodes; a transaction that writes none commits without
// waiting), and the wait for its commit covers all the WAL before it.
func (d *DB) Durable(ctx context.Context) error {
	err := pgx.BeginFunc(ctx, d.Pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `SELECT pg_logical_emit_message(true, 'tlsrpt', 'durable')`)
		return err
	})
	if err != nil {
		return fmt.Errorf("making the stored reports durable: %w", err)
	}
	return nil
}

// asyncCommit makes tx commit without waiting for its WAL to be flushed.
func asyncCommit(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, `SET LOCAL synchronous_commit = off`)
	return err
}

func (d *DB) storeBatch(ctx context.Context, rs []reports.Received, async bool) (ids []int64, duplicate []bool, err error) {
	res, err := d.storeReports(ctx, rs, async)
	if err != nil {
		return nil, nil, err
	}
	ids, duplicate = make([]int64, len(res)), make([]bool, len(res))
	for i, r := range res {
		ids[i], duplicate[i] = r.ID, r.Duplicate
	}
	return ids, duplicate, nil
}

// StoreReports stores a batch of reports in one transaction, as StoreReport
// does one; the results are in the order of rs. Batches are what makes bulk
// import fast: the round trips are per batch, not per report.
func (d *DB) StoreReports(ctx context.Context, rs []reports.Received) ([]StoreResult, error) {
	return d.storeReports(ctx, rs, false)
}

func (d *DB) storeReports(ctx context.Context, rs []reports.Received, async bool) ([]StoreResult, error) {
	if len(rs) == 0 {
		return nil, nil
	}
	table, err := d.trustTable(ctx)
	if err != nil {
		return nil, fmt.Errorf("storing reports: %w", err)
	}
	rows := make([]reportRow, len(rs))
	// One compressor for the batch: creating one costs more than
	// compressing a report.
	zw, err := gzip.NewWriterLevel(nil, gzip.BestSpeed)
	if err != nil {
		return nil, fmt.Errorf("storing reports: compressing: %w", err)
	}
	for i, r := range rs {
		row, err := newReportRow(r, zw, table)
		if err != nil {
			return nil, err
		}
		rows[i] = row
	}
	days := make([]time.Time, len(rows))
	for i, row := range rows {
		days[i] = row.day
	}
	if err := d.prepareDays(ctx, days); err != nil {
		return nil, fmt.Errorf("storing %d reports: %w", len(rs), err)
	}
	var res []StoreResult
	// Two batches holding the same reports in different orders could
	// deadlock; the rows are sorted, so this is a last resort. A month
	// dropped by retention since the cache said it exists is looked up
	// again.
	for attempt := 0; attempt < 3; attempt++ {
		res, err = d.storeRows(ctx, rows, async)
		if noPartition(err) {
			d.parts.forget()
			if perr := d.prepareDays(ctx, days); perr != nil {
				return nil, fmt.Errorf("storing %d reports: %w", len(rs), perr)
			}
			continue
		}
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || (pe.Code != "40P01" && pe.Code != "40001") {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("storing %d reports: %w", len(rs), classify(err))
	}
	return res, nil
}

// reportRow is a report prepared for the insert.
type reportRow struct {
	r       reports.Received
	key     string    // identity, for sorting and matching
	day     time.Time // the UTC day the report counts for: its partition
	trusted bool
	who     reports.Attribution
	raw     []byte // gzip of the JSON
}

func newReportRow(r reports.Received, zw *gzip.Writer, table reports.TrustTable) (reportRow, error) {
	if r.Report == nil {
		return reportRow{}, errors.New("storing report: no report")
	}
	switch r.Source {
	case reports.SourceIMAP, reports.SourceHTTPS, reports.SourceFile:
	default:
		return reportRow{}, fmt.Errorf("storing report %s: unknown source %q", r.Report.ReportID, r.Source)
	}
	if r.DKIM == "" {
		r.DKIM = reports.DKIMNone
	}
	if r.ReceivedAt.IsZero() {
		r.ReceivedAt = time.Now()
	}
	js := r.JSON
	if len(js) == 0 {
		var err error
		if js, err = json.Marshal(r.Report); err != nil {
			return reportRow{}, fmt.Errorf("storing report %s: encoding json: %w", r.Report.ReportID, err)
		}
	}
	raw := r.Gzip
	if len(r.JSON) == 0 || !isGzipOf(raw, js) {
		var buf bytes.Buffer
		buf.Grow(len(js)/4 + 64)
		zw.Reset(&buf)
		if _, err := zw.Write(js); err != nil {
			return reportRow{}, fmt.Errorf("storing report %s: compressing: %w", r.Report.ReportID, err)
		}
		if err := zw.Close(); err != nil {
			return reportRow{}, fmt.Errorf("storing report %s: compressing: %w", r.Report.ReportID, err)
		}
		raw = buf.Bytes()
	}
	rp := r.Report
	key := identity(clean(rp.OrganizationName), clean(rp.ReportID), dbTime(rp.DateRange.Start), dbTime(rp.DateRange.End))
	who := reports.Attribute(&r, table)
	who.Reporter, who.Mismatch = clean(who.Reporter), clean(who.Mismatch)
	return reportRow{r: r, key: key, day: rp.DateRange.Day(), trusted: who.Verified(), who: who, raw: raw}, nil
}

// isGzipOf reports whether z is a gzip stream whose trailer (RFC 1952
// §2.3.1: CRC-32 and size of the uncompressed data) matches js: the
// stream a report was decompressed from, whole, so that storing it keeps
// the report as received without compressing it again. Anything else (a
// stream with other data after it, several members) is compressed anew.
func isGzipOf(z, js []byte) bool {
	n := len(z)
	if n < 18 || z[0] != 0x1f || z[1] != 0x8b {
		return false
	}
	return binary.LittleEndian.Uint32(z[n-4:]) == uint32(len(js)) && binary.LittleEndian.Uint32(z[n-8:n-4]) == crc32.ChecksumIEEE(js)
}

func (d *DB) storeRows(ctx context.Context, rows []reportRow, async bool) ([]StoreResult, error) {
	order := make([]int, len(rows))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return rows[order[a]].key < rows[order[b]].key })

	res := make([]StoreResult, len(rows))
	err := pgx.BeginFunc(ctx, d.Pool, func(tx pgx.Tx) error {
		if async {
			if err := asyncCommit(ctx, tx); err != nil {
				return err
			}
		}
		n := len(order)
		str := func() []string { return make([]string, 0, n) }
		tm := func() []time.Time { return make([]time.Time, 0, n) }
		var (
			orgs, rids, contacts, sources, refs         = str(), str(), str(), str(), str()
			msgIDs, froms, subs, dkims, dkimDoms        = str(), str(), str(), str(), str()
			reporters, methods, mismatches, remoteNames = str(), str(), str(), str()
			remotes                                     = make([]*netip.Addr, 0, n)
			starts, ends, days, recvs                   = tm(), tm(), tm(), tm()
			trusted                                     = make([]bool, 0, n)
			raws                                        = make([][]byte, 0, n)
		)
		for _, i := range order {
			row := rows[i]
			r, rp := row.r, row.r.Report
			orgs = append(orgs, clean(rp.OrganizationName))
			rids = append(rids, clean(rp.ReportID))
			starts = append(starts, dbTime(rp.DateRange.Start))
			ends = append(ends, dbTime(rp.DateRange.End))
			days = append(days, row.day)
			contacts = append(contacts, clean(rp.ContactInfo))
			sources = append(sources, string(r.Source))
			refs = append(refs, clean(r.SourceRef))
			recvs = append(recvs, r.ReceivedAt)
			msgIDs = append(msgIDs, clean(r.MessageID))
			froms = append(froms, clean(r.From))
			subs = append(subs, clean(r.Submitter))
			dkims = append(dkims, string(r.DKIM))
			dkimDoms = append(dkimDoms, clean(r.DKIMDomain))
			trusted = append(trusted, row.trusted)
			raws = append(raws, row.raw)
			reporters, methods, mismatches = append(reporters, row.who.Reporter), append(methods, string(row.who.Method)), append(mismatches, row.who.Mismatch)
			var remote *netip.Addr
			if r.RemoteAddr.IsValid() {
				a := r.RemoteAddr.Unmap()
				remote = &a
			}
			remotes, remoteNames = append(remotes, remote), append(remoteNames, clean(r.RemoteName))
		}
		// ON CONFLICT DO NOTHING waits for a concurrent insert of the same
		// key to commit or abort, so two processes end with one row.
		const insert = `INSERT INTO reports (organization_name, report_id, start_time, end_time, day,
			contact_info, source, source_ref, received_at, message_id, from_address, submitter,
			dkim, dkim_domain, trusted, raw_gzip, reporter, reporter_method, name_mismatch, remote_addr, remote_name)
		SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[], $5::date[],
			$6::text[], $7::text[], $8::text[], $9::timestamptz[], $10::text[], $11::text[], $12::text[],
			$13::text[], $14::text[], $15::boolean[], $16::bytea[], $17::text[], $18::text[], $19::text[],
			$20::inet[], $21::text[])
		ON CONFLICT (organization_name, report_id, start_time, end_time, day) DO NOTHING
		RETURNING id, organization_name, report_id, start_time, end_time`
		out, err := tx.Query(ctx, insert, orgs, rids, starts, ends, days, contacts, sources, refs, recvs,
			msgIDs, froms, subs, dkims, dkimDoms, trusted, raws, reporters, methods, mismatches, remotes, remoteNames)
		if err != nil {
			return err
		}
		inserted := map[string]int64{}
		var (
			id         int64
			org, rid   string
			start, end time.Time
		)
		_, err = pgx.ForEachRow(out, []any{&id, &org, &rid, &start, &end}, func() error {
			inserted[identity(org, rid, start, end)] = id
			return nil
		})
		if err != nil {
			return err
		}
		var newRows []int // indexes into rows, in sorted order
		claimed := map[string]bool{}
		var dupKeys []int
		for _, i := range order {
			if id, ok := inserted[rows[i].key]; ok && !claimed[rows[i].key] {
				claimed[rows[i].key] = true
				res[i] = StoreResult{ID: id}
				newRows = append(newRows, i)
				continue
			}
			res[i].Duplicate = true
			dupKeys = append(dupKeys, i)
		}
		if len(dupKeys) > 0 {
			if err := d.duplicateIDs(ctx, tx, rows, dupKeys, res, inserted); err != nil {
				return err
			}
		}
		if len(newRows) == 0 {
			return nil
		}
		return d.storeChildren(ctx, tx, rows, newRows, res)
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// dbTime is t as PostgreSQL keeps it: microseconds, UTC.
func dbTime(t time.Time) time.Time {
	return t.UTC().Truncate(time.Microsecond)
}

func identity(org, rid string, start, end time.Time) string {
	return strings.Join([]string{org, rid, start.UTC().Format(time.RFC3339Nano), end.UTC().Format(time.RFC3339Nano)}, "\x00")
}

// duplicateIDs fills in the ids of the reports that were already stored.
func (d *DB) duplicateIDs(ctx context.Context, tx pgx.Tx, rows []reportRow, idx []int, res []StoreResult, inserted map[string]int64) error {
	var orgs, rids []string
	var starts, ends, days []time.Time
	for _, i := range idx {
		if id, ok := inserted[rows[i].key]; ok {
			res[i].ID = id // the same report twice in one batch
			continue
		}
		rp := rows[i].r.Report
		orgs = append(orgs, clean(rp.OrganizationName))
		rids = append(rids, clean(rp.ReportID))
		starts = append(starts, dbTime(rp.DateRange.Start))
		ends = append(ends, dbTime(rp.DateRange.End))
		days = append(days, rows[i].day)
	}
	if len(orgs) == 0 {
		return nil
	}
	const q = `SELECT r.id, r.organization_name, r.report_id, r.start_time, r.end_time
		FROM reports r JOIN unnest($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[], $5::date[]) AS k(o, i, s, e, d)
		ON r.organization_name = k.o AND r.report_id = k.i AND r.start_time = k.s AND r.end_time = k.e AND r.day = k.d`
	out, err := tx.Query(ctx, q, orgs, rids, starts, ends, days)
	if err != nil {
		return err
	}
	found := map[string]int64{}
	var (
		id         int64
		org, rid   string
		start, end time.Time
	)
	if _, err := pgx.ForEachRow(out, []any{&id, &org, &rid, &start, &end}, func() error {
		found[identity(org, rid, start, end)] = id
		return nil
	}); err != nil {
		return err
	}
	for _, i := range idx {
		if res[i].ID != 0 {
			continue
		}
		id, ok := found[rows[i].key]
		if !ok {
			return fmt.Errorf("report %s conflicted but is not stored", rows[i].r.Report.ReportID)
		}
		res[i].ID = id
	}
	return nil
}

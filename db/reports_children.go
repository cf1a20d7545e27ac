package db

import (
	"context"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
)

// policyKey and failureKey are the keys of the two daily rollups.
type policyKey struct {
	domain  string
	day     time.Time
	org     string
	typ     string
	trusted bool
}

type policyTotals struct{ reports, successful, failed int64 }

type failureKey struct {
	domain  string
	day     time.Time
	result  string
	mx      string
	trusted bool
}

// storeChildren writes the policies and failure details of the newly
// inserted reports (COPY, with ids taken from the sequences beforehand so
// that details can name their policy) and adds them to the daily rollups.
func (d *DB) storeChildren(ctx context.Context, tx pgx.Tx, rows []reportRow, newRows []int, res []StoreResult) error {
	var nPol, nDet int
	for _, i := range newRows {
		for _, p := range rows[i].r.Report.Policies {
			nPol++
			nDet += len(p.FailureDetails)
		}
	}
	polIDs, err := nextIDs(ctx, tx, "report_policies_id_seq", nPol)
	if err != nil {
		return err
	}
	detIDs, err := nextIDs(ctx, tx, "failure_details_id_seq", nDet)
	if err != nil {
		return err
	}
	polRows := make([][]any, 0, nPol)
	detRows := make([][]any, 0, nDet)
	pols := map[policyKey]*policyTotals{}
	fails := map[failureKey]int64{}
	for _, i := range newRows {
		row := rows[i]
		rp := row.r.Report
		day := rp.DateRange.Day()
		org := clean(rp.OrganizationName)
		// A report counts once per rollup key, even when it lists the same
		// domain and policy type twice.
		counted := map[policyKey]bool{}
		for pi, p := range rp.Policies {
			pid := polIDs[0]
			polIDs = polIDs[1:]
			domain := normDomain(p.Policy.Domain)
			typ := clean(p.Policy.Type)
			polRows = append(polRows, []any{pid, res[i].ID, pi, typ, domain,
				cleanAll(p.Policy.Strings), cleanAll(p.Policy.MXHosts),
				p.Summary.TotalSuccessfulSessionCount, p.Summary.TotalFailureSessionCount})
			k := policyKey{domain, day, org, typ, row.trusted}
			t := pols[k]
			if t == nil {
				t = &policyTotals{}
				pols[k] = t
			}
			if !counted[k] {
				counted[k] = true
				t.reports++
			}
			t.successful += p.Summary.TotalSuccessfulSessionCount
			t.failed += p.Summary.TotalFailureSessionCount
			for fi, f := range p.FailureDetails {
				did := detIDs[0]
				detIDs = detIDs[1:]
				detRows = append(detRows, []any{did, res[i].ID, pid, fi, clean(f.ResultType),
					parseIP(f.SendingMTAIP), clean(f.SendingMTAIP),
					clean(f.ReceivingMXHostname), clean(f.ReceivingMXHelo),
					parseIP(f.ReceivingIP), clean(f.ReceivingIP),
					f.FailedSessionCount, clean(f.AdditionalInformation), clean(f.FailureReasonCode)})
				fails[failureKey{domain, day, clean(f.ResultType), normDomain(f.ReceivingMXHostname), row.trusted}] += f.FailedSessionCount
			}
		}
	}
	if len(polRows) > 0 {
		_, err := tx.CopyFrom(ctx, pgx.Identifier{"report_policies"},
			[]string{"id", "report_id", "position", "policy_type", "policy_domain", "policy_strings", "mx_hosts", "successful", "failed"},
			pgx.CopyFromRows(polRows))
		if err != nil {
			return err
		}
	}
	if len(detRows) > 0 {
		_, err := tx.CopyFrom(ctx, pgx.Identifier{"failure_details"},
			[]string{"id", "report_id", "policy_id", "position", "result_type", "sending_mta_ip", "sending_mta_ip_text",
				"receiving_mx_hostname", "receiving_mx_helo", "receiving_ip", "receiving_ip_text",
				"failed_session_count", "additional_information", "failure_reason_code"},
			pgx.CopyFromRows(detRows))
		if err != nil {
			return err
		}
	}
	if err := upsertPolicyRollups(ctx, tx, pols); err != nil {
		return err
	}
	return upsertFailureRollups(ctx, tx, fails)
}

func cleanAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = clean(s)
	}
	return out
}

// nextIDs takes n values of a sequence.
func nextIDs(ctx context.Context, tx pgx.Tx, seq string, n int) ([]int64, error) {
	if n == 0 {
		return nil, nil
	}
	rows, err := tx.Query(ctx, `SELECT nextval($1::regclass) FROM generate_series(1, $2)`, seq, n)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[int64])
}

// upsertPolicyRollups adds the totals in key order, so that concurrent
// transactions lock rollup rows in the same order and cannot deadlock.
func upsertPolicyRollups(ctx context.Context, tx pgx.Tx, pols map[policyKey]*policyTotals) error {
	keys := make([]policyKey, 0, len(pols))
	for k := range pols {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(a, b int) bool {
		x, y := keys[a], keys[b]
		if x.domain != y.domain {
			return x.domain < y.domain
		}
		if !x.day.Equal(y.day) {
			return x.day.Before(y.day)
		}
		if x.org != y.org {
			return x.org < y.org
		}
		if x.typ != y.typ {
			return x.typ < y.typ
		}
		return !x.trusted && y.trusted
	})
	var (
		domains, orgs, types []string
		days                 []time.Time
		trusted              []bool
		nrep, succ, fail     []int64
	)
	for _, k := range keys {
		t := pols[k]
		domains, days, orgs, types, trusted = append(domains, k.domain), append(days, k.day), append(orgs, k.org), append(types, k.typ), append(trusted, k.trusted)
		nrep, succ, fail = append(nrep, t.reports), append(succ, t.successful), append(fail, t.failed)
	}
	const q = `INSERT INTO daily_policy_rollups AS r (policy_domain, day, organization_name, policy_type, trusted, reports, successful, failed)
		SELECT * FROM unnest($1::text[], $2::date[], $3::text[], $4::text[], $5::boolean[], $6::bigint[], $7::bigint[], $8::bigint[])
		ON CONFLICT (policy_domain, day, organization_name, policy_type, trusted) DO UPDATE
		SET reports = r.reports + EXCLUDED.reports, successful = r.successful + EXCLUDED.successful, failed = r.failed + EXCLUDED.failed`
	_, err := tx.Exec(ctx, q, domains, days, orgs, types, trusted, nrep, succ, fail)
	return err
}

func upsertFailureRollups(ctx context.Context, tx pgx.Tx, fails map[failureKey]int64) error {
	if len(fails) == 0 {
		return nil
	}
	keys := make([]failureKey, 0, len(fails))
	for k := range fails {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(a, b int) bool {
		x, y := keys[a], keys[b]
		if x.domain != y.domain {
			return x.domain < y.domain
		}
		if !x.day.Equal(y.day) {
			return x.day.Before(y.day)
		}
		if x.result != y.result {
			return x.result < y.result
		}
		if x.mx != y.mx {
			return x.mx < y.mx
		}
		return !x.trusted && y.trusted
	})
	var (
		domains, results, mxs []string
		days                  []time.Time
		trusted               []bool
		failed                []int64
	)
	for _, k := range keys {
		domains, days, results, mxs, trusted = append(domains, k.domain), append(days, k.day), append(results, k.result), append(mxs, k.mx), append(trusted, k.trusted)
		failed = append(failed, fails[k])
	}
	const q = `INSERT INTO daily_failure_rollups AS r (policy_domain, day, result_type, receiving_mx, trusted, failed)
		SELECT * FROM unnest($1::text[], $2::date[], $3::text[], $4::text[], $5::boolean[], $6::bigint[])
		ON CONFLICT (policy_domain, day, result_type, receiving_mx, trusted) DO UPDATE
		SET failed = r.failed + EXCLUDED.failed`
	_, err := tx.Exec(ctx, q, domains, days, results, mxs, trusted, failed)
	return err
}

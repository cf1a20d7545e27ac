package db

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// policyKey and failureKey are the keys of the two daily rollups.
type policyKey struct {
	domain   string
	day      time.Time
	org      string
	typ      string
	trusted  bool
	reporter string
}

type policyTotals struct{ reports, successful, failed int64 }

type failureKey struct {
	domain  string
	day     time.Time
	result  string
	mx      string
	trusted bool
}

// modeKey is a daily mode rollup key: the mode of an sts policy, read
// from its strings by policyMode.
type modeKey struct {
	domain  string
	day     time.Time
	mode    string
	trusted bool
}

// modeTotals counts the reports of a mode key (each once, however many
// sts policies of that mode it lists) and keeps the newest policy id, as
// the trigger of migration 011 did.
type modeTotals struct{ reports, lastPolicyID int64 }

// senderKey is a daily sender rollup key before tlsrpt_sender_range
// (in SQL) turns the address into its range.
type senderKey struct {
	domain   string
	day      time.Time
	org      string
	ip       netip.Addr // the zero Addr: none
	result   string
	trusted  bool
	reporter string
}

type senderTotals struct{ failed, lastID int64 }

// ipKey is a daily sending-IP rollup key: the address when the sender's
// text parses as one (host() in SQL gives its text), else that text.
type ipKey struct {
	domain  string
	day     time.Time
	ip      netip.Addr
	text    string
	trusted bool
}

// childRollups are the batch's additions to the daily rollups, summed in
// Go so that each rollup is one upsert per batch.
type childRollups struct {
	pols    map[policyKey]*policyTotals
	fails   map[failureKey]int64
	modes   map[modeKey]*modeTotals
	senders map[senderKey]*senderTotals
	ips     map[ipKey]int64
}

// storeChildren writes the policies and failure details of the newly
// inserted reports (COPY, with ids taken from the sequences beforehand so
// that details can name their policy; each row carries the report's day,
// its partition key) and adds them to the daily rollups.
func (d *DB) storeChildren(ctx context.Context, tx pgx.Tx, rows []reportRow, newRows []int, res []StoreResult) error {
	var nPol, nDet int
	for _, i := range newRows {
		for _, p := range rows[i].r.Report.Policies {
			nPol++
			nDet += len(p.FailureDetails)
		}
	}
	polIDs, detIDs, err := nextIDs(ctx, tx, nPol, nDet)
	if err != nil {
		return err
	}
	polRows := make([][]any, 0, nPol)
	detRows := make([][]any, 0, nDet)
	ru := childRollups{
		pols:    map[policyKey]*policyTotals{},
		fails:   map[failureKey]int64{},
		modes:   map[modeKey]*modeTotals{},
		senders: map[senderKey]*senderTotals{},
		ips:     map[ipKey]int64{},
	}
	// ok turns false when a total of the batch overflows a bigint: the
	// batch is refused (RejectedError), and stored one report at a time
	// PostgreSQL refuses the culprit ("bigint out of range").
	ok := true
	for _, i := range newRows {
		row := rows[i]
		rp := row.r.Report
		day := row.day
		org := clean(rp.OrganizationName)
		// A report counts once per rollup key, even when it lists the same
		// domain and policy type twice.
		counted := map[policyKey]bool{}
		var modesCounted []modeKey
		for pi, p := range rp.Policies {
			pid := polIDs[0]
			polIDs = polIDs[1:]
			domain := normDomain(p.Policy.Domain)
			typ := clean(p.Policy.Type)
			strs := cleanAll(p.Policy.Strings)
			polRows = append(polRows, []any{pid, res[i].ID, day, pi, typ, domain,
				strs, cleanAll(p.Policy.MXHosts),
				p.Summary.TotalSuccessfulSessionCount, p.Summary.TotalFailureSessionCount})
			k := policyKey{domain, day, org, typ, row.trusted, row.who.Reporter}
			t := ru.pols[k]
			if t == nil {
				t = &policyTotals{}
				ru.pols[k] = t
			}
			if !counted[k] {
				counted[k] = true
				t.reports++
			}
			ok = addCount(&t.successful, p.Summary.TotalSuccessfulSessionCount) &&
				addCount(&t.failed, p.Summary.TotalFailureSessionCount) && ok
			if typ == "sts" {
				modesCounted = ru.addMode(modeKey{domain, day, policyMode(strs), row.trusted}, pid, 1, modesCounted)
			}
			for fi, f := range p.FailureDetails {
				did := detIDs[0]
				detIDs = detIDs[1:]
				sendIP, sendText := parseIP(f.SendingMTAIP), clean(f.SendingMTAIP)
				result := clean(f.ResultType)
				detRows = append(detRows, []any{did, res[i].ID, pid, day, fi, result,
					sendIP, sendText,
					clean(f.ReceivingMXHostname), clean(f.ReceivingMXHelo),
					parseIP(f.ReceivingIP), clean(f.ReceivingIP),
					f.FailedSessionCount, clean(f.AdditionalInformation), clean(f.FailureReasonCode)})
				fk := failureKey{domain, day, result, normDomain(f.ReceivingMXHostname), row.trusted}
				sum := ru.fails[fk]
				ok = addCount(&sum, f.FailedSessionCount) && ok
				ru.fails[fk] = sum
				var ip netip.Addr
				ik := ipKey{domain: domain, day: day, trusted: row.trusted, text: sendText}
				if sendIP != nil {
					ip, ik.ip, ik.text = *sendIP, *sendIP, ""
				}
				sk := senderKey{domain, day, org, ip, result, row.trusted, row.who.Reporter}
				st := ru.senders[sk]
				if st == nil {
					st = &senderTotals{}
					ru.senders[sk] = st
				}
				ok = addCount(&st.failed, f.FailedSessionCount) && ok
				st.lastID = max(st.lastID, did)
				sum = ru.ips[ik]
				ok = addCount(&sum, f.FailedSessionCount) && ok
				ru.ips[ik] = sum
			}
		}
	}
	if !ok {
		return &RejectedError{Err: errors.New("session counts add up to more than a 64-bit total")}
	}
	if len(polRows) > 0 {
		_, err := tx.CopyFrom(ctx, pgx.Identifier{"report_policies"},
			[]string{"id", "report_id", "day", "position", "policy_type", "policy_domain", "policy_strings", "mx_hosts", "successful", "failed"},
			pgx.CopyFromRows(polRows))
		if err != nil {
			return err
		}
	}
	if len(detRows) > 0 {
		_, err := tx.CopyFrom(ctx, pgx.Identifier{"failure_details"},
			[]string{"id", "report_id", "policy_id", "day", "position", "result_type", "sending_mta_ip", "sending_mta_ip_text",
				"receiving_mx_hostname", "receiving_mx_helo", "receiving_ip", "receiving_ip_text",
				"failed_session_count", "additional_information", "failure_reason_code"},
			pgx.CopyFromRows(detRows))
		if err != nil {
			return err
		}
	}
	return upsertRollups(ctx, tx, &ru)
}

// upsertRollups adds the batch to the five daily rollups in one round
// trip. Each upsert handles its keys in key order, so that concurrent
// transactions lock rollup rows in the same order and cannot deadlock.
func upsertRollups(ctx context.Context, tx pgx.Tx, ru *childRollups) error {
	b := &pgx.Batch{}
	queuePolicyRollups(b, ru.pols)
	queueFailureRollups(b, ru.fails)
	queueModeRollups(b, ru.modes)
	queueSenderRollups(b, ru.senders)
	queueIPRollups(b, ru.ips)
	return tx.SendBatch(ctx, b).Close()
}

func cleanAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = clean(s)
	}
	return out
}

// nextIDs takes nPol values of the policies' sequence and nDet of the
// details', in one round trip.
func nextIDs(ctx context.Context, tx pgx.Tx, nPol, nDet int) (pol, det []int64, err error) {
	if nPol+nDet == 0 {
		return nil, nil, nil
	}
	rows, err := tx.Query(ctx, `SELECT false, nextval('report_policies_id_seq') FROM generate_series(1, $1)
		UNION ALL SELECT true, nextval('failure_details_id_seq') FROM generate_series(1, $2)`, nPol, nDet)
	if err != nil {
		return nil, nil, err
	}
	var (
		isDet bool
		id    int64
	)
	_, err = pgx.ForEachRow(rows, []any{&isDet, &id}, func() error {
		if isDet {
			det = append(det, id)
		} else {
			pol = append(pol, id)
		}
		return nil
	})
	if err == nil && (len(pol) != nPol || len(det) != nDet) {
		err = fmt.Errorf("took %d and %d ids, want %d and %d", len(pol), len(det), nPol, nDet)
	}
	return pol, det, err
}

// sortedKeys returns the keys of m in the order of compare: the rollup
// upserts handle their keys in key order, so that concurrent transactions
// lock rollup rows in the same order and cannot deadlock.
func sortedKeys[K comparable, V any](m map[K]V, compare func(a, b K) int) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, compare)
	return keys
}

// boolCompare orders false before true.
func boolCompare(a, b bool) int {
	switch {
	case a == b:
		return 0
	case !a:
		return -1
	}
	return 1
}

// queuePolicyRollups adds the totals in key order.
func queuePolicyRollups(b *pgx.Batch, pols map[policyKey]*policyTotals) {
	keys := sortedKeys(pols, func(x, y policyKey) int {
		return cmp.Or(strings.Compare(x.domain, y.domain), x.day.Compare(y.day), strings.Compare(x.org, y.org),
			strings.Compare(x.typ, y.typ), boolCompare(x.trusted, y.trusted), strings.Compare(x.reporter, y.reporter))
	})
	var (
		domains, orgs, types, reporters []string
		days                            []time.Time
		trusted                         []bool
		nrep, succ, fail                []int64
	)
	for _, k := range keys {
		t := pols[k]
		domains, days, orgs, types, trusted = append(domains, k.domain), append(days, k.day), append(orgs, k.org), append(types, k.typ), append(trusted, k.trusted)
		reporters = append(reporters, k.reporter)
		nrep, succ, fail = append(nrep, t.reports), append(succ, t.successful), append(fail, t.failed)
	}
	const q = `INSERT INTO daily_policy_rollups AS r (policy_domain, day, organization_name, policy_type, trusted, reports, successful, failed, reporter)
		SELECT * FROM unnest($1::text[], $2::date[], $3::text[], $4::text[], $5::boolean[], $6::bigint[], $7::bigint[], $8::bigint[], $9::text[])
		ON CONFLICT (policy_domain, day, organization_name, policy_type, trusted, reporter) DO UPDATE
		SET reports = least(r.reports::numeric + EXCLUDED.reports, 9223372036854775807)::bigint, successful = least(r.successful::numeric + EXCLUDED.successful, 9223372036854775807)::bigint,
			failed = least(r.failed::numeric + EXCLUDED.failed, 9223372036854775807)::bigint`
	b.Queue(q, domains, days, orgs, types, trusted, nrep, succ, fail, reporters)
}

func queueFailureRollups(b *pgx.Batch, fails map[failureKey]int64) {
	if len(fails) == 0 {
		return
	}
	keys := sortedKeys(fails, func(x, y failureKey) int {
		return cmp.Or(strings.Compare(x.domain, y.domain), x.day.Compare(y.day), strings.Compare(x.result, y.result),
			strings.Compare(x.mx, y.mx), boolCompare(x.trusted, y.trusted))
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
		SET failed = least(r.failed::numeric + EXCLUDED.failed, 9223372036854775807)::bigint`
	b.Queue(q, domains, days, results, mxs, trusted, failed)
}

// addMode counts a report's sts policy of key k (sign 1, or -1 for an
// excluded report) unless the report counted for k already: seen lists
// the keys the report counted for, and addMode returns it with k.
func (ru *childRollups) addMode(k modeKey, policyID, sign int64, seen []modeKey) []modeKey {
	t := ru.modes[k]
	if t == nil {
		t = &modeTotals{}
		ru.modes[k] = t
	}
	t.lastPolicyID = max(t.lastPolicyID, policyID)
	if slices.Contains(seen, k) {
		return seen
	}
	t.reports += sign
	return append(seen, k)
}

// policyMode is the mode of an sts policy from its policy-strings: the
// value of the first line (the strings joined with line ends) that
// matches ^[ \t]*mode[ \t]*:[ \t]*([a-z]*), case-insensitively in ASCII,
// lower-cased; "" when no line does. It is tlsrpt_policy_mode of
// migration 011, whose backfills made the rows this adds to
// (TestPolicyModeMatchesSQL); computed here, the mode rollup is one plain
// upsert instead of a regular expression per policy in PostgreSQL.
func policyMode(strs []string) string {
	for _, s := range strs {
		for line := range strings.SplitSeq(s, "\n") {
			if m, ok := modeOfLine(line); ok {
				return m
			}
		}
	}
	return ""
}

// modeOfLine matches one line against policyMode's expression.
func modeOfLine(line string) (string, bool) {
	line = strings.TrimLeft(line, " \t")
	if len(line) < 4 || line[0]|0x20 != 'm' || line[1]|0x20 != 'o' || line[2]|0x20 != 'd' || line[3]|0x20 != 'e' {
		return "", false
	}
	line = strings.TrimLeft(line[4:], " \t")
	if line == "" || line[0] != ':' {
		return "", false
	}
	line = strings.TrimLeft(line[1:], " \t")
	n := 0
	for n < len(line) && ('a' <= line[n]|0x20 && line[n]|0x20 <= 'z') {
		n++
	}
	return strings.ToLower(line[:n]), true
}

// queueModeRollups adds the reports counted per (domain, day, mode,
// trust) in key order, keeping the newest policy id.
func queueModeRollups(b *pgx.Batch, modes map[modeKey]*modeTotals) {
	if len(modes) == 0 {
		return
	}
	keys := sortedKeys(modes, func(x, y modeKey) int {
		return cmp.Or(strings.Compare(x.domain, y.domain), x.day.Compare(y.day), strings.Compare(x.mode, y.mode),
			boolCompare(x.trusted, y.trusted))
	})
	var (
		domains, modeNames []string
		days               []time.Time
		trusted            []bool
		nrep, last         []int64
	)
	for _, k := range keys {
		t := modes[k]
		domains, days, modeNames, trusted = append(domains, k.domain), append(days, k.day), append(modeNames, k.mode), append(trusted, k.trusted)
		nrep, last = append(nrep, t.reports), append(last, t.lastPolicyID)
	}
	const q = `INSERT INTO daily_mode_rollups AS m (policy_domain, day, mode, trusted, reports, last_policy_id)
		SELECT * FROM unnest($1::text[], $2::date[], $3::text[], $4::boolean[], $5::bigint[], $6::bigint[])
		ON CONFLICT (policy_domain, day, mode, trusted) DO UPDATE
		SET reports = m.reports + EXCLUDED.reports,
			last_policy_id = greatest(m.last_policy_id, EXCLUDED.last_policy_id)`
	b.Queue(q, domains, days, modeNames, trusted, nrep, last)
}

// queueSenderRollups adds the failed sessions per sending range
// (tlsrpt_sender_range of the address, in SQL), reporter and result type.
func queueSenderRollups(b *pgx.Batch, senders map[senderKey]*senderTotals) {
	if len(senders) == 0 {
		return
	}
	var (
		domains, orgs, results, reporters []string
		days                              []time.Time
		ips                               []*netip.Addr
		trusted                           []bool
		failed, last                      []int64
	)
	for k, t := range senders {
		var ip *netip.Addr
		if k.ip.IsValid() {
			a := k.ip
			ip = &a
		}
		domains, days, orgs, ips, results, trusted = append(domains, k.domain), append(days, k.day), append(orgs, k.org), append(ips, ip), append(results, k.result), append(trusted, k.trusted)
		failed, last = append(failed, t.failed), append(last, t.lastID)
		reporters = append(reporters, k.reporter)
	}
	const q = `INSERT INTO daily_sender_rollups AS s (policy_domain, day, organization_name, sending_range,
			result_type, trusted, reporter, failed, last_detail_id)
		SELECT d, dy, o, tlsrpt_sender_range(ip), rt, t, rp, sum(f), max(l)
		FROM unnest($1::text[], $2::date[], $3::text[], $4::inet[], $5::text[], $6::boolean[], $7::bigint[], $8::bigint[], $9::text[])
			AS u(d, dy, o, ip, rt, t, f, l, rp)
		GROUP BY 1, 2, 3, 4, 5, 6, 7
		ORDER BY 1, 2, 3, 4, 5, 6, 7
		ON CONFLICT (policy_domain, day, organization_name, sending_range, result_type, trusted, reporter) DO UPDATE
		SET failed = least(s.failed::numeric + EXCLUDED.failed, 9223372036854775807)::bigint,
			last_detail_id = greatest(s.last_detail_id, EXCLUDED.last_detail_id)`
	b.Queue(q, domains, days, orgs, ips, results, trusted, failed, last, reporters)
}

// MaxSendingIPsPerDay bounds the rows of the sending-IP rollup per policy
// domain, day and trust: reports are unauthenticated input and could name
// 100,000 addresses a day. Addresses beyond it, in the order they arrive
// (within a batch, the ones with most failures first), are summed under
// OtherSendingIPs. Concurrent batches may each add their new addresses
// while the count is below the bound, so it can be exceeded by what those
// batches add at once. Migration 060's backfill uses the same number.
const MaxSendingIPsPerDay = 256

// OtherSendingIPs is the sending-IP breakdown's key for the failures of
// addresses beyond MaxSendingIPsPerDay.
const OtherSendingIPs = "(other)"

// queueIPRollups adds the failed sessions per sending IP: host() of the
// address, else the sender's text, as the breakdown showed them when it
// read the raw details.
func queueIPRollups(b *pgx.Batch, ips map[ipKey]int64) {
	if len(ips) == 0 {
		return
	}
	var (
		domains, texts []string
		days           []time.Time
		addrs          []*netip.Addr
		trusted        []bool
		failed         []int64
	)
	for k, f := range ips {
		var ip *netip.Addr
		if k.ip.IsValid() {
			a := k.ip
			ip = &a
		}
		domains, days, addrs, texts, trusted, failed = append(domains, k.domain), append(days, k.day), append(addrs, ip), append(texts, k.text), append(trusted, k.trusted), append(failed, f)
	}
	// have: the rows of the key's domain, day and trust; rn: the key's
	// rank in the batch among that group's, most failures first. While
	// have + rn is within the bound (the common case) the key gets its
	// row; past it, only a key that has its row already (known, looked up
	// only then) does, and the rest go to OtherSendingIPs. Counting the
	// batch's known keys in rn errs on the side of the bound.
	const q = `WITH u AS (
			SELECT d, dy, coalesce(host(ip), txt) AS ip, t, sum(f)::bigint AS f
			FROM unnest($1::text[], $2::date[], $3::inet[], $4::text[], $5::boolean[], $6::bigint[]) AS x(d, dy, ip, txt, t, f)
			GROUP BY 1, 2, 3, 4
		), n AS (
			SELECT g.d, g.dy, g.t, (SELECT count(*) FROM daily_ip_rollups e
				WHERE e.policy_domain = g.d AND e.day = g.dy AND e.trusted = g.t) AS have
			FROM (SELECT DISTINCT d, dy, t FROM u) g
		), r AS (
			SELECT u.*, n.have, row_number() OVER (PARTITION BY u.d, u.dy, u.t ORDER BY u.f DESC, u.ip) AS rn
			FROM u JOIN n USING (d, dy, t)
		)
		INSERT INTO daily_ip_rollups AS o (policy_domain, day, trusted, sending_ip, failed)
		SELECT d, dy, t, CASE WHEN have + rn <= $7 THEN ip
			WHEN EXISTS (SELECT 1 FROM daily_ip_rollups e
				WHERE e.policy_domain = r.d AND e.day = r.dy AND e.trusted = r.t AND e.sending_ip = r.ip) THEN ip
			ELSE $8 END, sum(f)::bigint
		FROM r
		GROUP BY 1, 2, 3, 4
		ORDER BY 1, 2, 3, 4
		ON CONFLICT (policy_domain, day, trusted, sending_ip) DO UPDATE
		SET failed = least(o.failed::numeric + EXCLUDED.failed, 9223372036854775807)::bigint`
	b.Queue(q, domains, days, addrs, texts, trusted, failed, MaxSendingIPsPerDay, OtherSendingIPs)
}

// addCount adds n to *sum unless that overflows an int64 (the parser
// refuses negative counts); it says whether it added.
func addCount(sum *int64, n int64) bool {
	if n > math.MaxInt64-*sum {
		return false
	}
	*sum += n
	return true
}

package rollout

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// checkPolicyValues judges the parsed policy's mode and max_age.
func (in *Inspector) checkPolicyValues(res *CheckResult) {
	p, ok := res.Policy.Policy()
	if !ok {
		return
	}
	switch {
	case p.MaxAge < LowMaxAge:
		res.add(CodeMaxAgeLow, SeverityWarning, fmt.Sprintf("max_age %d is under %d (a day): senders refetch the policy too often and lose it quickly when the host is down", p.MaxAge, LowMaxAge), fmt.Sprintf("set max_age: %d (or %d in enforce) and bump the id", DefaultMaxAgeTesting, DefaultMaxAgeEnforce))
	case p.Mode == ModeEnforce && p.MaxAge < DefaultMaxAgeEnforce:
		res.add(CodeMaxAgeLow, SeverityWarning, fmt.Sprintf("max_age %d is under %d (a week), the usual value for enforce", p.MaxAge, DefaultMaxAgeEnforce), fmt.Sprintf("set max_age: %d and bump the id", DefaultMaxAgeEnforce))
	}
	if p.Mode == ModeTesting {
		res.add(CodeTestingMode, SeverityInfo, "the policy is in testing mode: failures are reported, mail is delivered anyway, nothing is protected yet", "run \"tlsrpt rollout "+res.Domain+"\" to see whether enforce is safe")
	}
}

// checkSeen asks the SeenStore for the policy first seen under the
// record's id: a different body means senders that cached the old one
// never refetch (RFC 8461 §3.1: the id must change with the policy).
// Parsed policies are compared in their canonical form, so a change of
// line endings or spacing alone is not a change.
func (in *Inspector) checkSeen(ctx context.Context, res *CheckResult, body string) {
	if in.Seen == nil || !res.Record.Valid {
		return
	}
	if p, ok := res.Policy.Policy(); ok {
		body = p.String()
	}
	first, err := in.Seen.SeenPolicy(ctx, res.Domain, res.Record.ID, body, res.CheckedAt)
	if err != nil {
		res.Notes = append(res.Notes, "the policy history could not be read: "+err.Error())
		return
	}
	if first != body {
		res.add(CodeIDNotChanged, SeverityError, "the policy changed since it was first seen under id "+res.Record.ID+": senders that cached the old policy keep it", fmt.Sprintf("bump the id: %s. IN TXT \"v=STSv1; id=%s\"", res.Record.Name, NewID(res.CheckedAt)))
	}
}

// maxMemorySeen bounds MemorySeen; when full it forgets everything and
// starts over, which only delays an id-not-changed finding.
const maxMemorySeen = 10000

// MemorySeen is a SeenStore in memory, for runs without a database. It is
// safe for concurrent use; the zero value is ready.
type MemorySeen struct {
	mu    sync.Mutex
	first map[[2]string]string
}

// SeenPolicy implements SeenStore.
func (m *MemorySeen) SeenPolicy(_ context.Context, domain, id, body string, _ time.Time) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.first == nil || len(m.first) >= maxMemorySeen {
		m.first = map[[2]string]string{}
	}
	k := [2]string{domain, id}
	if f, ok := m.first[k]; ok {
		return f, nil
	}
	m.first[k] = body
	return body, nil
}

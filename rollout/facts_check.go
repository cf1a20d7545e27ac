package rollout

// ApplyCheck puts a live check (Inspector.Check) into the facts: its
// problems (each message with its fix) become CheckProblems, and its policy
// becomes the current one when the check fetched a valid policy. Otherwise
// the policy of the reports stays, and a note says so. The notes are for
// the reader: what the check could not tell.
func (f *Facts) ApplyCheck(res *CheckResult) (notes []string) {
	if res == nil {
		return nil
	}
	if res.Error != "" {
		return append(notes, "live check not run: "+res.Error)
	}
	f.CheckProblems = []CheckFinding{}
	for _, p := range res.Problems {
		msg := p.Message
		if p.Fix != "" {
			msg += " (" + p.Fix + ")"
		}
		cf := CheckFinding{Code: p.Code, Severity: p.Severity, Message: msg, MX: p.MX}
		if pr, ok := res.Probe(p.MX, p.Address); ok && p.Address != "" {
			cf.Probe = &pr
		}
		f.CheckProblems = append(f.CheckProblems, cf)
	}
	if p, ok := res.Policy.Policy(); ok {
		f.Policy = CurrentPolicy{Mode: p.Mode, MX: p.MX, MaxAge: p.MaxAge, ID: res.Record.ID, Source: PolicySourceLive}
	} else if f.Policy.Source == PolicySourceReports {
		notes = append(notes, "the live policy could not be read: mode and mx list are those of the newest policy-string in the reports")
	}
	return append(notes, res.Notes...)
}

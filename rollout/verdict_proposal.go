package rollout

// propose generates the policy the verdict proposes: the current mx list in
// the given mode with a new id. The id is the UTC time of At (so a verdict
// for a given --at is reproducible), moved on by a second while it equals
// the current id: RFC 8461 §3.1 senders refetch only on a new id.
func propose(f Facts, mode Mode, maxAge int64) (*Generated, string) {
	if len(f.Policy.MX) == 0 {
		return nil, "no mx list is known (no policy from the live check or the reports): nothing to propose"
	}
	at := f.At.UTC()
	id := NewID(at)
	for id == f.Policy.ID {
		at = at.Add(1e9)
		id = NewID(at)
	}
	g, _, err := Generate(GenerateOptions{Domain: f.Domain, Mode: mode, MX: f.Policy.MX, MaxAge: maxAge, ZeroMaxAge: maxAge == 0, ID: id, Now: at})
	if err != nil {
		return nil, "generating the proposal: " + err.Error()
	}
	return &g, ""
}

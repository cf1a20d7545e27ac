package ui

// PromoteView is the promote panel of the domain page (docs/publishing.md): the
// verdict's outcome, the exact policy file, id and TXT value a promotion
// would publish, the forms (disabled for viewers), the newest version's
// publishing steps and the history.
type PromoteView struct {
	// Action is the headline: what the admin can do now.
	Action  string
	Summary []KV

	Domain  string
	CanEdit bool
	CSRF    string

	// Ready is the verdict; Blockers name what an override passes over.
	Ready    bool
	Blockers []string
	// NoPlan says why nothing can be promoted (then Next is nil).
	NoPlan string
	Next   *PolicyPlan

	// Latest is the newest version with its steps; History all of them,
	// newest first.
	Latest  *VersionView
	History []VersionView

	// PolicyHosted: tlsrpt serves the file; else HostingSteps say how to
	// serve the download. RecordMethod is how the TXT gets published;
	// manual shows DNSProviders.
	PolicyHosted bool
	HostingSteps []Steps
	RecordMethod string
	DNSProviders []Steps

	// Rollback, Retire: the plans of the two ways back (nil when there is
	// no current policy). CurrentMX is the mx list an mx move starts from.
	Rollback  *PolicyPlan
	Retire    *PolicyPlan
	CurrentMX string
	MXMove    []string
}

// PolicyPlan is a policy file with its id and record, as it would be
// published.
type PolicyPlan struct {
	Mode        string
	Policy      string
	ID          string
	PolicyURL   string
	RecordName  string
	RecordValue string
}

// VersionView is one published version.
type VersionView struct {
	Seq          int64
	Kind         string
	Mode         string
	ID           string
	MX           string
	MaxAge       int64
	CreatedBy    string
	CreatedAt    string
	Reason       string
	Override     bool
	PolicyMethod string
	RecordMethod string
	RecordError  string
	Verified     string
	LastChecked  string
	Steps        []StepView
	// SafeNote says when the next move is safe: removing the records of
	// a retired domain, changing the MX records after an mx move.
	SafeNote string
	// CanPush offers "Push the record again": the record drifted or its
	// push failed, the policy file is live, and tlsrpt pushes it.
	CanPush bool
}

// StepView is one publishing step: pending, done or drifted, with the fix.
type StepView struct {
	Name   string
	State  string
	Detail string
	Fix    string
}

// Steps are numbered instructions under a title (a DNS provider, a web
// server).
type Steps struct {
	Name  string
	Steps []string
	Note  string
}

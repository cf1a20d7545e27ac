package ui

// AutopilotView is the autopilot panel of the domain page
// (docs/autopilot.md): the ramp stage, the next step with its date, the
// on/off toggle (admins) and the plan, which is the newest evaluation's
// line ("would ramp on ..." in dry run).
type AutopilotView struct {
	Domain  string
	CanEdit bool
	CSRF    string
	Enabled bool
	// EnabledFrom says where Enabled comes from: domain, fleet or default.
	EnabledFrom string
	DryRun      bool
	// Stage is "testing" or "2 of 4", with the max_age.
	Stage string
	// Ramp lists the stages: "1: max_age 86400, 7 clean days".
	Ramp []string
	// HoldDays are the effective hold days as the form takes them:
	// "7,14,30".
	HoldDays string
	Next     string
	NextDate string
	// Plan is the newest evaluation: its day, verdict, blockers and line.
	Plan     string
	PlanDay  string
	Verdict  string
	Blockers []string
	Error    string
}

// PromotionsPage is the outcome of a bulk promotion from the overview.
type PromotionsPage struct {
	Layout
	DryRun  bool
	Results []PromotionRow
	Counts  []KV
}

// PromotionRow is one domain of a bulk promotion.
type PromotionRow struct {
	Domain   string
	Outcome  string
	ID       string
	MaxAge   int64
	Blockers string
	Message  string
}

package api

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/rollout"
	"github.com/tlsrpt/tlsrpt/ui"
)

// verdict computes the readiness verdict of domain from the store, with
// the policy the reports show (the pages do not run the live check on
// every view; GET .../check and the domain page's button do).
func (s *Server) verdict(ctx context.Context, domain string) (*rollout.Verdict, error) {
	return s.verdictWithCheck(ctx, domain, nil)
}

// verdictWithCheck is verdict with the live check's problems and policy
// put into the facts, when the caller ran one (nil: the reports only).
func (s *Server) verdictWithCheck(ctx context.Context, domain string, check *rollout.CheckResult) (*rollout.Verdict, error) {
	f, t, err := s.pub.Facts(ctx, domain)
	if err != nil {
		return nil, err
	}
	f.ApplyCheck(check)
	v := rollout.Evaluate(f, t)
	return &v, nil
}

// thresholds returns the domain's verdict thresholds.
func (s *Server) thresholds(ctx context.Context, domain string) (rollout.Thresholds, error) {
	return s.cfg.DB.DomainThresholds(ctx, domain)
}

// verdictView turns a verdict into what the domain page shows.
func verdictView(v *rollout.Verdict) *ui.VerdictView {
	vv := &ui.VerdictView{Badge: badge(v)}
	for _, f := range v.Blockers {
		vv.Blockers = append(vv.Blockers, finding(f))
	}
	for _, f := range v.Warnings {
		vv.Warnings = append(vv.Warnings, finding(f))
	}
	e := v.Evidence
	day := func(t time.Time) string { return t.UTC().Format(time.DateOnly) }
	vv.Evidence = []ui.KV{
		{Key: "Evaluation window", Value: e.Windows.Evaluation.String()},
		{Key: "Recent window", Value: e.Windows.Recent.String()},
		{Key: "Policy", Value: fmt.Sprintf("mode %s, mx %s (from %s)", e.Policy.Mode, strings.Join(e.Policy.MX, ", "), e.Policy.Source)},
		{Key: "Observed in testing", Value: fmt.Sprintf("%d days; trusted reports on %d of the %d days of the evaluation window (%s)",
			e.ObservedDays, e.ReportDays, e.Windows.Evaluation.Days, e.Windows.Evaluation)},
		{Key: "Reporters", Value: strconv.Itoa(e.Reporters) + " verified reporter domains in the evaluation window"},
		{Key: "Sessions", Value: ui.Num(e.Sessions) + " sts sessions in the evaluation window, " + ui.Num(e.Failures) + " failed"},
		{Key: "Recent failure rate", Value: ui.Percent(e.Recent.Rate) + " of " + ui.Num(e.Recent.Sessions) + " sessions"},
	}
	if e.TestingSince != nil {
		vv.Evidence = append(vv.Evidence, ui.KV{Key: "Testing since", Value: day(*e.TestingSince)})
	}
	if e.SenderSideFailures > 0 {
		vv.Evidence = append(vv.Evidence, ui.KV{Key: "Sender-side failures (not counted)", Value: ui.Num(e.SenderSideFailures)})
	}
	if e.ExcludedReports > 0 {
		vv.Evidence = append(vv.Evidence, ui.KV{Key: "Unverified reports (not counted)", Value: ui.Num(e.ExcludedReports)})
	}
	if e.ProposalError != "" {
		vv.Evidence = append(vv.Evidence, ui.KV{Key: "No proposal", Value: e.ProposalError})
	}
	if v.Proposal != nil {
		vv.Proposal = v.Proposal.Policy + "\n" + v.Proposal.RecordName + " TXT \"" + v.Proposal.RecordValue + "\""
	}
	return vv
}

func finding(f rollout.Finding) ui.Finding {
	out := ui.Finding{Code: f.Code, Message: f.Message}
	if f.Window != nil {
		out.Evidence = append(out.Evidence, "window "+f.Window.String())
	}
	for _, c := range f.Counts {
		line := ui.Num(c.Failures) + " × " + c.ResultType
		if c.MX != "" {
			line += " at " + c.MX
		}
		out.Evidence = append(out.Evidence, line)
	}
	if x := f.Example; x != nil {
		line := fmt.Sprintf("example: %s reported %s sessions with %s on %s", x.Organization, ui.Num(x.FailedSessionCount),
			x.ResultType, x.Day.UTC().Format(time.DateOnly))
		if x.ReceivingMXHostname != "" {
			line += " at " + x.ReceivingMXHostname
		}
		if x.SendingMTAIP != "" {
			line += " from " + x.SendingMTAIP
		}
		if x.FailureReasonCode != "" {
			line += " (" + x.FailureReasonCode + ")"
		}
		line += ", report " + x.ReportID
		out.Evidence = append(out.Evidence, line)
	}
	if len(f.Organizations) > 0 {
		out.Evidence = append(out.Evidence, "reporters: "+strings.Join(f.Organizations, ", "))
	}
	if len(f.MX) > 0 {
		out.Evidence = append(out.Evidence, "mx: "+strings.Join(f.MX, ", "))
	}
	if f.Organization != "" || f.Range != "" {
		out.Evidence = append(out.Evidence, "sender: "+f.Organization+" "+f.Range)
	}
	if p := f.Probe; p != nil {
		line := "probe of " + p.Address + ": "
		switch {
		case !p.STARTTLS:
			line += "no STARTTLS"
		case p.Certificate == nil:
			line += "STARTTLS failed: " + p.Error
		default:
			c := p.Certificate
			line += fmt.Sprintf("%s, certificate %s (%s) by %s, until %s (%d days left)", p.TLSVersion, c.Subject,
				strings.Join(c.SANs, ", "), c.Issuer, c.NotAfter.Format(time.DateOnly), c.DaysLeft)
			if p.VerifyError != "" {
				line += ": " + p.VerifyError
			}
		}
		out.Evidence = append(out.Evidence, line)
	}
	return out
}

// checkView turns the live check into what the domain page shows.
func checkView(r *rollout.CheckResult) *ui.CheckView {
	cv := &ui.CheckView{}
	for _, p := range r.Problems {
		cv.Problems = append(cv.Problems, ui.Problem{Code: p.Code, Severity: p.Severity, Message: p.Message, Fix: p.Fix})
	}
	if r.Error != "" {
		cv.Problems = append(cv.Problems, ui.Problem{Code: "invalid-domain", Severity: "error", Message: r.Error})
	}
	cv.Details = append(cv.Details, ui.KV{Key: "Checked at", Value: r.CheckedAt.UTC().Format(time.RFC3339)})
	if r.Record.ID != "" {
		cv.Details = append(cv.Details, ui.KV{Key: "_mta-sts id", Value: r.Record.ID})
	}
	if r.Policy.Valid {
		cv.Details = append(cv.Details, ui.KV{Key: "Policy", Value: fmt.Sprintf("mode %s, max_age %d, mx %s", r.Policy.Mode, r.Policy.MaxAge, strings.Join(r.Policy.MX, ", "))})
	}
	for _, mx := range r.MX {
		state := "not in the policy"
		if mx.InPolicy {
			state = "matches " + mx.Pattern
		}
		cv.Details = append(cv.Details, ui.KV{Key: "MX " + mx.Host, Value: state})
	}
	for _, n := range r.Notes {
		cv.Details = append(cv.Details, ui.KV{Key: "Note", Value: n})
	}
	cv.Probes = probeRows(r)
	return cv
}

// probeRows are the STARTTLS probe's findings per MX address; the state of
// a row is the worst problem the check found there.
func probeRows(r *rollout.CheckResult) []ui.ProbeRow {
	rank := map[string]int{"ok": 0, "unknown": 1, rollout.SeverityWarning: 2, rollout.SeverityError: 3}
	state := map[string]string{}
	for _, p := range r.Problems {
		if p.Address == "" {
			continue
		}
		s := p.Severity
		if p.Code == rollout.CodeMXUnreachable {
			s = "unknown"
		}
		if k := p.MX + " " + p.Address; rank[s] > rank[state[k]] {
			state[k] = s
		}
	}
	var rows []ui.ProbeRow
	for _, m := range r.MX {
		if m.ProbeError != "" && len(m.Addresses) == 0 {
			rows = append(rows, ui.ProbeRow{MX: m.Host, State: "unknown", TLS: m.ProbeError})
		}
		for _, p := range m.Addresses {
			row := ui.ProbeRow{MX: m.Host, Address: p.Address, State: cmp.Or(state[m.Host+" "+p.Address], "ok")}
			switch {
			case !p.Reachable:
				row.TLS = "not reachable from here: " + p.Error
			case !p.STARTTLS && p.Error == "":
				row.TLS = "no STARTTLS"
			case p.Certificate == nil:
				row.TLS = "STARTTLS failed: " + p.Error
			default:
				row.TLS = "STARTTLS, " + p.TLSVersion + " " + p.CipherSuite
			}
			if c := p.Certificate; c != nil {
				row.Certificate = fmt.Sprintf("%s (%s) by %s", c.Subject, strings.Join(c.SANs, ", "), c.Issuer)
				row.NotAfter = c.NotAfter.Format(time.DateOnly)
				row.DaysLeft = strconv.Itoa(c.DaysLeft)
				row.Bar = ui.DaysBar(c.DaysLeft)
				row.Verify = p.VerifyError
			}
			rows = append(rows, row)
		}
	}
	return rows
}

// settingFields describes the threshold form.
var settingFields = []struct{ name, label, help string }{
	{"min_days", "Days observed in testing", "at least this many days in testing"},
	{"min_report_days", "Days with reports", "of those, days with trusted reports"},
	{"min_reporters", "Reporting organisations", "distinct reporters in the window"},
	{"min_sessions", "Sessions", "sessions in the evaluation window"},
	{"max_failure_rate", "Highest failure rate", "a fraction: 0.001 is 0.1%"},
	{"recent_days", "Recent window (days)", "failure rate and failure types look at these days"},
	{"rising_days", "Trend window (days)", "compared with the base window before it"},
	{"rising_base_days", "Trend base (days)", ""},
	{"rising_factor", "Rising factor", "how many times the base rate counts as rising"},
	{"min_rising_failures", "Failures before a rise counts", ""},
	{"regression_base_days", "Regression base (days)", "baseline of the watch after enforce"},
	{"enforce_max_age", "max_age of the enforce policy", "seconds; 604800 is a week"},
}

func thresholdValues(t rollout.Thresholds) map[string]string {
	f := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	return map[string]string{
		"min_days": strconv.Itoa(t.MinDays), "min_report_days": strconv.Itoa(t.MinReportDays),
		"min_reporters": strconv.Itoa(t.MinReporters), "min_sessions": strconv.FormatInt(t.MinSessions, 10),
		"max_failure_rate": f(t.MaxFailureRate), "recent_days": strconv.Itoa(t.RecentDays),
		"rising_days": strconv.Itoa(t.RisingDays), "rising_base_days": strconv.Itoa(t.RisingBaseDays),
		"rising_factor": f(t.RisingFactor), "min_rising_failures": strconv.FormatInt(t.MinRisingFailures, 10),
		"regression_base_days": strconv.Itoa(t.RegressionBaseDays), "enforce_max_age": strconv.FormatInt(t.EnforceMaxAge, 10),
	}
}

// parseThresholds reads the form into t, naming the field at fault.
func parseThresholds(get func(string) string, t *rollout.Thresholds) error {
	ints := map[string]*int{"min_days": &t.MinDays, "min_report_days": &t.MinReportDays, "min_reporters": &t.MinReporters,
		"recent_days": &t.RecentDays, "rising_days": &t.RisingDays, "rising_base_days": &t.RisingBaseDays,
		"regression_base_days": &t.RegressionBaseDays}
	int64s := map[string]*int64{"min_sessions": &t.MinSessions, "min_rising_failures": &t.MinRisingFailures, "enforce_max_age": &t.EnforceMaxAge}
	floats := map[string]*float64{"max_failure_rate": &t.MaxFailureRate, "rising_factor": &t.RisingFactor}
	for _, f := range settingFields {
		v := strings.TrimSpace(get(f.name))
		if v == "" {
			continue
		}
		var err error
		switch {
		case ints[f.name] != nil:
			*ints[f.name], err = strconv.Atoi(v)
		case int64s[f.name] != nil:
			*int64s[f.name], err = strconv.ParseInt(v, 10, 64)
		case floats[f.name] != nil:
			*floats[f.name], err = strconv.ParseFloat(v, 64)
		}
		if err != nil {
			return errorf(http.StatusBadRequest, "%s: %q is not a number", f.label, v)
		}
	}
	if err := t.Validate(); err != nil {
		return errorf(http.StatusBadRequest, "%v", err)
	}
	return nil
}

// settingsPage is the settings index: a link to each domain's settings
// page, the account pages and the trusted reporters. One form per domain
// on a single page grew to thousands of pixels with "Remove" under each
// Save; each domain now has its own page (settings_domain.go).
func (s *Server) settingsPage(c echo.Context) error {
	return s.renderSettings(c, http.StatusOK, nil)
}

// renderSettings renders the settings page; publishing, when set, is the
// fleet default's form as the admin typed it (with its errors).
func (s *Server) renderSettings(c echo.Context, status int, publishing *ui.PublishingForm) error {
	names, err := s.cfg.DB.Domains(c.Request().Context())
	if err != nil {
		return err
	}
	page := ui.SettingsPage{Layout: s.layout(c, "Settings", "settings")}
	if publishing != nil {
		page.Publishing = *publishing
	} else if page.Publishing, err = s.publishingFormFor(c.Request().Context(), db.DefaultPublishing); err != nil {
		return err
	}
	for _, d := range names {
		page.Domains = append(page.Domains, ui.DomainLink{Domain: d.Name})
	}
	if page.Shipped, page.Rules, err = s.reporterRuleViews(c); err != nil {
		return err
	}
	return s.render(c, status, "settings", page)
}

// apiSettings returns a domain's thresholds.
func (s *Server) apiSettings(c echo.Context) error {
	d, err := domainParam(c)
	if err != nil {
		return err
	}
	t, err := s.thresholds(c.Request().Context(), d)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, t)
}

// apiPutSettings replaces a domain's thresholds; absent fields keep their
// value.
func (s *Server) apiPutSettings(c echo.Context) error {
	d, err := domainParam(c)
	if err != nil {
		return err
	}
	t, err := s.thresholds(c.Request().Context(), d)
	if err != nil {
		return err
	}
	if err := readJSON(c, &t); err != nil {
		return err
	}
	if err := t.Validate(); err != nil {
		return errorf(http.StatusBadRequest, "%v", err)
	}
	if err := s.saveThresholds(c, d, t); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, t)
}

// saveThresholds stores thresholds and records the change.
func (s *Server) saveThresholds(c echo.Context, domain string, t rollout.Thresholds) error {
	if err := s.cfg.DB.SetDomainThresholds(c.Request().Context(), domain, t); err != nil {
		return err
	}
	return s.audit(c, "settings.thresholds", domain, t)
}

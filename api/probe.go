package api

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/rollout"
	"github.com/tlsrpt/tlsrpt/rollout/publish"
	"github.com/tlsrpt/tlsrpt/ui"
)

// Probe history and alerts (docs/policy-and-check.md): serve probes each listed domain
// once a day (its MX hosts over STARTTLS, and the policy host), keeps the
// results, and alerts when a certificate of an enforcing domain starts
// failing or comes within rollout.CertAlertDays of expiry. A live check
// run from the page or the API for a listed domain is kept the same way.

// ProbeEvery is how old a domain's last probe may get before the loop
// probes it again.
const ProbeEvery = 24 * time.Hour

// probeRound is how often the loop looks for domains due, and
// probeFirstRound how long after start it first does: a restart does not
// probe every domain at once, and a short-lived server (tests, a demo)
// sends no port-25 traffic.
const (
	probeRound      = time.Hour
	probeFirstRound = 5 * time.Minute
)

// ProbeResult is what one probe of a domain found and did.
type ProbeResult struct {
	Probe    db.Probe
	Notified bool
}

// RecordProbe stores a check of a listed domain as a probe, compares its
// certificates with the probe before and, when the domain enforces,
// notifies about what got worse.
func (s *Server) RecordProbe(ctx context.Context, domain, cause string, res *rollout.CheckResult) (ProbeResult, error) {
	out := ProbeResult{Probe: db.Probe{Domain: domain, ProbedAt: s.now().UTC(), Cause: cause, Result: *res}}
	prev, err := s.cfg.DB.LatestProbe(ctx, domain)
	var before []rollout.CertState
	switch {
	case err == nil:
		before = rollout.CertStates(&prev.Result)
	case !errors.Is(err, db.ErrNotFound):
		return out, err
	}
	enforcing, err := s.enforcing(ctx, domain, res)
	if err != nil {
		return out, err
	}
	if enforcing {
		out.Probe.Alerts = rollout.CertAlerts(before, rollout.CertStates(res), rollout.CertAlertDays)
	}
	if out.Probe.ID, err = s.cfg.DB.SaveProbe(ctx, out.Probe); err != nil {
		return out, err
	}
	n := s.pub.Notifier
	if len(out.Probe.Alerts) == 0 || !n.Configured() {
		return out, nil
	}
	a := publish.Alert{Domain: domain, Subject: "TLS certificate alert for " + domain + " (enforce)",
		Message: strings.Join(out.Probe.Alerts, "; "), Link: s.pub.DomainLink(domain), OpenedAt: out.Probe.ProbedAt}
	msg := ""
	if nerr := n.Notify(ctx, a); nerr != nil {
		msg = nerr.Error()
		s.log.WarnContext(ctx, "Notifying a certificate alert failed", "domain", domain, "error", nerr)
	} else {
		out.Notified = true
	}
	return out, s.cfg.DB.MarkProbeNotified(ctx, out.Probe.ID, s.now().UTC(), msg)
}

// enforcing tells whether domain is in enforce: its newest policy version
// says so, or the policy the check fetched.
func (s *Server) enforcing(ctx context.Context, domain string, res *rollout.CheckResult) (bool, error) {
	v, err := s.cfg.DB.LatestPolicyVersion(ctx, domain)
	switch {
	case err == nil && v.Policy.Mode == rollout.ModeEnforce:
		return true, nil
	case err != nil && !errors.Is(err, db.ErrNotFound):
		return false, err
	}
	p, ok := res.Policy.Policy()
	return ok && p.Mode == rollout.ModeEnforce, nil
}

// RunProbes probes, until ctx ends, each listed domain whose last probe is
// older than ProbeEvery, looking every probeRound (first after
// probeFirstRound). Errors are logged; the next round tries again.
func (s *Server) RunProbes(ctx context.Context) {
	if s.cfg.Inspector == nil {
		return
	}
	wait := probeFirstRound
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		s.probeOnce(ctx)
		wait = probeRound
	}
}

// probeOnce is one round of RunProbes; it returns how many domains it
// probed.
func (s *Server) probeOnce(ctx context.Context) int {
	domains, err := s.cfg.DB.Domains(ctx)
	if err != nil {
		s.log.ErrorContext(ctx, "Listing domains for the probe failed", "error", err)
		return 0
	}
	n := 0
	for _, d := range domains {
		if ctx.Err() != nil {
			return n
		}
		last, err := s.cfg.DB.LatestProbe(ctx, d.Name)
		if err == nil && s.now().Sub(last.ProbedAt) < ProbeEvery {
			continue
		}
		if err != nil && !errors.Is(err, db.ErrNotFound) {
			s.log.WarnContext(ctx, "Reading the last probe failed", "domain", d.Name, "error", err)
			continue
		}
		res := s.cfg.Inspector.Check(ctx, d.Name)
		if res.Error != "" {
			continue
		}
		if _, err := s.RecordProbe(ctx, d.Name, db.ProbeDaily, res); err != nil {
			s.log.WarnContext(ctx, "Storing the probe failed", "domain", d.Name, "error", err)
			continue
		}
		n++
	}
	return n
}

// keepCheck stores a live check run for a caller as a probe when the
// domain is listed; a failure to store is logged, the check still shown.
func (s *Server) keepCheck(ctx context.Context, domain string, res *rollout.CheckResult) {
	if res == nil || res.Error != "" || s.cfg.Inspector.SkipSMTP {
		return
	}
	listed, err := s.cfg.DB.HasDomain(ctx, domain)
	if err != nil || !listed {
		return
	}
	if _, err := s.RecordProbe(ctx, domain, db.ProbeRequest, res); err != nil {
		s.log.WarnContext(ctx, "Storing the probe failed", "domain", domain, "error", err)
	}
}

// probeChartDays is how far back the days-left chart of the domain page
// goes.
const probeChartDays = 90

// lastProbe is the domain page's view of the newest stored probe and the
// days left of each certificate over the probes of probeChartDays; nil
// without a probe.
func (s *Server) lastProbe(ctx context.Context, domain string) (*ui.ProbeHistory, error) {
	ps, err := s.cfg.DB.Probes(ctx, domain, s.now().AddDate(0, 0, -probeChartDays), probeChartDays*2)
	if err != nil || len(ps) == 0 {
		return nil, err
	}
	last := ps[0]
	h := &ui.ProbeHistory{ProbedAt: last.ProbedAt.UTC().Format(time.RFC3339), Cause: last.Cause, Alerts: last.Alerts,
		Rows: probeRows(&last.Result)}
	byKey := map[string]*ui.DaysSeries{}
	var keys []string
	for i := len(ps) - 1; i >= 0; i-- { // oldest first
		for _, c := range rollout.CertStates(&ps[i].Result) {
			if !c.HasCert {
				continue
			}
			label := c.Host
			if c.Address != "" {
				label += " " + c.Address
			}
			sr, ok := byKey[label]
			if !ok {
				sr = &ui.DaysSeries{Label: label}
				byKey[label] = sr
				keys = append(keys, label)
			}
			sr.Points = append(sr.Points, ui.DaysPoint{At: ps[i].ProbedAt, Days: c.DaysLeft})
		}
	}
	series := make([]ui.DaysSeries, 0, len(keys))
	for _, k := range keys {
		series = append(series, *byKey[k])
	}
	h.Chart = ui.NewDaysChart(series, 760, max(160, 40+12*float64(len(series))))
	return h, nil
}

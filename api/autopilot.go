package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/rollout"
	"github.com/tlsrpt/tlsrpt/rollout/autopilot"
	"github.com/tlsrpt/tlsrpt/ui"
)

// The autopilot's routes (docs/autopilot.md): bulk promotion, the
// per-domain settings and status, and the fleet filters of the overview.

// maxPromotionsBody bounds the body of POST /api/v1/promotions: room for
// autopilot.MaxBulkDomains names.
const maxPromotionsBody = 4 << 20

// promotionsJSON is the body of POST /api/v1/promotions.
type promotionsJSON struct {
	Domains []string `json:"domains"`
	Reason  string   `json:"reason"`
	DryRun  bool     `json:"dry_run"`
}

// apiPromotions is POST /api/v1/promotions: promote each listed domain
// whose own verdict is ready, answering per domain.
func (s *Server) apiPromotions(c echo.Context) error {
	var in promotionsJSON
	dec := json.NewDecoder(io.LimitReader(c.Request().Body, maxPromotionsBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return errorf(http.StatusBadRequest, "the request body is not the JSON this route takes: %v", err)
	}
	if len(in.Domains) == 0 {
		return errorf(http.StatusBadRequest, "domains is empty: list the domains to promote")
	}
	res, err := s.bulkPromote(c, in)
	if err != nil {
		return err
	}
	counts := map[string]int{}
	for _, r := range res {
		counts[r.Outcome]++
	}
	return c.JSON(http.StatusOK, map[string]any{"dry_run": in.DryRun, "counts": counts, "results": res})
}

func (s *Server) bulkPromote(c echo.Context, in promotionsJSON) ([]autopilot.BulkResult, error) {
	if len(in.Domains) > autopilot.MaxBulkDomains {
		return nil, errorf(http.StatusBadRequest, "at most %d domains at once, not %d", autopilot.MaxBulkDomains, len(in.Domains))
	}
	if len(in.Reason) > maxReason {
		return nil, errorf(http.StatusBadRequest, "the reason is longer than %d characters", maxReason)
	}
	return s.Autopilot().BulkPromote(c.Request().Context(), autopilot.BulkRequest{Domains: in.Domains,
		Reason: in.Reason, Actor: actor(c), DryRun: in.DryRun})
}

// promotionsForm is POST /promotions: the overview's bulk promotion of
// the selected domains.
func (s *Server) promotionsForm(c echo.Context) error {
	form, err := c.FormParams()
	if err != nil {
		return errorf(http.StatusBadRequest, "reading the form: %v", err)
	}
	in := promotionsJSON{Domains: form["domain"], Reason: strings.TrimSpace(form.Get("reason")), DryRun: form.Get("dry_run") == "yes"}
	if len(in.Domains) == 0 {
		return errorf(http.StatusBadRequest, "no domain selected: tick the domains to promote")
	}
	res, err := s.bulkPromote(c, in)
	if err != nil {
		return err
	}
	page := ui.PromotionsPage{Layout: s.layout(c, "Bulk promotion", "overview"), DryRun: in.DryRun}
	counts := map[string]int{}
	for _, r := range res {
		counts[r.Outcome]++
		page.Results = append(page.Results, ui.PromotionRow{Domain: r.Domain, Outcome: r.Outcome, ID: r.ID, MaxAge: r.MaxAge,
			Blockers: strings.Join(r.Blockers, ", "), Message: r.Message})
	}
	for _, o := range []string{autopilot.OutcomePromoted, autopilot.OutcomeBlocked, autopilot.OutcomeSkipped, autopilot.OutcomeError} {
		page.Counts = append(page.Counts, ui.KV{Key: o, Value: strconv.Itoa(counts[o])})
	}
	return s.render(c, http.StatusOK, "promotions", page)
}

// autopilotJSON is the body of PUT /api/v1/domains/:domain/autopilot (and
// /api/v1/autopilot for the fleet default): the fields to set.
type autopilotJSON struct {
	Enabled     *bool  `json:"enabled"`
	DryRun      *bool  `json:"dry_run"`
	ReadyDays   *int   `json:"ready_days"`
	FinalMaxAge *int64 `json:"final_max_age"`
	HoldDays    []int  `json:"hold_days"`
}

// apiAutopilot is GET /api/v1/domains/:domain/autopilot: the status.
func (s *Server) apiAutopilot(c echo.Context) error {
	d, err := domainParam(c)
	if err != nil {
		return err
	}
	st, err := s.Autopilot().Status(c.Request().Context(), d)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, st)
}

// apiPutAutopilot is PUT /api/v1/domains/:domain/autopilot.
func (s *Server) apiPutAutopilot(c echo.Context) error {
	d, err := domainParam(c)
	if err != nil {
		return err
	}
	if err := s.putAutopilot(c, d); err != nil {
		return err
	}
	return s.apiAutopilot(c)
}

// apiPutFleetAutopilot is PUT /api/v1/autopilot: the fleet default.
func (s *Server) apiPutFleetAutopilot(c echo.Context) error {
	if err := s.putAutopilot(c, db.FleetDefault); err != nil {
		return err
	}
	fleet, err := s.cfg.DB.AutopilotSettings(c.Request().Context(), db.FleetDefault)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, autopilot.Resolve(fleet, db.AutopilotSettings{Domain: db.FleetDefault}))
}

func (s *Server) putAutopilot(c echo.Context, domain string) error {
	var in autopilotJSON
	if err := readJSON(c, &in); err != nil {
		return err
	}
	set := db.AutopilotSettings{Domain: domain, Enabled: in.Enabled, DryRun: in.DryRun, ReadyDays: in.ReadyDays, FinalMaxAge: in.FinalMaxAge,
		HoldDays: in.HoldDays}
	if err := s.Autopilot().Set(c.Request().Context(), set, actor(c)); err != nil {
		return settingError(err)
	}
	if domain != db.FleetDefault && in.Enabled != nil && *in.Enabled {
		s.planNow(c, domain)
	}
	return nil
}

// planTimeout bounds the evaluation planNow runs in a request (the live
// check's DNS and HTTPS).
const planTimeout = 15 * time.Second

// planNow writes today's plan of domain right after its autopilot was
// switched on, so that the panel shows it at once: a dry-run evaluation,
// which changes nothing and which the real evaluation of the day (tlsrpt
// serve's loop, "tlsrpt autopilot run") replaces. A failure is logged.
func (s *Server) planNow(c echo.Context, domain string) {
	ctx, cancel := context.WithTimeout(c.Request().Context(), planTimeout)
	defer cancel()
	if _, err := s.Autopilot().EvaluateDomain(ctx, domain, autopilot.Options{DryRun: true}); err != nil {
		s.log.WarnContext(ctx, "Planning the autopilot failed", "domain", clip(domain), "error", clipErr(err))
	}
}

// settingError makes a refused setting a 400 with its message.
func settingError(err error) error {
	var ae *Error
	if errors.As(err, &ae) || strings.Contains(err.Error(), "storing") {
		return err
	}
	return errorf(http.StatusBadRequest, "%s", PlainMessage(err))
}

// autopilotForm is POST /domains/:domain/autopilot: the panel's on/off
// toggle, or its hold days form (a hold_days field, "7,14,30").
func (s *Server) autopilotForm(c echo.Context) error {
	d, err := domainParam(c)
	if err != nil {
		return err
	}
	if form, err := c.FormParams(); err == nil && form.Has("hold_days") {
		return s.holdDaysForm(c, d, form.Get("hold_days"))
	}
	var on bool
	switch c.FormValue("enabled") {
	case "on":
		on = true
	case "off":
	default:
		return errorf(http.StatusBadRequest, "enabled must be on or off")
	}
	if err := s.Autopilot().SetEnabled(c.Request().Context(), d, on, actor(c)); err != nil {
		return settingError(err)
	}
	done := "autopilot-off"
	if on {
		done = "autopilot-on"
		s.planNow(c, d)
	}
	return c.Redirect(http.StatusSeeOther, "/domains/"+d+"?done="+done+"#autopilot")
}

// holdDaysForm sets the domain's own hold days from the panel's form.
func (s *Server) holdDaysForm(c echo.Context, domain, value string) error {
	h, err := autopilot.ParseHoldDays(value)
	if err != nil {
		return errorf(http.StatusBadRequest, "%s", PlainMessage(err))
	}
	if err := s.Autopilot().Set(c.Request().Context(), db.AutopilotSettings{Domain: domain, HoldDays: h}, actor(c)); err != nil {
		return settingError(err)
	}
	return c.Redirect(http.StatusSeeOther, "/domains/"+domain+"?done=autopilot-hold-days#autopilot")
}

// autopilotView is the domain page's autopilot panel.
func (s *Server) autopilotView(c echo.Context, domain string) *ui.AutopilotView {
	ctx := c.Request().Context()
	st, err := s.Autopilot().Status(ctx, domain)
	if err != nil {
		s.log.WarnContext(ctx, "Reading the autopilot status failed", "domain", clip(domain), "error", clipErr(err))
		return nil
	}
	l := s.layout(c, "", "")
	v := &ui.AutopilotView{Domain: st.Domain, CanEdit: l.CanEdit, CSRF: l.CSRF, Enabled: st.Settings.Enabled,
		EnabledFrom: st.Settings.EnabledFrom, DryRun: st.Settings.DryRun, Next: st.Next,
		HoldDays: autopilot.FormatHoldDays(st.Settings.HoldDays)}
	switch {
	case st.Stage == 0 && st.Mode != "":
		v.Stage = fmt.Sprintf("not in enforce (mode %s, max_age %d)", st.Mode, st.MaxAge)
	case st.Stage == 0:
		v.Stage = "not in enforce (no version published by tlsrpt)"
	default:
		v.Stage = fmt.Sprintf("%d of %d (enforce, max_age %d)", st.Stage, st.FinalStage, st.MaxAge)
	}
	if st.NextDate != nil {
		v.NextDate = st.NextDate.Format(time.DateOnly)
	}
	for i, stage := range st.Ramp {
		line := fmt.Sprintf("%d: max_age %d", i+1, stage.MaxAge)
		if i == len(st.Ramp)-1 {
			line += " (final)"
		} else {
			line += fmt.Sprintf(", then %d clean days live", stage.HoldDays)
		}
		v.Ramp = append(v.Ramp, line)
	}
	if e := st.Last; e != nil {
		v.Plan, v.PlanDay, v.Verdict, v.Blockers, v.Error = e.Plan, e.Day.Format(time.DateOnly), e.Verdict, e.Blockers, e.Error
		if e.DryRun {
			v.Verdict += ", dry run"
		}
	}
	return v
}

// Fleet filters of the overview.
var (
	fleetModes  = []string{string(rollout.ModeTesting), string(rollout.ModeEnforce), string(rollout.ModeNone), "unknown"}
	fleetStages = []string{"testing", "1", "2", "3", "final"}
	fleetStates = []string{db.AutopilotOn, db.AutopilotDryRun, db.AutopilotOff}
)

// fleetParams reads ?mode=, ?stage= and ?autopilot= into q; each must be
// one of the offered values.
func fleetParams(c echo.Context, q *overviewQuery) error {
	q.Mode, q.Stage, q.Autopilot = c.QueryParam("mode"), c.QueryParam("stage"), c.QueryParam("autopilot")
	for _, p := range []struct {
		name, value string
		valid       []string
	}{{"mode", q.Mode, fleetModes}, {"stage", q.Stage, fleetStages}, {"autopilot", q.Autopilot, fleetStates}} {
		if p.value != "" && !slices.Contains(p.valid, p.value) {
			return errorf(http.StatusBadRequest, "%s must be one of %s, not %q", p.name, strings.Join(p.valid, ", "), clip(p.value))
		}
	}
	return nil
}

// stageFilter turns ?stage= into the store's filter: the stage's max_age
// range of the default ramp.
func stageFilter(stage string) *db.StageFilter {
	f := &db.StageFilter{Enforce: true, DefaultFinal: autopilot.DefaultFinalMaxAge}
	switch stage {
	case "":
		return nil
	case "testing":
		return &db.StageFilter{}
	case "final":
		f.Final = true
		return f
	}
	k, _ := strconv.Atoi(stage) // 1..3: fleetParams checked it
	stages := autopilot.DefaultStages
	if k > 1 {
		f.MinMaxAge = stages[k-1].MaxAge
	}
	f.MaxMaxAge = autopilot.MaxFinalMaxAge + 1
	if k < len(stages) {
		f.MaxMaxAge = stages[k].MaxAge
	}
	return f
}

// fleetColumns fills the stage and autopilot columns of the overview's
// rows.
func (s *Server) fleetColumns(c echo.Context, rows []ui.DomainRow) error {
	ctx := c.Request().Context()
	names := make([]string, 0, len(rows))
	for _, r := range rows {
		names = append(names, r.Name)
	}
	states, err := s.cfg.DB.FleetStates(ctx, names)
	if err != nil {
		return err
	}
	fleet, err := s.cfg.DB.AutopilotSettings(ctx, db.FleetDefault)
	if err != nil {
		return err
	}
	for i := range rows {
		st := states[rows[i].Name]
		set := autopilot.Resolve(fleet, st.Settings)
		ramp := set.Ramp()
		switch k := ramp.StageOf(rollout.Policy{Mode: rollout.Mode(st.Mode), MaxAge: st.MaxAge}); {
		case k == 0:
			rows[i].Stage = "testing"
		case k == ramp.Final():
			rows[i].Stage = "final"
		default:
			rows[i].Stage = strconv.Itoa(k)
		}
		switch {
		case set.Enabled && set.DryRun:
			rows[i].Autopilot = db.AutopilotDryRun
		case set.Enabled:
			rows[i].Autopilot = db.AutopilotOn
		default:
			rows[i].Autopilot = db.AutopilotOff
		}
	}
	return nil
}

// Autopilot returns the server's autopilot engine, publishing through the
// server's promoter.
func (s *Server) Autopilot() *autopilot.Engine { return autopilot.New(s.Promoter()) }

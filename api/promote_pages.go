package api

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/rollout"
	"github.com/tlsrpt/tlsrpt/rollout/publish"
	"github.com/tlsrpt/tlsrpt/ui"
)

// maxReason bounds the reason typed into a form or sent to the API.
const maxReason = 500

// changeError maps the errors of a policy change to what a person reads.
func changeError(err error) error {
	switch {
	case errors.Is(err, publish.ErrBlocked), errors.Is(err, publish.ErrUnchanged):
		return &Error{Status: http.StatusConflict, Message: firstLine(err), Err: err}
	case errors.Is(err, publish.ErrConfirmation):
		return &Error{Status: http.StatusUnprocessableEntity, Message: "the override needs the domain typed again exactly and a reason", Err: err}
	case errors.Is(err, db.ErrIDUsed):
		return &Error{Status: http.StatusConflict, Message: "that policy id was used before; reload the page for a new one", Err: err}
	case errors.Is(err, publish.ErrInvalid):
		return &Error{Status: http.StatusUnprocessableEntity, Message: firstLine(err), Err: err}
	case errors.Is(err, publish.ErrNotPushable), errors.Is(err, publish.ErrBusy):
		return &Error{Status: http.StatusConflict, Message: firstLine(err), Err: err}
	}
	return err
}

func firstLine(err error) string {
	return PlainMessage(err)
}

// actor is who makes a change, for the versions and the audit log.
func actor(c echo.Context) string {
	if p := principalOf(c); p != nil {
		return p.Name
	}
	return "unknown"
}

func formReason(c echo.Context) (string, error) {
	r := strings.TrimSpace(c.FormValue("reason"))
	if len(r) > maxReason {
		return "", errorf(http.StatusBadRequest, "the reason is longer than %d characters", maxReason)
	}
	return r, nil
}

// changeForm runs the change that build makes of the form's domain, actor
// and reason, then shows the domain's promote panel: the body of the
// promote, rollback and MX-move forms.
func (s *Server) changeForm(c echo.Context, build func(req *publish.ChangeRequest) error) error {
	d, err := domainParam(c)
	if err != nil {
		return err
	}
	reason, err := formReason(c)
	if err != nil {
		return err
	}
	req := publish.ChangeRequest{Domain: d, Actor: actor(c), Reason: reason}
	if err := build(&req); err != nil {
		return err
	}
	if _, err := s.change(c.Request().Context(), req); err != nil {
		return changeError(err)
	}
	return c.Redirect(http.StatusSeeOther, "/domains/"+d+"#promote")
}

// promoteForm is POST /domains/:domain/promote.
func (s *Server) promoteForm(c echo.Context) error {
	return s.changeForm(c, func(req *publish.ChangeRequest) error {
		req.Kind = rollout.KindPromote
		req.Override = c.FormValue("override") == "yes"
		req.Confirm, req.ID = c.FormValue("confirm"), c.FormValue("id")
		return nil
	})
}

// rollbackForm is POST /domains/:domain/rollback: mode testing or none.
func (s *Server) rollbackForm(c echo.Context) error {
	return s.changeForm(c, func(req *publish.ChangeRequest) error {
		var err error
		req.Kind, err = rollbackKind(c.FormValue("mode"))
		return err
	})
}

func rollbackKind(mode string) (string, error) {
	switch mode {
	case "", string(rollout.ModeTesting):
		return rollout.KindRollback, nil
	case string(rollout.ModeNone):
		return rollout.KindRetire, nil
	}
	return "", errorf(http.StatusBadRequest, "mode %q: a rollback goes to testing or none", mode)
}

// mxMoveForm is POST /domains/:domain/mx-move.
func (s *Server) mxMoveForm(c echo.Context) error {
	return s.changeForm(c, func(req *publish.ChangeRequest) error {
		req.Kind, req.MX = rollout.KindMXMove, strings.Fields(c.FormValue("mx"))
		if len(req.MX) > 100 {
			return errorf(http.StatusBadRequest, "at most 100 mx patterns")
		}
		return nil
	})
}

// verifyForm is POST /domains/:domain/verify: one verification poll now.
func (s *Server) verifyForm(c echo.Context) error {
	d, err := domainParam(c)
	if err != nil {
		return err
	}
	if _, err := s.Promoter().Verify(c.Request().Context(), d); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/domains/"+d+"#promote")
}

// pushForm is POST /domains/:domain/push: the "Push the record again"
// button of a drifted record.
func (s *Server) pushForm(c echo.Context) error {
	d, err := domainParam(c)
	if err != nil {
		return err
	}
	if _, err := s.pub.Push(c.Request().Context(), d, actor(c)); err != nil {
		return changeError(err)
	}
	return c.Redirect(http.StatusSeeOther, "/domains/"+d+"#promote")
}

// policyDownload is GET /domains/:domain/mta-sts.txt: the newest version's
// policy file as a download, for operators hosting it themselves; with
// ?proposed=1 the file a promotion would publish, which is what they
// serve while tlsrpt has published no version yet.
func (s *Server) policyDownload(c echo.Context) error {
	d, err := domainParam(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	var body string
	if c.QueryParam("proposed") == "1" {
		pl, err := s.Promoter().PlanWithVerdict(ctx, publish.ChangeRequest{Domain: d, Kind: rollout.KindPromote}, nil)
		if err != nil {
			return err
		}
		if pl.Next == nil {
			return errorf(http.StatusNotFound, "no proposed policy for %s: %s", d, pl.NoPlan)
		}
		body = pl.Next.Policy
	} else {
		v, err := s.cfg.DB.LatestPolicyVersion(ctx, d)
		if err != nil {
			return err
		}
		body = v.Body
	}
	c.Response().Header().Set("Content-Disposition", `attachment; filename="mta-sts.txt"`)
	return c.Blob(http.StatusOK, "text/plain; charset=utf-8", []byte(body))
}

// promoteView fills the promote panel of the domain page from the
// page's verdict (nil: computed here).
func (s *Server) promoteView(c echo.Context, domain string, v *rollout.Verdict) *ui.PromoteView {
	ctx := c.Request().Context()
	l := s.layout(c, domain, "")
	pv := &ui.PromoteView{Domain: domain, CanEdit: l.CanEdit, CSRF: l.CSRF}
	p := s.Promoter()
	dc, err := p.DomainConfig(ctx, domain)
	if err != nil {
		pv.Action = "How the domain is published could not be read: " + PlainMessage(err)
		return pv
	}
	pv.PolicyHosted = dc.HostPolicy
	pv.RecordMethod = rollout.RecordManual
	if dc.Records != nil {
		pv.RecordMethod = dc.Records.Method()
	}
	if !pv.PolicyHosted {
		pv.HostingSteps = guides(publish.HostingSteps(domain))
	}
	if pv.RecordMethod == rollout.RecordManual {
		pv.DNSProviders = guides(publish.DNSProviderSteps)
	}
	pl, err := p.PlanWithVerdict(ctx, publish.ChangeRequest{Domain: domain, Kind: rollout.KindPromote}, v)
	if err != nil {
		pv.Action = "No plan: " + PlainMessage(err)
		return pv
	}
	pv.Ready = pl.Verdict.Ready
	for _, b := range pl.Verdict.Blockers {
		pv.Blockers = append(pv.Blockers, b.Code)
	}
	pv.NoPlan = pl.NoPlan
	if pl.Next != nil {
		pv.Next = planView(pl.Next, rollout.ModeEnforce)
		if pv.Ready {
			pv.Action = "Ready: promote to enforce."
		} else {
			pv.Action = "Blocked: promoting needs an override."
		}
	}
	versions, err := s.cfg.DB.PolicyVersions(ctx, domain, 20)
	if err != nil {
		pv.Action = "The history could not be read: " + PlainMessage(err)
		return pv
	}
	for i, ver := range versions {
		vv := versionView(ver, s.now())
		// Push again: a record tlsrpt pushes that drifted or failed, once
		// the policy file is live (never a record naming a file that is
		// not served).
		vv.CanPush = i == 0 && ver.RecordMethod == pv.RecordMethod && pv.RecordMethod != rollout.RecordManual &&
			rollout.StepState(ver.Steps, rollout.StepPolicy) == rollout.StateDone &&
			(rollout.StepState(ver.Steps, rollout.StepRecord) == rollout.StateDrifted || ver.RecordError != "")
		pv.History = append(pv.History, vv)
		if i == 0 {
			pv.Latest = &vv
			if pv.Action == "" {
				pv.Action = publishingState(ver)
			}
		}
	}
	if pl.Current != nil {
		pv.CurrentMX = strings.Join(pl.Current.MX, "\n")
		// Back to testing is offered from enforce (or none), never to a
		// domain in testing; retiring from testing or enforce.
		if pl.Current.Mode != rollout.ModeTesting {
			if rb, err := p.PlanWithVerdict(ctx, publish.ChangeRequest{Domain: domain, Kind: rollout.KindRollback}, pl.Verdict); err == nil && rb.Next != nil {
				pv.Rollback = planView(rb.Next, rollout.ModeTesting)
			}
		}
		if pl.Current.Mode != rollout.ModeNone {
			if rt, err := p.PlanWithVerdict(ctx, publish.ChangeRequest{Domain: domain, Kind: rollout.KindRetire}, pl.Verdict); err == nil && rt.Next != nil {
				pv.Retire = planView(rt.Next, rollout.ModeNone)
			}
		}
		maxAge := pl.Current.MaxAge
		pv.MXMove = []string{
			"Publish a new policy whose mx list holds the old and the new MX hosts, with a new id (the form below).",
			fmt.Sprintf("Wait until it is verified live, then at least max_age (%s): senders that cached the old list must fetch the new one.", age(maxAge)),
			"Change the MX records to the new hosts.",
			"When the old hosts get no more mail, publish the list without them (again a new id).",
		}
	}
	if pv.Action == "" {
		pv.Action = "Nothing to publish yet."
		if pl.NoPlan != "" {
			pv.Action = "Nothing to publish: " + pl.NoPlan
		}
	}
	return pv
}

// publishingState says where the newest version stands: "Published" only
// once every step is verified live, else what is pending.
func publishingState(v db.PolicyVersion) string {
	if rollout.StepsDone(v.Steps) {
		return fmt.Sprintf("Published: mode %s, id %s.", v.Policy.Mode, v.ID)
	}
	return fmt.Sprintf("Publishing: mode %s, id %s (pending: %s).", v.Policy.Mode, v.ID, publish.PendingSteps(v))
}

// guides turns the publishing guides into the page's step lists.
func guides(gs []publish.Guide) []ui.Steps {
	out := make([]ui.Steps, 0, len(gs))
	for _, g := range gs {
		out = append(out, ui.Steps{Name: g.Name, Steps: g.Steps, Note: g.Note})
	}
	return out
}

func planView(g *rollout.Generated, mode rollout.Mode) *ui.PolicyPlan {
	return &ui.PolicyPlan{Mode: string(mode), Policy: g.Policy, ID: g.ID, PolicyURL: g.PolicyURL, RecordName: g.RecordName, RecordValue: g.RecordValue}
}

func versionView(v db.PolicyVersion, now time.Time) ui.VersionView {
	ts := func(t *time.Time) string {
		if t == nil {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04 UTC")
	}
	vv := ui.VersionView{Seq: v.Seq, Kind: v.Kind, Mode: string(v.Policy.Mode), ID: v.ID, MX: strings.Join(v.Policy.MX, " "),
		MaxAge: v.Policy.MaxAge, CreatedBy: v.CreatedBy, CreatedAt: ts(&v.CreatedAt), Reason: v.Reason, Override: v.Override,
		PolicyMethod: v.PolicyMethod, RecordMethod: v.RecordMethod, RecordError: v.RecordError,
		Verified: ts(v.VerifiedAt), LastChecked: ts(v.LastCheckedAt)}
	for _, st := range v.Steps {
		vv.Steps = append(vv.Steps, ui.StepView{Name: st.Name, State: st.State, Detail: st.Detail, Fix: st.Fix})
	}
	vv.SafeNote = safeNote(v, now)
	return vv
}

// safeNote says when the move after a retirement or an mx move is safe.
func safeNote(v db.PolicyVersion, now time.Time) string {
	if v.Kind != rollout.KindRetire && v.Kind != rollout.KindMXMove {
		return ""
	}
	if v.VerifiedAt == nil {
		return fmt.Sprintf("Senders may keep the previous policy for up to %s after this version is live; it is not verified live yet.", age(v.PrevMaxAge))
	}
	at := *v.SafeAfter()
	when := at.UTC().Format("2006-01-02 15:04 UTC")
	switch {
	case v.Kind == rollout.KindRetire && now.Before(at):
		return "Keep serving mode none and the TXT record until " + when + "; the records may be removed after that."
	case v.Kind == rollout.KindRetire:
		return "Since " + when + " no sender holds the old policy: the _mta-sts record and the policy host may be removed."
	case now.Before(at):
		return "Change the MX records after " + when + ", when every sender holds the new mx list."
	}
	return "Since " + when + " every sender holds the new mx list: the MX records may change now."
}

// age formats seconds as days or hours.
func age(sec int64) string {
	d := time.Duration(sec) * time.Second
	switch {
	case d == 24*time.Hour:
		return "1 day"
	case d > 24*time.Hour && d%(24*time.Hour) == 0:
		return fmt.Sprintf("%d days", d/(24*time.Hour))
	}
	return fmt.Sprintf("%s (%d s)", d, sec)
}

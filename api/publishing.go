package api

import (
	"context"
	"errors"
	"net/http"
	"os"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/rollout"
	"github.com/tlsrpt/tlsrpt/rollout/pubconf"
	"github.com/tlsrpt/tlsrpt/ui"
)

// publishingRoutes adds the routes of the publishing settings
// (docs/publishing.md "Settings"): the JSON API and the two forms.
func (s *Server) publishingRoutes() {
	s.add(http.MethodGet, "/api/v1/domains/:domain/publishing", accessViewer, s.apiPublishing)
	s.add(http.MethodPut, "/api/v1/domains/:domain/publishing", accessAdmin, s.apiPutPublishing)
	s.add(http.MethodDelete, "/api/v1/domains/:domain/publishing", accessAdmin, s.apiDeletePublishing)
	s.add(http.MethodGet, "/api/v1/publishing/default", accessViewer, s.apiPublishing)
	s.add(http.MethodPut, "/api/v1/publishing/default", accessAdmin, s.apiPutPublishing)
	s.add(http.MethodPost, "/settings/domains/:domain/publishing", accessAdmin, s.publishingForm)
	s.add(http.MethodPost, "/settings/domains/:domain/publishing/reset", accessAdmin, s.resetPublishingForm)
	s.add(http.MethodPost, "/settings/publishing", accessAdmin, s.publishingForm)
}

// getenv reads the secrets that publishing settings name, for whether
// they are set in this server's environment.
func (s *Server) getenv(name string) string {
	if s.cfg.Getenv != nil {
		return s.cfg.Getenv(name)
	}
	return os.Getenv(name)
}

// publishingScope is the setting a request is about: the :domain (which
// must be on the list to be changed) or, without one, the fleet default.
func (s *Server) publishingScope(c echo.Context, change bool) (string, error) {
	if c.Param("domain") == "" {
		return db.DefaultPublishing, nil
	}
	if change {
		return s.listedDomainParam(c)
	}
	return domainParam(c)
}

// publishingInput is the body of PUT .../publishing: absent fields keep
// their value.
type publishingInput struct {
	Policy        *string `json:"policy"`
	Record        *string `json:"record"`
	Server        *string `json:"server"`
	Zone          *string `json:"zone"`
	TSIGKey       *string `json:"tsig_key"`
	TSIGAlgorithm *string `json:"tsig_algorithm"`
	Credential    *string `json:"credential"`
}

func (in publishingInput) apply(p *db.Publishing) {
	for _, f := range []struct {
		src *string
		dst *string
	}{{in.Policy, &p.Policy}, {in.Record, &p.Record}, {in.Server, &p.Server}, {in.Zone, &p.Zone},
		{in.TSIGKey, &p.TSIGKey}, {in.TSIGAlgorithm, &p.TSIGAlgorithm}, {in.Credential, &p.Credential}} {
		if f.src != nil {
			*f.dst = *f.src
		}
	}
}

// apiPublishing returns the effective setting of a domain (or the fleet
// default), where it comes from, and whether its secret is set in this
// server's environment.
func (s *Server) apiPublishing(c echo.Context) error {
	scope, err := s.publishingScope(c, false)
	if err != nil {
		return err
	}
	p, err := s.cfg.DB.Publishing(c.Request().Context(), scope)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, pubconf.Describe(scope, p, s.getenv))
}

// apiPutPublishing changes the fields given and keeps the others; 422
// names the bad field.
func (s *Server) apiPutPublishing(c echo.Context) error {
	scope, err := s.publishingScope(c, true)
	if err != nil {
		return err
	}
	var in publishingInput
	if err := readJSON(c, &in); err != nil {
		return err
	}
	cur, err := s.cfg.DB.Publishing(c.Request().Context(), scope)
	if err != nil {
		return err
	}
	next := cur
	next.Domain = scope
	in.apply(&next)
	stored, err := s.savePublishing(c, cur, next)
	var pe *db.PublishingError
	if errors.As(err, &pe) {
		return c.JSON(http.StatusUnprocessableEntity, errorBody{Error: errorDetail{Status: http.StatusUnprocessableEntity,
			Message: pe.Error(), Field: pe.Field}})
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, pubconf.Describe(scope, stored, s.getenv))
}

// savePublishing stores next and audits the change with the previous
// setting.
func (s *Server) savePublishing(c echo.Context, prev, next db.Publishing) (db.Publishing, error) {
	actor := "unknown"
	if p := principalOf(c); p != nil {
		actor = p.Name
	}
	stored, err := s.cfg.DB.SetPublishing(c.Request().Context(), next, actor)
	if err != nil {
		return stored, err
	}
	detail := stored.AuditDetail()
	detail["previous"], detail["previous_source"] = prev.AuditDetail(), prev.Source
	return stored, s.audit(c, "settings.publishing", stored.AuditDomain(), detail)
}

// publishingForm stores the Publishing form of a domain's settings page
// (or of the fleet default on the settings page); a bad field brings the
// page back with the message next to it.
func (s *Server) publishingForm(c echo.Context) error {
	scope, err := s.publishingScope(c, true)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	cur, err := s.cfg.DB.Publishing(ctx, scope)
	if err != nil {
		return err
	}
	next := cur
	next.Domain = scope
	for name, dst := range map[string]*string{"policy": &next.Policy, "record": &next.Record, "server": &next.Server, "zone": &next.Zone,
		"tsig_key": &next.TSIGKey, "tsig_algorithm": &next.TSIGAlgorithm, "credential": &next.Credential} {
		*dst = c.FormValue(name)
	}
	_, err = s.savePublishing(c, cur, next)
	var pe *db.PublishingError
	if errors.As(err, &pe) {
		typed := next
		typed.Source = cur.Source
		form := s.publishingView(scope, typed)
		form.Errors = map[string]string{pe.Field: pe.Message}
		if scope == db.DefaultPublishing {
			return s.renderSettings(c, http.StatusUnprocessableEntity, &form)
		}
		return s.renderDomainSettingsWith(c, http.StatusUnprocessableEntity, scope, "", &form)
	}
	if err != nil {
		return err
	}
	if scope == db.DefaultPublishing {
		return c.Redirect(http.StatusSeeOther, "/settings?done=publishing#publishing")
	}
	return c.Redirect(http.StatusSeeOther, "/settings/domains/"+scope+"?done=publishing#publishing")
}

// publishingFormFor builds the form of scope's effective setting.
func (s *Server) publishingFormFor(ctx context.Context, scope string) (ui.PublishingForm, error) {
	p, err := s.cfg.DB.Publishing(ctx, scope)
	if err != nil {
		return ui.PublishingForm{}, err
	}
	return s.publishingView(scope, p), nil
}

// publishingView is the form showing p, the setting of scope.
func (s *Server) publishingView(scope string, p db.Publishing) ui.PublishingForm {
	f := ui.PublishingForm{Scope: "domain", Action: "/settings/domains/" + scope + "/publishing", Own: p.Source == db.PublishingFromDomain,
		Policy: p.Policy, Record: p.Record, Server: p.Server, Zone: p.Zone, TSIGKey: p.TSIGKey, TSIGAlgorithm: p.TSIGAlgorithm,
		Credential: p.Credential, Algorithms: db.TSIGAlgorithms,
		Policies: []ui.Option{
			{Value: rollout.PolicyHosted, Label: "hosted: tlsrpt serves mta-sts.<domain>"},
			{Value: rollout.PolicyDownload, Label: "download: you serve the file"},
		},
		Records: []ui.Option{
			{Value: rollout.RecordManual, Label: "by hand (the page shows the steps)"},
			{Value: rollout.RecordRFC2136, Label: "RFC 2136 dynamic update (BIND, Knot, PowerDNS)"},
			{Value: rollout.RecordCloudflare, Label: "Cloudflare API"},
			{Value: rollout.RecordHetzner, Label: "Hetzner API"},
		},
	}
	if scope == db.DefaultPublishing {
		f.Scope, f.Action = "default", "/settings/publishing"
	}
	switch p.Source {
	case db.PublishingFromDomain:
		f.Source = "This domain's own setting"
	case db.PublishingFromDefault:
		f.Source = "From the fleet default (Settings); saving here gives this domain a setting of its own"
		if scope == db.DefaultPublishing {
			f.Source = "The stored fleet default"
		}
	default:
		f.Source = "The built-in default: nothing is stored"
	}
	if !p.UpdatedAt.IsZero() {
		f.Updated = p.UpdatedAt.UTC().Format(time.RFC3339) + " by " + p.UpdatedBy
	}
	if st, ok := pubconf.Check(p, s.getenv); ok {
		f.Secret = &ui.SecretLine{Variable: st.Variable, Present: st.Present, Problem: st.Problem}
	}
	return f
}

// resetPublishing removes the domain's own setting (the fleet default
// applies again) and audits it when there was one.
func (s *Server) resetPublishing(c echo.Context) (string, error) {
	scope, err := s.publishingScope(c, true)
	if err != nil {
		return "", err
	}
	ctx := c.Request().Context()
	cur, err := s.cfg.DB.Publishing(ctx, scope)
	if err != nil {
		return "", err
	}
	removed, err := s.cfg.DB.DeletePublishing(ctx, scope)
	if err != nil || !removed {
		return scope, err
	}
	return scope, s.audit(c, "settings.publishing.reset", scope, map[string]any{"scope": "domain", "previous": cur.AuditDetail()})
}

// apiDeletePublishing gives a domain back to the fleet default; it answers
// the effective setting.
func (s *Server) apiDeletePublishing(c echo.Context) error {
	scope, err := s.resetPublishing(c)
	if err != nil {
		return err
	}
	p, err := s.cfg.DB.Publishing(c.Request().Context(), scope)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, pubconf.Describe(scope, p, s.getenv))
}

// resetPublishingForm is the page's "Use the fleet default".
func (s *Server) resetPublishingForm(c echo.Context) error {
	scope, err := s.resetPublishing(c)
	if err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/settings/domains/"+scope+"?done=publishing-reset#publishing")
}

package api

import (
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/ui"
)

// listedDomainParam is the :domain of a settings page, which must be on
// the list: the thresholds of a domain nobody listed are not kept.
func (s *Server) listedDomainParam(c echo.Context) (string, error) {
	d, err := domainParam(c)
	if err != nil {
		return "", err
	}
	ok, err := s.cfg.DB.HasDomain(c.Request().Context(), d)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", errorf(http.StatusNotFound, "%s is not on the list", d)
	}
	return d, nil
}

// domainSettingsPage shows one domain's thresholds form and its removal.
func (s *Server) domainSettingsPage(c echo.Context) error {
	d, err := s.listedDomainParam(c)
	if err != nil {
		return err
	}
	return s.renderDomainSettings(c, http.StatusOK, d, "")
}

func (s *Server) renderDomainSettings(c echo.Context, status int, d, removeError string) error {
	return s.renderDomainSettingsWith(c, status, d, removeError, nil)
}

// renderDomainSettingsWith renders the page; publishing, when set, is the
// Publishing form as the admin typed it (with its errors).
func (s *Server) renderDomainSettingsWith(c echo.Context, status int, d, removeError string, publishing *ui.PublishingForm) error {
	t, err := s.thresholds(c.Request().Context(), d)
	if err != nil {
		return err
	}
	vals := thresholdValues(t)
	page := ui.DomainSettingsPage{Layout: s.layout(c, d+" settings", "settings"), RemoveError: removeError}
	page.Domain = d
	for _, f := range settingFields {
		page.Fields = append(page.Fields, ui.SettingField{Name: f.name, Label: f.label, Value: vals[f.name], Help: f.help})
	}
	if publishing != nil {
		page.Publishing = *publishing
	} else if page.Publishing, err = s.publishingFormFor(c.Request().Context(), d); err != nil {
		return err
	}
	return s.render(c, status, "settings_domain", page)
}

// saveDomainSettingsForm stores a domain's thresholds from its page; POST
// /settings/:domain (the form of the old all-domains page) lands here too.
func (s *Server) saveDomainSettingsForm(c echo.Context) error {
	d, err := domainParam(c)
	if err != nil {
		return err
	}
	t, err := s.thresholds(c.Request().Context(), d)
	if err != nil {
		return err
	}
	if err := parseThresholds(c.FormValue, &t); err != nil {
		return err
	}
	if err := s.saveThresholds(c, d, t); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/settings/domains/"+d+"?done=saved")
}

// removeDomainSettingsForm takes a domain off the list when the form
// carries its name typed again; otherwise the page comes back with why.
// A removal sat right under Save on the old settings page, one slip away.
func (s *Server) removeDomainSettingsForm(c echo.Context) error {
	d, err := s.listedDomainParam(c)
	if err != nil {
		return err
	}
	typed := strings.TrimSpace(c.FormValue("confirm"))
	if got, err := db.NormalizeDomain(typed); err != nil || got != d {
		return s.renderDomainSettings(c, http.StatusUnprocessableEntity, d,
			"Not removed: type the domain name exactly ("+d+") to confirm.")
	}
	if err := s.removeDomain(c, d); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/settings?done=removed")
}

package api

import (
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/reports"
	"github.com/tlsrpt/tlsrpt/ui"
)

// maxRuleField bounds each field of a reporter rule as typed.
const maxRuleField = 500

// shippedRuleWhy says why each of reports.ShippedHostRules is there
// (its doc comment has the sources).
var shippedRuleWhy = map[string]string{
	"microsoft.com": "Microsoft posts from hosts named under outlook.com (outbound.protection.outlook.com), not microsoft.com.",
	"yahoo.com":     "Yahoo's mail routing names are under yahoodns.net.",
}

// reporterRuleViews are the shipped rules and the operator's, as the
// settings page shows them.
func (s *Server) reporterRuleViews(c echo.Context) (shipped, own []ui.ReporterRuleView, err error) {
	for _, r := range reports.ShippedHostRules {
		shipped = append(shipped, ui.ReporterRuleView{Kind: "host", Reporter: r.Reporter, HostDomain: r.HostDomain,
			Note: shippedRuleWhy[r.Reporter]})
	}
	rules, err := s.cfg.DB.ReporterRules(c.Request().Context())
	if err != nil {
		return nil, nil, err
	}
	for _, r := range rules {
		v := ui.ReporterRuleView{ID: r.ID, Kind: r.Kind, Reporter: r.Reporter, HostDomain: r.HostDomain, Note: r.Note,
			CreatedBy: r.CreatedBy, CreatedAt: r.CreatedAt.UTC().Format(time.RFC3339)}
		if r.Network.IsValid() {
			v.Network = r.Network.String()
		}
		own = append(own, v)
	}
	return shipped, own, nil
}

// ruleInput is a reporter rule as a form or the API sends it.
type ruleInput struct {
	Kind       string `json:"kind"`
	Reporter   string `json:"reporter"`
	HostDomain string `json:"host_domain"`
	Network    string `json:"network"`
	Note       string `json:"note"`
}

// rule checks the input's size and parses the network; AddReporterRule
// checks the rest (db.ErrBadRule).
func (in ruleInput) rule() (db.ReporterRule, error) {
	for _, v := range []string{in.Kind, in.Reporter, in.HostDomain, in.Network, in.Note} {
		if len(v) > maxRuleField {
			return db.ReporterRule{}, errorf(http.StatusBadRequest, "a field of the rule is longer than %d bytes", maxRuleField)
		}
	}
	r := db.ReporterRule{Kind: in.Kind, Reporter: strings.TrimSpace(in.Reporter), HostDomain: strings.TrimSpace(in.HostDomain),
		Note: strings.TrimSpace(in.Note)}
	if n := strings.TrimSpace(in.Network); n != "" {
		p, err := netip.ParsePrefix(n)
		if err != nil {
			// A single address is a prefix of one.
			a, aerr := netip.ParseAddr(n)
			if aerr != nil {
				return r, errorf(http.StatusBadRequest, "%q is not an address prefix such as 192.0.2.0/24", n)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		r.Network = p
	}
	if r.Kind == "network" && r.HostDomain != "" || r.Kind == "host" && r.Network.IsValid() {
		return r, errorf(http.StatusBadRequest, "a host rule takes a host domain, a network rule a network, not both")
	}
	return r, nil
}

// addReporterRule stores the rule and records it in the audit log.
func (s *Server) addReporterRule(c echo.Context, in ruleInput) (db.ReporterRule, error) {
	r, err := in.rule()
	if err != nil {
		return r, err
	}
	r.CreatedBy = actor(c)
	if r, err = s.cfg.DB.AddReporterRule(c.Request().Context(), r); err != nil {
		return r, err
	}
	return r, s.audit(c, "reporter_rule.add", "", r.AuditDetail())
}

// deleteReporterRule removes rule id and records it in the audit log.
func (s *Server) deleteReporterRule(c echo.Context, id int64) error {
	old, ok, err := s.cfg.DB.DeleteReporterRule(c.Request().Context(), id)
	if err != nil {
		return err
	}
	if !ok {
		return errorf(http.StatusNotFound, "there is no reporter rule %d", id)
	}
	return s.audit(c, "reporter_rule.delete", "", old.AuditDetail())
}

// addReporterRuleForm is the settings page's "Add host rule" and "Add
// network rule".
func (s *Server) addReporterRuleForm(c echo.Context) error {
	in := ruleInput{Kind: c.FormValue("kind"), Reporter: c.FormValue("reporter"), HostDomain: c.FormValue("host_domain"),
		Network: c.FormValue("network"), Note: c.FormValue("note")}
	if _, err := s.addReporterRule(c, in); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/settings?done=rule-added#trusted-reporters")
}

// deleteReporterRuleForm is a rule's "Delete" on the settings page.
func (s *Server) deleteReporterRuleForm(c echo.Context) error {
	id, err := idParam(c)
	if err != nil {
		return err
	}
	if err := s.deleteReporterRule(c, id); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/settings?done=rule-deleted#trusted-reporters")
}

// apiReporterRules is GET /api/v1/reporter-rules: the shipped host rules
// and the operator's.
func (s *Server) apiReporterRules(c echo.Context) error {
	rules, err := s.cfg.DB.ReporterRules(c.Request().Context())
	if err != nil {
		return err
	}
	type shippedJSON struct {
		Kind       string `json:"kind"`
		Reporter   string `json:"reporter"`
		HostDomain string `json:"host_domain"`
		Note       string `json:"note"`
	}
	out := struct {
		Shipped []shippedJSON     `json:"shipped"`
		Rules   []db.ReporterRule `json:"rules"`
	}{Shipped: []shippedJSON{}, Rules: rules}
	for _, r := range reports.ShippedHostRules {
		out.Shipped = append(out.Shipped, shippedJSON{Kind: "host", Reporter: r.Reporter, HostDomain: r.HostDomain, Note: shippedRuleWhy[r.Reporter]})
	}
	return c.JSON(http.StatusOK, out)
}

// apiAddReporterRule is POST /api/v1/reporter-rules.
func (s *Server) apiAddReporterRule(c echo.Context) error {
	var in ruleInput
	if err := readJSON(c, &in); err != nil {
		return err
	}
	r, err := s.addReporterRule(c, in)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, r)
}

// apiDeleteReporterRule is DELETE /api/v1/reporter-rules/:id.
func (s *Server) apiDeleteReporterRule(c echo.Context) error {
	id, err := idParam(c)
	if err != nil {
		return err
	}
	if err := s.deleteReporterRule(c, id); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

package api

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/rollout"
	"github.com/tlsrpt/tlsrpt/rollout/publish"
)

// versionJSON is a policy version in the JSON API.
type versionJSON struct {
	Seq               int64          `json:"seq"`
	Domain            string         `json:"domain"`
	Kind              string         `json:"kind"`
	Mode              rollout.Mode   `json:"mode"`
	MX                []string       `json:"mx"`
	MaxAge            int64          `json:"max_age"`
	ID                string         `json:"id"`
	Policy            string         `json:"policy"`
	RecordName        string         `json:"record_name"`
	RecordValue       string         `json:"record_value"`
	CreatedBy         string         `json:"created_by"`
	CreatedAt         time.Time      `json:"created_at"`
	Reason            string         `json:"reason"`
	Override          bool           `json:"override"`
	PolicyMethod      string         `json:"policy_method"`
	PolicyPublishedAt *time.Time     `json:"policy_published_at"`
	RecordMethod      string         `json:"record_method"`
	RecordPublishedAt *time.Time     `json:"record_published_at"`
	RecordError       string         `json:"record_error,omitempty"`
	VerifiedAt        *time.Time     `json:"verified_at"`
	Steps             []rollout.Step `json:"steps"`
	LastCheckedAt     *time.Time     `json:"last_checked_at"`
	// SafeAfter: for a retirement, when the records may be removed; for
	// an mx move, when the MX records may change (once verified).
	SafeAfter *time.Time `json:"safe_after,omitempty"`
}

func toVersionJSON(v db.PolicyVersion) versionJSON {
	out := versionJSON{Seq: v.Seq, Domain: v.Domain, Kind: v.Kind, Mode: v.Policy.Mode, MX: v.Policy.MX,
		MaxAge: v.Policy.MaxAge, ID: v.ID, Policy: v.Body, RecordName: "_mta-sts." + v.Domain + ".",
		RecordValue: rollout.Record{ID: v.ID}.String(), CreatedBy: v.CreatedBy, CreatedAt: v.CreatedAt,
		Reason: v.Reason, Override: v.Override, PolicyMethod: v.PolicyMethod, PolicyPublishedAt: v.PolicyPublishedAt,
		RecordMethod: v.RecordMethod, RecordPublishedAt: v.RecordPublishedAt, RecordError: v.RecordError,
		VerifiedAt: v.VerifiedAt, Steps: v.Steps, LastCheckedAt: v.LastCheckedAt}
	if out.MX == nil {
		out.MX = []string{}
	}
	if out.Steps == nil {
		out.Steps = []rollout.Step{}
	}
	out.SafeAfter = v.SafeAfter()
	return out
}

// changeJSON is the body of POST .../promote, .../rollback and
// .../mx-move; each route reads the fields that apply to it.
type changeJSON struct {
	Reason   string   `json:"reason"`
	Override bool     `json:"override"`
	Confirm  string   `json:"confirm"`
	ID       string   `json:"id"`
	Mode     string   `json:"mode"`
	MX       []string `json:"mx"`
}

func (s *Server) readChange(c echo.Context) (string, changeJSON, error) {
	var in changeJSON
	d, err := domainParam(c)
	if err != nil {
		return "", in, err
	}
	if c.Request().ContentLength != 0 {
		if err := readJSON(c, &in); err != nil {
			return "", in, err
		}
	}
	if len(in.Reason) > maxReason {
		return "", in, errorf(http.StatusBadRequest, "the reason is longer than %d characters", maxReason)
	}
	if len(in.MX) > 100 {
		return "", in, errorf(http.StatusBadRequest, "at most 100 mx patterns")
	}
	return d, in, nil
}

func (s *Server) apiChange(c echo.Context, req publish.ChangeRequest) error {
	v, err := s.change(c.Request().Context(), req)
	if err != nil {
		return changeError(err)
	}
	return c.JSON(http.StatusCreated, toVersionJSON(v))
}

// apiPromote is POST /api/v1/domains/:domain/promote.
func (s *Server) apiPromote(c echo.Context) error {
	d, in, err := s.readChange(c)
	if err != nil {
		return err
	}
	return s.apiChange(c, publish.ChangeRequest{Domain: d, Kind: rollout.KindPromote, Actor: actor(c), Reason: in.Reason,
		Override: in.Override, Confirm: in.Confirm, ID: in.ID})
}

// apiRollback is POST /api/v1/domains/:domain/rollback: {"mode":
// "testing"} (the default) or {"mode": "none"} for the retirement.
func (s *Server) apiRollback(c echo.Context) error {
	d, in, err := s.readChange(c)
	if err != nil {
		return err
	}
	kind, err := rollbackKind(in.Mode)
	if err != nil {
		return err
	}
	return s.apiChange(c, publish.ChangeRequest{Domain: d, Kind: kind, Actor: actor(c), Reason: in.Reason, ID: in.ID})
}

// apiMXMove is POST /api/v1/domains/:domain/mx-move.
func (s *Server) apiMXMove(c echo.Context) error {
	d, in, err := s.readChange(c)
	if err != nil {
		return err
	}
	return s.apiChange(c, publish.ChangeRequest{Domain: d, Kind: rollout.KindMXMove, Actor: actor(c), Reason: in.Reason, MX: in.MX, ID: in.ID})
}

// apiVerifyPolicy is POST /api/v1/domains/:domain/verify: one verification
// poll now; it answers the newest version with its steps.
func (s *Server) apiVerifyPolicy(c echo.Context) error {
	d, err := domainParam(c)
	if err != nil {
		return err
	}
	v, err := s.pub.Verify(c.Request().Context(), d)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toVersionJSON(v))
}

// apiPushRecord is POST /api/v1/domains/:domain/push: push the TXT record
// of the newest version again (a drifted record); 409 while its policy
// file is not live or when the record is set by hand.
func (s *Server) apiPushRecord(c echo.Context) error {
	d, err := domainParam(c)
	if err != nil {
		return err
	}
	v, err := s.pub.Push(c.Request().Context(), d, actor(c))
	if err != nil {
		return changeError(err)
	}
	return c.JSON(http.StatusOK, toVersionJSON(v))
}

// apiVersions is GET /api/v1/domains/:domain/versions, newest first.
func (s *Server) apiVersions(c echo.Context) error {
	d, err := domainParam(c)
	if err != nil {
		return err
	}
	vs, err := s.cfg.DB.PolicyVersions(c.Request().Context(), d, 100)
	if err != nil {
		return err
	}
	out := make([]versionJSON, 0, len(vs))
	for _, v := range vs {
		out = append(out, toVersionJSON(v))
	}
	return c.JSON(http.StatusOK, map[string]any{"domain": d, "versions": out})
}

// apiPromotePlan is GET /api/v1/domains/:domain/promote: what promoting
// would publish now, and whether it needs the override.
func (s *Server) apiPromotePlan(c echo.Context) error {
	d, err := domainParam(c)
	if err != nil {
		return err
	}
	pl, err := s.pub.PlanChange(c.Request().Context(), publish.ChangeRequest{Domain: d, Kind: rollout.KindPromote})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{
		"domain": d, "ready": pl.Verdict.Ready, "needs_override": !pl.Verdict.Ready,
		"blockers": pl.Verdict.Blockers, "proposal": pl.Next, "no_plan": pl.NoPlan,
	})
}

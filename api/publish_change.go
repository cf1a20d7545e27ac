package api

import (
	"context"
	"net/http"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/rollout/publish"
)

// passTimeout bounds the one reconciler pass a page or API change runs
// before it answers; a pass cut short is finished by serve's loop, which
// the change kicked.
const passTimeout = 15 * time.Second

// Promoter returns the server's promotion service (Config.Publisher).
func (s *Server) Promoter() *publish.Promoter { return s.pub }

// change records the version req asks for (publish.Promoter.Change), then
// runs one reconciler pass so that the answer shows the steps as far as
// they went: the hosted file served, the record pushed, both verified when
// DNS answers at once. The version is made even when the pass fails; the
// loop goes on with it.
func (s *Server) change(ctx context.Context, req publish.ChangeRequest) (db.PolicyVersion, error) {
	v, err := s.pub.Change(ctx, req)
	if err != nil {
		return v, err
	}
	pctx, cancel := context.WithTimeout(ctx, passTimeout)
	defer cancel()
	nv, err := s.pub.Reconcile(pctx, v.Domain)
	if err != nil {
		s.log.WarnContext(ctx, "Publishing the new version is left to the reconciler loop", "domain", v.Domain, "id", v.ID, "error", err)
		return v, nil
	}
	return nv, nil
}

// PolicyHandler serves only the policy file (publish.PolicyOnly over the
// server's router, with its headers and limits): the handler of a
// listener for the policy hosts, which should not expose the dashboard.
func (s *Server) PolicyHandler() http.Handler { return publish.PolicyOnly(s.Handler()) }

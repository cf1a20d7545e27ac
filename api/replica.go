package api

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/tlsrpt/tlsrpt/db"
)

// DefaultReplicaLagNotice is the replica lag past which every page says
// that the dashboard is behind (Config.ReplicaLagNotice).
const DefaultReplicaLagNotice = 30 * time.Second

// replicaLagTTL is how long a measured lag is reused: the layout of every
// page wants it, one query per page view to the replica is not needed.
const replicaLagTTL = 5 * time.Second

// replicaLag caches the read replica's lag (db.ReplicaLag).
type replicaLag struct {
	mu  sync.Mutex
	at  time.Time
	lag time.Duration
}

// replicaLag returns the read replica's lag, measured at most every
// replicaLagTTL; 0 without a replica or when it cannot be read (the
// error is logged: the page still renders).
func (s *Server) replicaLag(ctx context.Context) time.Duration {
	if !s.cfg.DB.HasReplica() {
		return 0
	}
	now := s.now()
	s.lag.mu.Lock()
	defer s.lag.mu.Unlock()
	if !s.lag.at.IsZero() && now.Sub(s.lag.at) < replicaLagTTL && now.After(s.lag.at) {
		return s.lag.lag
	}
	lag, err := s.cfg.DB.ReplicaLag(ctx)
	if err != nil {
		s.log.WarnContext(ctx, "Reading the replica lag failed", "error", err)
		return 0
	}
	s.lag.at, s.lag.lag = now, lag
	return lag
}

// replicaNotice is the page notice when the read replica is further
// behind than Config.ReplicaLagNotice, else "".
func (s *Server) replicaNotice(ctx context.Context) string {
	limit := s.cfg.ReplicaLagNotice
	if limit <= 0 {
		limit = DefaultReplicaLagNotice
	}
	lag := s.replicaLag(ctx)
	if lag <= limit {
		return ""
	}
	return fmt.Sprintf("The dashboard reads a replica that is %s behind the primary: the newest reports and verdicts may be missing.", lag.Round(time.Second))
}

// readYourWrites sends the reads of a request that must see its own
// writes to the primary (db.Primary): every request that is not a GET or
// HEAD (it writes, then may read back), and the page a form redirects to
// (?done=, the flash of a change just made), so that a domain just added
// shows at once even when the replica is seconds behind.
func readYourWrites(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if (r.Method != http.MethodGet && r.Method != http.MethodHead) || r.URL.Query().Has("done") {
			c.SetRequest(r.WithContext(db.Primary(r.Context())))
		}
		return next(c)
	}
}

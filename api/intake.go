package api

import (
	"context"
	"fmt"

	"github.com/tlsrpt/tlsrpt/ingest"
)

// newIntake is the group commit of POST /tlsrpt (ingest.Batcher): the
// reports of concurrent requests are stored in one transaction. The batch
// goes through the database's StoreReports when the pipeline stores into
// that same database; a pipeline over another store (a test's wrapper)
// keeps its own store, one report at a time, still grouped.
func (s *Server) newIntake() *ingest.Batcher {
	var batch ingest.BatchStore
	if s.cfg.Pipeline.Store == ingest.Store(s.cfg.DB) {
		batch = s.cfg.DB.StoreBatch
	}
	return ingest.NewBatcher(s.cfg.Pipeline, batch, s.cfg.Intake)
}

// IntakeStats counts the batches POST /tlsrpt committed (nil pipeline:
// zero).
func (s *Server) IntakeStats() ingest.BatcherStats {
	if s.intake == nil {
		return ingest.BatcherStats{}
	}
	return s.intake.Stats()
}

// CloseIntake stops taking posted reports (503 with Retry-After) and waits
// until every queued one is committed and answered, or ctx ends. Serve
// calls it after the HTTP server has stopped.
func (s *Server) CloseIntake(ctx context.Context) error {
	if s.intake == nil {
		return nil
	}
	if err := s.intake.Close(ctx); err != nil {
		return fmt.Errorf("closing intake: %w", err)
	}
	return nil
}

package ingest

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/tlsrpt/tlsrpt/reports"
)

// NewPoller returns a poller that reads the mailbox of cfg (validated
// here; the error names the setting at fault), hands every message to p
// and keeps its position in state.
func NewPoller(cfg IMAPConfig, p *Pipeline, state StateStore, log *slog.Logger) (*Poller, error) {
	if p == nil || p.Store == nil {
		return nil, fmt.Errorf("creating the IMAP poller: no pipeline store")
	}
	return newPoller(cfg, &pipelineProcessor{p: p}, state, log)
}

// SetStoreBatch lets the poller store the reports of many messages in one
// transaction ((*db.DB).StoreReports adapted, as for Importer.StoreBatch):
// much faster than one transaction per report. Call it before Run or Once.
func (p *Poller) SetStoreBatch(f BatchStore) {
	if pp, ok := p.pipe.(*pipelineProcessor); ok {
		pp.storeBatch = f
	}
}

// pipelineProcessor drives the shared pipeline for the poller.
type pipelineProcessor struct {
	p          *Pipeline
	storeBatch BatchStore
}

func (pp *pipelineProcessor) maxMessageBytes() int64 {
	if n := pp.p.Limits.MaxMessageBytes; n > 0 {
		return n
	}
	return reports.DefaultLimits().MaxMessageBytes
}

func (pp *pipelineProcessor) parse(ctx context.Context, raw []byte, ref string) (*parsed, error) {
	return pp.p.parseMessage(ctx, raw, reports.SourceIMAP, ref)
}

// store stores the reports of a group of messages in one transaction
// (Pipeline.storeGroup), with an outcome per message.
func (pp *pipelineProcessor) store(ctx context.Context, prs []*parsed) ([]msgOutcome, error) {
	res, err := pp.p.storeGroup(ctx, pp.storeBatch, prs)
	if err != nil {
		return nil, err
	}
	outs := make([]msgOutcome, len(res))
	for i, out := range res {
		// A message with at least one good report is processed, even
		// when a broken part of it was also quarantined.
		outs[i] = msgOutcome{stored: out.New, duplicates: out.Duplicates, refused: out.Refused, quarantined: out.Reports == 0}
	}
	return outs, nil
}

func (pp *pipelineProcessor) refuse(ctx context.Context, raw []byte, reason, ref string) error {
	if _, err := pp.p.Store.Quarantine(ctx, raw, reason, reports.SourceIMAP, ref); err != nil {
		return fmt.Errorf("%w: quarantining %s: %w", ErrRetryLater, ref, err)
	}
	return nil
}

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
func (p *Poller) SetStoreBatch(f func(ctx context.Context, rs []reports.Received) (ids []int64, duplicate []bool, err error)) {
	if pp, ok := p.pipe.(*pipelineProcessor); ok {
		pp.storeBatch = f
	}
}

// pipelineProcessor drives the shared pipeline for the poller.
type pipelineProcessor struct {
	p          *Pipeline
	storeBatch func(ctx context.Context, rs []reports.Received) ([]int64, []bool, error)
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

// store is Importer.storeBatch with an outcome per message: one
// transaction for every report of the group; when the store rejects the
// batch for its content, one report at a time to find the culprit.
func (pp *pipelineProcessor) store(ctx context.Context, prs []*parsed) ([]msgOutcome, error) {
	var all []reports.Received
	for _, pr := range prs {
		all = append(all, pr.received...)
	}
	results := make([][]stored, len(prs))
	batched := false
	if pp.storeBatch != nil && len(all) > 0 {
		ids, dups, err := pp.storeBatch(ctx, all)
		switch {
		case err == nil:
			batched = true
			k := 0
			for i, pr := range prs {
				results[i] = make([]stored, len(pr.received))
				for j := range pr.received {
					results[i][j] = stored{id: ids[k], dup: dups[k]}
					k++
				}
			}
		case !rejected(err):
			return nil, fmt.Errorf("%w: storing a batch of %d reports: %w", ErrRetryLater, len(all), err)
		}
	}
	outs := make([]msgOutcome, len(prs))
	for i, pr := range prs {
		if !batched {
			res, err := pp.p.storeEach(ctx, pr.received)
			if err != nil {
				return nil, err
			}
			results[i] = res
		}
		out, err := pp.p.settle(ctx, pr, results[i])
		if err != nil {
			return nil, err
		}
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

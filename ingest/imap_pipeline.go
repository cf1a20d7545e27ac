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
	return newPoller(cfg, pipelineProcessor{p}, state, log)
}

// pipelineProcessor drives the shared pipeline for the poller.
type pipelineProcessor struct{ p *Pipeline }

func (pp pipelineProcessor) maxMessageBytes() int64 {
	if n := pp.p.Limits.MaxMessageBytes; n > 0 {
		return n
	}
	return reports.DefaultLimits().MaxMessageBytes
}

func (pp pipelineProcessor) process(ctx context.Context, raw []byte, ref string) (msgOutcome, error) {
	out, err := pp.p.Message(ctx, raw, reports.SourceIMAP, ref)
	if err != nil {
		return msgOutcome{}, err
	}
	// A message with at least one good report is processed, even when a
	// broken part of it was also quarantined.
	return msgOutcome{stored: out.New, duplicates: out.Duplicates, refused: out.Refused, quarantined: out.Reports == 0}, nil
}

func (pp pipelineProcessor) oversized(ctx context.Context, head []byte, size int64, ref string) error {
	reason := fmt.Sprintf("message of %d bytes is larger than the limit of %d bytes; its first %d bytes are kept",
		size, pp.maxMessageBytes(), len(head))
	if _, err := pp.p.Store.Quarantine(ctx, head, reason, reports.SourceIMAP, ref); err != nil {
		return fmt.Errorf("%w: quarantining %s: %w", ErrRetryLater, ref, err)
	}
	return nil
}

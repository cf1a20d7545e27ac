package ingest

import (
	"context"
	"fmt"

	"github.com/tlsrpt/tlsrpt/reports"
)

// BatchStore stores many reports in one transaction ((*db.DB).StoreReports
// adapted): the id of each and whether it was already stored.
type BatchStore func(ctx context.Context, rs []reports.Received) (ids []int64, duplicate []bool, err error)

// storeGroup stores the reports of several inputs in one transaction with
// batch, then settles each input, and returns an outcome per input. When
// batch is nil or the store rejects the batch for its content, it stores
// one report at a time, which also finds the culprit. Import and the IMAP
// poller both store this way.
func (p *Pipeline) storeGroup(ctx context.Context, batch BatchStore, prs []*parsed) ([]Outcome, error) {
	var all []reports.Received
	for _, pr := range prs {
		all = append(all, pr.received...)
	}
	results := make([][]stored, len(prs))
	batched := false
	if batch != nil && len(all) > 0 {
		ids, dups, err := batch(ctx, all)
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
	outs := make([]Outcome, len(prs))
	for i, pr := range prs {
		if !batched {
			res, err := p.storeEach(ctx, pr.received)
			if err != nil {
				return nil, err
			}
			results[i] = res
		}
		out, err := p.settle(ctx, pr, results[i])
		if err != nil {
			return nil, err
		}
		outs[i] = out
	}
	return outs, nil
}

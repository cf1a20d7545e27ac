package ingest

import (
	"context"

	"github.com/tlsrpt/tlsrpt/reports"
)

// Reprocess runs a quarantined input through the pipeline again (after a
// parser fix): a bare report (gzip or JSON, sniffed by its bytes) as a
// report, anything else as a mail message. A mailed report gets its DKIM
// signature verified again. An input that still holds no valid report is
// quarantined again: the same bytes stay one quarantine entry, with the
// new reason.
func (p *Pipeline) Reprocess(ctx context.Context, raw []byte, src reports.Source, ref string) (Outcome, error) {
	if reports.IsReportData(raw) {
		return p.Report(ctx, raw, src, ref)
	}
	return p.Message(ctx, raw, src, ref)
}

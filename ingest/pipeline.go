package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/tlsrpt/tlsrpt/reports"
)

// Store is what the pipeline needs of the database; *db.DB implements it.
// An error that has a method Rejected() bool returning true is about the
// input (the database refused its content): the pipeline quarantines the
// input then. Any other error means the store is unavailable.
type Store interface {
	StoreReport(ctx context.Context, r reports.Received) (int64, bool, error)
	Quarantine(ctx context.Context, raw []byte, reason string, source reports.Source, ref string) (int64, error)
}

// ErrRetryLater is returned (wrapped) when an input cannot be decided now
// and must be offered again later: the store is down, or a DKIM key could
// not be fetched for a temporary DNS reason.
var ErrRetryLater = errors.New("ingest: retry later")

// dkimRetryWindow is how long a mail whose DKIM key lookup fails
// temporarily is retried (docs/reporters.md: a temporary DNS
// error is retried, not recorded as a failure). After it the report is
// stored with DKIM temperror, shown as unverified, so that one sender with
// a broken DNS cannot hold up the mailbox forever.
const dkimRetryWindow = 24 * time.Hour

// maxReasonLen bounds a quarantine reason built from several parts.
const maxReasonLen = 2000

// Pipeline turns raw input into stored reports or quarantine entries. It
// is shared by the IMAP poller, the HTTPS receiver and file import.
type Pipeline struct {
	Store  Store
	Limits reports.Limits
	// VerifyDKIM checks a mail's DKIM signature (NewDKIMVerifier); nil
	// records every mail as DKIM none.
	VerifyDKIM func(ctx context.Context, raw []byte, from string) (reports.DKIMResult, string)
	// Now is the clock (received-at); nil means time.Now.
	Now func() time.Time
	Log *slog.Logger
}

// Outcome is what became of one input.
type Outcome struct {
	Reports    int // valid reports found
	New        int // of which stored for the first time
	Duplicates int // of which already stored
	Refused    int // broken report parts (or a broken body)
	// Quarantined is true when the raw input was kept in the quarantine
	// table, with Reason: it held no valid report, or some broken part.
	Quarantined bool
	Reason      string
}

func (p *Pipeline) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

func (p *Pipeline) log() *slog.Logger {
	if p.Log != nil {
		return p.Log
	}
	return slog.New(slog.DiscardHandler)
}

// rejected reports whether a store error is about the input.
func rejected(err error) bool {
	var r interface{ Rejected() bool }
	return errors.As(err, &r) && r.Rejected()
}

// Message handles one mail message: every valid report in it is stored;
// a message with no report, or only broken ones, is quarantined with the
// reason; a message with good and broken parts has its good reports stored
// and its raw bytes quarantined with the broken part's reason. The error is
// only for failures of the store (and temporary DKIM failures): the caller
// must then keep the message and offer it again later.
func (p *Pipeline) Message(ctx context.Context, raw []byte, src reports.Source, ref string) (Outcome, error) {
	pr, err := p.parseMessage(ctx, raw, src, ref)
	if err != nil {
		return Outcome{}, err
	}
	res, err := p.storeEach(ctx, pr.received)
	if err != nil {
		return Outcome{}, err
	}
	return p.settle(ctx, pr, res)
}

// Report handles a bare report, JSON or gzip (sniffed by its bytes): an
// HTTPS POST body or a .json[.gz] file. A broken one is quarantined.
func (p *Pipeline) Report(ctx context.Context, body []byte, src reports.Source, ref string) (Outcome, error) {
	pr := p.parseReport(body, src, ref, remoteOf(ctx))
	res, err := p.storeEach(ctx, pr.received)
	if err != nil {
		return Outcome{}, err
	}
	return p.settle(ctx, pr, res)
}

// parsed is an input read and parsed, not yet stored.
type parsed struct {
	raw      []byte
	src      reports.Source
	ref      string
	received []reports.Received
	names    []string // the part each received report came from
	broken   []string // "part: reason" of each broken part
	// whole is why the input as a whole is refused (no valid report in
	// it); "" when it has at least one.
	whole string
	// skip, for an imported file, says why it is not an input at all
	// (neither a report nor a mail by name or content): counted as
	// skipped, not refused, and not quarantined.
	skip string
}

// parseMessage reads a mail. Its error is only ErrRetryLater for a
// temporary DKIM failure.
func (p *Pipeline) parseMessage(ctx context.Context, raw []byte, src reports.Source, ref string) (*parsed, error) {
	pr := &parsed{raw: raw, src: src, ref: ref}
	msg, err := reports.ReadMessage(bytes.NewReader(raw), p.Limits)
	if err != nil {
		pr.broken = []string{err.Error()}
		pr.whole = err.Error()
		return pr, nil
	}
	var good []reports.Attachment
	for _, a := range msg.Attachments {
		switch {
		case a.Report != nil:
			good = append(good, a)
		case a.Err != nil:
			pr.broken = append(pr.broken, partName(a)+": "+a.Err.Error())
		}
	}
	if len(good) == 0 {
		pr.whole = "no valid report"
		if len(pr.broken) > 0 {
			pr.whole = strings.Join(pr.broken, "; ")
		} else {
			pr.broken = []string{pr.whole}
		}
		return pr, nil
	}
	dkim, dkimDomain := reports.DKIMNone, ""
	if p.VerifyDKIM != nil {
		dkim, dkimDomain = p.VerifyDKIM(ctx, raw, msg.From)
		if dkim == reports.DKIMTempError && !msg.Date.IsZero() && p.now().Sub(msg.Date) < dkimRetryWindow {
			return nil, fmt.Errorf("%w: verifying dkim of %s: temporary dns failure for %s", ErrRetryLater, ref, dkimDomain)
		}
	}
	for _, a := range good {
		pr.received = append(pr.received, reports.Received{
			Report:     a.Report,
			JSON:       a.JSON,
			Source:     src,
			SourceRef:  ref,
			ReceivedAt: p.now(),
			MessageID:  msg.MessageID,
			From:       msg.From,
			Submitter:  msg.Submitter,
			DKIM:       dkim,
			DKIMDomain: dkimDomain,
		})
		pr.names = append(pr.names, partName(a))
	}
	return pr, nil
}

// parseReport reads a bare report; remote is where it was posted from.
func (p *Pipeline) parseReport(body []byte, src reports.Source, ref string, remote Remote) *parsed {
	pr := &parsed{raw: body, src: src, ref: ref}
	rep, js, err := reports.ParseBytes(body, p.Limits)
	if err != nil {
		pr.broken = []string{err.Error()}
		pr.whole = err.Error()
		return pr
	}
	pr.received = []reports.Received{{Report: rep, JSON: js, Source: src, SourceRef: ref, ReceivedAt: p.now(), DKIM: reports.DKIMNone,
		RemoteAddr: remote.Addr, RemoteName: remote.Name}}
	pr.names = []string{"body"}
	return pr
}

// stored is the store's answer for one report; err is set only when the
// store rejected the report for its content.
type stored struct {
	id  int64
	dup bool
	err error
}

// storeEach stores reports one by one. Its error means the store is
// unavailable (wrapping ErrRetryLater).
func (p *Pipeline) storeEach(ctx context.Context, rs []reports.Received) ([]stored, error) {
	res := make([]stored, len(rs))
	for i, r := range rs {
		id, dup, err := p.Store.StoreReport(ctx, r)
		switch {
		case err == nil:
			res[i] = stored{id: id, dup: dup}
			p.log().Debug("Report stored", "ref", r.SourceRef, "id", id, "duplicate", dup, "organization", r.Report.OrganizationName)
		case rejected(err):
			p.log().Warn("Report refused by the store", "ref", r.SourceRef, "report_id", r.Report.ReportID, "error", err)
			res[i] = stored{err: err}
		default:
			return nil, fmt.Errorf("%w: storing report %s of %s: %w", ErrRetryLater, r.Report.ReportID, r.SourceRef, err)
		}
	}
	return res, nil
}

// settle counts what was stored and quarantines the raw input when any
// part of it was refused.
func (p *Pipeline) settle(ctx context.Context, pr *parsed, res []stored) (Outcome, error) {
	out := Outcome{Refused: len(pr.broken)}
	if pr.whole != "" {
		if pr.raw == nil {
			// Nothing was read (an unreadable or oversized file): there
			// is nothing to keep, only the reason to tell.
			out.Reason = pr.whole
			return out, nil
		}
		return out, p.quarantine(ctx, &out, pr.raw, pr.whole, pr.src, pr.ref)
	}
	broken := pr.broken
	for i, r := range res {
		if r.err != nil {
			out.Refused++
			broken = append(broken, pr.names[i]+": "+r.err.Error())
			continue
		}
		out.Reports++
		if r.dup {
			out.Duplicates++
		} else {
			out.New++
		}
	}
	if len(broken) > 0 {
		return out, p.quarantine(ctx, &out, pr.raw, strings.Join(broken, "; "), pr.src, pr.ref)
	}
	return out, nil
}

func (p *Pipeline) quarantine(ctx context.Context, out *Outcome, raw []byte, reason string, src reports.Source, ref string) error {
	if len(reason) > maxReasonLen {
		reason = reason[:maxReasonLen] + "…"
	}
	out.Quarantined, out.Reason = true, reason
	id, err := p.Store.Quarantine(ctx, raw, reason, src, ref)
	if err != nil {
		return fmt.Errorf("%w: quarantining %s: %w", ErrRetryLater, ref, err)
	}
	p.log().Info("Input quarantined", "ref", ref, "quarantine_id", id, "reason", reason)
	return nil
}

func partName(a reports.Attachment) string {
	if a.Name != "" {
		return a.Name
	}
	if a.ContentType != "" {
		return a.ContentType + " part"
	}
	return "body"
}

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
// temporarily is retried (DESIGN "Which reports count": a temporary DNS
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
	var out Outcome
	msg, err := reports.ReadMessage(bytes.NewReader(raw), p.Limits)
	if err != nil {
		out.Refused = 1
		return out, p.quarantine(ctx, &out, raw, err.Error(), src, ref)
	}
	var broken []string
	var good []reports.Attachment
	for _, a := range msg.Attachments {
		switch {
		case a.Report != nil:
			good = append(good, a)
		case a.Err != nil:
			broken = append(broken, partName(a)+": "+a.Err.Error())
		}
	}
	out.Refused = len(broken)
	if len(good) == 0 {
		reason := "no valid report"
		if len(broken) > 0 {
			reason = strings.Join(broken, "; ")
		}
		return out, p.quarantine(ctx, &out, raw, reason, src, ref)
	}

	dkim, dkimDomain := reports.DKIMNone, ""
	if p.VerifyDKIM != nil {
		dkim, dkimDomain = p.VerifyDKIM(ctx, raw, msg.From)
		if dkim == reports.DKIMTempError && !msg.Date.IsZero() && p.now().Sub(msg.Date) < dkimRetryWindow {
			return out, fmt.Errorf("%w: verifying dkim of %s: temporary dns failure for %s", ErrRetryLater, ref, dkimDomain)
		}
	}
	for _, a := range good {
		r := reports.Received{
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
		}
		if err := p.store(ctx, &out, r); err != nil {
			if !rejected(err) {
				return out, err
			}
			out.Refused++
			broken = append(broken, partName(a)+": "+err.Error())
		}
	}
	if len(broken) > 0 {
		return out, p.quarantine(ctx, &out, raw, strings.Join(broken, "; "), src, ref)
	}
	return out, nil
}

// Report handles a bare report, JSON or gzip (sniffed by its bytes): an
// HTTPS POST body or a .json[.gz] file. A broken one is quarantined.
func (p *Pipeline) Report(ctx context.Context, body []byte, src reports.Source, ref string) (Outcome, error) {
	var out Outcome
	rep, js, err := reports.ParseBytes(body, p.Limits)
	if err != nil {
		out.Refused = 1
		return out, p.quarantine(ctx, &out, body, err.Error(), src, ref)
	}
	r := reports.Received{Report: rep, JSON: js, Source: src, SourceRef: ref, ReceivedAt: p.now(), DKIM: reports.DKIMNone}
	if err := p.store(ctx, &out, r); err != nil {
		if !rejected(err) {
			return out, err
		}
		out.Refused = 1
		return out, p.quarantine(ctx, &out, body, err.Error(), src, ref)
	}
	return out, nil
}

func (p *Pipeline) store(ctx context.Context, out *Outcome, r reports.Received) error {
	id, dup, err := p.Store.StoreReport(ctx, r)
	if err != nil {
		if rejected(err) {
			p.log().Warn("Report refused by the store", "ref", r.SourceRef, "report_id", r.Report.ReportID, "error", err)
			return err
		}
		return fmt.Errorf("%w: storing report %s of %s: %w", ErrRetryLater, r.Report.ReportID, r.SourceRef, err)
	}
	out.Reports++
	if dup {
		out.Duplicates++
	} else {
		out.New++
	}
	p.log().Debug("Report stored", "ref", r.SourceRef, "id", id, "duplicate", dup, "organization", r.Report.OrganizationName)
	return nil
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

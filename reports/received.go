package reports

import (
	"net/netip"
	"time"
)

// Source says how a report reached tlsrpt. docs/reporters.md:
// every stored report keeps its provenance.
type Source string

// Sources of reports.
const (
	SourceIMAP  Source = "imap"  // polled from the rua mailbox
	SourceHTTPS Source = "https" // POSTed to the HTTPS rua endpoint, RFC 8460 §5.4
	SourceFile  Source = "file"  // imported by the operator from files
)

// DKIMResult is the outcome of verifying a mailed report's DKIM signature
// (RFC 8460 §5.3 requires one). Reports that did not come by mail have
// DKIMNone.
type DKIMResult string

// DKIM results.
const (
	DKIMPass      DKIMResult = "pass"
	DKIMFail      DKIMResult = "fail"
	DKIMNone      DKIMResult = "none"
	DKIMTempError DKIMResult = "temperror"
)

// Received is a parsed report with where it came from: what the store
// keeps.
type Received struct {
	Report *Report
	// JSON is the report as received, decompressed, so that it can be
	// re-parsed after a parser fix.
	JSON []byte
	// Gzip, when set, is the gzip stream JSON was decompressed from, as
	// received: the store keeps it as the raw report instead of
	// compressing JSON again, when its trailer matches JSON (import sets
	// it for .json.gz files).
	Gzip       []byte
	Source     Source
	SourceRef  string // mailbox and UID, file path or remote address
	ReceivedAt time.Time
	// Mail only: the headers that matter and the DKIM result.
	MessageID  string
	From       string
	Submitter  string // TLS-Report-Submitter
	DKIM       DKIMResult
	DKIMDomain string // d= of the signature that verified (or was tried)
	// HTTPS only: the posting address and its forward-confirmed reverse
	// name (a PTR name that resolves back to the address), "" when it has
	// none; the reporter is decided from them (Attribute).
	RemoteAddr netip.Addr
	RemoteName string
}

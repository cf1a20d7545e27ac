package rollout

import (
	"context"
	"crypto/x509"
	"log/slog"
	"time"
)

// Problem codes of the live inspection (docs/policy-and-check.md). They are a contract:
// the CLI, the JSON output, the dashboard and the verdict use them.
const (
	CodeRecordMissing            = "record-missing"
	CodeRecordMultiple           = "record-multiple"
	CodeRecordInvalid            = "record-invalid"
	CodePolicyUnreachable        = "policy-unreachable"
	CodePolicyCertificateInvalid = "policy-certificate-invalid"
	CodePolicyRedirect           = "policy-redirect"
	CodePolicyContentType        = "policy-content-type"
	CodePolicyTooLarge           = "policy-too-large"
	CodePolicyInvalid            = "policy-invalid"
	CodeMXNotInPolicy            = "mx-not-in-policy"
	CodePolicyMXUnused           = "policy-mx-unused"
	CodeMaxAgeLow                = "max-age-low"
	CodeTestingMode              = "testing-mode"
	CodeTLSRPTMissing            = "tlsrpt-missing"
	CodeTLSRPTInvalid            = "tlsrpt-invalid"
	CodeIDNotChanged             = "id-not-changed"

	// The STARTTLS probe of the MX hosts (docs/policy-and-check.md).
	CodeMXStartTLSMissing     = "mx-starttls-missing"
	CodeMXCertificateInvalid  = "mx-certificate-invalid"
	CodeMXCertificateExpiring = "mx-certificate-expiring"
	CodeMXUnreachable         = "mx-unreachable"
	CodeMXMissing             = "mx-missing"
)

// Severities of a Problem.
const (
	// SeverityError: senders ignore the policy, or enforce would lose
	// mail.
	SeverityError = "error"
	// SeverityWarning: works, but against the usual advice.
	SeverityWarning = "warning"
	// SeverityInfo: worth knowing, nothing is wrong.
	SeverityInfo = "info"
)

// defaultTimeout bounds each DNS exchange and the policy fetch when
// Inspector.Timeout is zero.
const defaultTimeout = 10 * time.Second

// checkSteps is how many step timeouts a whole Check may take.
const checkSteps = 6

// Problem is one finding of a check, with the fix a person can apply.
type Problem struct {
	Code     string `json:"code"`
	Severity string `json:"severity"`
	Message  string `json:"message"`
	Fix      string `json:"fix,omitempty"`
	// MX and Address name the MX host and the address (IP:port) of a
	// problem of the STARTTLS probe; its facts are in CheckResult.MX.
	MX      string `json:"mx,omitempty"`
	Address string `json:"address,omitempty"`
}

// RecordCheck is what the inspector found at _mta-sts.<domain>.
type RecordCheck struct {
	Name string `json:"name"`
	// CNAME lists the names the lookup was sent on to, in order.
	CNAME []string `json:"cname,omitempty"`
	// Found holds every TXT value starting with v=STSv1.
	Found []string `json:"found"`
	// Valid is set when exactly one record was found and it parses;
	// ID is then its id.
	Valid bool   `json:"valid"`
	ID    string `json:"id,omitempty"`
	Error string `json:"error,omitempty"`
}

// PolicyCheck is what the inspector fetched from the policy URL.
type PolicyCheck struct {
	URL string `json:"url"`
	// Address is the IP address and port the fetch connected to.
	Address     string `json:"address,omitempty"`
	Status      int    `json:"status,omitempty"`
	ContentType string `json:"content_type,omitempty"`
	// Body is the policy file as served, when it was read (at most
	// 64 KiB).
	Body string `json:"body,omitempty"`
	// Valid is set when the body parses; Mode, MX and MaxAge are then
	// the policy.
	Valid  bool     `json:"valid"`
	Mode   Mode     `json:"mode,omitempty"`
	MX     []string `json:"mx,omitempty"`
	MaxAge int64    `json:"max_age"`
	Error  string   `json:"error,omitempty"`
	// Certificate is the policy host's certificate, when a handshake
	// got that far (also when it did not verify).
	Certificate *CertificateFacts `json:"certificate,omitempty"`
}

// Policy returns the parsed policy and whether there is one.
func (p PolicyCheck) Policy() (Policy, bool) {
	if !p.Valid {
		return Policy{}, false
	}
	return Policy{Mode: p.Mode, MX: p.MX, MaxAge: p.MaxAge}, true
}

// MXCheck is one MX host of the domain compared with the policy.
type MXCheck struct {
	Host       string `json:"host"`
	Preference uint16 `json:"preference"`
	// InPolicy tells whether the policy's mx list covers the host, and
	// Pattern which pattern does.
	InPolicy bool   `json:"in_policy"`
	Pattern  string `json:"pattern,omitempty"`
	// Addresses are the STARTTLS probes of the host's A and AAAA
	// addresses, in that order; empty when the probe did not run.
	Addresses []SMTPProbe `json:"addresses"`
	// ProbeError tells why the host, or some of its addresses, were not
	// probed.
	ProbeError string `json:"probe_error,omitempty"`
	// TLSA holds the TLSA records at _25._tcp.<host> (DANE, RFC 7672),
	// noted without a judgement.
	TLSA []string `json:"tlsa,omitempty"`
}

// TLSRPTCheck is what the inspector found at _smtp._tls.<domain>.
type TLSRPTCheck struct {
	Name  string   `json:"name"`
	Found []string `json:"found"`
	Valid bool     `json:"valid"`
	RUA   []string `json:"rua,omitempty"`
	Error string   `json:"error,omitempty"`
}

// CheckResult is the live state of a domain's MTA-STS and TLS-RPT setup
// and the problems found in it.
type CheckResult struct {
	Domain string      `json:"domain"`
	Record RecordCheck `json:"record"`
	Policy PolicyCheck `json:"policy"`
	MX     []MXCheck   `json:"mx"`
	TLSRPT TLSRPTCheck `json:"tlsrpt"`
	// Problems is never nil, so the JSON holds a list.
	Problems []Problem `json:"problems"`
	// Notes tell what could not be checked (an MX lookup that failed,
	// the policy history that could not be read), which no problem code
	// covers.
	Notes []string `json:"notes,omitempty"`
	// Error is set when no check ran: the domain name is not valid.
	Error string `json:"error,omitempty"`
	// CheckedAt is when the check started.
	CheckedAt time.Time `json:"checked_at"`
}

// Has reports whether the result holds a problem with the code.
func (r *CheckResult) Has(code string) bool {
	for _, p := range r.Problems {
		if p.Code == code {
			return true
		}
	}
	return false
}

// Errors returns how many problems of severity error the result holds.
func (r *CheckResult) Errors() int {
	n := 0
	for _, p := range r.Problems {
		if p.Severity == SeverityError {
			n++
		}
	}
	return n
}

func (r *CheckResult) add(code, severity, message, fix string) {
	r.Problems = append(r.Problems, Problem{Code: code, Severity: severity, Message: message, Fix: fix})
}

func (r *CheckResult) addMX(code, severity, mx, addr, message, fix string) {
	r.Problems = append(r.Problems, Problem{Code: code, Severity: severity, Message: message, Fix: fix, MX: mx, Address: addr})
}

// Probe returns the probe of address addr of MX host mx, if there is one.
func (r *CheckResult) Probe(mx, addr string) (SMTPProbe, bool) {
	for _, m := range r.MX {
		if m.Host != mx {
			continue
		}
		for _, p := range m.Addresses {
			if p.Address == addr {
				return p, true
			}
		}
	}
	return SMTPProbe{}, false
}

// SeenStore remembers, per domain and policy id, the policy body first
// seen under that id, so a body edited without a new id is noticed
// (id-not-changed). The database implements it; MemorySeen serves runs
// without one.
type SeenStore interface {
	// SeenPolicy records that domain served body under id at time at,
	// and returns the body first seen under that id (body itself when
	// the id is new).
	SeenPolicy(ctx context.Context, domain, id, body string, at time.Time) (first string, err error)
}

// Inspector checks a domain's live MTA-STS and TLS-RPT setup the way a
// sending server sees it. The zero value uses the system resolver and
// roots and refuses private addresses. Check does not modify the
// Inspector, so one Inspector serves concurrent checks.
type Inspector struct {
	// Resolver is the DNS server (host:port) queried; "" means the
	// first nameserver of /etc/resolv.conf.
	Resolver string
	// RootCAs verifies the policy host's certificate; nil means the
	// system roots.
	RootCAs *x509.CertPool
	// AllowPrivate permits fetching the policy from private, loopback,
	// link-local and other non-public addresses. Off, a dashboard user
	// cannot make the server reach into its own network.
	AllowPrivate bool
	// Timeout bounds each DNS exchange, the policy fetch and each SMTP
	// session of the probe; 0 means 10 seconds.
	Timeout time.Duration
	// SMTPPort replaces port 25 for the STARTTLS probe: tests run their
	// SMTP servers on a loopback port of their own. 0 means 25.
	SMTPPort int
	// SkipSMTP leaves out the STARTTLS probe of the MX hosts, for checks
	// that only verify what was published.
	SkipSMTP bool
	// HeloName is the name the probe sends with EHLO; "" means
	// tlsrpt-check.invalid.
	HeloName string
	// Now is the clock certificates are verified against and days left
	// counted from; nil means time.Now. Tests set it.
	Now func() time.Time
	// Seen, if set, enables the id-not-changed check.
	Seen SeenStore
	// Logger receives debug logs; nil means slog.Default().
	Logger *slog.Logger

	// httpsPort replaces 443 for the policy fetch. It is a test seam:
	// tests serve the policy on a loopback port of their own.
	httpsPort string
}

func (in *Inspector) timeout() time.Duration {
	if in.Timeout > 0 {
		return in.Timeout
	}
	return defaultTimeout
}

func (in *Inspector) logger() *slog.Logger {
	if in.Logger != nil {
		return in.Logger
	}
	return slog.Default()
}

// Check inspects domain: the _mta-sts TXT record, the policy file, the MX
// records against the policy's mx list, each MX address over STARTTLS
// (unless SkipSMTP), the _smtp._tls TXT record and, with Seen set,
// whether the policy changed under an unchanged id. It
// never fails: what went wrong is in the problems, the notes or, for an
// invalid domain name, Error.
func (in *Inspector) Check(ctx context.Context, domain string) *CheckResult {
	start := time.Now()
	res := &CheckResult{Domain: domain, Problems: []Problem{}, MX: []MXCheck{}, CheckedAt: in.now()}
	d, err := NormalizeDomain(domain)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	res.Domain = d
	// Every step has its own timeout; this bounds their sum, whatever
	// the number of CNAME hops and TCP retries.
	steps := time.Duration(checkSteps)
	if !in.SkipSMTP {
		steps += probeSteps
	}
	ctx, cancel := context.WithTimeout(ctx, steps*in.timeout())
	defer cancel()
	res.Record = RecordCheck{Name: "_mta-sts." + d, Found: []string{}}
	res.Policy = PolicyCheck{URL: PolicyURL(d)}
	res.TLSRPT = TLSRPTCheck{Name: "_smtp._tls." + d, Found: []string{}}

	in.checkRecord(ctx, res)
	body, fetched := in.checkPolicy(ctx, res)
	in.checkMX(ctx, res)
	in.checkPolicyValues(res)
	in.probeMX(ctx, res)
	in.checkTLSRPT(ctx, res)
	if fetched {
		in.checkSeen(ctx, res, body)
	}
	// The domain is not logged: checks may run for anyone on a public
	// dashboard, and what they look up is theirs.
	in.logger().DebugContext(ctx, "Checked domain", "problems", len(res.Problems), "duration", time.Since(start))
	return res
}

// PolicyURL returns where the policy of domain is served (RFC 8461 §3.3).
func PolicyURL(domain string) string {
	return "https://mta-sts." + domain + "/.well-known/mta-sts.txt"
}

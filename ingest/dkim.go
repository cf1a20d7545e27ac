package ingest

import (
	"bytes"
	"context"
	"net"
	"net/mail"
	"strings"

	"github.com/emersion/go-msgauth/dkim"
	"golang.org/x/net/publicsuffix"

	"github.com/tlsrpt/tlsrpt/reports"
)

// maxDKIMSignatures bounds the work one message can cause: each signature
// costs a DNS lookup and an RSA verification.
const maxDKIMSignatures = 5

// NewDKIMVerifier returns the DKIM check of Pipeline.VerifyDKIM. RFC 8460
// §3 requires mailed reports to be signed by the reporting domain. The
// result is pass when a signature verifies (preferring one whose d= shares
// the organisational domain of from), temperror when a key could not be
// fetched for a temporary DNS reason (to be retried, not counted as a
// failure), fail when signatures exist but none verifies, none when the
// message is unsigned. The second value is the d= domain of the chosen
// signature. lookupTXT nil means the system resolver; tests and the demo
// inject their own.
func NewDKIMVerifier(lookupTXT func(ctx context.Context, domain string) ([]string, error)) func(ctx context.Context, raw []byte, from string) (reports.DKIMResult, string) {
	if lookupTXT == nil {
		lookupTXT = net.DefaultResolver.LookupTXT
	}
	return func(ctx context.Context, raw []byte, from string) (reports.DKIMResult, string) {
		opts := &dkim.VerifyOptions{
			// go-msgauth's lookup has no context; the closure carries it.
			// The error is passed on unwrapped: go-msgauth recognises a
			// temporary failure by asserting net.Error.
			LookupTXT:        func(domain string) ([]string, error) { return lookupTXT(ctx, domain) },
			MaxVerifications: maxDKIMSignatures,
		}
		verifs, err := dkim.VerifyWithOptions(bytes.NewReader(raw), opts)
		if err != nil && len(verifs) == 0 {
			// The header could not be read: treat it as a broken
			// signature only if there was one to break.
			if bytes.Contains(bytes.ToLower(headerOf(raw)), []byte("dkim-signature:")) {
				return reports.DKIMFail, ""
			}
			return reports.DKIMNone, ""
		}
		return pickVerification(verifs, fromDomain(from))
	}
}

// pickVerification reduces the per-signature results to one.
func pickVerification(verifs []*dkim.Verification, fromDom string) (reports.DKIMResult, string) {
	if len(verifs) == 0 {
		return reports.DKIMNone, ""
	}
	passDomain, tempDomain := "", ""
	for _, v := range verifs {
		d := strings.ToLower(v.Domain)
		switch {
		case v.Err == nil:
			if fromDom != "" && sameOrgDomain(d, fromDom) {
				return reports.DKIMPass, d
			}
			if passDomain == "" {
				passDomain = d
			}
		case dkim.IsTempFail(v.Err):
			if tempDomain == "" {
				tempDomain = d
			}
		}
	}
	switch {
	case passDomain != "":
		return reports.DKIMPass, passDomain
	case tempDomain != "":
		return reports.DKIMTempError, tempDomain
	default:
		return reports.DKIMFail, strings.ToLower(verifs[0].Domain)
	}
}

// fromDomain is the domain of a From: address, or "" when it has none.
func fromDomain(from string) string {
	if a, err := mail.ParseAddress(from); err == nil {
		from = a.Address
	}
	if i := strings.LastIndexByte(from, '@'); i >= 0 {
		return strings.ToLower(strings.TrimSuffix(from[i+1:], ">"))
	}
	return ""
}

// SameOrgDomain reports whether two domains share their organisational
// domain (the public suffix plus one label), the relaxed alignment of
// DESIGN "Which reports count".
func SameOrgDomain(a, b string) bool { return sameOrgDomain(strings.ToLower(a), strings.ToLower(b)) }

func sameOrgDomain(a, b string) bool {
	a, b = strings.TrimSuffix(a, "."), strings.TrimSuffix(b, ".")
	if a == "" || b == "" {
		return false
	}
	if a == b {
		return true
	}
	oa, err1 := publicsuffix.EffectiveTLDPlusOne(a)
	ob, err2 := publicsuffix.EffectiveTLDPlusOne(b)
	return err1 == nil && err2 == nil && oa == ob
}

// headerOf is the header block of a raw message.
func headerOf(raw []byte) []byte {
	if i := bytes.Index(raw, []byte("\r\n\r\n")); i >= 0 {
		return raw[:i]
	}
	if i := bytes.Index(raw, []byte("\n\n")); i >= 0 {
		return raw[:i]
	}
	return raw
}

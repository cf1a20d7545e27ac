package ingest

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/mail"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"golang.org/x/net/publicsuffix"

	"github.com/tlsrpt/tlsrpt/reports"
)

// DKIM key lookups: a mailbox holds thousands of reports signed with the
// same few keys, so answers are kept a while; a lookup that hangs counts as
// a temporary failure.
const (
	keyCacheTTL     = 5 * time.Minute
	keyCacheMax     = 1000
	keyLookupTimout = 10 * time.Second
)

// keyCache remembers DKIM key records and permanent lookup failures (not
// temporary ones) for keyCacheTTL.
type keyCache struct {
	lookup  func(ctx context.Context, domain string) ([]string, error)
	mu      sync.Mutex
	entries map[string]keyEntry
}

type keyEntry struct {
	txt     []string
	err     error
	expires time.Time
}

func (k *keyCache) get(ctx context.Context, name string) ([]string, error) {
	name = strings.ToLower(name)
	now := time.Now()
	k.mu.Lock()
	e, ok := k.entries[name]
	k.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.txt, e.err
	}
	ctx, cancel := context.WithTimeout(ctx, keyLookupTimout)
	defer cancel()
	txt, err := k.lookup(ctx, name)
	if err != nil && ctx.Err() != nil {
		// The lookup ran out of time: say so in the way go-msgauth
		// recognises as temporary.
		err = &net.DNSError{Err: "lookup timed out", Name: name, IsTimeout: true, IsTemporary: true}
	}
	var nerr net.Error
	var dnsErr *net.DNSError
	if (errors.As(err, &nerr) && nerr.Timeout()) || (errors.As(err, &dnsErr) && dnsErr.IsTemporary) {
		return txt, err // not cached: retried at the next message
	}
	k.mu.Lock()
	if len(k.entries) >= keyCacheMax {
		clear(k.entries)
	}
	k.entries[name] = keyEntry{txt: txt, err: err, expires: now.Add(keyCacheTTL)}
	k.mu.Unlock()
	return txt, err
}

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
	keys := &keyCache{lookup: lookupTXT, entries: map[string]keyEntry{}}
	return func(ctx context.Context, raw []byte, from string) (reports.DKIMResult, string) {
		opts := &dkim.VerifyOptions{
			// go-msgauth's lookup has no context; the closure carries it.
			// The error is passed on unwrapped: go-msgauth recognises a
			// temporary failure by asserting net.Error.
			LookupTXT:        func(domain string) ([]string, error) { return keys.get(ctx, domain) },
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
// docs/reporters.md.
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

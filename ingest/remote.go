package ingest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Remote is where a posted report came from: the address and its
// forward-confirmed reverse name ("" when it has none), from which the
// store decides who the reporter is (reports.Attribute).
type Remote struct {
	Addr netip.Addr
	Name string
}

type remoteKey struct{}

// WithRemote returns ctx carrying the origin of the report posted in its
// request: Pipeline.Report and Batcher.Report record it with the report.
func WithRemote(ctx context.Context, r Remote) context.Context {
	return context.WithValue(ctx, remoteKey{}, r)
}

func remoteOf(ctx context.Context) Remote {
	r, _ := ctx.Value(remoteKey{}).(Remote)
	return r
}

// Resolver is the DNS the reverse-name check asks (net.Resolver; tests
// and TLSRPT_RESOLVER give their own).
type Resolver interface {
	LookupAddr(ctx context.Context, addr string) ([]string, error)
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// ErrReverseDNSTemporary is a reverse-name check that failed for a
// temporary DNS error: the sender should post again later rather than
// have its report stored as unverified.
var ErrReverseDNSTemporary = errors.New("ingest: the reverse DNS of the posting address could not be checked now")

// maxReverseNames bounds the PTR names checked for one address.
const maxReverseNames = 5

// reverseTimeout bounds the whole check.
const reverseTimeout = 5 * time.Second

// ConfirmedName returns the forward-confirmed reverse name of addr: a PTR
// name of addr whose A or AAAA records include addr. "" when addr has no
// such name (not an error: the report is stored unverified). A temporary
// DNS failure is ErrReverseDNSTemporary.
func ConfirmedName(ctx context.Context, r Resolver, addr netip.Addr) (string, error) {
	if !addr.IsValid() {
		return "", nil
	}
	addr = addr.Unmap()
	ctx, cancel := context.WithTimeout(ctx, reverseTimeout)
	defer cancel()
	names, err := r.LookupAddr(ctx, addr.String())
	if err != nil {
		if temporary(err) {
			return "", fmt.Errorf("%w: PTR of %s: %v", ErrReverseDNSTemporary, addr, err)
		}
		return "", nil
	}
	if len(names) > maxReverseNames {
		names = names[:maxReverseNames]
	}
	var tempErr error
	for _, n := range names {
		n = strings.TrimSuffix(strings.ToLower(n), ".")
		if n == "" {
			continue
		}
		network := "ip4"
		if addr.Is6() {
			network = "ip6"
		}
		ips, err := r.LookupNetIP(ctx, network, n)
		if err != nil {
			if temporary(err) {
				tempErr = fmt.Errorf("%w: addresses of %s: %v", ErrReverseDNSTemporary, n, err)
			}
			continue
		}
		if slices.ContainsFunc(ips, func(ip netip.Addr) bool { return ip.Unmap() == addr }) {
			return n, nil
		}
	}
	return "", tempErr
}

// temporary says whether a DNS error may go away by itself: anything but
// an answer that the name does not exist (a timeout, a server failure, a
// resolver that cannot be reached). Unverified is a verdict about the
// poster; an unreachable DNS says nothing about it.
func temporary(err error) bool {
	var de *net.DNSError
	if errors.As(err, &de) {
		return !de.IsNotFound
	}
	return true
}

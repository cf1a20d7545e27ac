package publish

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"

	"github.com/tlsrpt/tlsrpt/db"
)

// policyHostPrefix is the label RFC 8461 §3.3 puts in front of the domain
// for the policy host.
const policyHostPrefix = "mta-sts."

// policyCacheControl lets caches in front keep the file briefly; senders
// cache it for max_age themselves.
const policyCacheControl = "max-age=300"

// PolicyDomain returns the domain a request for the policy file is about,
// from its Host header: mta-sts.<domain>[:port].
func PolicyDomain(host string) (string, bool) {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	d, ok := strings.CutPrefix(host, policyHostPrefix)
	if !ok || d == "" {
		return "", false
	}
	n, err := db.NormalizeDomain(d)
	if err != nil || n != d {
		return "", false
	}
	return d, true
}

// PolicyFile serves GET /.well-known/mta-sts.txt by Host header: the
// policy file of the newest hosted, published version of the domain, as
// text/plain (RFC 8461 §3.3); 404 for every other host, so the dashboard's
// name never answers as a policy host. The server mounts it on its
// router; PolicyOnly wraps it for a listener of its own.
func PolicyFile(d *db.DB) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		domain, ok := PolicyDomain(r.Host)
		if !ok {
			notHosted(w)
			return
		}
		v, err := d.HostedPolicy(r.Context(), domain)
		if errors.Is(err, db.ErrNotFound) {
			notHosted(w)
			return
		}
		if err != nil {
			http.Error(w, "the policy could not be read; try again\n", http.StatusServiceUnavailable)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "text/plain")
		h.Set("Cache-Control", policyCacheControl)
		_, _ = w.Write([]byte(v.Body))
	})
}

func notHosted(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
	w.WriteHeader(http.StatusNotFound)
	_, _ = w.Write([]byte("no MTA-STS policy is hosted for this host name\n"))
}

// PolicyOnly serves only the policy file (GET of /.well-known/mta-sts.txt)
// through h, 404 for everything else: the handler of a listener for the
// policy hosts, which should not expose the dashboard.
func PolicyOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/.well-known/mta-sts.txt" || r.Method != http.MethodGet {
			http.NotFound(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// PolicyTLS is where the certificates of the policy hosts
// (mta-sts.<domain>) come from: files, ACME, or both (files first).
type PolicyTLS struct {
	// CertDir holds <host>.crt and <host>.key (PEM, the chain in the
	// .crt) per policy host, e.g. mta-sts.example.com.crt. Files are
	// read again when they change, so a renewal needs no restart.
	CertDir string
	// ACMECacheDir, when set, turns on ACME (Let's Encrypt by default) for
	// the policy hosts of hosted domains, with the TLS-ALPN-01 challenge
	// on the same port (443 must reach tlsrpt).
	ACMECacheDir string
	ACMEEmail    string
	// ACMEDirectory replaces Let's Encrypt's directory URL.
	ACMEDirectory string
	// Fallback serves every other name (the dashboard's certificate);
	// nil means none.
	Fallback *tls.Certificate
}

// PolicyTLSConfig returns the TLS configuration for a listener that serves
// the policy hosts: by SNI, a certificate from CertDir, else from ACME for
// mta-sts.<domain> of a domain tlsrpt hosts a policy for, else Fallback.
func PolicyTLSConfig(cfg PolicyTLS, d *db.DB) (*tls.Config, error) {
	if cfg.CertDir == "" && cfg.ACMECacheDir == "" && cfg.Fallback == nil {
		return nil, errors.New("configuring policy host tls: no certificate directory, acme cache or fallback")
	}
	files := &certFiles{dir: cfg.CertDir, certs: map[string]*fileCert{}}
	var m *autocert.Manager
	if cfg.ACMECacheDir != "" {
		m = &autocert.Manager{
			Prompt: autocert.AcceptTOS,
			Cache:  autocert.DirCache(cfg.ACMECacheDir),
			Email:  cfg.ACMEEmail,
			HostPolicy: func(ctx context.Context, host string) error {
				domain, ok := PolicyDomain(host)
				if !ok {
					return fmt.Errorf("acme: %s is not a policy host", host)
				}
				if _, err := d.HostedPolicy(ctx, domain); err != nil {
					return fmt.Errorf("acme: no hosted policy for %s: %w", domain, err)
				}
				return nil
			},
		}
		if cfg.ACMEDirectory != "" {
			m.Client = &acme.Client{DirectoryURL: cfg.ACMEDirectory}
		}
	}
	tc := &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			name := strings.ToLower(strings.TrimSuffix(hello.ServerName, "."))
			if cfg.CertDir != "" && name != "" {
				if c, err := files.get(name); err == nil {
					return c, nil
				} else if !errors.Is(err, os.ErrNotExist) {
					return nil, err
				}
			}
			if m != nil {
				if _, ok := PolicyDomain(name); ok {
					return m.GetCertificate(hello)
				}
			}
			if cfg.Fallback != nil {
				return cfg.Fallback, nil
			}
			return nil, fmt.Errorf("no certificate for %q", name)
		},
	}
	if m != nil {
		tc.NextProtos = []string{"h2", "http/1.1", acme.ALPNProto}
	}
	return tc, nil
}

// certFiles loads <host>.crt/<host>.key pairs on demand and keeps them
// until the files change.
type certFiles struct {
	dir   string
	mu    sync.Mutex
	certs map[string]*fileCert
}

type fileCert struct {
	cert    *tls.Certificate
	modTime time.Time
}

// maxCertFiles bounds the cache: one entry per policy host.
const maxCertFiles = 10000

func (f *certFiles) get(host string) (*tls.Certificate, error) {
	if strings.ContainsAny(host, `/\`) || strings.HasPrefix(host, ".") {
		return nil, os.ErrNotExist
	}
	crt := filepath.Join(f.dir, host+".crt")
	key := filepath.Join(f.dir, host+".key")
	st, err := os.Stat(crt)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.certs[host]; ok && c.modTime.Equal(st.ModTime()) {
		return c.cert, nil
	}
	c, err := tls.LoadX509KeyPair(crt, key)
	if err != nil {
		return nil, fmt.Errorf("loading the certificate of %s: %w", host, err)
	}
	if len(f.certs) >= maxCertFiles {
		clear(f.certs)
	}
	f.certs[host] = &fileCert{cert: &c, modTime: st.ModTime()}
	return &c, nil
}

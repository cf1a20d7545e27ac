package api

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

	"github.com/labstack/echo/v4"
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

// policyDomain returns the domain a request for the policy file is about,
// from its Host header: mta-sts.<domain>[:port].
func policyDomain(host string) (string, bool) {
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

// hostedPolicy serves GET /.well-known/mta-sts.txt by Host header: the
// policy file of the newest hosted, published version of the domain, as
// text/plain (RFC 8461 §3.3); 404 for every other host, so the dashboard's
// name never answers as a policy host.
func (s *Server) hostedPolicy(c echo.Context) error {
	domain, ok := policyDomain(c.Request().Host)
	if !ok {
		return c.String(http.StatusNotFound, "no MTA-STS policy is hosted for this host name\n")
	}
	v, err := s.cfg.DB.HostedPolicy(c.Request().Context(), domain)
	if errors.Is(err, db.ErrNotFound) {
		return c.String(http.StatusNotFound, "no MTA-STS policy is hosted for this host name\n")
	}
	if err != nil {
		return err
	}
	h := c.Response().Header()
	h.Set("Cache-Control", policyCacheControl)
	return c.Blob(http.StatusOK, "text/plain", []byte(v.Body))
}

// PolicyHandler serves only the policy file (GET of
// /.well-known/mta-sts.txt, by Host header), 404 for everything else: the
// handler of a listener for the policy hosts, which should not expose the
// dashboard.
func (s *Server) PolicyHandler() http.Handler {
	h := s.Handler()
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
				domain, ok := policyDomain(host)
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
				if _, ok := policyDomain(name); ok {
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

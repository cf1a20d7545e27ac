package ingest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// IMAP security modes, derived from the URL scheme.
const (
	SecurityTLS       = "tls"       // imaps://: TLS from the first byte
	SecuritySTARTTLS  = "starttls"  // imap://: STARTTLS, which is then required
	SecurityPlaintext = "plaintext" // imap:// on loopback with TLSRPT_IMAP_INSECURE_PLAINTEXT_LOOPBACK
)

// Authentication mechanisms.
const (
	AuthLogin       = "login"       // IMAP LOGIN (or SASL PLAIN where LOGIN is disabled)
	AuthXOAUTH2     = "xoauth2"     // Google's and Microsoft's SASL XOAUTH2
	AuthOAuthBearer = "oauthbearer" // RFC 7628 OAUTHBEARER
)

// OAuth2 providers with built-in endpoints.
const (
	ProviderGoogle    = "google"
	ProviderMicrosoft = "microsoft"
)

// Defaults of the IMAP settings.
const (
	DefaultProcessedFolder  = "tlsrpt/processed"
	DefaultQuarantineFolder = "tlsrpt/quarantine"
	DefaultPollInterval     = time.Minute
	DefaultBatchSize        = 200
	maxBatchSize            = 5000
	maxSecretFileBytes      = 64 << 10
)

// Env variable names, kept together so that docs/imap.md and the errors
// agree.
const (
	EnvIMAPURL             = "TLSRPT_IMAP_URL"
	EnvIMAPPassword        = "TLSRPT_IMAP_PASSWORD"
	EnvIMAPPasswordFile    = "TLSRPT_IMAP_PASSWORD_FILE"
	EnvIMAPCAFile          = "TLSRPT_IMAP_CA_FILE"
	EnvIMAPInsecureLoop    = "TLSRPT_IMAP_INSECURE_PLAINTEXT_LOOPBACK"
	EnvIMAPProcessed       = "TLSRPT_IMAP_PROCESSED_FOLDER"
	EnvIMAPQuarantine      = "TLSRPT_IMAP_QUARANTINE_FOLDER"
	EnvIMAPMarkSeenOnly    = "TLSRPT_IMAP_MARK_SEEN_ONLY"
	EnvIMAPPollInterval    = "TLSRPT_IMAP_POLL_INTERVAL"
	EnvIMAPBatchSize       = "TLSRPT_IMAP_BATCH_SIZE"
	EnvIMAPAuth            = "TLSRPT_IMAP_AUTH"
	EnvIMAPOAuthProvider   = "TLSRPT_IMAP_OAUTH_PROVIDER"
	EnvIMAPOAuthTenant     = "TLSRPT_IMAP_OAUTH_TENANT"
	EnvIMAPOAuthTokenURL   = "TLSRPT_IMAP_OAUTH_TOKEN_URL"
	EnvIMAPOAuthClientID   = "TLSRPT_IMAP_OAUTH_CLIENT_ID"
	EnvIMAPOAuthSecret     = "TLSRPT_IMAP_OAUTH_CLIENT_SECRET"
	EnvIMAPOAuthSecretFile = "TLSRPT_IMAP_OAUTH_CLIENT_SECRET_FILE"
	EnvIMAPOAuthRefresh    = "TLSRPT_IMAP_OAUTH_REFRESH_TOKEN"
	EnvIMAPOAuthRefreshF   = "TLSRPT_IMAP_OAUTH_REFRESH_TOKEN_FILE"
	EnvIMAPTokenCommand    = "TLSRPT_IMAP_TOKEN_COMMAND"
)

// ErrNoIMAP is returned by IMAPConfigFromEnv when no IMAP URL is set at
// all: the caller decides whether that is an error (ingest) or not (serve
// without a mailbox).
var ErrNoIMAP = errors.New("ingest: no IMAP mailbox configured (set --imap or " + EnvIMAPURL + ")")

// IMAPConfig is everything the poller needs to reach the rua mailbox. It is
// read once by cmd/ from flags and the environment; a zero field means the
// default.
type IMAPConfig struct {
	// Security is SecurityTLS, SecuritySTARTTLS or SecurityPlaintext.
	Security string
	// Addr is host:port.
	Addr     string
	Username string
	Password string
	// Mailbox is the folder the reports arrive in, INBOX by default.
	Mailbox string
	// CAFile is a PEM bundle trusted instead of the system roots.
	CAFile string
	// InsecurePlaintextLoopback allows imap:// without STARTTLS, and only
	// to a loopback host. Tests and the demo use it.
	InsecurePlaintextLoopback bool
	// ProcessedFolder and QuarantineFolder use "/" as the separator; it is
	// replaced by the server's hierarchy delimiter.
	ProcessedFolder  string
	QuarantineFolder string
	// MarkSeenOnly leaves processed messages in Mailbox, flagged \Seen.
	MarkSeenOnly bool
	// PollInterval is how often the mailbox is checked when the server
	// has no IDLE, and the longest wait between passes when it has.
	PollInterval time.Duration
	// BatchSize is how many messages one FETCH asks for.
	BatchSize int

	// Auth is AuthLogin, AuthXOAUTH2 or AuthOAuthBearer.
	Auth string
	// OAuth2 with a refresh token (Provider google or microsoft, or
	// TokenURL for another one).
	OAuthProvider     string
	OAuthTenant       string
	OAuthTokenURL     string
	OAuthClientID     string
	OAuthClientSecret string
	OAuthRefreshToken string
	// TokenCommand is run by /bin/sh; its standard output is the access
	// token.
	TokenCommand string

	// Dial, when set, replaces the network dialer (tests, the demo's
	// in-process server). TLS is still done on top of the returned conn.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error) `json:"-"`
	// TLSConfig, when set, is used instead of one built from CAFile.
	TLSConfig *tls.Config `json:"-"`
}

// IMAPConfigFromEnv reads the IMAP settings. flagURL (from --imap) wins
// over TLSRPT_IMAP_URL. Secret files are read here, so the error names the
// variable. It returns ErrNoIMAP when no URL is set. The result still needs
// Validate.
func IMAPConfigFromEnv(getenv func(string) string, flagURL string) (IMAPConfig, error) {
	var c IMAPConfig
	raw := flagURL
	urlSetting := "--imap"
	if raw == "" {
		raw = strings.TrimSpace(getenv(EnvIMAPURL))
		urlSetting = EnvIMAPURL
	}
	if raw == "" {
		return c, ErrNoIMAP
	}
	u, err := ParseIMAPURL(raw)
	if err != nil {
		return c, fmt.Errorf("%s: %w", urlSetting, err)
	}
	c.Security, c.Addr, c.Username, c.Password, c.Mailbox = u.Security, u.Addr, u.Username, u.Password, u.Mailbox

	if v := getenv(EnvIMAPPassword); v != "" {
		c.Password = v
	}
	if c.Password, err = secretFile(getenv, EnvIMAPPasswordFile, c.Password); err != nil {
		return c, err
	}
	c.CAFile = getenv(EnvIMAPCAFile)
	if c.InsecurePlaintextLoopback, err = boolSetting(getenv, EnvIMAPInsecureLoop); err != nil {
		return c, err
	}
	if c.InsecurePlaintextLoopback && c.Security == SecuritySTARTTLS {
		c.Security = SecurityPlaintext
	}
	c.ProcessedFolder = getenv(EnvIMAPProcessed)
	c.QuarantineFolder = getenv(EnvIMAPQuarantine)
	if c.MarkSeenOnly, err = boolSetting(getenv, EnvIMAPMarkSeenOnly); err != nil {
		return c, err
	}
	if v := getenv(EnvIMAPPollInterval); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return c, fmt.Errorf("%s: %q is not a duration like 30s or 5m", EnvIMAPPollInterval, v)
		}
		c.PollInterval = d
		if d <= 0 {
			return c, fmt.Errorf("%s: must be positive, got %s", EnvIMAPPollInterval, v)
		}
	}
	if v := getenv(EnvIMAPBatchSize); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return c, fmt.Errorf("%s: %q is not a positive number", EnvIMAPBatchSize, v)
		}
		c.BatchSize = n
	}
	c.Auth = strings.ToLower(getenv(EnvIMAPAuth))
	c.OAuthProvider = strings.ToLower(getenv(EnvIMAPOAuthProvider))
	c.OAuthTenant = getenv(EnvIMAPOAuthTenant)
	c.OAuthTokenURL = getenv(EnvIMAPOAuthTokenURL)
	c.OAuthClientID = getenv(EnvIMAPOAuthClientID)
	if c.OAuthClientSecret, err = secretFile(getenv, EnvIMAPOAuthSecretFile, getenv(EnvIMAPOAuthSecret)); err != nil {
		return c, err
	}
	if c.OAuthRefreshToken, err = secretFile(getenv, EnvIMAPOAuthRefreshF, getenv(EnvIMAPOAuthRefresh)); err != nil {
		return c, err
	}
	c.TokenCommand = getenv(EnvIMAPTokenCommand)
	if c.Auth == "" {
		// An OAuth2 setting without an explicit mechanism means XOAUTH2,
		// which both Gmail and Microsoft 365 accept.
		if c.OAuthRefreshToken != "" || c.TokenCommand != "" {
			c.Auth = AuthXOAUTH2
		} else {
			c.Auth = AuthLogin
		}
	}
	return c, nil
}

// secretFile reads the *_FILE twin of a secret when it is set.
func secretFile(getenv func(string) string, name, current string) (string, error) {
	path := getenv(name)
	if path == "" {
		return current, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	defer f.Close()
	buf, err := io.ReadAll(io.LimitReader(f, maxSecretFileBytes+1))
	if err != nil {
		return "", fmt.Errorf("%s: reading %s: %w", name, path, err)
	}
	if len(buf) > maxSecretFileBytes {
		return "", fmt.Errorf("%s: %s is larger than %d bytes", name, path, maxSecretFileBytes)
	}
	v := strings.TrimRight(string(buf), "\r\n")
	if v == "" {
		return "", fmt.Errorf("%s: %s is empty", name, path)
	}
	return v, nil
}

func boolSetting(getenv func(string) string, name string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(getenv(name))) {
	case "", "0", "false", "no", "off":
		return false, nil
	case "1", "true", "yes", "on":
		return true, nil
	default:
		return false, fmt.Errorf("%s: %q is not a boolean (use 1 or 0)", name, getenv(name))
	}
}

// Validate checks the settings and fills in the defaults. Its error is one
// line naming the setting at fault.
func (c *IMAPConfig) Validate() error {
	host, _, err := net.SplitHostPort(c.Addr)
	if err != nil || host == "" {
		return fmt.Errorf("%s: %q has no host", EnvIMAPURL, c.Addr)
	}
	switch c.Security {
	case SecurityTLS, SecuritySTARTTLS:
	case SecurityPlaintext:
		if !c.InsecurePlaintextLoopback {
			return fmt.Errorf("%s: plaintext IMAP needs %s=1", EnvIMAPInsecureLoop, EnvIMAPInsecureLoop)
		}
		if !isLoopback(host) {
			return fmt.Errorf("%s: plaintext is allowed only to a loopback host, not %s", EnvIMAPInsecureLoop, host)
		}
	default:
		return fmt.Errorf("%s: unknown security %q", EnvIMAPURL, c.Security)
	}
	if c.Username == "" {
		return fmt.Errorf("%s: no user name (imaps://USER@host/INBOX)", EnvIMAPURL)
	}
	if c.Mailbox == "" {
		c.Mailbox = "INBOX"
	}
	if c.ProcessedFolder == "" {
		c.ProcessedFolder = DefaultProcessedFolder
	}
	if c.QuarantineFolder == "" {
		c.QuarantineFolder = DefaultQuarantineFolder
	}
	for _, f := range []struct{ name, v string }{{EnvIMAPProcessed, c.ProcessedFolder}, {EnvIMAPQuarantine, c.QuarantineFolder}} {
		if err := checkFolderName(f.v); err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
		if strings.EqualFold(f.v, c.Mailbox) {
			return fmt.Errorf("%s: must differ from the mailbox %s", f.name, c.Mailbox)
		}
	}
	if c.ProcessedFolder == c.QuarantineFolder {
		return fmt.Errorf("%s: must differ from %s", EnvIMAPQuarantine, EnvIMAPProcessed)
	}
	if c.PollInterval == 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.PollInterval < time.Second {
		return fmt.Errorf("%s: at least 1s, got %s", EnvIMAPPollInterval, c.PollInterval)
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.BatchSize < 0 || c.BatchSize > maxBatchSize {
		return fmt.Errorf("%s: between 1 and %d, got %d", EnvIMAPBatchSize, maxBatchSize, c.BatchSize)
	}
	if c.CAFile != "" && c.TLSConfig == nil {
		if _, err := loadCAFile(c.CAFile); err != nil {
			return fmt.Errorf("%s: %w", EnvIMAPCAFile, err)
		}
	}
	switch c.Auth {
	case "", AuthLogin:
		c.Auth = AuthLogin
		if c.Password == "" {
			return fmt.Errorf("%s: no password (or set %s)", EnvIMAPPassword, EnvIMAPPasswordFile)
		}
	case AuthXOAUTH2, AuthOAuthBearer:
		if err := c.validateOAuth(); err != nil {
			return err
		}
	default:
		return fmt.Errorf("%s: %q is not one of login, xoauth2, oauthbearer", EnvIMAPAuth, c.Auth)
	}
	return nil
}

func (c *IMAPConfig) validateOAuth() error {
	if c.TokenCommand != "" {
		if c.OAuthRefreshToken != "" {
			return fmt.Errorf("%s: set either it or %s, not both", EnvIMAPTokenCommand, EnvIMAPOAuthRefresh)
		}
		return nil
	}
	if c.OAuthRefreshToken == "" {
		return fmt.Errorf("%s: %s needs a refresh token (or %s)", EnvIMAPOAuthRefresh, c.Auth, EnvIMAPTokenCommand)
	}
	if c.OAuthClientID == "" {
		return fmt.Errorf("%s: a refresh token needs the OAuth2 client id", EnvIMAPOAuthClientID)
	}
	switch c.OAuthProvider {
	case ProviderGoogle, ProviderMicrosoft:
		if c.OAuthTokenURL != "" {
			return fmt.Errorf("%s: set either it or %s, not both", EnvIMAPOAuthTokenURL, EnvIMAPOAuthProvider)
		}
	case "":
		if c.OAuthTokenURL == "" {
			return fmt.Errorf("%s: google or microsoft (or set %s)", EnvIMAPOAuthProvider, EnvIMAPOAuthTokenURL)
		}
		if u, err := url.Parse(c.OAuthTokenURL); err != nil || u.Scheme != "https" || u.Host == "" {
			if !(err == nil && u.Scheme == "http" && isLoopback(u.Hostname())) {
				return fmt.Errorf("%s: %q is not an https URL", EnvIMAPOAuthTokenURL, c.OAuthTokenURL)
			}
		}
	default:
		return fmt.Errorf("%s: %q is not google or microsoft", EnvIMAPOAuthProvider, c.OAuthProvider)
	}
	return nil
}

// checkFolderName refuses names that IMAP LIST wildcards or an empty level
// would make ambiguous.
func checkFolderName(name string) error {
	if strings.ContainsAny(name, "*%\r\n\x00") {
		return fmt.Errorf("%q holds a character not allowed in a folder name", name)
	}
	for _, part := range strings.Split(name, "/") {
		if part == "" {
			return fmt.Errorf("%q has an empty level", name)
		}
	}
	return nil
}

// MailboxKey names the mailbox in the ingest state and in report
// provenance: it is stable across restarts and never holds a secret.
func (c IMAPConfig) MailboxKey() string {
	user := strings.ReplaceAll(url.PathEscape(c.Username), "@", "%40")
	return "imap://" + user + "@" + c.Addr + "/" + c.Mailbox
}

// tlsConfig is the TLS client configuration for the server.
func (c *IMAPConfig) tlsConfig() (*tls.Config, error) {
	if c.TLSConfig != nil {
		return c.TLSConfig.Clone(), nil
	}
	host, _, _ := net.SplitHostPort(c.Addr)
	cfg := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	if c.CAFile != "" {
		pool, err := loadCAFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("loading %s: %w", EnvIMAPCAFile, err)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

func loadCAFile(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// IMAPURL is the parsed form of TLSRPT_IMAP_URL.
type IMAPURL struct {
	Security string // SecurityTLS or SecuritySTARTTLS
	Addr     string // host:port, port defaulted from the scheme
	Username string
	Password string // only when given in the URL
	Mailbox  string // INBOX when the path is empty
}

// ParseIMAPURL parses imaps://user@host[:port][/mailbox] (implicit TLS) or
// imap://user@host[:port][/mailbox] (STARTTLS). The user name may hold an
// unescaped "@" (user@example.com@imap.example.com).
func ParseIMAPURL(raw string) (IMAPURL, error) {
	var r IMAPURL
	if len(raw) > 2048 {
		return r, errors.New("URL longer than 2048 bytes")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return r, fmt.Errorf("not a URL: %w", err)
	}
	port := ""
	switch strings.ToLower(u.Scheme) {
	case "imaps":
		r.Security, port = SecurityTLS, "993"
	case "imap":
		r.Security, port = SecuritySTARTTLS, "143"
	default:
		return r, fmt.Errorf("scheme %q: use imaps://user@host/INBOX (TLS) or imap://user@host/INBOX (STARTTLS)", u.Scheme)
	}
	if u.Opaque != "" {
		return r, errors.New("missing // after the scheme")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return r, errors.New("query and fragment are not allowed")
	}
	host := u.Hostname()
	if host == "" {
		return r, errors.New("no host")
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return r, fmt.Errorf("port %q out of range", p)
		}
		port = p
	}
	r.Addr = net.JoinHostPort(host, port)
	if u.User != nil {
		r.Username = u.User.Username()
		r.Password, _ = u.User.Password()
	}
	r.Mailbox = strings.TrimPrefix(u.Path, "/")
	if r.Mailbox == "" {
		r.Mailbox = "INBOX"
	}
	if strings.ContainsAny(r.Mailbox, "*%\r\n\x00") {
		return r, fmt.Errorf("mailbox %q holds a character not allowed in a folder name", r.Mailbox)
	}
	return r, nil
}

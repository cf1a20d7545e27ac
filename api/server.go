// Package api is the tlsrpt web server: the dashboard pages (rendered by
// ui), the JSON API under /api/v1/, authentication (admin password,
// sessions, API tokens), CSRF, rate limits, the RFC 8460 §5.4 HTTPS report
// receiver and the Prometheus metrics. Echo types stay in this package.
package api

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/ingest"
	"github.com/tlsrpt/tlsrpt/rollout"
	"github.com/tlsrpt/tlsrpt/rollout/publish"
	"github.com/tlsrpt/tlsrpt/ui"
)

// Config is what the server needs; cmd/tlsrpt fills it from Settings.
type Config struct {
	DB *db.DB
	// Pipeline stores reports POSTed to /tlsrpt; nil answers 503 there.
	Pipeline *ingest.Pipeline
	// Intake tunes the group commit of POST /tlsrpt (zero: defaults).
	Intake ingest.BatcherOptions
	// Inspector runs the live check; nil shows "not configured".
	Inspector *rollout.Inspector
	Log       *slog.Logger
	// AdminPassword, when set, is the admin's password (EnsureAdmin
	// stores its hash).
	AdminPassword string
	// SecureCookies marks cookies Secure: set it when the server (or the
	// proxy in front of it) speaks TLS.
	SecureCookies bool
	// PollerStatus, if set, reports the IMAP poller's state for /metrics
	// and the pages.
	PollerStatus func() PollerStatus
	// PublicURL is the external base URL (for links in the API and the
	// docs); optional.
	PublicURL string
	// PublicRate limits /tlsrpt, /healthz and /metrics per IPv4 address
	// and IPv6 /64; LoginRate limits POST /login the same way.
	PublicRate Rate
	LoginRate  Rate
	// CheckRate limits the live check (DNS and HTTPS to any name) per
	// user or API token.
	CheckRate Rate
	// MetricsToken, when set, is the bearer token /metrics wants before it
	// lists the per-domain series; without it they are not served.
	MetricsToken string
	// MaxReportBytes bounds a POSTed report body (compressed as sent).
	MaxReportBytes int64
	// TrustedProxies lists the proxies whose X-Forwarded-For is believed;
	// empty means the TCP peer is the client.
	TrustedProxies []netip.Prefix
	// SessionTTL is how long a login lasts.
	SessionTTL time.Duration
	// Notices are shown on every page (e.g. "DKIM verification is off").
	Notices []string
	// ReplicaLagNotice is the read replica's lag (db.DB.Read) past which
	// every page says that the dashboard is behind; zero means
	// DefaultReplicaLagNotice.
	ReplicaLagNotice time.Duration
	// Promote is how policy versions are published (docs/publishing.md): policy
	// hosting, the record publisher, notifications. New builds the
	// server's promoter from it when Publisher is nil.
	Promote publish.PromoteConfig
	// Publisher is the promotion service the handlers call; tlsrpt serve
	// passes the one its reconciler loop runs, so a change made on the
	// page kicks that loop. Nil: New builds one from Promote, with the
	// live check's Inspector (without the STARTTLS probe) as checker when
	// Promote has none.
	Publisher *publish.Promoter
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Resolver checks the reverse DNS of addresses that POST reports
	// (ingest.ConfirmedName); nil means the system's.
	Resolver ingest.Resolver
	// Getenv reads the secrets that publishing settings name, to show
	// whether they are set in this server's environment; nil means
	// os.Getenv.
	Getenv func(string) string
}

// PollerStatus is the IMAP poller's state as the metrics show it.
type PollerStatus struct {
	Connected   bool
	LastSuccess time.Time
	LastError   string
}

// Defaults for the zero values of Config.
const (
	DefaultMaxReportBytes = 10 << 20
	DefaultSessionTTL     = 7 * 24 * time.Hour
)

// DefaultPublicRate, DefaultLoginRate and DefaultCheckRate are the rate
// limits when Config leaves them zero.
var (
	DefaultPublicRate = Rate{Per: 60, Every: time.Minute, Burst: 30}
	DefaultLoginRate  = Rate{Per: 5, Every: time.Minute, Burst: 5}
	DefaultCheckRate  = Rate{Per: 10, Every: time.Minute, Burst: 5}
)

// Server is the web server. Create it with New.
type Server struct {
	cfg     Config
	log     *slog.Logger
	now     func() time.Time
	echo    *echo.Echo
	pages   *ui.Renderer
	rules   map[string]access // "METHOD /path" → who may call it
	public  *limiter
	login   *limiter
	checks  *limiter // per user or token (checkKey)
	metrics *metrics
	reg     *prometheus.Registry // every series: with the metrics token
	// processReg has the series without a domain label: for anyone.
	processReg *prometheus.Registry
	intake     *ingest.Batcher // group commit of POST /tlsrpt; nil without a pipeline
	// compareHash is bcrypt.CompareHashAndPassword; tests count the calls.
	compareHash func(hash, password []byte) error
	// pub is the promotion service (Config.Publisher).
	pub *publish.Promoter
	// refresher keeps the stored verdict badges fresh (verdict_badges.go).
	refresher verdictRefresher
	// lag caches the read replica's lag for the pages (replica.go).
	lag replicaLag
}

// access says who may call a route.
type access int

const (
	// accessPublic: anyone (rate-limited where it costs).
	accessPublic access = iota + 1
	// accessViewer: any logged-in user or token, viewer or admin. Reading.
	accessViewer
	// accessAdmin: admins only. Every state change.
	accessAdmin
)

func (a access) String() string {
	switch a {
	case accessPublic:
		return "public"
	case accessViewer:
		return "viewer"
	case accessAdmin:
		return "admin"
	}
	return "none"
}

// New builds the server and its routes; it parses the templates, so a
// broken page fails here.
func New(cfg Config) (*Server, error) {
	if cfg.DB == nil {
		return nil, errors.New("creating server: no database")
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Resolver == nil {
		cfg.Resolver = net.DefaultResolver
	}
	if cfg.MaxReportBytes <= 0 {
		cfg.MaxReportBytes = DefaultMaxReportBytes
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = DefaultSessionTTL
	}
	if cfg.PublicRate == (Rate{}) {
		cfg.PublicRate = DefaultPublicRate
	}
	if cfg.LoginRate == (Rate{}) {
		cfg.LoginRate = DefaultLoginRate
	}
	if cfg.CheckRate == (Rate{}) {
		cfg.CheckRate = DefaultCheckRate
	}
	pages, err := ui.New()
	if err != nil {
		return nil, fmt.Errorf("creating server: %w", err)
	}
	s := &Server{
		cfg:    cfg,
		log:    cfg.Log,
		now:    cfg.Now,
		pages:  pages,
		rules:  map[string]access{},
		public: newLimiter(cfg.PublicRate, maxLimiterKeys, cfg.Now),
		login:  newLimiter(cfg.LoginRate, maxLimiterKeys, cfg.Now),
		checks: newLimiter(cfg.CheckRate, maxLimiterKeys, cfg.Now),

		compareHash: bcrypt.CompareHashAndPassword,
	}
	s.refresher.kick = make(chan struct{}, 1)
	s.pub = cfg.Publisher
	if s.pub == nil {
		pc := cfg.Promote
		if pc.Checker == nil {
			pc.Checker = cfg.Inspector.WithoutSMTP()
		}
		s.pub = &publish.Promoter{DB: cfg.DB, PromoteConfig: pc, PublicURL: cfg.PublicURL, Now: cfg.Now, Log: cfg.Log}
	}
	if cfg.Pipeline != nil {
		s.intake = s.newIntake()
	}
	s.reg, s.processReg = prometheus.NewRegistry(), prometheus.NewRegistry()
	s.metrics = newMetrics(s)
	if err := s.metrics.register(s.reg, true); err != nil {
		return nil, fmt.Errorf("creating server: %w", err)
	}
	if err := s.metrics.register(s.processReg, false); err != nil {
		return nil, fmt.Errorf("creating server: %w", err)
	}
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = s.handleError
	e.IPExtractor = echo.ExtractIPDirect()
	if len(cfg.TrustedProxies) > 0 {
		opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
		for _, p := range cfg.TrustedProxies {
			opts = append(opts, echo.TrustIPRange(ipNet(p)))
		}
		e.IPExtractor = echo.ExtractIPFromXFFHeader(opts...)
	}
	e.Use(s.recoverPanic, s.securityHeaders, s.checkQuery, readYourWrites, s.authorize)
	s.echo = e
	s.routes()
	return s, nil
}

// Handler is the server's http.Handler.
func (s *Server) Handler() http.Handler { return s.echo }

// add registers a route with who may call it. It is the only way routes
// are added, so every route has a rule; authorize refuses any that has
// none.
func (s *Server) add(method, path string, a access, h echo.HandlerFunc) {
	key := method + " " + path
	if _, dup := s.rules[key]; dup {
		panic("api: route registered twice: " + key)
	}
	s.rules[key] = a
	s.echo.Add(method, path, h)
}

// routes lists every route. Reading needs a viewer, changing needs an
// admin; the few public routes are rate-limited.
func (s *Server) routes() {
	// Public.
	s.add(http.MethodGet, "/healthz", accessPublic, s.limited(s.healthz))
	s.add(http.MethodGet, "/metrics", accessPublic, s.limited(s.metricsHandler()))
	s.add(http.MethodPost, "/tlsrpt", accessPublic, s.limited(s.postReport))
	s.add(http.MethodGet, "/static/*", accessPublic, s.static)
	s.add(http.MethodGet, "/login", accessPublic, s.loginPage)
	s.add(http.MethodPost, "/login", accessPublic, s.loginSubmit)
	s.add(http.MethodGet, "/api/v1/openapi.json", accessPublic, s.openAPI)
	// The MTA-STS policy file for Host: mta-sts.<domain> (docs/publishing.md).
	s.add(http.MethodGet, "/.well-known/mta-sts.txt", accessPublic, echo.WrapHandler(publish.PolicyFile(s.cfg.DB)))

	// Pages.
	s.add(http.MethodPost, "/logout", accessViewer, s.logout)
	s.add(http.MethodGet, "/", accessViewer, s.overviewPage)
	s.add(http.MethodGet, "/domains/:domain", accessViewer, s.domainPage)
	s.add(http.MethodPost, "/domains", accessAdmin, s.addDomainForm)
	s.add(http.MethodGet, "/reports", accessViewer, s.reportsPage)
	s.add(http.MethodGet, "/reports/:id", accessViewer, s.reportPage)
	s.add(http.MethodGet, "/reports/:id/raw", accessViewer, s.apiReportRaw)
	s.add(http.MethodPost, "/reports/:id/exclude", accessAdmin, s.excludeForm)
	s.add(http.MethodPost, "/reports/:id/include", accessAdmin, s.includeForm)
	s.add(http.MethodPost, "/reports/:id/delete", accessAdmin, s.deleteReportForm)
	s.add(http.MethodGet, "/quarantine", accessViewer, s.quarantinePage)
	s.add(http.MethodGet, "/quarantine/:id/raw", accessViewer, s.quarantineRaw)
	s.add(http.MethodPost, "/quarantine/:id/reprocess", accessAdmin, s.reprocessForm)
	s.add(http.MethodPost, "/quarantine/:id/delete", accessAdmin, s.deleteQuarantineForm)
	s.add(http.MethodGet, "/settings", accessViewer, s.settingsPage)
	s.add(http.MethodGet, "/audit", accessAdmin, s.auditPage)
	s.add(http.MethodGet, "/api/v1/audit", accessAdmin, s.apiAudit)
	// The old all-domains page's form; the per-domain page posts below.
	s.add(http.MethodPost, "/settings/:domain", accessAdmin, s.saveDomainSettingsForm)
	s.add(http.MethodGet, "/settings/domains/:domain", accessViewer, s.domainSettingsPage)
	s.add(http.MethodPost, "/settings/domains/:domain", accessAdmin, s.saveDomainSettingsForm)
	s.add(http.MethodPost, "/settings/domains/:domain/remove", accessAdmin, s.removeDomainSettingsForm)
	s.add(http.MethodGet, "/settings/users", accessAdmin, s.usersPage)
	s.add(http.MethodPost, "/settings/users", accessAdmin, s.addUserForm)
	s.add(http.MethodPost, "/settings/users/:name/role", accessAdmin, s.userRoleForm)
	s.add(http.MethodPost, "/settings/users/:name/password", accessAdmin, s.resetPasswordForm)
	s.add(http.MethodPost, "/settings/users/:name/remove", accessAdmin, s.removeUserForm)
	s.add(http.MethodGet, "/settings/tokens", accessAdmin, s.tokensPage)
	s.add(http.MethodPost, "/settings/tokens", accessAdmin, s.createTokenForm)
	s.add(http.MethodPost, "/settings/tokens/:id/revoke", accessAdmin, s.revokeTokenForm)
	s.add(http.MethodGet, "/account", accessViewer, s.accountPage)
	s.add(http.MethodPost, "/account/password", accessViewer, s.accountPasswordForm)
	s.add(http.MethodPost, "/settings/reporter-rules", accessAdmin, s.addReporterRuleForm)
	s.add(http.MethodPost, "/settings/reporter-rules/:id/delete", accessAdmin, s.deleteReporterRuleForm)
	s.add(http.MethodPost, "/domains/:domain/promote", accessAdmin, s.promoteForm)
	s.add(http.MethodPost, "/domains/:domain/rollback", accessAdmin, s.rollbackForm)
	s.add(http.MethodPost, "/domains/:domain/mx-move", accessAdmin, s.mxMoveForm)
	s.add(http.MethodPost, "/domains/:domain/verify", accessAdmin, s.verifyForm)
	s.add(http.MethodPost, "/domains/:domain/push", accessAdmin, s.pushForm)
	s.add(http.MethodGet, "/domains/:domain/mta-sts.txt", accessViewer, s.policyDownload)
	s.add(http.MethodPost, "/domains/:domain/autopilot", accessAdmin, s.autopilotForm)
	s.add(http.MethodPost, "/promotions", accessAdmin, s.promotionsForm)

	// JSON API.
	s.add(http.MethodGet, "/api/v1/domains", accessViewer, s.apiDomains)
	s.add(http.MethodPost, "/api/v1/domains", accessAdmin, s.apiAddDomain)
	s.add(http.MethodDelete, "/api/v1/domains/:domain", accessAdmin, s.apiRemoveDomain)
	s.add(http.MethodGet, "/api/v1/domains/:domain/summary", accessViewer, s.apiSummary)
	s.add(http.MethodGet, "/api/v1/domains/:domain/series", accessViewer, s.apiSeries)
	s.add(http.MethodGet, "/api/v1/domains/:domain/breakdown/:by", accessViewer, s.apiBreakdown)
	s.add(http.MethodGet, "/api/v1/domains/:domain/verdict", accessViewer, s.apiVerdict)
	s.add(http.MethodGet, "/api/v1/domains/:domain/check", accessViewer, s.apiCheck)
	s.add(http.MethodGet, "/api/v1/domains/:domain/settings", accessViewer, s.apiSettings)
	s.add(http.MethodPut, "/api/v1/domains/:domain/settings", accessAdmin, s.apiPutSettings)
	s.add(http.MethodGet, "/api/v1/domains/:domain/promote", accessViewer, s.apiPromotePlan)
	s.add(http.MethodPost, "/api/v1/domains/:domain/promote", accessAdmin, s.apiPromote)
	s.add(http.MethodPost, "/api/v1/domains/:domain/rollback", accessAdmin, s.apiRollback)
	s.add(http.MethodPost, "/api/v1/domains/:domain/mx-move", accessAdmin, s.apiMXMove)
	s.add(http.MethodPost, "/api/v1/domains/:domain/verify", accessAdmin, s.apiVerifyPolicy)
	s.add(http.MethodPost, "/api/v1/domains/:domain/push", accessAdmin, s.apiPushRecord)
	s.add(http.MethodGet, "/api/v1/domains/:domain/versions", accessViewer, s.apiVersions)
	s.add(http.MethodGet, "/api/v1/domains/:domain/autopilot", accessViewer, s.apiAutopilot)
	s.add(http.MethodPut, "/api/v1/domains/:domain/autopilot", accessAdmin, s.apiPutAutopilot)
	s.add(http.MethodPut, "/api/v1/autopilot", accessAdmin, s.apiPutFleetAutopilot)
	s.add(http.MethodPost, "/api/v1/promotions", accessAdmin, s.apiPromotions)
	s.add(http.MethodGet, "/api/v1/reports", accessViewer, s.apiReports)
	s.add(http.MethodGet, "/api/v1/reports/:id", accessViewer, s.apiReport)
	s.add(http.MethodGet, "/api/v1/reports/:id/raw", accessViewer, s.apiReportRaw)
	s.add(http.MethodPost, "/api/v1/reports/:id/exclude", accessAdmin, s.apiExcludeReport)
	s.add(http.MethodPost, "/api/v1/reports/:id/include", accessAdmin, s.apiIncludeReport)
	s.add(http.MethodDelete, "/api/v1/reports/:id", accessAdmin, s.apiDeleteReport)
	s.add(http.MethodGet, "/api/v1/reporter-rules", accessViewer, s.apiReporterRules)
	s.add(http.MethodPost, "/api/v1/reporter-rules", accessAdmin, s.apiAddReporterRule)
	s.add(http.MethodDelete, "/api/v1/reporter-rules/:id", accessAdmin, s.apiDeleteReporterRule)
	s.add(http.MethodGet, "/api/v1/quarantine", accessViewer, s.apiQuarantine)
	s.add(http.MethodPost, "/api/v1/quarantine/:id/reprocess", accessAdmin, s.apiReprocess)
	s.add(http.MethodDelete, "/api/v1/quarantine/:id", accessAdmin, s.apiDeleteQuarantine)
	s.publishingRoutes()
}

func ipNet(p netip.Prefix) *net.IPNet {
	p = p.Masked()
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/reports"
	"github.com/tlsrpt/tlsrpt/rollout"
)

// metrics holds the server's own counters and what the collectors that
// read the store at scrape time export. Each Server has its own
// registries: no global state.
type metrics struct {
	s *Server
	// https counts POST /tlsrpt outcomes: stored, duplicate, refused.
	https *prometheus.CounterVec

	reports     *prometheus.Desc
	quarantined *prometheus.Desc
	sessions    *prometheus.Desc
	failures    *prometheus.Desc
	imapUp      *prometheus.Desc
	imapLast    *prometheus.Desc
	scrapeErr   *prometheus.Desc

	failureRate    *prometheus.Desc
	maxFailureRate *prometheus.Desc
	verified       *prometheus.Desc
	drift          *prometheus.Desc
	checked        *prometheus.Desc
	replicaLag     *prometheus.Desc
}

// httpsOutcomes are the outcomes of POST /tlsrpt; each series exists from
// the start, so that rate() sees the first refusal.
var httpsOutcomes = []string{"stored", "duplicate", "refused", "unavailable"}

// metricsTimeout bounds the store queries of one scrape.
const metricsTimeout = 10 * time.Second

// knownResultTypes are the result types exported as labels; others (the
// IANA registry can grow, and anyone can send a report) are summed as
// "other", so a sender cannot grow the label set.
var knownResultTypes = map[string]bool{
	reports.ResultSTARTTLSNotSupported: true, reports.ResultCertificateHostMismatch: true,
	reports.ResultCertificateExpired: true, reports.ResultCertificateNotTrusted: true,
	reports.ResultValidationFailure: true, reports.ResultTLSAInvalid: true,
	reports.ResultDNSSECInvalid: true, reports.ResultDANERequired: true,
	reports.ResultSTSPolicyFetchError: true, reports.ResultSTSPolicyInvalid: true,
	reports.ResultSTSWebPKIInvalid: true,
}

var knownPolicyTypes = map[string]bool{reports.PolicySTS: true, reports.PolicyTLSA: true, reports.PolicyNoPolicyFound: true}

func newMetrics(s *Server) *metrics {
	m := &metrics{
		s: s,
		https: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tlsrpt_https_reports_total",
			Help: "Reports POSTed to /tlsrpt since start, by outcome (stored, duplicate, refused, unavailable: answered 503 because the store was down or busy, or the poster's reverse DNS could not be checked).",
		}, []string{"outcome"}),
		reports: prometheus.NewDesc("tlsrpt_reports_stored",
			"Reports in the store by source (imap, https, file) and whether they count (trusted).", []string{"source", "trusted"}, nil),
		quarantined: prometheus.NewDesc("tlsrpt_quarantined_messages",
			"Messages in quarantine that were not reprocessed.", nil, nil),
		sessions: prometheus.NewDesc("tlsrpt_sessions_total",
			"Sessions reported by trusted reports per listed domain, policy type and outcome.", []string{"domain", "policy_type", "outcome"}, nil),
		failures: prometheus.NewDesc("tlsrpt_failed_sessions_total",
			"Failed sessions in trusted failure details per listed domain and result type.", []string{"domain", "result_type"}, nil),
		imapUp: prometheus.NewDesc("tlsrpt_imap_connected",
			"1 when the IMAP poller holds a connection.", nil, nil),
		imapLast: prometheus.NewDesc("tlsrpt_imap_last_success_timestamp_seconds",
			"Unix time of the IMAP poller's last successful poll.", nil, nil),
		scrapeErr: prometheus.NewDesc("tlsrpt_metrics_store_error",
			"1 when this scrape could not read the store.", nil, nil),
		failureRate: prometheus.NewDesc("tlsrpt_domain_failure_rate",
			"Failure rate (0..1) of a listed domain's trusted sts sessions over the verdict's recent window (its recent_days complete UTC days before today), before the verdict leaves out sender-side failures; 0 without sessions.", []string{"domain"}, nil),
		maxFailureRate: prometheus.NewDesc("tlsrpt_domain_max_failure_rate",
			"A listed domain's max_failure_rate threshold: the verdict blocks enforce at this failure rate or above.", []string{"domain"}, nil),
		verified: prometheus.NewDesc("tlsrpt_policy_verified",
			"1 when the last verification of a listed domain's newest policy version found it fully live; 0 while it is pending, when publishing its record failed or when it drifted.", []string{"domain"}, nil),
		drift: prometheus.NewDesc("tlsrpt_policy_drift",
			"1 when the last verification found the live policy file or _mta-sts record of a listed domain differing from its newest policy version after it was live.", []string{"domain"}, nil),
		replicaLag: prometheus.NewDesc("tlsrpt_replica_lag_seconds",
			"How far the read replica (DATABASE_READ_URL) is behind the primary; only with a replica.", nil, nil),
		checked: prometheus.NewDesc("tlsrpt_policy_checked_timestamp_seconds",
			"Unix time of the last verification of a listed domain's newest policy version.", []string{"domain"}, nil),
	}
	for _, o := range httpsOutcomes {
		m.https.WithLabelValues(o)
	}
	return m
}

// register adds the server's series to r: the process-wide ones, and the
// per-domain ones when domains is set.
func (m *metrics) register(r *prometheus.Registry, domains bool) error {
	for _, c := range []prometheus.Collector{m.https, storeMetrics{m, domains}, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		if err := r.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// storeMetrics is the collector reading the store at scrape time; domains
// says whether it exports the per-domain series (those with a domain
// label), which list every domain, its traffic and its policy state and
// so are served only with the metrics token.
type storeMetrics struct {
	m       *metrics
	domains bool
}

// Describe implements prometheus.Collector.
func (c storeMetrics) Describe(ch chan<- *prometheus.Desc) {
	m := c.m
	for _, d := range []*prometheus.Desc{m.reports, m.quarantined, m.imapUp, m.imapLast, m.scrapeErr, m.replicaLag} {
		ch <- d
	}
	if c.domains {
		for _, d := range []*prometheus.Desc{m.sessions, m.failures, m.failureRate, m.maxFailureRate, m.verified, m.drift, m.checked} {
			ch <- d
		}
	}
}

// Collect implements prometheus.Collector: it reads the store's totals.
func (c storeMetrics) Collect(ch chan<- prometheus.Metric) {
	m := c.m
	if f := m.s.cfg.PollerStatus; f != nil {
		st := f()
		up := 0.0
		if st.Connected {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(m.imapUp, prometheus.GaugeValue, up)
		if !st.LastSuccess.IsZero() {
			ch <- prometheus.MustNewConstMetric(m.imapLast, prometheus.GaugeValue, float64(st.LastSuccess.Unix()))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), metricsTimeout)
	defer cancel()
	if m.s.cfg.DB.HasReplica() {
		if lag, err := m.s.cfg.DB.ReplicaLag(ctx); err != nil {
			m.s.log.Error("Reading the replica lag failed", "error", err)
		} else {
			ch <- prometheus.MustNewConstMetric(m.replicaLag, prometheus.GaugeValue, lag.Seconds())
		}
	}
	n, err := m.s.cfg.DB.MetricsCounts(ctx)
	var health []db.DomainHealth
	if err == nil && c.domains {
		health, err = m.s.cfg.DB.MetricsDomains(ctx, m.s.now().UTC())
	}
	if err != nil {
		m.s.log.Error("Reading metrics from the store failed", "error", err)
		ch <- prometheus.MustNewConstMetric(m.scrapeErr, prometheus.GaugeValue, 1)
		return
	}
	ch <- prometheus.MustNewConstMetric(m.scrapeErr, prometheus.GaugeValue, 0)
	for _, r := range n.Reports {
		trusted := "false"
		if r.Trusted {
			trusted = "true"
		}
		ch <- prometheus.MustNewConstMetric(m.reports, prometheus.GaugeValue, float64(r.Count), r.Source, trusted)
	}
	ch <- prometheus.MustNewConstMetric(m.quarantined, prometheus.GaugeValue, float64(n.Quarantined))
	if !c.domains {
		return
	}
	type sk struct{ domain, typ, outcome string }
	sess := map[sk]int64{}
	for _, s := range n.Sessions {
		t := s.PolicyType
		if !knownPolicyTypes[t] {
			t = "other"
		}
		ks := sk{s.Domain, t, "successful"}
		sess[ks] = satAdd(sess[ks], s.Successful)
		kf := sk{s.Domain, t, "failed"}
		sess[kf] = satAdd(sess[kf], s.Failed)
	}
	for k, v := range sess {
		ch <- prometheus.MustNewConstMetric(m.sessions, prometheus.CounterValue, float64(v), k.domain, k.typ, k.outcome)
	}
	type fk struct{ domain, typ string }
	fails := map[fk]int64{}
	for _, f := range n.Failures {
		t := f.ResultType
		if !knownResultTypes[t] {
			t = "other"
		}
		k := fk{f.Domain, t}
		fails[k] = satAdd(fails[k], f.Failed)
	}
	for k, v := range fails {
		ch <- prometheus.MustNewConstMetric(m.failures, prometheus.CounterValue, float64(v), k.domain, k.typ)
	}
	for _, h := range health {
		m.collectHealth(ch, h)
	}
}

// collectHealth sends the verdict and policy series of one listed domain.
func (m *metrics) collectHealth(ch chan<- prometheus.Metric, h db.DomainHealth) {
	// ratio keeps a rate in [0, 1] when saturated sums leave failures
	// above sessions, as the verdict does.
	ch <- prometheus.MustNewConstMetric(m.failureRate, prometheus.GaugeValue, ratio(h.Failed, h.Sessions), h.Domain)
	ch <- prometheus.MustNewConstMetric(m.maxFailureRate, prometheus.GaugeValue, h.MaxFailureRate, h.Domain)
	if !h.HasVersion {
		return
	}
	verified, drift := 0.0, 0.0
	if rollout.StepsDone(h.Steps) && h.RecordError == "" {
		verified = 1
	}
	for _, st := range h.Steps {
		if st.State == rollout.StateDrifted {
			drift = 1
		}
	}
	ch <- prometheus.MustNewConstMetric(m.verified, prometheus.GaugeValue, verified, h.Domain)
	ch <- prometheus.MustNewConstMetric(m.drift, prometheus.GaugeValue, drift, h.Domain)
	if h.CheckedAt != nil {
		ch <- prometheus.MustNewConstMetric(m.checked, prometheus.GaugeValue, float64(h.CheckedAt.Unix()), h.Domain)
	}
}

// metricsHandler serves the process-wide series to anyone and, with
// Authorization: Bearer <Config.MetricsToken>, the per-domain ones too. A
// wrong token is refused (401), so a scraper with a stale credential
// fails loudly instead of quietly losing the per-domain series.
func (s *Server) metricsHandler() echo.HandlerFunc {
	opts := promhttp.HandlerOpts{ErrorLog: nil, Timeout: metricsTimeout + 5*time.Second}
	all := echo.WrapHandler(promhttp.HandlerFor(s.reg, opts))
	process := echo.WrapHandler(promhttp.HandlerFor(s.processReg, opts))
	want := sha256.Sum256([]byte(s.cfg.MetricsToken))
	return func(c echo.Context) error {
		h := c.Request().Header.Get(echo.HeaderAuthorization)
		if h == "" || s.cfg.MetricsToken == "" {
			return process(c)
		}
		tok, ok := strings.CutPrefix(h, "Bearer ")
		// Compared as digests in constant time: neither the content nor
		// the length of the token leaks through the answer's time.
		got := sha256.Sum256([]byte(tok))
		if !ok || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			c.Response().Header().Set("WWW-Authenticate", `Bearer realm="metrics"`)
			return errorf(http.StatusUnauthorized, "the metrics token is wrong; without one /metrics serves the process-wide series only")
		}
		return all(c)
	}
}

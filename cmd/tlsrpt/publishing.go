package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/rollout"
	"github.com/tlsrpt/tlsrpt/rollout/publish"
)

// publishSettings are the settings of this process's side of publishing
// (docs/publishing.md), shared by promote, rollback, mx-move and status:
// how it verifies what is live (flag first, then the environment). How a
// domain is published (hosting, the record publisher) is not among them:
// that is the domain's stored setting (publishingHook), the same for every
// process.
type publishSettings struct {
	resolver, caFile, policyPort string
	allowPrivate                 bool
}

// addPublishFlags registers the verification flags on fs.
func addPublishFlags(fs *flag.FlagSet, env *Env) *publishSettings {
	p := &publishSettings{}
	get := func(name string) string { return env.Getenv(name) }
	fs.StringVar(&p.resolver, "resolver", get("TLSRPT_RESOLVER"), "DNS server host:port for verification ($TLSRPT_RESOLVER; default the system's)")
	fs.StringVar(&p.caFile, "ca-file", get("TLSRPT_CA_FILE"), "extra trusted roots (PEM) for fetching the policy ($TLSRPT_CA_FILE)")
	fs.BoolVar(&p.allowPrivate, "allow-private", false, "let verification fetch the policy from private and loopback addresses ($TLSRPT_ALLOW_PRIVATE=1)")
	fs.StringVar(&p.policyPort, "policy-port", get("TLSRPT_POLICY_PORT"), "port verification fetches the policy from instead of 443 (a policy host on loopback: the demo, tests) ($TLSRPT_POLICY_PORT)")
	return p
}

// openPromoter opens the database (dbURL, else as openDatabase finds it)
// and the command line's promotion service over it: p's verification,
// each domain's stored publishing setting (publishingHook), actor "cli".
// On an error, code is the command's exit code: usage for a verification
// setting, failed for the database.
func (p *publishSettings) openPromoter(ctx context.Context, env *Env, dbURL string) (pr *publish.Promoter, closeDB func(), code int, err error) {
	pc, err := p.promoteConfig(env)
	if err != nil {
		return nil, nil, exitUsage, err
	}
	d, closeDB, err := openDatabase(ctx, env, dbURL)
	if err != nil {
		return nil, nil, exitFailed, err
	}
	return &publish.Promoter{DB: d, PromoteConfig: pc, Actor: "cli", Domains: publishingHook(d, env.Getenv, false)}, closeDB, 0, nil
}

// promoteConfig builds this process's publishing configuration: the
// verification inspector and the notifier. The promoter's Domains hook
// (publishingHook) says how each domain is published.
func (p *publishSettings) promoteConfig(env *Env) (publish.PromoteConfig, error) {
	var pc publish.PromoteConfig
	v, err := envBool(env, "TLSRPT_ALLOW_PRIVATE")
	if err != nil {
		return pc, err
	}
	p.allowPrivate = p.allowPrivate || v
	// Verification compares only the policy file and the record
	// (rollout.VerifySteps): no STARTTLS probe of the MX hosts, as in
	// serve's reconciler (publishingFromEnv).
	in := &rollout.Inspector{Resolver: p.resolver, AllowPrivate: p.allowPrivate, SkipSMTP: true}
	if p.caFile != "" {
		pool, err := loadCheckRoots(p.caFile)
		if err != nil {
			return pc, settingError("--ca-file/TLSRPT_CA_FILE", err)
		}
		in.RootCAs = pool
	}
	if p.policyPort != "" {
		in = in.WithPolicyPort(p.policyPort)
	}
	pc.Checker = in
	n, err := notifierFromEnv(env)
	if err != nil {
		return pc, err
	}
	pc.Notifier = n
	return pc, nil
}

// notifierFromEnv reads the regression notification settings: a
// Slack-compatible webhook and SMTP.
func notifierFromEnv(env *Env) (*publish.Notifier, error) {
	n := &publish.Notifier{WebhookURL: env.Getenv("TLSRPT_WEBHOOK_URL")}
	if addr := env.Getenv("TLSRPT_SMTP_ADDR"); addr != "" {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, settingError("TLSRPT_SMTP_ADDR", err)
		}
		pw, err := secretSetting(env, "TLSRPT_SMTP_PASSWORD")
		if err != nil {
			return nil, err
		}
		var to []string
		for _, a := range strings.Split(env.Getenv("TLSRPT_SMTP_TO"), ",") {
			if a = strings.TrimSpace(a); a != "" {
				to = append(to, a)
			}
		}
		from := env.Getenv("TLSRPT_SMTP_FROM")
		if from == "" || len(to) == 0 {
			return nil, errors.New("TLSRPT_SMTP_ADDR needs TLSRPT_SMTP_FROM and TLSRPT_SMTP_TO")
		}
		n.SMTP = &publish.SMTPConfig{Addr: addr, From: from, To: to, Username: env.Getenv("TLSRPT_SMTP_USERNAME"), Password: pw}
	}
	if !n.Configured() {
		return nil, nil
	}
	return n, nil
}

// policyHost is the HTTPS listener for mta-sts.<domain> that serve runs
// when TLSRPT_POLICY_LISTEN is set, with certificates from
// TLSRPT_POLICY_CERT_DIR and/or ACME (TLSRPT_ACME_CACHE_DIR).
func policyHostFromEnv(env *Env) (listen string, cfg publish.PolicyTLS, err error) {
	listen = env.Getenv("TLSRPT_POLICY_LISTEN")
	if listen == "" {
		return "", cfg, nil
	}
	if _, _, err := net.SplitHostPort(listen); err != nil {
		return "", cfg, settingError("TLSRPT_POLICY_LISTEN", err)
	}
	cfg = publish.PolicyTLS{CertDir: env.Getenv("TLSRPT_POLICY_CERT_DIR"), ACMECacheDir: env.Getenv("TLSRPT_ACME_CACHE_DIR"),
		ACMEEmail: env.Getenv("TLSRPT_ACME_EMAIL"), ACMEDirectory: env.Getenv("TLSRPT_ACME_DIRECTORY")}
	if cfg.CertDir == "" && cfg.ACMECacheDir == "" {
		return "", cfg, errors.New("TLSRPT_POLICY_LISTEN needs TLSRPT_POLICY_CERT_DIR or TLSRPT_ACME_CACHE_DIR")
	}
	return listen, cfg, nil
}

// runPublishing runs, until ctx ends, the reconciler loop (publishing,
// verification, drift and the watch: publish.Promoter.Run) and, when
// listen is set, the policy host listener. It returns when both stopped.
func runPublishing(ctx context.Context, pub *publish.Promoter, store *db.DB, listen string, tc publish.PolicyTLS, interval time.Duration, log *slog.Logger) error {
	done := make(chan struct{})
	go func() {
		defer close(done)
		pub.Run(ctx, interval)
	}()
	defer func() { <-done }()
	if listen == "" {
		<-ctx.Done()
		return nil
	}
	tlsCfg, err := publish.PolicyTLSConfig(tc, store)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return settingError("TLSRPT_POLICY_LISTEN", err)
	}
	hs := &http.Server{Handler: publish.PolicyOnly(publish.PolicyFile(store)), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: time.Minute, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(tls.NewListener(ln, tlsCfg)) }()
	log.Info("Serving MTA-STS policies", "address", ln.Addr().String())
	select {
	case <-ctx.Done():
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(shut)
		return nil
	case err := <-errc:
		return fmt.Errorf("policy host: %w", err)
	}
}

// servePublishing is the publishing part of tlsrpt serve that still comes
// from the environment: the notifier variables of docs/publishing.md,
// TLSRPT_POLICY_LISTEN and its certificates. How each domain is published
// (hosting, the record publisher) is the stored setting
// (applyStoredPublishing), never serve's own environment.
type servePublishing struct {
	cfg    publish.PromoteConfig
	listen string
	tls    publish.PolicyTLS
}

// publishingFromEnv reads the serve settings. How each domain is
// published is the stored setting (publishingHook, which also forces the
// demo's hosting), never serve's own environment. Verification uses
// serve's live-check inspector (its resolver, roots and --allow-private)
// without the STARTTLS probe, on TLSRPT_POLICY_PORT when set: the same
// checks as "tlsrpt status".
func publishingFromEnv(env *Env, inspector *rollout.Inspector) (*servePublishing, error) {
	var pc publish.PromoteConfig
	n, err := notifierFromEnv(env)
	if err != nil {
		return nil, err
	}
	pc.Notifier = n
	pc.Checker = inspector.WithoutSMTP()
	if port := env.Getenv("TLSRPT_POLICY_PORT"); port != "" && pc.Checker != nil {
		pc.Checker = pc.Checker.WithPolicyPort(port)
	}
	listen, tc, err := policyHostFromEnv(env)
	if err != nil {
		return nil, err
	}
	return &servePublishing{cfg: pc, listen: listen, tls: tc}, nil
}

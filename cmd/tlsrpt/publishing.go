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

// publishSettings are the settings of publishing policy versions
// (docs/publishing.md), shared by serve, promote and rollback: flag first,
// then the environment.
type publishSettings struct {
	hostPolicy bool
	// RFC 2136
	updateServer, updateZone, tsigKey, tsigAlg string
	// providers
	provider, providerZone string
	// verification
	resolver, caFile, policyPort string
	allowPrivate                 bool
}

// addPublishFlags registers the publishing flags on fs.
func addPublishFlags(fs *flag.FlagSet, env *Env) *publishSettings {
	p := &publishSettings{}
	get := func(name string) string { return env.Getenv(name) }
	fs.BoolVar(&p.hostPolicy, "host-policy", false, "tlsrpt serves the policy file at mta-sts.<domain> ($TLSRPT_HOST_POLICY=1); else it is handed over as a download")
	fs.StringVar(&p.updateServer, "dns-update-server", get("TLSRPT_DNS_UPDATE_SERVER"), "primary DNS server host:port for RFC 2136 updates of the TXT record ($TLSRPT_DNS_UPDATE_SERVER)")
	fs.StringVar(&p.updateZone, "dns-update-zone", get("TLSRPT_DNS_UPDATE_ZONE"), "zone of the updates; default the domain ($TLSRPT_DNS_UPDATE_ZONE)")
	fs.StringVar(&p.tsigKey, "tsig-key", get("TLSRPT_TSIG_KEY"), "TSIG key name; the secret is $TLSRPT_TSIG_SECRET(_FILE) ($TLSRPT_TSIG_KEY)")
	fs.StringVar(&p.tsigAlg, "tsig-algorithm", get("TLSRPT_TSIG_ALGORITHM"), "TSIG algorithm, default hmac-sha256 ($TLSRPT_TSIG_ALGORITHM)")
	fs.StringVar(&p.provider, "dns-provider", get("TLSRPT_DNS_PROVIDER"), "cloudflare or hetzner: push the TXT record through its API, token in $TLSRPT_CLOUDFLARE_TOKEN(_FILE) or $TLSRPT_HETZNER_TOKEN(_FILE) ($TLSRPT_DNS_PROVIDER)")
	fs.StringVar(&p.providerZone, "dns-provider-zone", get("TLSRPT_DNS_PROVIDER_ZONE"), "the provider's zone name (or Hetzner zone id); default the domain ($TLSRPT_DNS_PROVIDER_ZONE)")
	fs.StringVar(&p.resolver, "resolver", get("TLSRPT_RESOLVER"), "DNS server host:port for verification ($TLSRPT_RESOLVER; default the system's)")
	fs.StringVar(&p.caFile, "ca-file", get("TLSRPT_CA_FILE"), "extra trusted roots (PEM) for fetching the policy ($TLSRPT_CA_FILE)")
	fs.BoolVar(&p.allowPrivate, "allow-private", false, "let verification fetch the policy from private and loopback addresses ($TLSRPT_ALLOW_PRIVATE=1)")
	fs.StringVar(&p.policyPort, "policy-port", get("TLSRPT_POLICY_PORT"), "port verification fetches the policy from instead of 443 (a policy host on loopback: the demo, tests) ($TLSRPT_POLICY_PORT)")
	return p
}

// promoteConfig builds the publishing configuration from the settings and
// the secrets in the environment.
func (p *publishSettings) promoteConfig(env *Env) (publish.PromoteConfig, error) {
	var pc publish.PromoteConfig
	for name, dst := range map[string]*bool{"TLSRPT_HOST_POLICY": &p.hostPolicy, "TLSRPT_ALLOW_PRIVATE": &p.allowPrivate} {
		v, err := envBool(env, name)
		if err != nil {
			return pc, err
		}
		*dst = *dst || v
	}
	pc.HostPolicy = p.hostPolicy
	if p.updateServer != "" && p.provider != "" {
		return pc, errors.New("--dns-update-server and --dns-provider both set: choose one way to publish the record")
	}
	switch {
	case p.updateServer != "":
		if _, _, err := net.SplitHostPort(p.updateServer); err != nil {
			return pc, settingError("--dns-update-server/TLSRPT_DNS_UPDATE_SERVER", err)
		}
		secret, err := secretSetting(env, "TLSRPT_TSIG_SECRET")
		if err != nil {
			return pc, err
		}
		if (p.tsigKey == "") != (secret == "") {
			return pc, errors.New("--tsig-key/TLSRPT_TSIG_KEY and TLSRPT_TSIG_SECRET(_FILE) go together")
		}
		pc.Records = &rollout.DNSUpdate{Server: p.updateServer, Zone: p.updateZone, KeyName: p.tsigKey, Algorithm: p.tsigAlg, Secret: secret}
	case p.provider == rollout.RecordCloudflare:
		tok, err := secretSetting(env, "TLSRPT_CLOUDFLARE_TOKEN")
		if err != nil || tok == "" {
			return pc, fmt.Errorf("--dns-provider cloudflare needs TLSRPT_CLOUDFLARE_TOKEN(_FILE): %w", errors.Join(err, errors.New("not set")))
		}
		pc.Records = &rollout.Cloudflare{Token: tok, Zone: p.providerZone, ZoneID: env.Getenv("TLSRPT_CLOUDFLARE_ZONE_ID")}
	case p.provider == rollout.RecordHetzner:
		tok, err := secretSetting(env, "TLSRPT_HETZNER_TOKEN")
		if err != nil || tok == "" {
			return pc, fmt.Errorf("--dns-provider hetzner needs TLSRPT_HETZNER_TOKEN(_FILE): %w", errors.Join(err, errors.New("not set")))
		}
		pc.Records = &rollout.Hetzner{Token: tok, Zone: p.providerZone}
	case p.provider != "":
		return pc, settingError("--dns-provider/TLSRPT_DNS_PROVIDER", fmt.Errorf("%q is not cloudflare or hetzner", p.provider))
	}
	in := &rollout.Inspector{Resolver: p.resolver, AllowPrivate: p.allowPrivate}
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

// servePublishing is the publishing part of tlsrpt serve, from the
// environment only (TLSRPT_HOST_POLICY, the publisher and notifier
// variables of docs/publishing.md, TLSRPT_POLICY_LISTEN and its
// certificates).
type servePublishing struct {
	cfg    publish.PromoteConfig
	listen string
	tls    publish.PolicyTLS
}

// publishingFromEnv reads the serve settings; hostPolicy forces hosting
// on (the demo). Verification uses serve's live-check inspector (its
// resolver, roots and --allow-private) without the STARTTLS probe, on
// TLSRPT_POLICY_PORT when set: the same checks as "tlsrpt status".
func publishingFromEnv(env *Env, hostPolicy bool, inspector *rollout.Inspector) (*servePublishing, error) {
	empty := flag.NewFlagSet("publishing", flag.ContinueOnError)
	ps := addPublishFlags(empty, env)
	ps.hostPolicy = hostPolicy
	pc, err := ps.promoteConfig(env)
	if err != nil {
		return nil, err
	}
	pc.Checker = inspector.WithoutSMTP()
	if ps.policyPort != "" && pc.Checker != nil {
		pc.Checker = pc.Checker.WithPolicyPort(ps.policyPort)
	}
	listen, tc, err := policyHostFromEnv(env)
	if err != nil {
		return nil, err
	}
	return &servePublishing{cfg: pc, listen: listen, tls: tc}, nil
}

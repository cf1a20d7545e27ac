package main

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/tlsrpt/tlsrpt/api"
	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/ingest"
	"github.com/tlsrpt/tlsrpt/reports"
	"github.com/tlsrpt/tlsrpt/rollout"
	"github.com/tlsrpt/tlsrpt/rollout/publish"
)

func init() {
	register(command{name: "serve", summary: "run the web server and the IMAP poller", run: runServe})
}

// serveConfig is the server's configuration, read once from flags and the
// environment (flag first).
type serveConfig struct {
	dbURL   string
	migrate bool
	// web holds the web server's settings (api.LoadSettings, with the
	// --listen and --tls-* flags on top).
	web      api.Settings
	imapURL  string
	noIMAP   bool
	logLevel slog.Level
	logJSON  bool
	// inspector settings for the live check of the dashboard
	resolver     string
	caFile       string
	allowPrivate bool
}

// settingError names the setting at fault, so a mistake gives one line.
func settingError(name string, err error) error { return fmt.Errorf("%s: %w", name, err) }

// parseServeFlags reads the settings shared by serve and demo.
func parseServeFlags(fs *flag.FlagSet, env *Env) func() (*serveConfig, error) {
	c := &serveConfig{}
	var listen, tlsCert, tlsKey string
	fs.StringVar(&c.dbURL, "db", "", "PostgreSQL URL (default $DATABASE_URL, else the embedded PostgreSQL under $TLSRPT_DATA_DIR)")
	fs.BoolVar(&c.migrate, "migrate", false, "apply pending database migrations at start ($TLSRPT_MIGRATE=1)")
	fs.StringVar(&listen, "listen", "", "address of the web server ($TLSRPT_LISTEN, default "+api.DefaultListen+")")
	fs.StringVar(&tlsCert, "tls-cert", "", "certificate file: serve HTTPS ($TLSRPT_TLS_CERT)")
	fs.StringVar(&tlsKey, "tls-key", "", "private key file for --tls-cert ($TLSRPT_TLS_KEY)")
	fs.StringVar(&c.imapURL, "imap", "", "rua mailbox, imaps://user@host:993/INBOX ($TLSRPT_IMAP_URL)")
	fs.BoolVar(&c.noIMAP, "no-imap", false, "run without the IMAP poller even when a mailbox is configured")
	fs.StringVar(&c.resolver, "resolver", env.Getenv("TLSRPT_RESOLVER"), "DNS server host:port for live checks ($TLSRPT_RESOLVER; default the system's)")
	fs.StringVar(&c.caFile, "ca-file", env.Getenv("TLSRPT_CA_FILE"), "extra trusted roots (PEM) for policy fetches ($TLSRPT_CA_FILE)")
	fs.BoolVar(&c.allowPrivate, "allow-private", false, "let live checks fetch from private and loopback addresses ($TLSRPT_ALLOW_PRIVATE=1)")
	return func() (*serveConfig, error) {
		web, err := api.LoadSettings(env.Getenv)
		if err != nil {
			return nil, err
		}
		if listen != "" {
			web.Listen = listen
		}
		if tlsCert != "" || tlsKey != "" {
			web.TLSCert, web.TLSKey = tlsCert, tlsKey
			web.SecureCookies = web.SecureCookies || env.Getenv("TLSRPT_SECURE_COOKIES") == ""
		}
		// Behind a TLS-terminating proxy the public URL says https.
		if strings.HasPrefix(web.PublicURL, "https://") && env.Getenv("TLSRPT_SECURE_COOKIES") == "" {
			web.SecureCookies = true
		}
		if err := web.Validate(); err != nil {
			return nil, err
		}
		c.web = web
		for name, dst := range map[string]*bool{"TLSRPT_MIGRATE": &c.migrate, "TLSRPT_ALLOW_PRIVATE": &c.allowPrivate, "TLSRPT_LOG_JSON": &c.logJSON} {
			v, err := envBool(env, name)
			if err != nil {
				return nil, err
			}
			*dst = *dst || v
		}
		if lv := env.Getenv("TLSRPT_LOG_LEVEL"); lv != "" {
			if err := c.logLevel.UnmarshalText([]byte(lv)); err != nil {
				return nil, settingError("TLSRPT_LOG_LEVEL", fmt.Errorf("%q is not debug, info, warn or error", lv))
			}
		}
		return c, nil
	}
}

// envBool reads a boolean variable: 1/true/yes or 0/false/no or empty.
func envBool(env *Env, name string) (bool, error) {
	switch strings.ToLower(env.Getenv(name)) {
	case "", "0", "false", "no":
		return false, nil
	case "1", "true", "yes":
		return true, nil
	}
	return false, fmt.Errorf("%s: %q is not a boolean (use 1 or 0)", name, env.Getenv(name))
}

// secretSetting reads NAME or the file named by NAME_FILE (not both).
func secretSetting(env *Env, name string) (string, error) {
	v, file := env.Getenv(name), env.Getenv(name+"_FILE")
	if v != "" && file != "" {
		return "", fmt.Errorf("%s and %s_FILE are both set: use one", name, name)
	}
	if file == "" {
		return v, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", settingError(name+"_FILE", err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

func newLogger(env *Env, c *serveConfig) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.logLevel}
	if c.logJSON {
		return slog.New(slog.NewJSONHandler(env.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(env.Stderr, opts))
}

func runServe(ctx context.Context, env *Env, args []string) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	setUsage(fs, env, "serve", "[flags]")
	parse := parseServeFlags(fs, env)
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	cfg, err := parse()
	if err != nil {
		fmt.Fprintf(env.Stderr, "tlsrpt serve: %v\n", err)
		return 2
	}
	log := newLogger(env, cfg)
	app := &app{env: env, cfg: cfg, log: log}
	if !cfg.noIMAP {
		ic, err := ingest.IMAPConfigFromEnv(env.Getenv, cfg.imapURL)
		switch {
		case errors.Is(err, ingest.ErrNoIMAP):
			log.Warn("No IMAP mailbox configured: reports arrive only by HTTPS POST and import", "setting", "TLSRPT_IMAP_URL")
		case err != nil:
			fmt.Fprintf(env.Stderr, "tlsrpt serve: %v\n", err)
			return 2
		default:
			if err := ic.Validate(); err != nil {
				fmt.Fprintf(env.Stderr, "tlsrpt serve: %v\n", err)
				return 2
			}
			app.imap = &ic
		}
	}
	if err := app.run(ctx); err != nil {
		fmt.Fprintf(env.Stderr, "tlsrpt serve: %v\n", err)
		return 1
	}
	return 0
}

// app is the running product: database, pipeline, poller and web server.
// serve and demo both run it; a test can run it on port 0.
type app struct {
	env  *Env
	cfg  *serveConfig
	log  *slog.Logger
	imap *ingest.IMAPConfig // nil: no poller
	// lookupTXT replaces DNS for DKIM keys (the demo); nil is DNS.
	lookupTXT func(ctx context.Context, name string) ([]string, error)
	notices   []string
	// ready, when set, is called with the web server's address and the
	// generated admin password ("" when none was generated).
	ready func(addr, adminPassword string)
	// store, when set, is used instead of opening one (the demo opens it
	// itself to fill it first).
	store *db.DB
	// hostPolicy serves the MTA-STS policies of promoted domains whatever
	// TLSRPT_HOST_POLICY says (the demo).
	hostPolicy bool
	// noProbes leaves out the daily STARTTLS probe: the demo's domains
	// are made up, and it sends no traffic of its own to the internet.
	// The live check then leaves out the probe of the MX hosts too.
	noProbes bool
	// The demo's simulated network (nil, "" in serve): the roots the live
	// check and verification trust instead of the system's, the port they
	// fetch the policy from instead of 443, and the promoter's getenv for
	// the secrets the stored publishing settings name.
	rootCAs       *x509.CertPool
	policyPort    string
	publishGetenv func(string) string
}

func (a *app) run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rc, err := retentionFromEnv(a.env)
	if err == nil && rc.keepDays != 0 {
		err = rc.validate()
	}
	if err != nil {
		return err
	}
	store := a.store
	if store == nil {
		d, closeDB, embedded, err := openDatabaseUnchecked(ctx, a.env, a.cfg.dbURL)
		if err != nil {
			return err
		}
		defer closeDB()
		if embedded {
			// Two shells in two directories would use two databases
			// without a word: say which one this is.
			dir, _ := filepath.Abs(dataDir(a.env))
			a.log.Info("Embedded PostgreSQL", "data_dir", dir, "setting", "TLSRPT_DATA_DIR")
		}
		if d.HasReplica() {
			a.log.Info("Pages, API and verdict read from the replica", "setting", "DATABASE_READ_URL")
		}
		if embedded || a.cfg.migrate {
			err = d.Migrate(ctx)
		} else if err = d.CheckSchema(ctx); errors.Is(err, db.ErrSchemaOutdated) {
			err = errors.New("the database schema is outdated: run \"tlsrpt migrate\" or start with --migrate")
		}
		if err != nil {
			return err
		}
		store = d
	}
	store.QuarantineMaxBytes = rc.quarantineMaxBytes
	if err := importLegacyPublishing(ctx, store, a.env, "serve", a.log); err != nil {
		return err
	}

	pipe := &ingest.Pipeline{Store: store, Limits: reports.DefaultLimits(), Log: a.log,
		VerifyDKIM: ingest.NewDKIMVerifier(a.lookupTXT)}
	inspector := &rollout.Inspector{Resolver: a.cfg.resolver, AllowPrivate: a.cfg.allowPrivate, Seen: store, RootCAs: a.rootCAs,
		SkipSMTP: a.noProbes}
	if a.cfg.caFile != "" {
		pool, err := loadCheckRoots(a.cfg.caFile)
		if err != nil {
			return settingError("--ca-file/TLSRPT_CA_FILE", err)
		}
		inspector.RootCAs = pool
	}
	if a.policyPort != "" {
		inspector = inspector.WithPolicyPort(a.policyPort)
	}

	var poller *ingest.Poller
	if a.imap != nil {
		p, err := ingest.NewPoller(*a.imap, pipe, store, a.log)
		if err != nil {
			return err
		}
		// Each fetch batch's reports in one transaction (3x faster).
		p.SetStoreBatch(store.StoreBatch)
		poller = p
	}
	apiCfg := api.Config{DB: store, Pipeline: pipe, Inspector: inspector, Log: a.log, Notices: a.notices,
		Resolver: netResolver(a.cfg.resolver), Getenv: a.env.Getenv}
	a.cfg.web.ApplyTo(&apiCfg)
	if poller != nil {
		apiCfg.PollerStatus = func() api.PollerStatus {
			st := poller.Status()
			return api.PollerStatus{Connected: st.Connected, LastSuccess: st.LastSuccess, LastError: st.LastError}
		}
	}
	pub, err := publishingFromEnv(a.env, inspector)
	if err != nil {
		return err
	}
	// One promoter: the handlers' changes kick the loop runPublishing
	// runs. How each domain is published is its stored setting, not this
	// process's environment (docs/publishing.md "Settings").
	warnDefaultSecret(ctx, store, a.env, a.log)
	secrets := a.env.Getenv
	if a.publishGetenv != nil {
		secrets = a.publishGetenv
	}
	promoter := &publish.Promoter{DB: store, PromoteConfig: pub.cfg, PublicURL: apiCfg.PublicURL, Log: a.log,
		Domains: publishingHook(store, secrets, a.hostPolicy)}
	apiCfg.Publisher = promoter
	srv, err := api.New(apiCfg)
	if err != nil {
		return err
	}
	generated, err := srv.EnsureAdmin(ctx)
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", a.cfg.web.Listen)
	if err != nil {
		return settingError("--listen/TLSRPT_LISTEN", err)
	}
	scheme := "http"
	if a.cfg.web.TLSCert != "" {
		scheme = "https"
	}

	var wg sync.WaitGroup
	errc := make(chan error, 3)
	httpCtx, stopHTTP := context.WithCancel(context.Background())
	defer stopHTTP()
	httpDone := make(chan struct{})
	go func() {
		defer close(httpDone)
		if err := srv.Serve(httpCtx, ln, a.cfg.web.TLSCert, a.cfg.web.TLSKey); err != nil {
			errc <- fmt.Errorf("web server: %w", err)
		}
	}()
	pollCtx, stopPoll := context.WithCancel(ctx)
	defer stopPoll()
	if poller != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := poller.Run(pollCtx); err != nil && !errors.Is(err, context.Canceled) {
				errc <- fmt.Errorf("imap poller: %w", err)
			}
		}()
	}
	// Publishing: verification of new policy versions, the watch, and
	// the policy host listener (docs/publishing.md).
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := runPublishing(pollCtx, promoter, store, pub.listen, pub.tls, time.Minute, a.log); err != nil {
			errc <- err
		}
	}()
	// The daily STARTTLS probe of each listed domain, with certificate
	// alerts (docs/policy-and-check.md).
	if !a.noProbes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			srv.RunProbes(pollCtx)
		}()
	}
	// The autopilot's daily evaluation of the domains that have it on
	// (docs/autopilot.md): hourly rounds, one evaluation per domain and
	// UTC day.
	wg.Add(1)
	go func() {
		defer wg.Done()
		srv.Autopilot().Run(pollCtx, time.Hour)
	}()
	// Partitions ahead of time and retention, daily (docs/retention.md).
	wg.Add(1)
	go func() {
		defer wg.Done()
		runStorageMaintenance(pollCtx, store, rc, maintenanceEvery, a.log)
	}()
	addr := ln.Addr().String()
	a.log.Info("Serving", "url", scheme+"://"+addr, "imap", poller != nil)
	if generated != "" {
		fmt.Fprintf(a.env.Stderr, "\nCreated the admin account. Log in as %q with the password:\n\n    %s\n\nIt is shown only this once; set TLSRPT_ADMIN_PASSWORD(_FILE) to choose your own.\n\n", api.AdminUser, generated)
	}
	if a.ready != nil {
		a.ready(addr, generated)
	}

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	// Stop taking requests first, then the workers.
	a.log.Info("Shutting down")
	stopHTTP()
	<-httpDone
	stopPoll()
	wg.Wait()
	return runErr
}

// netResolver is a resolver that asks the DNS server addr (host:port),
// the system's when addr is "": the same server as the live checks, so
// that one setting (TLSRPT_RESOLVER) decides which DNS tlsrpt trusts.
func netResolver(addr string) *net.Resolver {
	if addr == "" {
		return net.DefaultResolver
	}
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
}

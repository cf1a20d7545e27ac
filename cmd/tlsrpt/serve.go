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
	"os"
	"strings"
	"sync"
	"time"

	"github.com/tlsrpt/tlsrpt/api"
	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/ingest"
	"github.com/tlsrpt/tlsrpt/reports"
	"github.com/tlsrpt/tlsrpt/rollout"
)

func init() {
	register(command{name: "serve", summary: "run the web server and the IMAP poller", run: runServe})
}

// serveConfig is the server's configuration, read once from flags and the
// environment (flag first).
type serveConfig struct {
	dbURL     string
	migrate   bool
	listen    string
	tlsCert   string
	tlsKey    string
	publicURL string
	adminPW   string
	imapURL   string
	noIMAP    bool
	logLevel  slog.Level
	logJSON   bool
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
	get := func(name, def string) string {
		if v := env.Getenv(name); v != "" {
			return v
		}
		return def
	}
	fs.StringVar(&c.dbURL, "db", "", "PostgreSQL URL (default $DATABASE_URL, else the embedded PostgreSQL under $TLSRPT_DATA_DIR)")
	fs.BoolVar(&c.migrate, "migrate", false, "apply pending database migrations at start ($TLSRPT_MIGRATE=1)")
	fs.StringVar(&c.listen, "listen", get("TLSRPT_LISTEN", "127.0.0.1:8080"), "address of the web server ($TLSRPT_LISTEN)")
	fs.StringVar(&c.tlsCert, "tls-cert", get("TLSRPT_TLS_CERT", ""), "certificate file: serve HTTPS ($TLSRPT_TLS_CERT)")
	fs.StringVar(&c.tlsKey, "tls-key", get("TLSRPT_TLS_KEY", ""), "private key file for --tls-cert ($TLSRPT_TLS_KEY)")
	fs.StringVar(&c.imapURL, "imap", "", "rua mailbox, imaps://user@host:993/INBOX ($TLSRPT_IMAP_URL)")
	fs.BoolVar(&c.noIMAP, "no-imap", false, "run without the IMAP poller even when a mailbox is configured")
	fs.StringVar(&c.resolver, "resolver", get("TLSRPT_RESOLVER", ""), "DNS server host:port for live checks ($TLSRPT_RESOLVER; default the system's)")
	fs.StringVar(&c.caFile, "ca-file", get("TLSRPT_CA_FILE", ""), "extra trusted roots (PEM) for policy fetches ($TLSRPT_CA_FILE)")
	fs.BoolVar(&c.allowPrivate, "allow-private", false, "let live checks fetch from private and loopback addresses ($TLSRPT_ALLOW_PRIVATE=1)")
	return func() (*serveConfig, error) {
		c.publicURL = env.Getenv("TLSRPT_PUBLIC_URL")
		if (c.tlsCert == "") != (c.tlsKey == "") {
			return nil, errors.New("--tls-cert/TLSRPT_TLS_CERT and --tls-key/TLSRPT_TLS_KEY go together: set both or neither")
		}
		if _, _, err := net.SplitHostPort(c.listen); err != nil {
			return nil, settingError("--listen/TLSRPT_LISTEN", err)
		}
		for name, dst := range map[string]*bool{"TLSRPT_MIGRATE": &c.migrate, "TLSRPT_ALLOW_PRIVATE": &c.allowPrivate, "TLSRPT_LOG_JSON": &c.logJSON} {
			v, err := envBool(env, name)
			if err != nil {
				return nil, err
			}
			*dst = *dst || v
		}
		pw, err := secretSetting(env, "TLSRPT_ADMIN_PASSWORD")
		if err != nil {
			return nil, err
		}
		c.adminPW = pw
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
	parse := parseServeFlags(fs, env)
	if err := fs.Parse(args); err != nil {
		return 2
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
}

func (a *app) run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	store := a.store
	if store == nil {
		d, closeDB, embedded, err := openDatabaseUnchecked(ctx, a.env, a.cfg.dbURL)
		if err != nil {
			return err
		}
		defer closeDB()
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

	pipe := &ingest.Pipeline{Store: store, Limits: reports.DefaultLimits(), Log: a.log,
		VerifyDKIM: ingest.NewDKIMVerifier(a.lookupTXT)}
	inspector := &rollout.Inspector{Resolver: a.cfg.resolver, AllowPrivate: a.cfg.allowPrivate, Seen: store}
	if a.cfg.caFile != "" {
		pool, err := loadCheckRoots(a.cfg.caFile)
		if err != nil {
			return settingError("--ca-file/TLSRPT_CA_FILE", err)
		}
		inspector.RootCAs = pool
	}

	var poller *ingest.Poller
	if a.imap != nil {
		p, err := ingest.NewPoller(*a.imap, pipe, store, a.log)
		if err != nil {
			return err
		}
		poller = p
	}
	apiCfg := api.Config{DB: store, Pipeline: pipe, Inspector: inspector, Log: a.log,
		AdminPassword: a.cfg.adminPW, SecureCookies: a.cfg.tlsCert != "" || strings.HasPrefix(a.cfg.publicURL, "https://"),
		PublicURL: a.cfg.publicURL, Notices: a.notices}
	if poller != nil {
		apiCfg.PollerStatus = func() api.PollerStatus {
			st := poller.Status()
			return api.PollerStatus{Connected: st.Connected, LastSuccess: st.LastSuccess, LastError: st.LastError}
		}
	}
	pub, err := publishingFromEnv(a.env, a.hostPolicy)
	if err != nil {
		return err
	}
	apiCfg.Promote = pub.cfg
	srv, err := api.New(apiCfg)
	if err != nil {
		return err
	}
	generated, err := srv.EnsureAdmin(ctx)
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", a.cfg.listen)
	if err != nil {
		return settingError("--listen/TLSRPT_LISTEN", err)
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute,
		WriteTimeout: 2 * time.Minute, IdleTimeout: 2 * time.Minute, ErrorLog: slog.NewLogLogger(a.log.Handler(), slog.LevelWarn)}
	scheme := "http"
	if a.cfg.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(a.cfg.tlsCert, a.cfg.tlsKey)
		if err != nil {
			ln.Close()
			return settingError("--tls-cert/--tls-key", err)
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
		scheme = "https"
	}

	var wg sync.WaitGroup
	errc := make(chan error, 3)
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
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
		if err := runPublishing(pollCtx, srv, store, pub.listen, pub.tls, time.Minute, a.log); err != nil {
			errc <- err
		}
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
	// Stop taking requests first, then the workers (STYLE.md 5).
	a.log.Info("Shutting down")
	shutCtx, cancelShut := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancelShut()
	if err := hs.Shutdown(shutCtx); err != nil {
		hs.Close()
	}
	stopPoll()
	wg.Wait()
	return runErr
}

package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"

	"github.com/tlsrpt/tlsrpt/api"
	"github.com/tlsrpt/tlsrpt/ingest"
	"github.com/tlsrpt/tlsrpt/reports/reportgen"
)

func init() {
	register(command{name: "demo", summary: "run the product on a realistic 30-day demo mailbox", run: runDemo})
}

// demoDataDir keeps the demo's database with --keep.
const demoDataDir = "./tlsrpt-demo-data"

// errDemoDatabase is a --db the demo refuses: not empty.
var errDemoDatabase = errors.New("refusing the database")

// demoMailboxUser is the demo's rua address and IMAP login.
const demoMailboxUser = "tlsrpt@example.com"

func runDemo(ctx context.Context, env *Env, args []string) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	setUsage(fs, env, "demo", "[--listen ADDR] [--keep] [--db URL-of-an-empty-database]")
	parse := parseServeFlags(fs, env)
	fs.Lookup("db").Usage = "an empty PostgreSQL database to fill with the demo, refused when it has any table (default: a private cluster; DATABASE_URL is ignored)"
	keep := fs.Bool("keep", false, "keep the demo database in "+demoDataDir+" (default: a fresh one each run, removed at exit)")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	cfg, err := parse()
	if err != nil {
		fmt.Fprintf(env.Stderr, "tlsrpt demo: %v\n", err)
		return 2
	}
	if err := demo(ctx, env, cfg, *keep); err != nil {
		fmt.Fprintf(env.Stderr, "tlsrpt demo: %v\n", err)
		if errors.Is(err, errDemoDatabase) {
			return 2
		}
		return 1
	}
	return 0
}

func demo(ctx context.Context, env *Env, cfg *serveConfig, keep bool) error {
	log := newLogger(env, cfg)
	// The demo's data directory: a fresh temporary one unless --keep.
	dataDir := demoDataDir
	if !keep {
		dir, err := os.MkdirTemp("", "tlsrpt-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		// The postgres user (when running as root) must traverse it.
		if err := os.Chmod(dir, 0o711); err != nil {
			return err
		}
		dataDir = dir
	}
	// The demo writes demo domains, reports and an admin password: it
	// never opens the database of the environment (DATABASE_URL is a
	// production setting), only its own cluster, or an explicit --db that
	// is empty.
	denv := *env
	denv.Getenv = func(k string) string {
		switch k {
		case "TLSRPT_DATA_DIR":
			return dataDir
		case "DATABASE_READ_URL", "DATABASE_READ_URL_FILE":
			return ""
		case "DATABASE_URL", "TLSRPT_DATABASE_PASSWORD", "TLSRPT_DATABASE_PASSWORD_FILE":
			if cfg.dbURL == "" {
				return ""
			}
		}
		return env.Getenv(k)
	}
	started := time.Now()
	store, closeDB, _, err := openDatabaseUnchecked(ctx, &denv, cfg.dbURL)
	if err != nil {
		return err
	}
	defer closeDB()
	if cfg.dbURL != "" {
		tables, err := store.UserTables(ctx, 4)
		if err != nil {
			return err
		}
		if len(tables) > 0 {
			return fmt.Errorf("%w: --db names a database that already has tables (%s): the demo fills it with demo domains, reports and an admin password, so it takes only an empty database; create one (createdb tlsrpt_demo) or leave --db out for a private cluster",
				errDemoDatabase, strings.Join(tables, ", "))
		}
	}
	if err := store.Migrate(ctx); err != nil {
		return err
	}
	for _, d := range reportgen.DemoDomains {
		if _, _, err := store.AddDomain(ctx, d); err != nil {
			return fmt.Errorf("adding demo domain %s: %w", d, err)
		}
	}
	// The simulated network: DNS, the CA and the policy host
	// (demo_net.go), and each domain's publishing setting pointing at it.
	dnet, err := startDemoDNS()
	if err != nil {
		return err
	}
	defer dnet.close()
	if err := dnet.startPolicyHost(store, log); err != nil {
		return err
	}
	if err := dnet.storePublishing(ctx, store); err != nil {
		return err
	}
	if err := dnet.restoreRecords(ctx, store); err != nil {
		return err
	}
	dnsResolver := dnet.dns.Resolver()

	password := randomHex(12)
	imapAddr, stopIMAP, err := startDemoMailbox(password, reportgen.DemoMailbox(time.Now(), demoMailboxUser))
	if err != nil {
		return err
	}
	defer stopIMAP()
	ic, err := ingest.IMAPConfigFromEnv(func(k string) string {
		switch k {
		case ingest.EnvIMAPPassword:
			return password
		case ingest.EnvIMAPInsecureLoop:
			return "1"
		case ingest.EnvIMAPPollInterval:
			return "5s"
		}
		return ""
	}, "imap://"+strings.Replace(demoMailboxUser, "@", "%40", 1)+"@"+imapAddr+"/INBOX")
	if err == nil {
		err = ic.Validate()
	}
	if err != nil {
		return fmt.Errorf("configuring the demo mailbox: %w", err)
	}

	if cfg.web.AdminPassword == "" {
		cfg.web.AdminPassword = randomHex(8)
	}
	// Live checks and verification ask the demo's DNS, trust the demo CA
	// only, may fetch from loopback, and fetch the policy from the demo's
	// policy host port; the environment's own settings for them, and for
	// a policy host listener of serve's, do not apply to the demo.
	cfg.resolver, cfg.caFile, cfg.allowPrivate = dnet.dns.Addr, "", true
	aenv := *env
	aenv.Getenv = func(k string) string {
		switch k {
		case "TLSRPT_POLICY_PORT", "TLSRPT_POLICY_LISTEN", "TLSRPT_RESOLVER", "TLSRPT_CA_FILE":
			return ""
		}
		return env.Getenv(k)
	}
	a := &app{env: &aenv, cfg: cfg, log: log, imap: &ic, store: store, hostPolicy: true, noProbes: true,
		rootCAs: dnet.roots(), policyPort: dnet.policyPort, publishGetenv: dnet.getenv(aenv.Getenv),
		lookupTXT: func(ctx context.Context, name string) ([]string, error) { return dnsResolver.LookupTXT(ctx, name) },
		notices:   []string{dnet.notice()},
		ready: func(addr, _ string) {
			fmt.Fprintf(env.Stdout, "\ntlsrpt demo is running (up in %.1fs).\n\n    Dashboard: http://%s/\n    Login:     %s / %s\n\n"+
				"Demo mailbox: imap://%s (INBOX, %d messages: 30 days of reports for %s).\n"+
				"Demo DNS:     %s (UDP and TCP; try: dig @%s -p %s _mta-sts.%s TXT)\n"+
				"Policy host:  https://%s/.well-known/mta-sts.txt (demo CA; SNI/Host mta-sts.<domain>)\nPress Ctrl-C to stop.\n\n",
				time.Since(started).Seconds(), addr, api.AdminUser, cfg.web.AdminPassword, imapAddr,
				len(reportgen.DemoReports(time.Now()))+4, strings.Join(reportgen.DemoDomains, ", "),
				dnet.dns.Addr, dnsHost(dnet.dns.Addr), dnsPort(dnet.dns.Addr), reportgen.DemoReady, dnet.policyAddr)
		},
	}
	err = a.run(ctx)
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

// startDemoMailbox runs go-imap's in-memory server on a loopback port with
// the demo's rua mailbox filled with msgs.
func startDemoMailbox(password string, msgs [][]byte) (addr string, stop func(), err error) {
	addr, _, stop, err = startMemMailbox(password, msgs)
	return addr, stop, err
}

// startMemMailbox is startDemoMailbox that also returns the mailbox's user,
// to deliver more mail with appendMail while it runs.
func startMemMailbox(password string, msgs [][]byte) (addr string, user *imapmemserver.User, stop func(), err error) {
	mem := imapmemserver.New()
	user = imapmemserver.NewUser(demoMailboxUser, password)
	if err := user.Create("INBOX", nil); err != nil {
		return "", nil, nil, err
	}
	if err := appendMail(user, msgs); err != nil {
		return "", nil, nil, fmt.Errorf("filling the demo mailbox: %w", err)
	}
	mem.AddUser(user)
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return mem.NewSession(), nil, nil
		},
		Caps: imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapMove: {}, imap.CapUIDPlus: {}, imap.CapNamespace: {},
			imap.CapIdle: {}},
		// Plaintext on loopback only: the listener below is 127.0.0.1.
		InsecureAuth: true,
		Logger:       discardPrintf{},
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, nil, err
	}
	go srv.Serve(ln)
	return ln.Addr().String(), user, func() { srv.Close() }, nil
}

// appendMail delivers msgs to the user's INBOX, an hour old and a second
// apart in arrival time.
func appendMail(user *imapmemserver.User, msgs [][]byte) error {
	base := time.Now().Add(-time.Hour)
	for i, m := range msgs {
		_, err := user.Append("INBOX", literal{bytes.NewReader(m), int64(len(m))},
			&imap.AppendOptions{Time: base.Add(time.Duration(i) * time.Second)})
		if err != nil {
			return err
		}
	}
	return nil
}

// literal is an imap.LiteralReader over bytes.
type literal struct {
	*bytes.Reader
	size int64
}

func (l literal) Size() int64 { return l.size }

type discardPrintf struct{}

func (discardPrintf) Printf(string, ...any) {}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/tlsrpt/tlsrpt/rollout"
)

func init() {
	register(command{name: "check", summary: "inspect a domain's live MTA-STS and TLS-RPT setup", run: runCheck})
}

// checkMaxCAFile bounds the --ca-file read of "tlsrpt check".
const checkMaxCAFile = 4 << 20

// runCheck is the "tlsrpt check DOMAIN" contract of docs/cli.md: one line
// per finding with its fix, or with --json the rollout.CheckResult. It
// exits 0 when no problem of severity error was found, 1 when one was,
// and 2 on a usage error or an invalid domain.
func runCheck(ctx context.Context, env *Env, args []string) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	// The same settings as serve's, from the same variables: one source
	// for what DNS and which roots tlsrpt trusts.
	envPrivate, envErr := envBool(env, "TLSRPT_ALLOW_PRIVATE")
	resolver := fs.String("resolver", env.Getenv("TLSRPT_RESOLVER"), "($TLSRPT_RESOLVER) DNS server HOST:PORT to query (default: the first nameserver of /etc/resolv.conf)")
	caFile := fs.String("ca-file", env.Getenv("TLSRPT_CA_FILE"), "($TLSRPT_CA_FILE) PEM file of extra trusted root certificates for the policy host and the MX hosts")
	allowPrivate := fs.Bool("allow-private", envPrivate, "($TLSRPT_ALLOW_PRIVATE=1) allow fetching the policy from, and probing MX hosts at, private, loopback and link-local addresses")
	smtpPort := fs.Int("smtp-port", 25, "port of the STARTTLS probe of each MX address (senders use 25; another port is for tests)")
	asJSON := fs.Bool("json", false, "print the result as one JSON object")
	dbURL := fs.String("db", "", "database URL, to notice a policy changed under the same id (default DATABASE_URL; without either that check is skipped)")
	timeout := fs.Duration("timeout", 10*time.Second, "timeout of each DNS query, of the policy fetch and of each SMTP session")
	fs.Usage = func() {
		fmt.Fprintln(env.Stderr, "usage: tlsrpt check [--resolver HOST:PORT] [--ca-file FILE] [--allow-private] [--smtp-port PORT] [--json] [--db URL] DOMAIN")
		printFlags(env, fs, "check")
	}
	// Flags may come before and after the domain.
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if envErr != nil {
		fmt.Fprintf(env.Stderr, "tlsrpt check: %v\n", envErr)
		return 2
	}
	domain := fs.Arg(0)
	if domain == "" || fs.NArg() > 1 {
		fs.Usage()
		return 2
	}
	if *smtpPort < 1 || *smtpPort > 65535 {
		fmt.Fprintf(env.Stderr, "tlsrpt check: --smtp-port %d is not a port\n", *smtpPort)
		return 2
	}
	in := &rollout.Inspector{Resolver: *resolver, AllowPrivate: *allowPrivate, Timeout: *timeout, SMTPPort: *smtpPort}
	if *caFile != "" {
		pool, err := loadCheckRoots(*caFile)
		if err != nil {
			fmt.Fprintf(env.Stderr, "tlsrpt check: %v\n", err)
			return 2
		}
		in.RootCAs = pool
	}
	if *dbURL != "" || env.Getenv("DATABASE_URL") != "" {
		d, closeDB, err := openDatabase(ctx, env, *dbURL)
		if err != nil {
			fmt.Fprintf(env.Stderr, "tlsrpt check: %v\n", err)
			return 1
		}
		defer closeDB()
		in.Seen = d
	}
	res := in.Check(ctx, domain)
	if res.Error != "" {
		fmt.Fprintf(env.Stderr, "tlsrpt check: %s\n", res.Error)
		return 2
	}
	var err error
	if *asJSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		err = enc.Encode(res)
	} else {
		err = writeCheck(env.Stdout, res, in.Seen != nil)
	}
	if err != nil {
		fmt.Fprintf(env.Stderr, "tlsrpt check: writing output: %v\n", err)
		return 1
	}
	if res.Errors() > 0 {
		return 1
	}
	return 0
}

// loadCheckRoots returns the system roots plus the certificates of a PEM file.
func loadCheckRoots(name string) (*x509.CertPool, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("reading ca file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, checkMaxCAFile+1))
	if err != nil {
		return nil, fmt.Errorf("reading ca file %s: %w", name, err)
	}
	if len(b) > checkMaxCAFile {
		return nil, fmt.Errorf("reading ca file %s: larger than %d bytes", name, checkMaxCAFile)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("reading ca file %s: no PEM certificate in it", name)
	}
	return pool, nil
}

// writeCheck prints the state found, then one line per finding with its
// fix.
func writeCheck(w io.Writer, r *rollout.CheckResult, withHistory bool) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n", r.Domain)
	switch {
	case r.Record.Valid:
		fmt.Fprintf(&b, "  record  %s: %s\n", r.Record.Name, r.Record.Found[0])
	case len(r.Record.Found) > 0:
		fmt.Fprintf(&b, "  record  %s: %s\n", r.Record.Name, strings.Join(r.Record.Found, " | "))
	default:
		fmt.Fprintf(&b, "  record  %s: none\n", r.Record.Name)
	}
	if p, ok := r.Policy.Policy(); ok {
		fmt.Fprintf(&b, "  policy  %s: mode %s, max_age %d, mx %s\n", r.Policy.URL, p.Mode, p.MaxAge, strings.Join(p.MX, ", "))
	} else {
		fmt.Fprintf(&b, "  policy  %s: not usable\n", r.Policy.URL)
	}
	var mx []string
	for _, m := range r.MX {
		s := fmt.Sprintf("%s (%d)", m.Host, m.Preference)
		if m.Pattern != "" {
			s += " matches " + m.Pattern
		}
		mx = append(mx, s)
	}
	if len(mx) == 0 {
		mx = []string{"none"}
	}
	fmt.Fprintf(&b, "  mx      %s\n", strings.Join(mx, ", "))
	for _, m := range r.MX {
		writeProbe(&b, m)
	}
	if r.TLSRPT.Valid {
		fmt.Fprintf(&b, "  tlsrpt  %s: %s\n", r.TLSRPT.Name, r.TLSRPT.Found[0])
	} else {
		fmt.Fprintf(&b, "  tlsrpt  %s: %s\n", r.TLSRPT.Name, orNone(strings.Join(r.TLSRPT.Found, " | ")))
	}
	for _, p := range r.Problems {
		fmt.Fprintf(&b, "%-7s %s: %s", p.Severity, p.Code, p.Message)
		if p.Fix != "" {
			fmt.Fprintf(&b, "; fix: %s", p.Fix)
		}
		b.WriteString("\n")
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "note    %s\n", n)
	}
	if !withHistory {
		b.WriteString("note    no database: a policy changed under an unchanged id (id-not-changed) is not detected\n")
	}
	if len(r.Problems) == 0 {
		b.WriteString("ok      no problems found\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeProbe prints what the STARTTLS probe found at each address of m,
// one line each, and the TLSA records of m.
func writeProbe(b *strings.Builder, m rollout.MXCheck) {
	if m.ProbeError != "" {
		fmt.Fprintf(b, "  smtp    %s: %s\n", m.Host, m.ProbeError)
	}
	for _, p := range m.Addresses {
		fmt.Fprintf(b, "  smtp    %s %s: ", m.Host, p.Address)
		switch {
		case !p.Reachable:
			fmt.Fprintf(b, "unreachable (%s)\n", p.Error)
			continue
		case !p.STARTTLS && p.Error == "":
			b.WriteString("no STARTTLS\n")
			continue
		case p.Certificate == nil:
			fmt.Fprintf(b, "failed (%s)\n", p.Error)
			continue
		}
		c := p.Certificate
		fmt.Fprintf(b, "STARTTLS, %s %s, certificate %s for %s by %s, until %s (%d days left), ",
			p.TLSVersion, p.CipherSuite, c.Subject, strings.Join(c.SANs, " "), c.Issuer, c.NotAfter.Format(time.DateOnly), c.DaysLeft)
		if p.Verified {
			b.WriteString("valid\n")
		} else {
			fmt.Fprintf(b, "not valid: %s\n", p.VerifyError)
		}
	}
	for _, t := range m.TLSA {
		fmt.Fprintf(b, "  tlsa    _25._tcp.%s: %s (DANE, RFC 7672: noted, not judged)\n", m.Host, t)
	}
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

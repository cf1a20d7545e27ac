package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/internal/errtext"
	"github.com/tlsrpt/tlsrpt/rollout"
	"github.com/tlsrpt/tlsrpt/rollout/pubconf"
	"github.com/tlsrpt/tlsrpt/rollout/publish"
)

func init() {
	register(command{name: "publishing", summary: "show or set how a domain's policy is published (hosted or download; the TXT by hand, RFC 2136 or a DNS API)", run: runPublishingCmd})
}

// publishingSynopsis is the first line of the usage.
const publishingSynopsis = "[DOMAIN [--reset] | --default] [--policy hosted|download] [--record manual|rfc2136|cloudflare|hetzner] [--server HOST:PORT] [--zone ZONE] [--tsig-key NAME] [--tsig-algorithm ALG] [--credential NAME] [--json] [--db URL]"

// runPublishingCmd is "tlsrpt publishing" (docs/publishing.md "Settings"):
// without change flags it shows the effective setting of a domain (or of
// the fleet default, or every stored one) and whether the secret it names
// is in this shell's environment; with them it changes the fields given,
// keeping the others, and audits the change as "cli".
func runPublishingCmd(ctx context.Context, env *Env, args []string) int {
	fs := flag.NewFlagSet("publishing", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	dbURL := fs.String("db", "", "PostgreSQL URL (default: $DATABASE_URL, else the embedded database under $TLSRPT_DATA_DIR)")
	def := fs.Bool("default", false, "the fleet default: the setting of every domain without one of its own")
	asJSON := fs.Bool("json", false, "print the setting as JSON")
	reset := fs.Bool("reset", false, "remove the domain's own setting: the fleet default applies to it again")
	fields := map[string]*string{}
	for _, f := range []struct{ name, help string }{
		{"policy", "hosted (tlsrpt serves mta-sts.<domain>) or download (you serve the file)"},
		{"record", "how the _mta-sts TXT record is set: manual, rfc2136, cloudflare or hetzner"},
		{"server", "rfc2136: the primary DNS server, host:port"},
		{"zone", "the zone of the record (default the domain); for cloudflare and hetzner also the zone id"},
		{"tsig-key", "rfc2136: the TSIG key name (none: unsigned updates)"},
		{"tsig-algorithm", "rfc2136: " + strings.Join(db.TSIGAlgorithms, ", ") + " (default hmac-sha256)"},
		{"credential", "the NAME of the secret (TSIG secret or API token): each process reads $TLSRPT_SECRET_<NAME> or the file $TLSRPT_SECRET_<NAME>_FILE"},
	} {
		fields[f.name] = fs.String(f.name, "", f.help)
	}
	fs.Usage = func() {
		fmt.Fprintf(env.Stderr, "usage: tlsrpt publishing %s\n", publishingSynopsis)
		fmt.Fprintln(env.Stderr, "Without DOMAIN or --default it lists every stored setting. Without change flags it shows the effective")
		fmt.Fprintln(env.Stderr, "setting, where it comes from (domain, default, built-in) and whether its secret is set in this environment;")
		fmt.Fprintln(env.Stderr, "with them it changes those fields and keeps the others; --reset gives the domain back to the fleet default.")
		fmt.Fprintln(env.Stderr, "Flags may stand before or after the domain.")
		printFlags(env, fs, "publishing")
		fmt.Fprintln(env.Stderr, "exit code: 0 done, 1 failure, 2 usage error (or an invalid setting)")
	}
	pos, code, ok := parseInterspersed(fs, args)
	if !ok {
		return code
	}
	changed := map[string]string{}
	fs.Visit(func(f *flag.Flag) {
		if p, ok := fields[f.Name]; ok {
			changed[f.Name] = *p
		}
	})
	fail := func(code int, err error) int {
		fmt.Fprintf(env.Stderr, "tlsrpt publishing: %s\n", errtext.Plain(err))
		return code
	}
	if len(pos) > 1 || (len(pos) == 1 && *def) || (len(pos) == 0 && !*def && len(changed) > 0) || (*reset && (len(pos) != 1 || len(changed) > 0)) {
		if len(pos) == 0 {
			fmt.Fprintln(env.Stderr, "tlsrpt publishing: give a DOMAIN or --default to change")
		}
		fs.Usage()
		return exitUsage
	}
	scope := db.DefaultPublishing
	if len(pos) == 1 {
		n, err := db.NormalizeDomain(pos[0])
		if err != nil {
			return fail(exitUsage, fmt.Errorf("%q: %w", pos[0], err))
		}
		scope = n
	}
	d, closeDB, err := openDatabase(ctx, env, *dbURL)
	if err != nil {
		return fail(exitFailed, err)
	}
	defer closeDB()
	out := func(views ...pubconf.View) int {
		if *asJSON {
			var v any = views
			if len(views) == 1 && (len(pos) == 1 || *def) {
				v = views[0]
			}
			enc := json.NewEncoder(env.Stdout)
			enc.SetIndent("", "  ")
			if err := enc.Encode(v); err != nil {
				return exitFailed
			}
			return 0
		}
		for i, v := range views {
			if i > 0 {
				fmt.Fprintln(env.Stdout)
			}
			printPublishing(env.Stdout, v)
		}
		return 0
	}
	if len(pos) == 0 && !*def {
		list, err := d.PublishingList(ctx)
		if err != nil {
			return fail(exitFailed, err)
		}
		views := []pubconf.View{}
		if len(list) == 0 || list[0].Domain != db.DefaultPublishing {
			views = append(views, pubconf.Describe(db.DefaultPublishing, db.BuiltInPublishing(), env.Getenv))
		}
		for _, p := range list {
			views = append(views, pubconf.Describe(p.Domain, p, env.Getenv))
		}
		return out(views...)
	}
	cur, err := d.Publishing(ctx, scope)
	if err != nil {
		return fail(exitFailed, err)
	}
	if *reset {
		removed, err := d.DeletePublishing(ctx, scope)
		if err != nil {
			return fail(exitFailed, err)
		}
		if removed {
			detail := map[string]any{"scope": "domain", "previous": cur.AuditDetail()}
			if _, err := d.AddAudit(ctx, db.AuditEntry{Actor: "cli", Action: "settings.publishing.reset", Domain: scope, Detail: detail}); err != nil {
				return fail(exitFailed, err)
			}
		}
		if cur, err = d.Publishing(ctx, scope); err != nil {
			return fail(exitFailed, err)
		}
	}
	if len(changed) == 0 {
		return out(pubconf.Describe(scope, cur, env.Getenv))
	}
	if scope != db.DefaultPublishing {
		listed, err := d.HasDomain(ctx, scope)
		if err != nil {
			return fail(exitFailed, err)
		}
		if !listed {
			return fail(exitFailed, fmt.Errorf("%s is not on the list: add it first (tlsrpt domain add %s)", scope, scope))
		}
	}
	next := cur
	next.Domain = scope
	for name, v := range changed {
		switch name {
		case "policy":
			next.Policy = v
		case "record":
			next.Record = v
		case "server":
			next.Server = v
		case "zone":
			next.Zone = v
		case "tsig-key":
			next.TSIGKey = v
		case "tsig-algorithm":
			next.TSIGAlgorithm = v
		case "credential":
			next.Credential = v
		}
	}
	// A flag the chosen method does not use is a mistake on the command
	// line, not something to drop without a word.
	method := strings.ToLower(strings.TrimSpace(next.Record))
	for _, name := range []string{"server", "tsig-key", "tsig-algorithm"} {
		if _, ok := changed[name]; ok && method != rollout.RecordRFC2136 && changed[name] != "" {
			return fail(exitUsage, fmt.Errorf("--%s is for --record rfc2136, not %s", name, method))
		}
	}
	for _, name := range []string{"zone", "credential"} {
		if _, ok := changed[name]; ok && method == rollout.RecordManual && changed[name] != "" {
			return fail(exitUsage, fmt.Errorf("--%s is not used by --record manual", name))
		}
	}
	stored, err := d.SetPublishing(ctx, next, "cli")
	var pe *db.PublishingError
	if errors.As(err, &pe) {
		return fail(exitUsage, fmt.Errorf("--%s: %s", strings.ReplaceAll(pe.Field, "_", "-"), pe.Message))
	}
	if err != nil {
		return fail(exitFailed, err)
	}
	detail := stored.AuditDetail()
	detail["previous"] = cur.AuditDetail()
	detail["previous_source"] = cur.Source
	if _, err := d.AddAudit(ctx, db.AuditEntry{Actor: "cli", Action: "settings.publishing", Domain: stored.AuditDomain(), Detail: detail}); err != nil {
		return fail(exitFailed, err)
	}
	return out(pubconf.Describe(scope, stored, env.Getenv))
}

// printPublishing writes a setting as the CLI shows it.
func printPublishing(w io.Writer, v pubconf.View) {
	p := v.Setting
	name := v.Domain
	if name == db.DefaultPublishing {
		name = "fleet default"
	}
	from := map[string]string{
		db.PublishingFromDomain:  "its own setting",
		db.PublishingFromDefault: "the fleet default (tlsrpt publishing --default)",
		db.PublishingBuiltIn:     "the built-in default: nothing is stored",
	}[p.Source]
	if v.Domain == db.DefaultPublishing && p.Source == db.PublishingFromDefault {
		from = "the stored fleet default"
	}
	fmt.Fprintf(w, "%s: from %s", name, from)
	if !p.UpdatedAt.IsZero() {
		fmt.Fprintf(w, ", set %s by %s", p.UpdatedAt.UTC().Format(time.RFC3339), p.UpdatedBy)
	}
	fmt.Fprintln(w)
	policy := "download: you serve the policy file at https://mta-sts.<domain>/.well-known/mta-sts.txt"
	if p.Policy == rollout.PolicyHosted {
		policy = "hosted: tlsrpt serve hosts the policy file at mta-sts.<domain>"
	}
	fmt.Fprintf(w, "  policy          %s\n", policy)
	fmt.Fprintf(w, "  record          %s\n", p.Record)
	line := func(label, value string) {
		if value != "" {
			fmt.Fprintf(w, "  %-15s %s\n", label, value)
		}
	}
	line("server", p.Server)
	zone := p.Zone
	if zone == "" && p.Record != rollout.RecordManual {
		zone = "(the domain)"
	}
	line("zone", zone)
	line("tsig key", p.TSIGKey)
	if p.TSIGKey != "" && p.TSIGAlgorithm == "" {
		line("tsig algorithm", "hmac-sha256 (default)")
	} else {
		line("tsig algorithm", p.TSIGAlgorithm)
	}
	if s := v.Secret; s != nil {
		state := "set in this environment"
		switch {
		case s.Problem != "":
			state = "unusable in this environment: " + s.Problem
		case !s.Present:
			state = "missing in this environment"
		}
		line("credential", fmt.Sprintf("%s (secret %s: %s)", s.Credential, s.Variable, state))
	}
}

// importLegacyPublishing runs at the start of migrate and serve: the old
// per-process publishing variables go once into the fleet default
// (pubconf.ImportLegacy), and are ignored, with a warning, afterwards.
func importLegacyPublishing(ctx context.Context, d *db.DB, env *Env, actor string, log *slog.Logger) error {
	if _, err := pubconf.ImportLegacy(ctx, d, env.Getenv, actor, log); err != nil {
		return fmt.Errorf("importing the publishing variables: %w", err)
	}
	return nil
}

// publishingHook is the promoter's per-domain configuration
// (publish.Promoter.Domains): the domain's stored setting (its own, else
// the fleet default, else the built-in one) with the secret read by the
// name the setting holds from this process's environment. forceHosted
// keeps hosting on (the demo). A missing secret is not an error here: the
// record publisher then fails every push with the variable to set, which
// the TXT step shows as its cause.
func publishingHook(d *db.DB, getenv func(string) string, forceHosted bool) func(context.Context, string) (publish.DomainConfig, error) {
	return func(ctx context.Context, domain string) (publish.DomainConfig, error) {
		host, records, err := pubconf.ForDomain(ctx, d, domain, getenv)
		if err != nil && records == nil {
			return publish.DomainConfig{}, err
		}
		return publish.DomainConfig{HostPolicy: host || forceHosted, Records: records}, nil
	}
}

// warnDefaultSecret logs at serve's start when the fleet default's secret
// is not usable in this process: its pushes would fail until it is set.
func warnDefaultSecret(ctx context.Context, d *db.DB, env *Env, log *slog.Logger) {
	p, err := d.Publishing(ctx, db.DefaultPublishing)
	if err != nil {
		return
	}
	if _, records, err := pubconf.Resolve(p, env.Getenv); err != nil && (records != nil || errors.Is(err, pubconf.ErrMissingSecret)) {
		log.WarnContext(ctx, "The secret of the publishing setting is not usable: pushes of the TXT record fail until it is set",
			"error", errtext.Plain(err), "setting", "tlsrpt publishing --default")
	}
}

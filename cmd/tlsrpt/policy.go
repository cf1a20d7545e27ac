package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/tlsrpt/tlsrpt/rollout"
)

func init() {
	register(command{name: "policy", summary: "write an MTA-STS policy file and its DNS records", run: runPolicy})
}

// listFlag is a repeatable flag whose values may also be comma-separated.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// runPolicy is the "tlsrpt policy" contract of docs/cli.md: the policy file
// (exact bytes, CRLF line ends) and the TXT records to publish, or with
// --json one object {policy, id, record_name, record_value, policy_url}.
// Refusals exit 1 naming the problem; warnings go to stderr.
func runPolicy(_ context.Context, env *Env, args []string) int {
	fs := flag.NewFlagSet("policy", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	domain := fs.String("domain", "", "the mail domain (the policy is served at mta-sts.DOMAIN)")
	mode := fs.String("mode", "", "policy mode: none, testing or enforce")
	var mx, rua listFlag
	fs.Var(&mx, "mx", "mx pattern (host name or *.domain); repeat or separate with commas")
	maxAge := fs.Int64("max-age", 0, "max_age in seconds, 0..31557600 (default 604800 for enforce, 86400 otherwise)")
	id := fs.String("id", "", "policy id, 1-32 letters and digits (default: the UTC time YYYYMMDDTHHMMSSZ)")
	preset := fs.String("preset", "", "add the mx patterns of a hoster: "+strings.Join(rollout.Presets(), ", "))
	fs.Var(&rua, "rua", "also write the TLS-RPT record with this report URI (mailto: or https:); repeatable")
	asJSON := fs.Bool("json", false, "print one JSON object")
	check := fs.String("check", "", "check a policy file you have (a path, or - for standard input): every problem with its line; exit 1 when any is an error")
	fs.Usage = func() {
		fmt.Fprintln(env.Stderr, "usage: tlsrpt policy --domain DOMAIN --mode none|testing|enforce --mx PATTERN [--mx ...] [--max-age SECONDS] [--id ID] [--preset NAME] [--rua URI] [--json]")
		fmt.Fprintln(env.Stderr, "       tlsrpt policy --check FILE|- [--json]")
		printFlags(env, fs, "policy")
	}
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(env.Stderr, "tlsrpt policy: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return 2
	}
	if *check != "" {
		return checkPolicyFile(env, *check, *asJSON)
	}
	if *domain == "" || *mode == "" {
		fmt.Fprintln(env.Stderr, "tlsrpt policy: --domain and --mode are required")
		fs.Usage()
		return 2
	}
	o := rollout.GenerateOptions{Domain: *domain, Mode: rollout.Mode(*mode), MX: mx, MaxAge: *maxAge, ID: *id, Preset: *preset, RUA: rua}
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "max-age" && *maxAge == 0 {
			o.ZeroMaxAge = true // an explicit --max-age 0 is published as such
		}
	})
	g, warnings, err := rollout.Generate(o)
	if err != nil {
		fmt.Fprintf(env.Stderr, "tlsrpt policy: %v\n", err)
		return 1
	}
	for _, w := range warnings {
		fmt.Fprintf(env.Stderr, "warning: %s\n", w)
	}
	if *asJSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		if err := enc.Encode(g); err != nil {
			fmt.Fprintf(env.Stderr, "tlsrpt policy: writing output: %v\n", err)
			return 1
		}
		return 0
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# 1. Serve this file as text/plain (lines end in CRLF) at\n#    %s\n", g.PolicyURL)
	b.WriteString(g.Policy)
	b.WriteString("\n# 2. Then publish the TXT record (every change of the file needs a new id):\n")
	fmt.Fprintf(&b, "%s IN TXT %q\n", g.RecordName, g.RecordValue)
	if g.TLSRPTRecordName != "" {
		b.WriteString("\n# TLS-RPT: where senders mail their reports:\n")
		fmt.Fprintf(&b, "%s IN TXT %q\n", g.TLSRPTRecordName, g.TLSRPTRecordValue)
	}
	if _, err := fmt.Fprint(env.Stdout, b.String()); err != nil {
		fmt.Fprintf(env.Stderr, "tlsrpt policy: writing output: %v\n", err)
		return 1
	}
	return 0
}

// maxPolicyFile bounds what --check reads: senders read at most 64 KiB,
// and LintPolicy names a larger file as such.
const maxPolicyFile = 64<<10 + 1

// checkPolicyFile is "tlsrpt policy --check": the problems of a policy
// file as "NAME: line N: error|warning: message", or with asJSON one
// object {file, ok, problems}; exit 1 when any is an error.
func checkPolicyFile(env *Env, name string, asJSON bool) int {
	var r io.Reader = env.Stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			fmt.Fprintf(env.Stderr, "tlsrpt policy: %v\n", err)
			return 1
		}
		defer f.Close()
		r = f
	}
	body, err := io.ReadAll(io.LimitReader(r, maxPolicyFile))
	if err != nil {
		fmt.Fprintf(env.Stderr, "tlsrpt policy: reading %s: %v\n", name, err)
		return 1
	}
	problems := rollout.LintPolicy(string(body))
	ok := true
	for _, p := range problems {
		if p.Severity == rollout.SeverityError {
			ok = false
		}
	}
	if asJSON {
		if problems == nil {
			problems = []rollout.LintProblem{}
		}
		out, _ := json.Marshal(struct {
			File     string                `json:"file"`
			OK       bool                  `json:"ok"`
			Problems []rollout.LintProblem `json:"problems"`
		}{name, ok, problems})
		fmt.Fprintln(env.Stdout, string(out))
	} else {
		for _, p := range problems {
			fmt.Fprintf(env.Stdout, "%s: %s\n", name, p)
		}
		if len(problems) == 0 {
			fmt.Fprintf(env.Stdout, "%s: ok\n", name)
		}
	}
	if !ok {
		return 1
	}
	return 0
}

package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/internal/errtext"
	"github.com/tlsrpt/tlsrpt/rollout"
	"github.com/tlsrpt/tlsrpt/rollout/publish"
)

func init() {
	register(command{name: "promote", summary: "publish mode enforce for a domain: policy file, then TXT record, then verify", run: runPromote})
}

// Exit codes of promote and rollback.
const (
	exitPublished = 0 // the version is made and live as far as the command goes (verified, with --wait)
	exitFailed    = 1 // an error, a failed step (TXT push, hosted file not served), or --wait ran out
	exitUsage     = 2
	exitRefused   = 3 // blocked without override, override without confirmation, nothing to change
)

// waitInterval is how often --wait runs a reconciler pass.
const waitInterval = 10 * time.Second

// changeFlags are the flags promote and rollback share.
type changeFlags struct {
	dbURL   string
	reason  string
	id      string
	asJSON  bool
	wait    time.Duration
	publish *publishSettings
}

func addChangeFlags(fs *flag.FlagSet, env *Env) *changeFlags {
	c := &changeFlags{}
	fs.StringVar(&c.dbURL, "db", "", "PostgreSQL URL (default $DATABASE_URL, else the embedded PostgreSQL under $TLSRPT_DATA_DIR)")
	fs.StringVar(&c.reason, "reason", "", "why: kept with the version and in the audit log")
	fs.StringVar(&c.id, "id", "", "policy id to publish (default the UTC time, never one used before)")
	fs.BoolVar(&c.asJSON, "json", false, "print the version as JSON")
	fs.DurationVar(&c.wait, "wait", 0, "poll DNS and HTTPS until the version is live, at most this long (e.g. 10m); 0 checks once")
	c.publish = addPublishFlags(fs, env)
	return c
}

func runPromote(ctx context.Context, env *Env, args []string) int {
	if allReady(args) {
		return runPromoteAllReady(ctx, env, args)
	}
	fs := flag.NewFlagSet("promote", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	cf := addChangeFlags(fs, env)
	override := fs.Bool("override", false, "promote although the verdict is blocked (needs --confirm and --reason)")
	confirm := fs.String("confirm", "", "with --override: the domain typed again")
	fs.Usage = func() {
		fmt.Fprintln(env.Stderr, "usage: tlsrpt promote [flags] DOMAIN")
		fmt.Fprintln(env.Stderr, "       tlsrpt promote --all-ready [--dry-run] [flags]   (every listed domain whose verdict is ready; -h with it for its flags)")
		fmt.Fprintln(env.Stderr, "Makes a policy version in mode enforce (new id, max_age as the verdict proposes) and publishes it:")
		fmt.Fprintln(env.Stderr, "the policy file first (hosted by tlsrpt serve with --host-policy, else printed to serve yourself),")
		fmt.Fprintln(env.Stderr, "then the _mta-sts TXT record (RFC 2136 or a DNS provider API, else printed), then verifies.")
		printFlags(env, fs, "promote")
		fmt.Fprintln(env.Stderr, "Flags may stand before or after the domain.")
		fmt.Fprintln(env.Stderr, "exit code: 0 the version is made and live as far as tlsrpt publishes it (the hosted file served, the TXT record pushed;")
		fmt.Fprintln(env.Stderr, "  with --wait: verified live), 1 failed: the failed step and its cause on stderr (TXT push refused, policy host")
		fmt.Fprintln(env.Stderr, "  or DNS unreachable, --wait ran out; the version is made: see tlsrpt status), 2 usage error,")
		fmt.Fprintln(env.Stderr, "  3 refused (blocked verdict, no confirmation, nothing to change)")
	}
	return runChange(ctx, env, fs, args, cf, func(domain string) (publish.ChangeRequest, error) {
		return publish.ChangeRequest{Domain: domain, Kind: rollout.KindPromote, Override: *override, Confirm: *confirm}, nil
	})
}

// runChange parses (flags before and after the domain), builds the
// promoter, makes the change and prints it. The exit code is 0 only when
// the version went live as far as the command takes it (liveProblem).
func runChange(ctx context.Context, env *Env, fs *flag.FlagSet, args []string, cf *changeFlags, req func(domain string) (publish.ChangeRequest, error)) int {
	pos, code, ok := parseInterspersed(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		fs.Usage()
		return exitUsage
	}
	name := fs.Name()
	fail := func(code int, err error) int {
		fmt.Fprintf(env.Stderr, "tlsrpt %s: %s\n", name, errtext.Plain(err))
		return code
	}
	domain, err := db.NormalizeDomain(pos[0])
	if err != nil {
		return fail(exitUsage, err)
	}
	r, err := req(domain)
	if err != nil {
		return fail(exitUsage, err)
	}
	p, closeDB, code, err := cf.publish.openPromoter(ctx, env, cf.dbURL)
	if err != nil {
		return fail(code, err)
	}
	defer closeDB()
	r.Actor, r.Reason, r.ID = "cli", cf.reason, cf.id
	v, err := p.Change(ctx, r)
	if errtext.Is(err, publish.ErrBlocked, publish.ErrConfirmation, publish.ErrUnchanged, publish.ErrInvalid, db.ErrIDUsed) {
		return fail(exitRefused, err)
	}
	if err != nil {
		return fail(exitFailed, err)
	}
	// The version is the intent; the reconciler publishes it. Without a
	// server running, this run does: one pass (the hosted file served,
	// the record pushed once the file is live), or with --wait passes
	// until live or the time is up.
	made := v
	if cf.wait > 0 {
		v, err = p.WaitLive(ctx, domain, waitInterval, cf.wait)
	} else {
		v, err = p.Reconcile(ctx, domain)
	}
	if err != nil {
		return fail(exitFailed, fmt.Errorf("version %s of %s is made; publishing it failed (tlsrpt status %s retries): %w", made.ID, domain, domain, err))
	}
	if cf.asJSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(versionOut(v)); err != nil {
			return exitFailed
		}
	} else {
		printVersion(env.Stdout, v)
	}
	if why := liveProblem(v, cf.wait > 0); why != "" {
		fmt.Fprintf(env.Stderr, "tlsrpt %s: version %s is made but not live: %s\n", name, v.ID, why)
		if cf.wait > 0 && v.RecordError == "" {
			fmt.Fprintf(env.Stderr, "tlsrpt %s: not live after %s: run \"tlsrpt status %s --wait 10m\" to go on verifying (do not promote again), or watch the domain page\n", name, cf.wait, domain)
		} else {
			fmt.Fprintf(env.Stderr, "tlsrpt %s: fix the cause, then run \"tlsrpt status %s --wait 10m\": it retries the step and verifies\n", name, domain)
		}
		return exitFailed
	}
	return exitPublished
}

// liveProblem says which step of v did not go live as far as a command
// can take it, and why; "" when nothing failed. A failed record push and a
// hosted policy file that verification cannot fetch (DNS or the policy
// host down) always count; a file the operator serves and a record set by
// hand are the operator's steps. With all, every step must be verified
// live (--wait, tlsrpt status).
func liveProblem(v db.PolicyVersion, all bool) string {
	if v.RecordError != "" {
		return fmt.Sprintf("step record: pushing the TXT record by %s failed: %s", v.RecordMethod, v.RecordError)
	}
	for _, s := range v.Steps {
		if s.State == rollout.StateDrifted {
			return fmt.Sprintf("step %s: drifted: %s", s.Name, s.Detail)
		}
	}
	if all {
		if len(v.Steps) == 0 {
			return "not verified: no verification ran"
		}
		for _, s := range v.Steps {
			if s.State != rollout.StateDone {
				return fmt.Sprintf("step %s: %s: %s", s.Name, s.State, s.Detail)
			}
		}
		return ""
	}
	if v.PolicyMethod == rollout.PolicyHosted {
		for _, s := range v.Steps {
			if s.Name == rollout.StepPolicy && s.State != rollout.StateDone {
				return fmt.Sprintf("step policy: the hosted policy file is not served: %s", s.Detail)
			}
		}
	}
	return ""
}

// versionJSON is the --json output of promote and rollback.
type versionJSON struct {
	Domain       string         `json:"domain"`
	Kind         string         `json:"kind"`
	Mode         rollout.Mode   `json:"mode"`
	ID           string         `json:"id"`
	MX           []string       `json:"mx"`
	MaxAge       int64          `json:"max_age"`
	Policy       string         `json:"policy"`
	RecordName   string         `json:"record_name"`
	RecordValue  string         `json:"record_value"`
	PolicyMethod string         `json:"policy_method"`
	RecordMethod string         `json:"record_method"`
	RecordError  string         `json:"record_error,omitempty"`
	Verified     bool           `json:"verified"`
	Steps        []rollout.Step `json:"steps"`
	SafeAfter    *time.Time     `json:"safe_after,omitempty"`
}

func versionOut(v db.PolicyVersion) versionJSON {
	out := versionJSON{Domain: v.Domain, Kind: v.Kind, Mode: v.Policy.Mode, ID: v.ID, MX: v.Policy.MX, MaxAge: v.Policy.MaxAge,
		Policy: v.Body, RecordName: "_mta-sts." + v.Domain + ".", RecordValue: rollout.Record{ID: v.ID}.String(),
		PolicyMethod: v.PolicyMethod, RecordMethod: v.RecordMethod, RecordError: v.RecordError,
		Verified: v.VerifiedAt != nil, Steps: v.Steps}
	if out.Steps == nil {
		out.Steps = []rollout.Step{}
	}
	out.SafeAfter = v.SafeAfter()
	return out
}

// printVersion prints the version, what to do by hand and the steps.
func printVersion(w io.Writer, v db.PolicyVersion) {
	fmt.Fprintf(w, "%s: version %s (%s), mode %s, max_age %d\n\n", v.Domain, v.ID, v.Kind, v.Policy.Mode, v.Policy.MaxAge)
	if v.PolicyMethod == rollout.PolicyHosted {
		fmt.Fprintf(w, "Policy file: served by tlsrpt serve at %s (with TLSRPT_HOST_POLICY=1 and its policy host)\n", rollout.PolicyURL(v.Domain))
	} else {
		fmt.Fprintf(w, "Policy file: serve this at %s first (text/plain, no redirect):\n", rollout.PolicyURL(v.Domain))
	}
	fmt.Fprintf(w, "\n%s\n", strings.ReplaceAll(v.Body, "\r\n", "\n"))
	rec := rollout.Record{ID: v.ID}.String()
	switch {
	case v.RecordMethod == rollout.RecordManual:
		fmt.Fprintf(w, "TXT record: once the file is served, set\n\n    _mta-sts.%s. TXT \"%s\"\n\n", v.Domain, rec)
	case v.RecordPublishedAt != nil:
		fmt.Fprintf(w, "TXT record: pushed by %s: _mta-sts.%s. TXT \"%s\"\n\n", v.RecordMethod, v.Domain, rec)
	case v.RecordError != "":
		fmt.Fprintf(w, "TXT record: pushing by %s failed (retried by tlsrpt serve and the next run): %s\n\n", v.RecordMethod, v.RecordError)
	default:
		fmt.Fprintf(w, "TXT record: pushed by %s once the policy file is served (\"%s\")\n\n", v.RecordMethod, rec)
	}
	if len(v.Steps) == 0 {
		fmt.Fprintln(w, "Verification: not run")
	}
	for _, s := range v.Steps {
		fmt.Fprintf(w, "  %-7s %-8s %s\n", s.Name, s.State, s.Detail)
		if s.Fix != "" {
			fmt.Fprintf(w, "          fix: %s\n", s.Fix)
		}
	}
	if v.VerifiedAt != nil {
		fmt.Fprintf(w, "\nVerified live at %s.\n", v.VerifiedAt.UTC().Format(time.RFC3339))
		if v.Kind == rollout.KindRetire {
			fmt.Fprintf(w, "Keep mode none and the record until %s; they may be removed after that.\n", v.SafeAfter().UTC().Format(time.RFC3339))
		}
	}
}

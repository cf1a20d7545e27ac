package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/internal/errtext"
	"github.com/tlsrpt/tlsrpt/rollout"
	"github.com/tlsrpt/tlsrpt/rollout/publish"
)

func init() {
	register(command{name: "status", summary: "show whether the newest policy version is live and verify it once (or --wait until it is)", run: statusCommand("status")})
	register(command{name: "verify", summary: "the same as tlsrpt status: verify the newest policy version", run: statusCommand("verify")})
}

// statusJSON is the --json output of status: the version as promote
// prints it, and whether it is live.
type statusJSON struct {
	versionJSON
	Live bool `json:"live"`
	// Problem is the failed or pending step and why, when not live.
	Problem string `json:"problem,omitempty"`
}

func statusCommand(name string) func(context.Context, *Env, []string) int {
	return func(ctx context.Context, env *Env, args []string) int { return runStatus(ctx, env, name, args) }
}

// runStatus is "tlsrpt status DOMAIN" (docs/cli.md): one verification
// poll of the newest version (it also pushes a record still due, as
// tlsrpt serve's poll does), or polls until live with --wait. It makes no
// version, so running it again is always safe.
func runStatus(ctx context.Context, env *Env, name string, args []string) int {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	dbURL := fs.String("db", "", "PostgreSQL URL (default $DATABASE_URL, else the embedded PostgreSQL under $TLSRPT_DATA_DIR)")
	asJSON := fs.Bool("json", false, "print the version and its live state as JSON")
	wait := fs.Duration("wait", 0, "poll DNS and HTTPS until the version is live, at most this long (e.g. 10m); 0 checks once")
	push := fs.Bool("push", false, "push the TXT record again first (a drifted or hand-edited record; needs the record publisher settings; refused while the policy file is not live)")
	ps := addPublishFlags(fs, env)
	fs.Usage = func() {
		fmt.Fprintf(env.Stderr, "usage: tlsrpt %s [flags] DOMAIN\n", name)
		fmt.Fprintln(env.Stderr, "Shows the newest policy version of DOMAIN and its live state (policy file served? TXT record published?")
		fmt.Fprintln(env.Stderr, "verified?) after one reconciler pass, which also serves a hosted file and pushes a TXT record still due.")
		fmt.Fprintln(env.Stderr, "It makes no version, so running it again is always safe. --push pushes the record again (a drifted record).")
		fmt.Fprintln(env.Stderr, "Flags may stand before or after the domain.")
		printFlags(env, fs, name)
		fmt.Fprintln(env.Stderr, "exit code: 0 live (verified), 1 not live or a step failed (the step and its cause on stderr),")
		fmt.Fprintln(env.Stderr, "  2 usage error, 3 refused (no policy version of the domain; --push while the file is not live or without a publisher)")
	}
	pos, code, ok := parseInterspersed(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 1 || *wait < 0 {
		fs.Usage()
		return exitUsage
	}
	fail := func(code int, err error) int {
		fmt.Fprintf(env.Stderr, "tlsrpt %s: %s\n", name, errtext.Plain(err))
		return code
	}
	domain, err := db.NormalizeDomain(pos[0])
	if err != nil {
		return fail(exitUsage, err)
	}
	p, closeDB, code, err := ps.openPromoter(ctx, env, *dbURL)
	if err != nil {
		return fail(code, err)
	}
	defer closeDB()
	var v db.PolicyVersion
	if *push {
		v, err = p.Push(ctx, domain, "cli")
		if errors.Is(err, publish.ErrNotPushable) {
			return fail(exitRefused, err)
		}
	}
	switch {
	case err != nil:
	case *wait > 0:
		v, err = p.WaitLive(ctx, domain, waitInterval, *wait)
	case !*push:
		v, err = p.Verify(ctx, domain)
	}
	if errors.Is(err, db.ErrNotFound) {
		return fail(exitRefused, fmt.Errorf("%s has no policy version made by tlsrpt: promote it first (tlsrpt rollout %s shows the verdict)", domain, domain))
	}
	if err != nil {
		return fail(exitFailed, err)
	}
	why := liveProblem(v, true)
	if *asJSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(statusJSON{versionJSON: versionOut(v), Live: why == "", Problem: why}); err != nil {
			return exitFailed
		}
	} else {
		printStatus(env.Stdout, v, why)
	}
	if why != "" {
		fmt.Fprintf(env.Stderr, "tlsrpt %s: version %s is not live: %s\n", name, v.ID, why)
		return exitFailed
	}
	return exitPublished
}

// printStatus prints the version's live state, step by step.
func printStatus(w io.Writer, v db.PolicyVersion, why string) {
	fmt.Fprintf(w, "%s: version %s (%s), mode %s, max_age %d, made %s by %s\n", v.Domain, v.ID, v.Kind, v.Policy.Mode,
		v.Policy.MaxAge, v.CreatedAt.UTC().Format(time.RFC3339), v.CreatedBy)
	served := "no"
	if rollout.StepState(v.Steps, rollout.StepPolicy) == rollout.StateDone {
		served = "yes"
	}
	how := "served by you (downloaded)"
	if v.PolicyMethod == rollout.PolicyHosted {
		how = "hosted by tlsrpt serve"
	}
	fmt.Fprintf(w, "Policy file served: %s (%s, %s)\n", served, how, rollout.PolicyURL(v.Domain))
	rec := rollout.Record{ID: v.ID}.String()
	switch {
	case v.RecordError != "":
		fmt.Fprintf(w, "TXT record pushed: no, by %s it failed: %s\n", v.RecordMethod, v.RecordError)
	case v.RecordMethod == rollout.RecordManual:
		fmt.Fprintf(w, "TXT record pushed: by hand (_mta-sts.%s. TXT \"%s\", once the file is served)\n", v.Domain, rec)
	case v.RecordPublishedAt != nil:
		fmt.Fprintf(w, "TXT record pushed: yes, by %s at %s\n", v.RecordMethod, v.RecordPublishedAt.UTC().Format(time.RFC3339))
	default:
		fmt.Fprintf(w, "TXT record pushed: not yet (by %s once the policy file is served)\n", v.RecordMethod)
	}
	for _, s := range v.Steps {
		fmt.Fprintf(w, "  %-7s %-8s %s\n", s.Name, s.State, s.Detail)
		if s.Fix != "" {
			fmt.Fprintf(w, "          fix: %s\n", s.Fix)
		}
	}
	switch {
	case why == "" && v.VerifiedAt != nil:
		fmt.Fprintf(w, "Live: yes, verified first at %s\n", v.VerifiedAt.UTC().Format(time.RFC3339))
	case why == "":
		fmt.Fprintln(w, "Live: yes")
	default:
		fmt.Fprintf(w, "Live: no: %s\n", why)
	}
}

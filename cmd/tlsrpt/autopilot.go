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
	"github.com/tlsrpt/tlsrpt/rollout/autopilot"
)

func init() {
	register(command{name: "autopilot", summary: "show or set a domain's autopilot (staged enforce with a max_age ramp), or run the daily evaluation", run: runAutopilot})
}

// runAutopilot is "tlsrpt autopilot" (docs/autopilot.md):
//
//	tlsrpt autopilot DOMAIN [--on|--off] [--dry-run] [--final-max-age S] [--ready-days N] [--hold-days A,B,C] [--json]
//	tlsrpt autopilot --fleet [--on|--off] ...      the fleet default
//	tlsrpt autopilot run [--dry-run] [--json]      the daily evaluation of every autopilot domain
func runAutopilot(ctx context.Context, env *Env, args []string) int {
	fs := flag.NewFlagSet("autopilot", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	dbURL := fs.String("db", "", "PostgreSQL URL (default $DATABASE_URL, else the embedded PostgreSQL under $TLSRPT_DATA_DIR)")
	on := fs.Bool("on", false, "switch the autopilot on")
	off := fs.Bool("off", false, "switch the autopilot off")
	dry := fs.Bool("dry-run", false, "with a domain or --fleet: set dry-run mode (--dry-run=false clears it); with run: evaluate and write what would be done, change nothing")
	final := fs.Int64("final-max-age", 0, "the max_age in seconds the ramp ends at (86400..31557600; default 2592000)")
	readyDays := fs.Int("ready-days", 0, "consecutive ready daily evaluations before the promotion (1..60; default 3)")
	var holdDays []int
	fs.Func("hold-days", "clean days live before each of the three max_age raises, as A,B,C (each 1..365; default 7,14,30)", func(v string) error {
		h, err := autopilot.ParseHoldDays(v)
		holdDays = h
		return err
	})
	fleet := fs.Bool("fleet", false, "show or set the fleet default instead of a domain's settings")
	asJSON := fs.Bool("json", false, "print JSON")
	ps := addPublishFlags(fs, env)
	fs.Usage = func() {
		fmt.Fprintln(env.Stderr, "usage: tlsrpt autopilot DOMAIN [--on|--off] [--dry-run] [--final-max-age S] [--ready-days N] [--hold-days A,B,C] [--json]")
		fmt.Fprintln(env.Stderr, "       tlsrpt autopilot --fleet [--on|--off] [--dry-run] [--final-max-age S] [--ready-days N] [--hold-days A,B,C] [--json]")
		fmt.Fprintln(env.Stderr, "       tlsrpt autopilot run [--dry-run] [--json] [verification flags]")
		fmt.Fprintln(env.Stderr, "Shows (and with a setting flag sets) a domain's autopilot: its stage on the max_age ramp, the next")
		fmt.Fprintln(env.Stderr, "step and its date, and the last daily evaluation. \"run\" evaluates every domain whose autopilot is on,")
		fmt.Fprintln(env.Stderr, "once per UTC day (tlsrpt serve does it too): promote after N ready days, raise max_age stage by")
		fmt.Fprintln(env.Stderr, "stage, roll back on a regression. Flags may stand anywhere.")
		printFlags(env, fs, "autopilot")
		fmt.Fprintln(env.Stderr, "exit code: 0 done, 1 failed (an evaluation or a setting), 2 usage error")
	}
	pos, code, ok := parseInterspersed(fs, args)
	if !ok {
		return code
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	fail := func(code int, err error) int {
		fmt.Fprintf(env.Stderr, "tlsrpt autopilot: %s\n", errtext.Plain(err))
		return code
	}
	isRun := len(pos) == 1 && pos[0] == "run"
	switch {
	case *on && *off:
		return fail(exitUsage, fmt.Errorf("--on and --off together: choose one"))
	case isRun && (set["on"] || set["off"] || set["final-max-age"] || set["ready-days"] || set["hold-days"] || *fleet):
		return fail(exitUsage, fmt.Errorf("run takes --dry-run and --json only (and the verification flags)"))
	case !isRun && (len(pos) != 1) == !*fleet:
		fs.Usage()
		return exitUsage
	}
	p, closeDB, code, err := ps.openPromoter(ctx, env, *dbURL)
	if err != nil {
		return fail(code, err)
	}
	defer closeDB()
	eng := autopilot.New(p)
	if isRun {
		return autopilotRun(ctx, env, eng, *dry, *asJSON)
	}
	domain := db.FleetDefault
	if !*fleet {
		if domain, err = db.NormalizeDomain(pos[0]); err != nil {
			return fail(exitUsage, err)
		}
	}
	s := db.AutopilotSettings{Domain: domain}
	if *on || *off {
		v := *on
		s.Enabled = &v
	}
	if set["dry-run"] {
		s.DryRun = dry
	}
	if set["final-max-age"] {
		s.FinalMaxAge = final
	}
	if set["ready-days"] {
		s.ReadyDays = readyDays
	}
	if set["hold-days"] {
		s.HoldDays = holdDays
	}
	if s.Enabled != nil || s.DryRun != nil || s.FinalMaxAge != nil || s.ReadyDays != nil || s.HoldDays != nil {
		if err := eng.Set(ctx, s, "cli"); err != nil {
			return fail(exitFailed, err)
		}
	}
	if *fleet {
		stored, err := p.DB.AutopilotSettings(ctx, db.FleetDefault)
		if err != nil {
			return fail(exitFailed, err)
		}
		eff := autopilot.Resolve(stored, db.AutopilotSettings{Domain: db.FleetDefault})
		if *asJSON {
			return writeJSON(env.Stdout, eff)
		}
		fmt.Fprintf(env.Stdout, "fleet default: autopilot %s, dry run %v, ready days %d, final max_age %d, hold days %s\n",
			onOff(eff.Enabled), eff.DryRun, eff.ReadyDays, eff.FinalMaxAge, autopilot.FormatHoldDays(eff.HoldDays))
		return 0
	}
	st, err := eng.Status(ctx, domain)
	if err != nil {
		return fail(exitFailed, err)
	}
	if *asJSON {
		return writeJSON(env.Stdout, st)
	}
	printAutopilotStatus(env.Stdout, st)
	return 0
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func writeJSON(w io.Writer, v any) int {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return exitFailed
	}
	return 0
}

// printAutopilotStatus prints what the domain page's autopilot panel shows.
func printAutopilotStatus(w io.Writer, st autopilot.Status) {
	fmt.Fprintf(w, "%s: autopilot %s (%s setting)", st.Domain, onOff(st.Settings.Enabled), st.Settings.EnabledFrom)
	if st.Settings.DryRun {
		fmt.Fprint(w, ", dry run")
	}
	fmt.Fprintln(w)
	switch {
	case st.Stage > 0:
		fmt.Fprintf(w, "stage: %d of %d (enforce, max_age %d)\n", st.Stage, st.FinalStage, st.MaxAge)
	case st.Mode != "":
		fmt.Fprintf(w, "stage: not in enforce (mode %s)\n", st.Mode)
	default:
		fmt.Fprintln(w, "stage: not in enforce (no version published by tlsrpt)")
	}
	fmt.Fprintf(w, "next: %s\n", st.Next)
	var ramp []string
	for i, s := range st.Ramp {
		if i == len(st.Ramp)-1 {
			ramp = append(ramp, fmt.Sprintf("%d (final)", s.MaxAge))
		} else {
			ramp = append(ramp, fmt.Sprintf("%d for %d days", s.MaxAge, s.HoldDays))
		}
	}
	fmt.Fprintf(w, "ramp: %s; promote after %d ready days\n", strings.Join(ramp, " → "), st.Settings.ReadyDays)
	if e := st.Last; e != nil {
		dry := ""
		if e.DryRun {
			dry = ", dry run"
		}
		fmt.Fprintf(w, "last evaluation: %s, %s%s: %s", e.Day.Format(time.DateOnly), e.Verdict, dry, e.Plan)
		if len(e.Blockers) > 0 {
			fmt.Fprintf(w, " (blockers: %s)", strings.Join(e.Blockers, ", "))
		}
		if e.Error != "" {
			fmt.Fprintf(w, " (failed: %s)", e.Error)
		}
		fmt.Fprintln(w)
	}
}

// autopilotRun is "tlsrpt autopilot run": one evaluation of every domain
// whose autopilot is on; a domain evaluated today already (by serve or an
// earlier run) is shown as it was.
func autopilotRun(ctx context.Context, env *Env, eng *autopilot.Engine, dry, asJSON bool) int {
	res, err := eng.Evaluate(ctx, autopilot.Options{DryRun: dry, Again: true})
	if err != nil {
		fmt.Fprintf(env.Stderr, "tlsrpt autopilot run: %s\n", errtext.Plain(err))
		return exitFailed
	}
	failed := false
	for _, r := range res {
		failed = failed || r.Error != ""
	}
	if asJSON {
		if res == nil {
			res = []autopilot.Result{}
		}
		if code := writeJSON(env.Stdout, res); code != 0 {
			return code
		}
	} else {
		if len(res) == 0 {
			fmt.Fprintln(env.Stdout, "no domain has the autopilot on (tlsrpt autopilot DOMAIN --on)")
		}
		for _, r := range res {
			line := fmt.Sprintf("%s: %s (stage %d): %s", r.Domain, r.Action, r.Stage, r.Plan)
			if len(r.Blockers) > 0 {
				line += " [blockers: " + strings.Join(r.Blockers, ", ") + "]"
			}
			if r.Skipped != "" {
				line += " [" + r.Skipped + "]"
			}
			if r.Error != "" {
				line += " [failed: " + r.Error + "]"
			}
			fmt.Fprintln(env.Stdout, line)
		}
	}
	if failed {
		return exitFailed
	}
	return 0
}

// allReady reports whether a promote command line asks for --all-ready
// (anywhere on the line, before a "--").
func allReady(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "--all-ready", "-all-ready", "--all-ready=true", "-all-ready=true":
			return true
		}
	}
	return false
}

// runPromoteAllReady is "tlsrpt promote --all-ready [--dry-run]": every
// listed domain is checked against its own verdict and the ready ones are
// promoted (the same as POST /api/v1/promotions); the blocked ones are
// listed and skipped.
func runPromoteAllReady(ctx context.Context, env *Env, args []string) int {
	fs := flag.NewFlagSet("promote", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	dbURL := fs.String("db", "", "PostgreSQL URL (default $DATABASE_URL, else the embedded PostgreSQL under $TLSRPT_DATA_DIR)")
	fs.Bool("all-ready", false, "promote every listed domain whose verdict is ready")
	dry := fs.Bool("dry-run", false, "list what would be promoted, change nothing")
	reason := fs.String("reason", "", "why: kept with each version and in the audit log")
	asJSON := fs.Bool("json", false, "print the outcome per domain as JSON")
	ps := addPublishFlags(fs, env)
	fs.Usage = func() {
		fmt.Fprintln(env.Stderr, "usage: tlsrpt promote --all-ready [--dry-run] [--reason R] [--json] [verification flags]")
		fmt.Fprintln(env.Stderr, "Promotes every listed domain whose own verdict is ready; blocked ones are listed and skipped")
		fmt.Fprintln(env.Stderr, "(promote them one by one with --override). A domain whose autopilot is on starts at its ramp's first stage.")
		printFlags(env, fs, "promote")
		fmt.Fprintln(env.Stderr, "exit code: 0 done (blocked domains included), 1 a promotion failed, 2 usage error")
	}
	pos, code, ok := parseInterspersed(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 0 {
		fs.Usage()
		return exitUsage
	}
	fail := func(code int, err error) int {
		fmt.Fprintf(env.Stderr, "tlsrpt promote: %s\n", errtext.Plain(err))
		return code
	}
	p, closeDB, code, err := ps.openPromoter(ctx, env, *dbURL)
	if err != nil {
		return fail(code, err)
	}
	defer closeDB()
	domains, err := p.DB.Domains(ctx)
	if err != nil {
		return fail(exitFailed, err)
	}
	names := make([]string, 0, len(domains))
	for _, dm := range domains {
		names = append(names, dm.Name)
	}
	eng := autopilot.New(p)
	res, err := eng.BulkPromote(ctx, autopilot.BulkRequest{Domains: names, Reason: *reason, Actor: "cli", DryRun: *dry})
	if err != nil {
		return fail(exitFailed, err)
	}
	failed := false
	for _, r := range res {
		failed = failed || r.Outcome == autopilot.OutcomeError
	}
	if *asJSON {
		if res == nil {
			res = []autopilot.BulkResult{}
		}
		if code := writeJSON(env.Stdout, map[string]any{"dry_run": *dry, "results": res}); code != 0 {
			return code
		}
	} else {
		for _, r := range res {
			line := r.Domain + ": " + r.Outcome
			if *dry && r.Outcome == autopilot.OutcomePromoted {
				line += " (dry run: would promote)"
			}
			if r.ID != "" {
				line += fmt.Sprintf(", version %s, max_age %d", r.ID, r.MaxAge)
			}
			if len(r.Blockers) > 0 {
				line += " (blockers: " + strings.Join(r.Blockers, ", ") + ")"
			}
			if r.Outcome != autopilot.OutcomePromoted && r.Message != "" {
				line += ": " + r.Message
			}
			fmt.Fprintln(env.Stdout, line)
		}
	}
	if failed {
		return exitFailed
	}
	return 0
}

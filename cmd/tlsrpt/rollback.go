package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/tlsrpt/tlsrpt/rollout"
	"github.com/tlsrpt/tlsrpt/rollout/publish"
)

func init() {
	register(command{name: "rollback", summary: "publish mode testing again (or mode none to retire MTA-STS) with a new id", run: runRollback})
}

func runRollback(ctx context.Context, env *Env, args []string) int {
	fs := flag.NewFlagSet("rollback", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	cf := addChangeFlags(fs, env)
	mode := fs.String("mode", "testing", "testing (back from enforce) or none (retire: served for at least the old max_age before the records may go)")
	fs.Usage = func() {
		fmt.Fprintln(env.Stderr, "usage: tlsrpt rollback [flags] DOMAIN")
		fmt.Fprintln(env.Stderr, "Makes a policy version in mode testing (or none) with a new id and publishes it like promote.")
		printFlags(env, fs, "rollback")
		fmt.Fprintln(env.Stderr, "Flags may stand before or after the domain.")
		fmt.Fprintln(env.Stderr, "exit code: 0 the version is made and live as far as tlsrpt publishes it (the hosted file served, the TXT record pushed;")
		fmt.Fprintln(env.Stderr, "  with --wait: verified live), 1 failed: the failed step and its cause on stderr (TXT push refused, policy host")
		fmt.Fprintln(env.Stderr, "  or DNS unreachable, --wait ran out; the version is made: see tlsrpt status), 2 usage error, 3 refused (nothing to change)")
	}
	return runChange(ctx, env, fs, args, cf, func(domain string) (publish.ChangeRequest, error) {
		switch rollout.Mode(*mode) {
		case rollout.ModeTesting:
			return publish.ChangeRequest{Domain: domain, Kind: rollout.KindRollback}, nil
		case rollout.ModeNone:
			return publish.ChangeRequest{Domain: domain, Kind: rollout.KindRetire}, nil
		}
		return publish.ChangeRequest{}, fmt.Errorf("--mode %q: want testing or none", *mode)
	})
}

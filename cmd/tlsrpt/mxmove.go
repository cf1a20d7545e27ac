package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"

	"github.com/tlsrpt/tlsrpt/rollout"
	"github.com/tlsrpt/tlsrpt/rollout/publish"
)

func init() {
	register(command{name: "mx-move", summary: "publish a new mx list (same mode, new id): the first step of moving MX hosts", run: runMXMove})
}

// runMXMove is "tlsrpt mx-move --mx LIST DOMAIN": a version with the new
// mx list in the same mode, published like promote (docs/publishing.md,
// "Moving MX hosts").
func runMXMove(ctx context.Context, env *Env, args []string) int {
	fs := flag.NewFlagSet("mx-move", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	cf := addChangeFlags(fs, env)
	mx := fs.String("mx", "", "the new mx list, comma- or space-separated patterns (old and new hosts while moving, e.g. \"mx1.example.com,mx.new.example\")")
	fs.Usage = func() {
		fmt.Fprintln(env.Stderr, "usage: tlsrpt mx-move --mx LIST [flags] DOMAIN")
		fmt.Fprintln(env.Stderr, "Makes a policy version with the new mx list in the same mode with a new id and publishes it like promote.")
		fmt.Fprintln(env.Stderr, "Change the MX records only once it is verified live and the old max_age has passed (safe_after).")
		printFlags(env, fs, "mx-move")
		fmt.Fprintln(env.Stderr, "Flags may stand before or after the domain.")
		fmt.Fprintln(env.Stderr, "exit code: as for promote: 0 live as far as tlsrpt publishes it, 1 a failed step or --wait ran out,")
		fmt.Fprintln(env.Stderr, "  2 usage error (also no --mx), 3 refused (nothing to change, a list that is not valid)")
	}
	return runChange(ctx, env, fs, args, cf, func(domain string) (publish.ChangeRequest, error) {
		list := strings.FieldsFunc(*mx, func(r rune) bool { return r == ',' || r == ' ' })
		if len(list) == 0 {
			return publish.ChangeRequest{}, errors.New("--mx: the new mx list is missing")
		}
		return publish.ChangeRequest{Domain: domain, Kind: rollout.KindMXMove, MX: list}, nil
	})
}

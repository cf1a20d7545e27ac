// Command tlsrpt-bench measures tlsrpt at scale (BENCHMARKS.md,
// docs/bench-scale.md); it is a tool for sizing a deployment and for the
// figures of the docs, kept out of the product binary:
//
//	tlsrpt-bench seed --domains 1000 --years 3   seed realistic history through the store
//	tlsrpt-bench web  --requests 200             p50/p95 of overview, domain page, verdict
//	tlsrpt-bench post --count 20000              load generator for POST /tlsrpt
//
// Every part opens the database like tlsrpt does (--db, DATABASE_URL, else
// the embedded PostgreSQL under TLSRPT_DATA_DIR). seed writes synthetic
// reports: never point it at a production store.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

// Env is what a part reads and writes besides its flags, so that tests
// run Main without the process's streams and environment.
type Env struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// Getenv reads configuration from the environment.
	Getenv func(string) string
}

// summaries say what each part (subcommand) does.
var summaries = map[string]string{
	"seed": "seed N domains × Y years of realistic reports through the store",
	"web":  "time the overview, a domain page, a verdict and the API through the real router",
	"post": "drive POST /tlsrpt of the real server on loopback and count what was stored",
}

// parts run the subcommands, by name.
var parts = map[string]func(ctx context.Context, env *Env, args []string) int{
	"seed": runBenchSeed,
	"web":  runBenchWeb,
	"post": runBenchPost,
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := Main(ctx, os.Args[1:], &Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv})
	stop()
	os.Exit(code)
}

// Main runs the part named by args[0] and returns the exit code: 2 and
// the list of parts without one or with an unknown one, 0 for -h.
func Main(ctx context.Context, args []string, env *Env) int {
	if len(args) == 0 || parts[args[0]] == nil {
		fmt.Fprintln(env.Stderr, "usage: tlsrpt-bench seed|web|post [flags]")
		fmt.Fprintln(env.Stderr, "\nmeasure tlsrpt at scale (docs/bench-scale.md):")
		names := make([]string, 0, len(parts))
		for n := range parts {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			fmt.Fprintf(env.Stderr, "  %-4s  %s\n", n, summaries[n])
		}
		fmt.Fprintln(env.Stderr, "\nrun \"tlsrpt-bench seed -h\" for the flags of one")
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			return 0
		}
		if len(args) > 0 {
			fmt.Fprintf(env.Stderr, "tlsrpt-bench: unknown part %q\n", args[0])
		}
		return 2
	}
	return parts[args[0]](ctx, env, args[1:])
}

// setUsage gives fs the usage a part prints for -h or a bad flag.
func setUsage(fs *flag.FlagSet, env *Env, name, synopsis string) {
	fs.Usage = func() {
		fmt.Fprintf(env.Stderr, "usage: tlsrpt-bench %s %s\n\n%s\n\nflags:\n", name, synopsis, summaries[name])
		fs.PrintDefaults()
	}
}

// parseFlags parses args; ok is false when the part ends here, with code
// 0 for -h and 2 for a bad flag or an argument (the parts take none).
func parseFlags(fs *flag.FlagSet, args []string) (code int, ok bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, false
		}
		return 2, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return 2, false
	}
	return 0, true
}

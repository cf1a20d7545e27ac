package main

import (
	"errors"
	"flag"
	"fmt"
)

// parseInterspersed parses args with fs, letting flags stand before,
// between and after the positional arguments, which it returns. ok is
// false when parsing stopped; code is then the exit code: 0 for -h, 2 for
// a bad flag (fs has printed why).
func parseInterspersed(fs *flag.FlagSet, args []string) (pos []string, code int, ok bool) {
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, 0, false
			}
			return nil, 2, false
		}
		if fs.NArg() == 0 {
			return pos, 0, true
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// verbCommand starts a "tlsrpt NAME VERB [flags] [args]" command (domain,
// token, user): with no verb it prints usage and gives exit code 2, with
// -h exit code 0. Otherwise it returns the verb, a flag set with --db whose
// -h prints the usage lines and the flags, and the usage printer.
func verbCommand(env *Env, name string, usageLines []string, args []string) (verb string, fs *flag.FlagSet, dbURL *string, usage func(), code int, ok bool) {
	usage = func() {
		for _, l := range usageLines {
			fmt.Fprintln(env.Stderr, l)
		}
	}
	if len(args) == 0 {
		usage()
		return "", nil, nil, usage, 2, false
	}
	if args[0] == "-h" || args[0] == "--help" {
		usage()
		return "", nil, nil, usage, 0, false
	}
	fs = flag.NewFlagSet(name+" "+args[0], flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	dbURL = fs.String("db", "", "PostgreSQL URL (default: $DATABASE_URL, else the embedded database under $TLSRPT_DATA_DIR)")
	fs.Usage = func() {
		usage()
		fs.PrintDefaults()
	}
	return args[0], fs, dbURL, usage, 0, true
}

package main

import (
	"errors"
	"flag"
	"fmt"
	"strings"
)

// parseInterspersed parses args with fs, letting flags stand before,
// between and after the positional arguments, which it returns. ok is
// false when parsing stopped; code is then the exit code: 0 for -h, 2 for
// a bad flag (fs has printed why).
func parseInterspersed(fs *flag.FlagSet, args []string) (pos []string, code int, ok bool) {
	if code, ok := parseFlags(fs, args); !ok {
		return nil, code, false
	}
	return fs.Args(), 0, true
}

// permute reorders args so that the standard flag package, which stops
// at the first positional argument, sees every flag: the flags (each with
// its value when it takes one) first, in their order, then "--", then the
// positional arguments in theirs. "--" on the line ends the flags: what
// follows it is positional even when it starts with "-". A lone "-" is
// positional (standard input). An unknown flag stays among the flags, so
// that fs.Parse reports it.
func permute(fs *flag.FlagSet, args []string) []string {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			pos = append(pos, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		if strings.Contains(name, "=") {
			continue
		}
		f := fs.Lookup(name)
		if f == nil {
			continue
		}
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
			continue
		}
		if i+1 < len(args) {
			i++
			flags = append(flags, args[i])
		}
	}
	if len(pos) == 0 {
		return flags
	}
	return append(append(flags, "--"), pos...)
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
		if c, ok := commands[name]; ok {
			fmt.Fprintf(env.Stderr, "\n%s\n", c.summary)
		}
		fmt.Fprintf(env.Stderr, "\nflags of every verb:\n  -db URL\n    \tPostgreSQL URL (default: $DATABASE_URL, else the embedded database under $TLSRPT_DATA_DIR)\n")
		fmt.Fprintf(env.Stderr, "run \"tlsrpt %s VERB -h\" for the flags of one verb\n", name)
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
		for _, l := range usageLines {
			fmt.Fprintln(env.Stderr, l)
		}
		fmt.Fprintln(env.Stderr, "\nflags:")
		fs.PrintDefaults()
	}
	return args[0], fs, dbURL, usage, 0, true
}

// setUsage gives fs the usage every command prints for -h or a bad flag:
// the synopsis, what the command does (its summary in the command list)
// and its flags.
func setUsage(fs *flag.FlagSet, env *Env, name, synopsis string) {
	fs.Usage = func() {
		fmt.Fprintf(env.Stderr, "usage: tlsrpt %s %s\n\n", name, synopsis)
		if c, ok := commands[strings.Fields(name)[0]]; ok {
			fmt.Fprintf(env.Stderr, "%s\n\n", c.summary)
		}
		fmt.Fprintln(env.Stderr, "flags:")
		fs.PrintDefaults()
	}
}

// parseFlags parses args, flags before, between or after the positional
// arguments (permute), which fs.Args() then returns; ok is false when the
// command ends here, with code 0 for -h and 2 for a bad flag (fs has
// printed why and the usage). Every command parses its flags here.
func parseFlags(fs *flag.FlagSet, args []string) (code int, ok bool) {
	if err := fs.Parse(permute(fs, args)); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, false
		}
		return 2, false
	}
	return 0, true
}

// printFlags ends a command's own usage text the way setUsage does: what
// the command does, then its flags.
func printFlags(env *Env, fs *flag.FlagSet, name string) {
	if c, ok := commands[name]; ok {
		fmt.Fprintf(env.Stderr, "\n%s\n", c.summary)
	}
	fmt.Fprintln(env.Stderr, "\nflags:")
	fs.PrintDefaults()
}

package main

import (
	"errors"
	"flag"
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

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/tlsrpt/tlsrpt/reports"
)

func init() {
	register(command{name: "parse", summary: "print the reports in files (messages, .json, .json.gz) as JSON lines", run: runParse})
}

// runParse is the "tlsrpt parse FILE..." contract of docs/cli.md: one line
// of normalised RFC 8460 JSON per report on stdout, one line per failed
// file on stderr, exit 1 when any file failed. It never opens a database.
func runParse(ctx context.Context, env *Env, args []string) int {
	fs := flag.NewFlagSet("parse", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	lim := reports.DefaultLimits()
	fs.Int64Var(&lim.MaxMessageBytes, "max-message-bytes", lim.MaxMessageBytes, "largest file or message read")
	fs.Int64Var(&lim.MaxReportBytes, "max-report-bytes", lim.MaxReportBytes, "largest report JSON after decompression")
	fs.Usage = func() {
		fmt.Fprintln(env.Stderr, "usage: tlsrpt parse [flags] FILE... (- reads standard input)")
		printFlags(env, fs, "parse")
	}
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	out := bufio.NewWriter(env.Stdout)
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false) // report-ids like "<id@host>" stay readable
	failed := false
	for _, name := range fs.Args() {
		if ctx.Err() != nil {
			fmt.Fprintf(env.Stderr, "%s: %v\n", name, ctx.Err())
			failed = true
			break
		}
		reps, warnings, err := parseFile(env, name, lim)
		for _, w := range warnings {
			fmt.Fprintf(env.Stderr, "%s: skipped %v\n", name, w)
		}
		if err != nil {
			fmt.Fprintf(env.Stderr, "%s: %v\n", name, err)
			failed = true
			continue
		}
		for _, r := range reps {
			if err := enc.Encode(r); err != nil {
				fmt.Fprintf(env.Stderr, "%s: writing output: %v\n", name, err)
				return 1
			}
		}
	}
	if err := out.Flush(); err != nil {
		fmt.Fprintf(env.Stderr, "tlsrpt parse: writing output: %v\n", err)
		return 1
	}
	if failed {
		return 1
	}
	return 0
}

// parseFile reads one file ("-" is standard input) and returns its valid
// reports. A message with some broken report parts returns the good ones
// and the errors of the broken ones as warnings; a file without any valid
// report returns an error.
func parseFile(env *Env, name string, lim reports.Limits) ([]*reports.Report, []error, error) {
	var r io.Reader
	if name == "-" {
		r = env.Stdin
	} else {
		f, err := os.Open(name)
		if err != nil {
			return nil, nil, fmt.Errorf("opening file: %w", err)
		}
		defer f.Close()
		r = f
	}
	// A bare JSON report may be as large as a report; a message is bounded
	// again by ReadMessage.
	max := max(lim.MaxMessageBytes, lim.MaxReportBytes)
	data, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, nil, fmt.Errorf("reading file: %w", err)
	}
	if int64(len(data)) > max {
		return nil, nil, fmt.Errorf("reading file: %w: over %d bytes", reports.ErrTooLarge, max)
	}
	if reports.IsReportData(data) {
		rep, _, err := reports.ParseBytes(data, lim)
		if err != nil {
			return nil, nil, err
		}
		return []*reports.Report{rep}, nil, nil
	}
	m, err := reports.ReadMessage(bytes.NewReader(data), lim)
	if err != nil {
		return nil, nil, err
	}
	var reps []*reports.Report
	var errs []error
	for _, a := range m.Attachments {
		if a.Err != nil {
			errs = append(errs, a.Err)
			continue
		}
		reps = append(reps, a.Report)
	}
	if len(reps) == 0 {
		return nil, nil, errors.Join(errs...)
	}
	return reps, errs, nil
}

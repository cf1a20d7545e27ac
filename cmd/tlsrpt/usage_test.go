package main

import (
	"context"
	"strings"
	"testing"
)

// TestEveryCommandUsage: "tlsrpt COMMAND -h" prints one usage style for
// every command (the synopsis, what the command does, its flags) and
// exits 0; never Go's bare "Usage of X:".
func TestEveryCommandUsage(t *testing.T) {
	for name, c := range commands {
		var out, errOut strings.Builder
		env := &Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut, Getenv: func(string) string { return "" }}
		code := Main(context.Background(), []string{name, "-h"}, env)
		text := errOut.String() + out.String()
		if code != 0 || !strings.HasPrefix(text, "usage: tlsrpt "+name) || !strings.Contains(text, c.summary) || strings.Contains(text, "Usage of") {
			t.Errorf("tlsrpt %s -h = %d:\n%s\nwant 0, \"usage: tlsrpt %s ...\" and the summary %q", name, code, text, name, c.summary)
		}
		if !strings.Contains(text, "flags") && !strings.Contains(text, "-h\" for the flags") {
			t.Errorf("tlsrpt %s -h describes no flags:\n%s", name, text)
		}
	}
	// The command list stays aligned whatever the longest name.
	var errOut strings.Builder
	Main(context.Background(), []string{"help"}, &Env{Stdout: &strings.Builder{}, Stderr: &errOut, Getenv: func(string) string { return "" }})
	col := -1
	for _, line := range strings.Split(errOut.String(), "\n") {
		if !strings.HasPrefix(line, "  ") {
			continue
		}
		name := strings.Fields(line)[0]
		summary := commands[name].summary
		at := strings.Index(line, summary)
		if col == -1 {
			col = at
		}
		if at != col {
			t.Errorf("command list not aligned: %q starts its summary at column %d, others at %d", name, at, col)
		}
	}
}

package ingest

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzReadMbox checks the mbox splitter on any input: no panic, every
// message within the limit, never more messages than "From " lines, and
// for input without quoting the messages are exactly the input's bytes
// minus the separator lines.
func FuzzReadMbox(f *testing.F) {
	for _, dir := range []string{"../testdata/corpus", "/work/shared/corpus/tlsrpt"} {
		_ = filepath.WalkDir(dir, func(path string, de os.DirEntry, err error) error {
			if err == nil && de.Type().IsRegular() && strings.HasSuffix(path, ".eml") {
				if b, err := os.ReadFile(path); err == nil {
					f.Add(append([]byte("From x@y Thu Jan  1 00:00:00 2026\n"), b...))
				}
			}
			return nil
		})
	}
	f.Add([]byte("From a\nb\n\nFrom c\n>From d\n"))
	f.Add([]byte("From \n\n\nFrom \n"))
	const limit = 1 << 10
	f.Fuzz(func(t *testing.T, data []byte) {
		var msgs [][]byte
		err := readMbox(context.Background(), bufio.NewReaderSize(bytes.NewReader(data), 16), "m", limit,
			func(ref string, raw []byte, problem string) error {
				if len(raw) > limit {
					t.Fatalf("%s: %d bytes, over the limit %d", ref, len(raw), limit)
				}
				msgs = append(msgs, raw)
				return nil
			})
		if err != nil {
			t.Fatalf("readMbox() = %v", err)
		}
		if n := bytes.Count(append([]byte("\n"), data...), []byte("\nFrom ")); len(msgs) > n {
			t.Fatalf("%d messages from %d From lines", len(msgs), n)
		}
	})
}

// TestReadMbox pins the splitting and unquoting.
func TestReadMbox(t *testing.T) {
	in := "From a@b Mon Jan  1 00:00:00 2026\nSubject: 1\n\n>From here\n>>From there\n\nFrom c@d Mon Jan  1 00:00:00 2026\nSubject: 2\n\nbody\n"
	var got []string
	err := readMbox(context.Background(), bufio.NewReader(strings.NewReader(in)), "box", 1<<20, func(ref string, raw []byte, problem string) error {
		got = append(got, ref+"|"+string(raw)+"|"+problem)
		return nil
	})
	want := []string{"box#1|Subject: 1\n\nFrom here\n>From there\n\n|", "box#2|Subject: 2\n\nbody\n|"}
	if err != nil || strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("readMbox() = %q, %v; want %q", got, err, want)
	}
	got = nil
	_ = readMbox(context.Background(), bufio.NewReader(strings.NewReader(in)), "box", 10, func(ref string, raw []byte, problem string) error {
		got = append(got, ref+"|"+problem)
		return nil
	})
	if len(got) != 2 || !strings.Contains(got[0], "over 10 bytes") {
		t.Errorf("readMbox(limit 10) = %q", got)
	}
}

package main

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/tlsrpt/tlsrpt/db/dbtest"
)

// readmeBlock is a fenced block of the README marked as tested.
type readmeBlock struct {
	line     int
	exit     int
	commands []string
}

// testedMark marks the fenced block after it: `<!-- tested -->`, or
// `<!-- tested: exit 1 -->` for commands that are meant to fail.
var testedMark = regexp.MustCompile(`^<!-- tested(?:: exit (\d+))? -->$`)

func readmeBlocks(t *testing.T, path string) []readmeBlock {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var blocks []readmeBlock
	var cur *readmeBlock
	marked, exit := false, 0
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		l := sc.Text()
		switch {
		case cur != nil && strings.HasPrefix(l, "```"):
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			// A command continued with a backslash goes on the next line.
			if k := len(cur.commands); k > 0 && strings.HasSuffix(cur.commands[k-1], "\\") {
				cur.commands[k-1] += "\n" + l
			} else if strings.TrimSpace(l) != "" && !strings.HasPrefix(l, "#") {
				cur.commands = append(cur.commands, l)
			}
		case strings.HasPrefix(l, "```") && marked:
			cur = &readmeBlock{line: n, exit: exit}
			marked = false
		default:
			if m := testedMark.FindStringSubmatch(l); m != nil {
				marked, exit = true, 0
				if m[1] != "" {
					exit, _ = strconv.Atoi(m[1])
				}
			} else if strings.TrimSpace(l) != "" {
				marked = false
			}
		}
	}
	return blocks
}

// TestREADMECommands runs every command of the README's blocks marked
// `<!-- tested -->`, as written, from the repository root, against a
// fresh database, so the README cannot rot. The demo and the test
// command themselves are run by TestDemo and by CI.
func TestREADMECommands(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the README's commands")
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	blocks := readmeBlocks(t, filepath.Join(root, "README.md"))
	if len(blocks) < 3 {
		t.Fatalf("README has %d tested blocks, want at least 3", len(blocks))
	}
	env := append(os.Environ(), "DATABASE_URL="+dbtest.NewURL(t, true), "TLSRPT_DATA_DIR="+t.TempDir())
	for _, b := range blocks {
		for i, c := range b.commands {
			cmd := exec.Command("sh", "-ec", c)
			cmd.Dir = root
			cmd.Env = env
			out, err := cmd.CombinedOutput()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatalf("README line %d: %v", b.line, err)
			}
			// Only the last command of a block may be the one meant to fail.
			want := 0
			if i == len(b.commands)-1 {
				want = b.exit
			}
			if code != want {
				t.Errorf("README block at line %d: %q exited %d, want %d\n%s", b.line, c, code, want, out)
			}
		}
	}
}

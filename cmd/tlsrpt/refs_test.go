package main

import (
	"bufio"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// repoRoot is the repository, relative to this package's directory.
const repoRoot = "../.."

// numberedRef is a pointer at a numbered issue or work session (the word
// followed by a number, with or without "#"): a maintainer has neither,
// so code and docs say what they mean instead (docs/cli.md,
// docs/verdict.md, a date and a commit, a URL).
var numberedRef = regexp.MustCompile(`(?i)\b(issue|session) #?[0-9]+`)

// numberedRefAllowed are files allowed to keep such pointers: none. An
// entry needs a reason and the day it goes; TestNoNumberedRefs fails on
// an entry whose file has none left.
var numberedRefAllowed = map[string]bool{}

// numberedRefSkipped are trees of material copied from elsewhere, whose
// notes cite other projects' issue trackers.
var numberedRefSkipped = []string{"testdata/corpus/"}

// repoTextFiles lists the repository's tracked .go, .md and .sql files,
// slash-separated and relative to the root: from git when it can, else by
// walking the tree.
func repoTextFiles(t *testing.T) []string {
	t.Helper()
	want := func(p string) bool {
		for _, s := range numberedRefSkipped {
			if strings.HasPrefix(p, s) {
				return false
			}
		}
		switch filepath.Ext(p) {
		case ".go", ".md", ".sql":
			return true
		}
		return false
	}
	var files []string
	cmd := exec.Command("git", "ls-files", "-z")
	cmd.Dir = repoRoot
	if out, err := cmd.Output(); err == nil {
		for _, p := range strings.Split(string(out), "\x00") {
			if p != "" && want(p) {
				files = append(files, p)
			}
		}
		if len(files) > 0 {
			return files
		}
	}
	err := filepath.WalkDir(repoRoot, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(repoRoot, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if d.Name() == ".git" || rel == "testdata/corpus" {
				return filepath.SkipDir
			}
			return nil
		}
		if want(rel) {
			files = append(files, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestNoNumberedRefs fails on a line of code or docs that points at a
// numbered issue or session instead of saying what it means.
func TestNoNumberedRefs(t *testing.T) {
	files := repoTextFiles(t)
	if !slices.Contains(files, "cmd/tlsrpt/main.go") {
		t.Fatalf("listed %d files without cmd/tlsrpt/main.go: not the repository", len(files))
	}
	found := map[string]bool{}
	for _, p := range files {
		f, err := os.Open(filepath.Join(repoRoot, filepath.FromSlash(p)))
		if os.IsNotExist(err) {
			continue // deleted in the work tree, not yet in the index
		}
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
		for n := 1; sc.Scan(); n++ {
			m := numberedRef.FindString(sc.Text())
			if m == "" {
				continue
			}
			found[p] = true
			if !numberedRefAllowed[p] {
				t.Errorf("%s:%d: %q points at a numbered issue or session; say what it means (docs/cli.md, docs/verdict.md, a date and commit, a URL)", p, n, m)
			}
		}
		err = sc.Err()
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
	}
	for p := range numberedRefAllowed {
		if !found[p] {
			t.Errorf("%s is allowed numbered references but has none left: remove it from numberedRefAllowed", p)
		}
	}
}

// TestCLIDocNamesEveryCommand checks that docs/cli.md has a section for
// every registered command.
func TestCLIDocNamesEveryCommand(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot, "docs", "cli.md"))
	if err != nil {
		t.Fatal(err)
	}
	headings := map[string]bool{}
	for _, l := range strings.Split(string(b), "\n") {
		if name, ok := strings.CutPrefix(l, "## tlsrpt "); ok {
			headings[strings.TrimSpace(name)] = true
		}
	}
	if len(commands) == 0 {
		t.Fatal("no command registered")
	}
	for name := range commands {
		if !headings[name] {
			t.Errorf("docs/cli.md has no section \"## tlsrpt %s\"", name)
		}
	}
	for name := range headings {
		if _, ok := commands[name]; !ok {
			t.Errorf("docs/cli.md has a section for %q, which is not a command", name)
		}
	}
}

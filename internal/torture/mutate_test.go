package torture

import (
	"bytes"
	"path/filepath"
	"testing"
)

var corpusDirs = []string{filepath.Join("..", "..", "testdata", "corpus"), "/work/shared/corpus/tlsrpt"}

// TestMutatorDeterministic: the same seed gives the same inputs (a failure
// can be replayed), another seed other inputs, and every input is bounded.
func TestMutatorDeterministic(t *testing.T) {
	c, err := LoadCorpus(corpusDirs...)
	if err != nil {
		t.Fatal(err)
	}
	a, b, other := NewMutator(c, 1), NewMutator(c, 1), NewMutator(c, 2)
	differ := 0
	kinds := map[Kind]int{}
	for i := range 600 {
		x, y, z := a.Mail(), b.Mail(), other.Mail()
		if x.Kind != y.Kind || !bytes.Equal(x.Data, y.Data) {
			t.Fatalf("input %d differs between two mutators of seed 1: %s and %s", i, x.Kind, y.Kind)
		}
		if !bytes.Equal(x.Data, z.Data) {
			differ++
		}
		if len(x.Data) > MaxInput+MaxInput/2 {
			t.Errorf("input %d (%s) is %d bytes, over the bound", i, x.Kind, len(x.Data))
		}
		kinds[x.Kind]++
	}
	if differ < 300 {
		t.Errorf("seeds 1 and 2 gave %d different inputs of 600", differ)
	}
	for _, k := range Kinds {
		// Bombs are one input in a hundred; TestBombsExpand covers them.
		if kinds[k] == 0 && k != ZipBomb {
			t.Errorf("no %s input in 600", k)
		}
	}
}

// TestMutationsChangeInput: each kind changes its seed (a mutator that
// returns its input would test nothing).
func TestMutationsChangeInput(t *testing.T) {
	c, err := LoadCorpus(corpusDirs...)
	if err != nil {
		t.Fatal(err)
	}
	m := NewMutator(c, 3)
	for _, k := range Kinds {
		if k == Unchanged || k == HeaderInject {
			continue
		}
		same := 0
		for range 50 {
			in := m.report(k)
			for _, r := range c.Reports {
				if bytes.Equal(in.Data, r) {
					same++
					break
				}
			}
		}
		if same > 10 {
			t.Errorf("%s left the seed unchanged %d times of 50", k, same)
		}
	}
	src := c.Mails[0]
	if out := m.headerInject(src); bytes.Equal(out, src) {
		t.Errorf("headerInject left the mail unchanged")
	}
}

func TestBombsExpand(t *testing.T) {
	for i, b := range Bombs() {
		if len(b) > 1<<20 {
			t.Errorf("bomb %d is %d bytes compressed, want under 1 MiB", i, len(b))
		}
	}
}

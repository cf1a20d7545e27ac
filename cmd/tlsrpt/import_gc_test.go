package main

import (
	"runtime/debug"
	"testing"
)

// TestImportGC: an import collects garbage less often within a memory
// limit, puts the process's settings back afterwards, and leaves GOGC and
// GOMEMLIMIT alone when the operator set them.
func TestImportGC(t *testing.T) {
	before := debug.SetGCPercent(100)
	defer debug.SetGCPercent(before)
	limitBefore := debug.SetMemoryLimit(-1)

	restore := importGC(&Env{Getenv: func(string) string { return "" }})
	gc := debug.SetGCPercent(100)
	debug.SetGCPercent(gc)
	limit := debug.SetMemoryLimit(-1)
	restore()
	if gc != 400 {
		t.Errorf("GC percent during an import = %d, want 400", gc)
	}
	if limit <= 0 || limit > 2<<30 {
		t.Errorf("memory limit during an import = %d, want at most 2 GiB", limit)
	}
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GC percent after the import = %d, want 100 back", got)
	}
	if got := debug.SetMemoryLimit(-1); got != limitBefore {
		t.Errorf("memory limit after the import = %d, want %d back", got, limitBefore)
	}

	restore = importGC(&Env{Getenv: func(k string) string {
		return map[string]string{"GOGC": "50", "GOMEMLIMIT": "1GiB"}[k]
	}})
	gc = debug.SetGCPercent(100)
	restore()
	if gc != 100 {
		t.Errorf("GC percent with GOGC set = %d, want the process's 100", gc)
	}
}

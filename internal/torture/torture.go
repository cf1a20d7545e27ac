// Package torture generates hostile inputs from real TLS reports and mails
// and measures what tlsrpt does with them: the *_torture_test.go files of
// reports/, ingest/ and api/ feed its mutations through the parser, the
// IMAP path and POST /tlsrpt, and record their figures with Record.
//
// Counts come in two sizes: the short one runs with every `go test` (CI),
// the long one when TLSRPT_TORTURE=long (`make torture`). Every run logs its
// seed; TLSRPT_TORTURE_SEED replays one.
package torture

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Long says whether the long version runs (TLSRPT_TORTURE=long).
func Long() bool { return os.Getenv("TLSRPT_TORTURE") == "long" }

// Count returns short, or long when the long version runs.
func Count(short, long int) int {
	if Long() {
		return long
	}
	return short
}

// Seed returns the random seed of a run: TLSRPT_TORTURE_SEED when set,
// else one from the clock. The caller logs it so a failure can be replayed.
func Seed(t testing.TB) uint64 {
	t.Helper()
	if s := os.Getenv("TLSRPT_TORTURE_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("TLSRPT_TORTURE_SEED=%q: %v", s, err)
		}
		return n
	}
	return uint64(time.Now().UnixNano())
}

// recordMu serialises appends to the figures file within one process.
var recordMu sync.Mutex

// Record logs the figures of one torture run and, when TLSRPT_TORTURE_OUT
// names a file, appends them to it as one JSON line, so that RELIABILITY.md
// is filled from what a run measured, not by hand.
func Record(t testing.TB, figures map[string]any) {
	t.Helper()
	figures["test"] = t.Name()
	figures["at"] = time.Now().UTC().Format(time.RFC3339)
	figures["long"] = Long()
	b, err := json.Marshal(figures)
	if err != nil {
		t.Fatalf("encoding figures: %v", err)
	}
	t.Logf("figures: %s", b)
	path := os.Getenv("TLSRPT_TORTURE_OUT")
	if path == "" {
		return
	}
	recordMu.Lock()
	defer recordMu.Unlock()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatalf("opening figures file: %v", err)
	}
	defer f.Close()
	if _, err := f.Write(append(b, '\n')); err != nil {
		t.Fatalf("writing figures: %v", err)
	}
}

// HeapWatch samples the live heap of the process until Stop.
type HeapWatch struct {
	stop chan struct{}
	done chan struct{}
	peak uint64
}

// heapMetric is the bytes of live and not yet swept heap objects.
const heapMetric = "/memory/classes/heap/objects:bytes"

// WatchHeap samples the heap every few milliseconds. runtime/metrics reads
// without stopping the world, so the sampling barely slows the run.
func WatchHeap() *HeapWatch {
	w := &HeapWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		s := []metrics.Sample{{Name: heapMetric}}
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			metrics.Read(s)
			if s[0].Value.Kind() == metrics.KindUint64 {
				w.peak = max(w.peak, s[0].Value.Uint64())
			}
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return w
}

// Stop ends the sampling and returns the peak heap in bytes.
func (w *HeapWatch) Stop() uint64 {
	close(w.stop)
	<-w.done
	return w.peak
}

// PeakRSS returns the peak resident set size of this process (VmHWM of
// /proc/self/status) in bytes, or 0 where there is no /proc.
func PeakRSS() uint64 {
	return procStatus("self", "VmHWM:")
}

// ProcPeakRSS is PeakRSS of another process, read while it runs.
func ProcPeakRSS(pid int) uint64 {
	return procStatus(strconv.Itoa(pid), "VmHWM:")
}

func procStatus(pid, key string) uint64 {
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) >= 2 && f[0] == key {
			kb, _ := strconv.ParseUint(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// MiB formats bytes as mebibytes for the figures.
func MiB(b uint64) string { return fmt.Sprintf("%.1f", float64(b)/(1<<20)) }

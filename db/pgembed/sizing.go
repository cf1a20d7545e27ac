package pgembed

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// Sizing is how much memory and WAL the embedded cluster may use. Started
// with PostgreSQL's defaults (128 MB of shared buffers, a checkpoint
// every 1 GB of WAL), a backfill of a million reports checkpointed every
// 3 to 4 seconds and re-read index pages from the kernel's cache: the
// embedded cluster is the whole database of a single-machine install, so
// it is sized from the machine it runs on (docs/bench-import.md).
type Sizing struct {
	SharedBuffersMB int // shared_buffers
	MaxWALMB        int // max_wal_size
}

const (
	minSharedBuffersMB = 128
	maxSharedBuffersMB = 4 << 10
	minMaxWALMB        = 1 << 10
	maxMaxWALMB        = 8 << 10
)

// SizeFor is the sizing for a machine with memBytes of memory (the
// smaller of the machine's and its control group's limit; 0 when
// unknown) and freeBytes free on the cluster's file system (0 when
// unknown): an eighth of the memory for shared buffers, between 128 MB
// and 4 GB (tlsrpt, the mail server and the kernel's cache share the
// rest), and a tenth of the free disk for WAL between checkpoints,
// between 1 and 8 GB. Unknown values keep PostgreSQL's defaults.
func SizeFor(memBytes, freeBytes uint64) Sizing {
	s := Sizing{SharedBuffersMB: minSharedBuffersMB, MaxWALMB: minMaxWALMB}
	if memBytes > 0 {
		s.SharedBuffersMB = int(min(max(memBytes/8>>20, minSharedBuffersMB), maxSharedBuffersMB))
	}
	if freeBytes > 0 {
		s.MaxWALMB = int(min(max(freeBytes/10>>20, minMaxWALMB), maxMaxWALMB))
	}
	return s
}

// machineSizing sizes a cluster whose data directory is dir.
func machineSizing(dir string) Sizing {
	var free uint64
	var st syscall.Statfs_t
	if syscall.Statfs(dir, &st) == nil {
		free = st.Bavail * uint64(st.Bsize)
	}
	return SizeFor(MemoryLimit(), free)
}

// MemoryLimit is the memory this process may use: MemTotal of
// /proc/meminfo, or the control group's limit when smaller (cgroup v2
// memory.max, v1 memory.limit_in_bytes). 0 when unknown.
func MemoryLimit() uint64 {
	total := memTotal("/proc/meminfo")
	for _, p := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		if b, err := os.ReadFile(p); err == nil {
			if n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil && n > 0 && (total == 0 || n < total) {
				total = n
			}
		}
	}
	return total
}

// memTotal reads MemTotal (kB) of a meminfo file, in bytes; 0 when absent.
func memTotal(path string) uint64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			n, err := strconv.ParseUint(fields[1], 10, 64)
			if err != nil {
				return 0
			}
			return n << 10
		}
	}
	return 0
}

// conf is the sizing as postgresql.conf lines. checkpoint_timeout goes
// from 5 to 15 minutes with it: at a steady trickle of reports the
// checkpoints are then timed, and each writes a page once, not thrice.
func (s Sizing) conf() string {
	return fmt.Sprintf("shared_buffers = '%dMB'\nmax_wal_size = '%dMB'\ncheckpoint_timeout = '15min'\n", s.SharedBuffersMB, s.MaxWALMB)
}

#!/usr/bin/env bash
# Measures `tlsrpt import` of a directory of report files with two builds side
# by side in one run: BASE (a git revision) and the working tree, each into a
# fresh embedded cluster (its own settings, fsync on), alternating, ROUNDS
# times (default 1). For each run it prints the import's own line, its wall
# time, the importer's CPU (user + sys) and peak memory, and the CPU of every
# PostgreSQL process of the cluster (the postmaster's own, of its exited
# children, and of the live ones, read from /proc before and after), which
# is why the server is started here on the cluster's directory rather than
# by the import.
#
#   go run ./ingest/internal/genimport -out /tmp/imp1m-files -n 1000000 -end 2026-11-30
#   scripts/bench-import.sh 26d69ea /tmp/imp1m-files 2
#
# It needs the PostgreSQL server binaries (as root, the cluster runs as the
# postgres user) and touches only directories it creates under
# ${TMPDIR:-/tmp}/tlsrpt-bench-import.XXXXXX, removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -lt 2 ]; then
	echo "usage: scripts/bench-import.sh BASE-REVISION FILES-DIR [ROUNDS]" >&2
	exit 2
fi
base=$1 files=$2 rounds=${3:-1}
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
bindir=$(pg_config --bindir 2>/dev/null || true)
if [ ! -x "$bindir/initdb" ]; then
	bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/tlsrpt-bench-import.XXXXXX")
chmod 755 "$work"
cleanup() {
	for d in "$work"/run-*/postgres/data; do
		[ -f "$d/postmaster.pid" ] && as_pg "$bindir/pg_ctl" stop -D "$d" -m immediate >/dev/null 2>&1 || true
	done
	git worktree remove --force "$work/base-src" >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT


git worktree add --detach "$work/base-src" "$base" >/dev/null 2>&1
(cd "$work/base-src" && go build -o "$work/tlsrpt-base" ./cmd/tlsrpt)
go build -o "$work/tlsrpt-new" ./cmd/tlsrpt
echo "base: $(git rev-parse --short "$base"); new: $(git rev-parse --short HEAD)$(git diff --quiet || echo ' with uncommitted changes'); files: $files"

# pgcpu prints the CPU ticks of the postmaster PM and all its children.
pgcpu() {
	local pm=$1 t c
	t=$(awk '{print $14+$15+$16+$17}' "/proc/$pm/stat")
	for c in $(ps -o pid= --ppid "$pm"); do
		t=$((t + $(awk '{print $14+$15}' "/proc/$c/stat" 2>/dev/null || echo 0)))
	done
	echo "$t"
}

run() {
	local name=$1 bin=$2 d="$work/run-$1"
	mkdir -p "$d"
	TLSRPT_DATA_DIR=$d "$bin" migrate >/dev/null
	as_pg "$bindir/pg_ctl" stop -D "$d/postgres/data" -m fast >/dev/null 2>&1 || true
	as_pg "$bindir/pg_ctl" start -D "$d/postgres/data" -w -l "$d/postgres/bench.log" >/dev/null
	local pm c0 c1 l0 l1 t0 t1 hz
	pm=$(head -n 1 "$d/postgres/data/postmaster.pid")
	hz=$(getconf CLK_TCK)
	c0=$(pgcpu "$pm") l0=$(cut -d' ' -f1 /proc/loadavg) t0=$(date -u +%T)
	TLSRPT_DATA_DIR=$d /usr/bin/time -f "%e s wall, %U s user, %S s sys, %M KiB peak" -o "$d/time" \
		"$bin" import --progress=false "$files" >"$d/out" 2>&1 || true
	sleep 1
	c1=$(pgcpu "$pm") l1=$(cut -d' ' -f1 /proc/loadavg) t1=$(date -u +%T)
	as_pg "$bindir/pg_ctl" stop -D "$d/postgres/data" -m fast >/dev/null
	echo "$name, $t0-$t1 UTC, load $l0 -> $l1: $(tail -n 1 "$d/out") | tlsrpt $(cat "$d/time") | PostgreSQL $(awk -v t=$((c1 - c0)) -v hz="$hz" 'BEGIN {printf "%.1f", t / hz}') s CPU"
	rm -rf "$d"
}

for i in $(seq "$rounds"); do
	run "base-$i" "$work/tlsrpt-base"
	run "new-$i" "$work/tlsrpt-new"
done

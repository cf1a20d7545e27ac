#!/usr/bin/env bash
# The long torture run behind RELIABILITY.md: the *_torture_test.go tests
# at their long counts (TLSRPT_TORTURE=long), then every fuzz target for
# TORTURE_FUZZTIME. Bounded: the tests by TORTURE_TIMEOUT, each fuzz target
# by its time. Figures go to TORTURE_OUT (one JSON line per test); crashers
# found by fuzzing are written by go test to the package's testdata/fuzz/.
set -uo pipefail
cd "$(dirname "$0")/.."

out=${TORTURE_OUT:-$PWD/torture-figures.jsonl}
log=${TORTURE_LOG:-$PWD/torture.log}
fuzztime=${TORTURE_FUZZTIME:-60s}
timeout=${TORTURE_TIMEOUT:-60m}
: >"$out"
: >"$log"
export TLSRPT_TORTURE=long TLSRPT_TORTURE_OUT="$out"
export TLSRPT_TEST_REQUIRE=${TLSRPT_TEST_REQUIRE:-postgres,dovecot}

status=0
echo "== torture tests (long), figures to $out, log to $log"
go test -count=1 -timeout "$timeout" -v \
	-run 'Torture|TestSessionFixation|TestLoginBruteForce|TestSecretsNotLogged|TestHostileReportNames|TestAttachmentErrWrapsSentinel' \
	./internal/torture/ ./reports/ ./ingest/ ./api/ >>"$log" 2>&1 || status=1
grep -E '^(--- |ok|FAIL|panic)' "$log"

echo "== fuzz targets, $fuzztime each"
for pkg in $(go list ./...); do
	for f in $(go test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz'); do
		echo "-- $pkg $f"
		if ! go test -run '^$' -fuzz "^$f\$" -fuzztime "$fuzztime" "$pkg" >>"$log" 2>&1; then
			echo "   FAILED: crasher saved under $(go list -f '{{.Dir}}' "$pkg")/testdata/fuzz/$f"
			status=1
		fi
		tail -n 3 "$log" | grep -E 'elapsed|PASS|ok' | tail -1
	done
done
echo "== figures"
cat "$out"
exit $status

#!/usr/bin/env bash
# Runs every check and test of tlsrpt. On a fresh Debian machine it first
# installs what is missing, and nothing else: the Debian packages
# postgresql, dovecot-imapd, chromium and postfix (apt-get, only those
# absent; postfix preseeded as "No configuration", so the package sets up
# no mail system and starts none) and
# staticcheck (go install, into $(go env GOPATH)/bin). It stops, starts,
# reconfigures or deletes nothing it did not create: every server a test
# needs is a private one on its own port and in a temporary directory,
# removed when the test ends.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then missing+=(postgresql); fi
if [ ! -x /usr/sbin/dovecot ]; then missing+=(dovecot-imapd); fi
if [ ! -x /usr/bin/chromium ]; then missing+=(chromium); fi
if [ ! -x /usr/lib/postfix/sbin/master ]; then missing+=(postfix); fi
if [ ${#missing[@]} -gt 0 ]; then
	echo "== installing ${missing[*]}"
	if [[ " ${missing[*]} " == *" postfix "* ]]; then
		echo "postfix postfix/main_mailer_type select No configuration" | as_root debconf-set-selections
	fi
	as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

export PATH="$(go env GOPATH)/bin:$PATH"
if ! command -v staticcheck >/dev/null; then
	echo "== installing staticcheck"
	GOFLAGS= go install honnef.co/go/tools/cmd/staticcheck@v0.8.2
fi

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then echo "not gofmt-formatted:"; echo "$unformatted"; exit 1; fi
echo "== go vet"
go vet ./...
echo "== staticcheck"
staticcheck ./...

# Integration tests fail instead of skipping when their servers are absent.
export TLSRPT_TEST_REQUIRE=postgres,dovecot,chromium,postfix
echo "== go test"
go test -race -shuffle=on -timeout 15m "$@" ./...

# The same answers with the clock of the in-process server tests 400 days
# on (internal/testclock): a test that mixes its fixed time with the real
# clock, or hard-codes a date, fails here before the calendar finds it.
echo "== go test, the test clock 400 days on"
TLSRPT_TEST_CLOCK_SHIFT=400 go test -count=1 -shuffle=on -timeout 10m "$@" ./api/

#!/usr/bin/env bash
# Runs every check and test of tlsrpt. On a fresh Debian machine it first
# installs what is missing, and nothing else: the Debian packages
# postgresql, dovecot-imapd, chromium, bind9 and postfix (apt-get, only
# those absent; bind9 may start the system's named.service on install,
# which this script leaves as it is: the BIND tests run their own named
# on a loopback high port, rollout/bindtest; postfix only where no other
# mail system provides /usr/sbin/sendmail, which installing it would replace, and preseeded as
# "No configuration", so the package sets up no mail system and starts
# none) and staticcheck (go install, into $(go env GOPATH)/bin). promtool
# is fetched, not installed: the prometheus package is downloaded and
# unpacked in ${XDG_CACHE_HOME:-~/.cache}/tlsrpt-test (installing it would
# start a Prometheus service), and only promtool is put on PATH. It stops, starts,
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
if [ ! -x /usr/sbin/named ]; then missing+=(bind9); fi
if [ ! -x /usr/lib/postfix/sbin/master ]; then
	if [ -e /usr/sbin/sendmail ]; then
		echo "== not installing postfix: another mail system provides /usr/sbin/sendmail (the Postfix test skips)"
	else
		missing+=(postfix)
	fi
fi
if [ ${#missing[@]} -gt 0 ]; then
	echo "== installing ${missing[*]}"
	if [[ " ${missing[*]} " == *" postfix "* ]]; then
		echo "postfix postfix/main_mailer_type select No configuration" | as_root debconf-set-selections
	fi
	as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# promtool checks docs/prometheus/tlsrpt.rules.yml (api TestMonitoringFiles).
if ! command -v promtool >/dev/null; then
	cache="${XDG_CACHE_HOME:-$HOME/.cache}/tlsrpt-test/prometheus"
	if [ ! -x "$cache/bin/promtool" ]; then
		echo "== fetching promtool (apt-get download prometheus, unpacked in $cache; not installed)"
		mkdir -p "$cache"
		rm -rf "$cache/deb" "$cache/root" "$cache/bin"
		mkdir "$cache/deb"
		if ! (cd "$cache/deb" && apt-get download prometheus); then
			as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
			(cd "$cache/deb" && apt-get download prometheus)
		fi
		dpkg-deb -x "$cache"/deb/prometheus_*.deb "$cache/root"
		mkdir "$cache/bin"
		ln -s ../root/usr/bin/promtool "$cache/bin/promtool"
		rm -rf "$cache/deb"
	fi
	export PATH="$PATH:$cache/bin"
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
require=postgres,dovecot,chromium,promtool,bind
# The Postfix test needs root (Postfix's master runs only as root).
if [ -x /usr/lib/postfix/sbin/master ] && [ "$(id -u)" = 0 ]; then require="$require,postfix"; fi
export TLSRPT_TEST_REQUIRE="$require"
echo "== go test"
go test -race -shuffle=on -timeout 15m "$@" ./...

# The same answers with the clock of the in-process server tests 400 days
# on (internal/testclock): a test that mixes its fixed time with the real
# clock, or hard-codes a date, fails here before the calendar finds it.
echo "== go test, the test clock 400 days on"
TLSRPT_TEST_CLOCK_SHIFT=400 go test -count=1 -shuffle=on -timeout 10m "$@" ./api/

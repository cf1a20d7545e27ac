# Convenience targets; scripts/test.sh is what CI runs.
GO ?= go

.PHONY: build bench-tool test demo screenshots fuzz bench bench-peer lint torture

build:
	$(GO) build -o bin/tlsrpt ./cmd/tlsrpt

# The scale benchmarks' tool (seed, web, post; docs/bench-scale.md), not
# part of the product binary.
bench-tool:
	$(GO) build -o bin/tlsrpt-bench ./cmd/tlsrpt-bench

test:
	./scripts/test.sh

demo:
	$(GO) run ./cmd/tlsrpt demo

# docs/screenshots/*.png from the demo in headless Chromium (/usr/bin/chromium
# and the PostgreSQL server binaries): TestWalkDemo walks every page, then
# takes the overview, a domain page and the promote panel at 1280 px, and
# the overview at 390 px.
screenshots:
	TLSRPT_TEST_REQUIRE=postgres,chromium TLSRPT_UPDATE_SCREENSHOTS=1 \
		$(GO) test -count=1 -run '^TestWalkDemo$$' -v ./cmd/tlsrpt/

lint:
	gofmt -l $$(git ls-files '*.go')
	$(GO) vet ./...
	staticcheck ./...

# Each fuzz target for FUZZTIME (default 30s).
FUZZTIME ?= 30s
fuzz:
	@for pkg in $$($(GO) list ./...); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
			echo "== $$pkg $$f"; \
			$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
		done; \
	done

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# tlsrpt's parser against mox's (a module of its own: mox stays out of go.mod).
bench-peer:
	cd reports/internal/peerbench && $(GO) test -run '^$$' -bench . -count 5

# The long torture run of RELIABILITY.md (about 40 minutes on 2 cores):
# mutations, faults, load, then each fuzz target for TORTURE_FUZZTIME.
torture:
	./scripts/torture.sh

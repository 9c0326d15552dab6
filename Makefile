# FerrisStreams — common tasks. `make test` is the README's test command and
# what .ci/run executes. oracle/ is a module of its own (it links DuckDB
# through cgo, which the engine's module never needs).
GO ?= go
PKGS := ./...
# staticcheck, pinned (module version v0.8.2 is release 2026.2.2); `make lint`
# installs it into GOPATH/bin when missing there (PATH need not include it).
STATICCHECK_VERSION := 0.8.2
STATICCHECK := $(shell $(GO) env GOPATH)/bin/staticcheck

SHELL := /bin/bash

.PHONY: build test fuzz-short race bench bench-e2e lint staticcheck demo clean

build:
	$(GO) build -o bin/ferris ./cmd/ferris

test:
	$(GO) vet $(PKGS)
	$(GO) test -count=1 -timeout 30m $(PKGS)
	$(GO) test -count=1 -timeout 30m -race -short . ./arrowexec ./arrowexec/resource ./sources/... ./sinks/... ./server/... ./cmd/...
	cd oracle && $(GO) vet ./... && $(GO) test -count=1 -timeout 10m -short ./...

# A brief run of each fuzz target over untrusted input (file decoders, the
# checkpoint state codec); crashers found land in testdata/fuzz and run
# with `make test` from then on. New inputs are minimized for at most 1 s:
# the default (60 s) spends a short run minimizing the first few Arrow and
# Parquet files it finds instead of trying new ones.
FUZZTIME ?= 10s
FUZZ := ./sources:FuzzJSONFile ./sources:FuzzCSVFile ./sources:FuzzArrowFile ./sources:FuzzParquetFile ./arrowexec:FuzzStateCodec

fuzz-short:
	@set -e; for t in $(FUZZ); do \
		$(GO) test -run '^$$' -fuzz "^$${t#*:}$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 1s "$${t%%:*}"; \
	done

race:
	$(GO) test -race $(PKGS)

bench:
	GOMAXPROCS=1 $(GO) test -run '^$$' -bench . -benchmem ./bench/ ./arrowexec/... ./sources/... ./kernels/...
	$(GO) run ./cmd/ferris bench nexmark --cores 1 --events $${NEXMARK_EVENTS:-10000000}
	$(GO) run ./cmd/ferris bench workloads --cores 1 --events $${WORKLOAD_ROWS:-1000000}

# End to end through the binary on a 10-million-row JSON-lines file (made
# once by the generator): prints rows/s and user+system CPU seconds.
bench-e2e: build
	test -f bench/e2e/trades.jsonl || ./bin/ferris run bench/e2e/generate.sql
	time GOMAXPROCS=1 ./bin/ferris run bench/e2e/filter_project.sql

lint: staticcheck
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) vet $(PKGS)
	cd oracle && $(GO) vet ./...
	$(STATICCHECK) $(PKGS)
	cd oracle && $(STATICCHECK) ./...

staticcheck:
	@$(STATICCHECK) -version 2>/dev/null | grep -qF '($(STATICCHECK_VERSION))' || \
		$(GO) install honnef.co/go/tools/cmd/staticcheck@v$(STATICCHECK_VERSION)

demo:
	$(GO) run ./cmd/ferris run examples/quickstart.sql

clean:
	rm -rf bin

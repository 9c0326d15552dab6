# FerrisStreams — common tasks. `make test` is the README's test command and
# what .ci/run executes.
GO ?= go
PKGS := ./...

.PHONY: build test race bench lint demo clean

build:
	$(GO) build -o bin/ferris ./cmd/ferris

test:
	$(GO) vet $(PKGS)
	$(GO) test -count=1 $(PKGS)
	$(GO) test -count=1 -race ./arrowexec/...

race:
	$(GO) test -race $(PKGS)

bench:
	GOMAXPROCS=1 $(GO) test -run '^$$' -bench . -benchmem ./bench/ ./arrowexec/... ./sources/... ./kernels/...

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) vet $(PKGS)

demo:
	$(GO) run ./cmd/ferris run examples/quickstart.sql

clean:
	rm -rf bin

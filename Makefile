# pgone developer entry points. `make test` installs what is missing, then
# runs every test; `make demo` runs a throwaway primary + replica behind pgone.

SHELL := /bin/bash
.DEFAULT_GOAL := build

# Go from PATH, else the usual tarball location.
GO ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
DEMO_ARGS ?=

.PHONY: deps build test demo fmt vet clean

deps:
	@GO="$(GO)" bash scripts/deps.sh

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/pgone ./cmd/pgone

test: deps
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 14m ./...

demo: deps build
	bin/pgone demo $(DEMO_ARGS)

fmt:
	$(GO) fmt ./...

vet:
	$(GO) vet ./...

clean:
	rm -rf bin/

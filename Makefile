# pgone developer entry points. `make test` installs what is missing, then
# runs every test; `make demo` runs a throwaway primary + replica behind pgone.

SHELL := /bin/bash
.DEFAULT_GOAL := build

# Go from PATH, else the usual tarball location.
GO ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
DEMO_ARGS ?=

.PHONY: deps build test demo fmt vet clean fuzz faults

deps:
	@GO="$(GO)" bash scripts/deps.sh

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/pgone ./cmd/pgone

test: deps
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 14m ./...

# The fault matrix alone (proxy/faults*_test.go): kill -9 of the primary,
# terminated servers, a stopped or SIGSTOPped replica, max_connections full,
# reloads, SIGTERM drain, a lost COMMIT. `make test` runs it too.
faults: deps
	$(GO) test -race -count=1 -run 'TestFault' ./proxy/ ./pool/

demo: deps build
	bin/pgone demo $(DEMO_ARGS)

# Every native Go fuzz target for FUZZTIME each (default 30s); `go test`
# (and so `make test`) already replays each target's seeds and saved corpus.
FUZZTIME ?= 30s
fuzz:
	@GO="$(GO)" FUZZTIME="$(FUZZTIME)" bash scripts/fuzz.sh

fmt:
	$(GO) fmt ./...

vet:
	$(GO) vet ./...

clean:
	rm -rf bin/

# Benchmarks (bench/). `make bench` is the full interleaved run of every
# workload against direct, PgBouncer, pgpool-II and pgone (under 40 minutes);
# `make bench-quick` is a smaller one (about 4½ minutes). Both use pools of
# 20; `make bench-pool300` is the second table: pools of 300, the cells above
# 20 clients, in bench/results/pool300/. All write
# latest.{md,svg,json}; BENCH_ARGS="-record" also writes a dated
# copy to commit. `make bench-micro` runs the Go micro-benchmarks; compare two
# runs with benchstat.
# `make bench-cache` (issue 13) and `make bench-seed` (issue 17, under 15
# minutes) run their suites against direct, PgBouncer, pgone and pgone-cache
# (pgone with the result cache on), in bench/results/cache/ and
# bench/results/seed/; BENCH_ARGS=-tiny is a smoke run of either (about a
# minute and a half; its numbers mean nothing).
BENCH_ARGS ?=

.PHONY: bench bench-quick bench-pool300 bench-micro bench-deps bench-cache bench-seed bench-tuner

bench-deps: deps
	@bash bench/deps.sh

bench: bench-deps build
	$(GO) run ./bench $(BENCH_ARGS)

bench-quick: bench-deps build
	$(GO) run ./bench -quick $(BENCH_ARGS)

bench-pool300: bench-deps build
	$(GO) run ./bench -pool-size 300 -workloads select-simple,select-extended,select-prepared,tpcb -clients 100,300 -out bench/results/pool300 $(BENCH_ARGS)

bench-cache: bench-deps build
	$(GO) run ./bench -suite cache -out bench/results/cache $(BENCH_ARGS)

bench-seed: bench-deps build
	$(GO) run ./bench -suite seed -out bench/results/seed $(BENCH_ARGS)

# `make bench-tuner` (issue 15): a wrong static config, the same with the
# tuner on, and a sweep of static configs, 90 s each (~10 minutes planned,
# not yet timed); BENCH_ARGS=-tiny is a smoke run.
bench-tuner: build
	$(GO) run ./bench -suite tuner -out bench/results/tuner $(BENCH_ARGS)

bench-micro:
	@mkdir -p bench/work
	set -o pipefail; $(GO) test -run '^$$' -bench . -benchmem -count 6 ./... | tee bench/work/micro.txt

# pgx v5.12.0's own test suite against PostgreSQL directly, pgone session
# mode, transaction mode, and transaction mode with the read/write split, one
# after another (a few minutes each); writes bench/results/pgx-suite-DATE.md.
# PGX_SUITE_TARGETS="tx" reruns one target; see scripts/pgx-suite.sh for the
# other knobs. Not part of `make test`.
PGX_SUITE_TARGETS ?=
.PHONY: pgx-suite
pgx-suite: deps
	@GO="$(GO)" bash scripts/pgx-suite.sh $(PGX_SUITE_TARGETS)

# Soak (bench/soak): mixed read/write clients through pgone for SOAK
# (default 10m) with faults on a schedule; writes
# bench/results/soak-<date>.md and exits non-zero when an invariant fails.
# Not part of `make test`.
SOAK ?= 10m
SOAK_ARGS ?=

.PHONY: soak

soak: deps build
	$(GO) run ./bench/soak -duration $(SOAK) $(SOAK_ARGS)

# Cache soak: the result cache's stale-read checker (two pgone instances
# sharing one Redis, writers and readers through both) for SOAK_CACHE
# instead of the 3s it runs in `make test`, then the Redis kill/restart
# test. Fails on any stale read or client error. Not part of `make test`.
SOAK_CACHE ?= 10m

.PHONY: soak-cache

soak-cache: deps
	PGONE_CACHE_SOAK=$(SOAK_CACHE) $(GO) test -race -count=1 -timeout 0 -v \
		-run 'TestCacheL2NeverStale|TestCacheL2RedisKilledUnderLoad' ./proxy/

# Mutation check (not part of `make test`): plants each fault listed in
# scripts/mutations.txt in a temporary copy of the tree, one at a time, runs
# the focused tests named for it, and prints caught/missed and a score.
# MUTATE_ARGS="-only router" runs a subset; -v prints each test output.
MUTATE_ARGS ?=
.PHONY: mutate
mutate:
	$(GO) run ./scripts/mutate $(MUTATE_ARGS)

# PostgreSQL 15's own regression suite (pg_regress, parallel schedule,
# --use-existing) against PostgreSQL directly and through pgone in session
# mode (about a minute each); writes bench/results/pg-regress-DATE.md. The
# tests come from `apt-get source postgresql-15` (needs a deb-src line; the
# script says how). PG_REGRESS_TARGETS="session" reruns one target (also: tx).
# Not part of `make test`.
PG_REGRESS_TARGETS ?=
.PHONY: pg-regress
pg-regress: deps
	@GO="$(GO)" bash scripts/pg-regress.sh $(PG_REGRESS_TARGETS)

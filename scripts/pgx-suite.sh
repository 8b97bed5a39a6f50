#!/usr/bin/env bash
# pgx-suite.sh runs pgx v5.12.0's own test suite (from the Go module cache)
# against up to four targets, one after another, each on a fresh throwaway
# cluster:
#   direct   PostgreSQL itself (the baseline)
#   session  pgone, session pooling
#   tx       pgone, transaction pooling
#   split    pgone, transaction pooling, primary + streaming replica
# and writes a summary (counts per target, the tests that fail through pgone
# but not directly, with a guessed cause) to bench/results/pgx-suite-DATE.md.
#
#   scripts/pgx-suite.sh                 all four targets (make pgx-suite)
#   scripts/pgx-suite.sh tx              one target; the summary reuses the
#                                        other targets' last results
#   PGX_SUITE_RUN='TestPipeline' scripts/pgx-suite.sh direct tx
#   scripts/pgx-suite.sh summary         only rewrite the summary
#
# Environment (all optional):
#   PGX_SUITE_RUN          go test -run pattern (default: every test)
#   PGX_SUITE_PKGS         packages, relative to pgx's root (default ./...)
#   PGX_SUITE_TIMEOUT      go test -timeout per package (default 15m)
#   PGX_SUITE_POOL_SIZE    pgone pool_size (default 20)
#   PGX_SUITE_CONSISTENCY  split: the database's consistency level
#   PGX_SUITE_OUT          summary file (default bench/results/pgx-suite-DATE.md)
#
# Raw results stay in bench/work/pgx-suite/ (TARGET.json from go test -json,
# TARGET.meta, TARGET.metrics (pgone's /metrics at the end), TARGET-pgone.log,
# TARGET-up.log). Tests run with -p 1 and without -race.
# The cluster and pgone are started by scripts/pgxsuite (Go), which stops
# them on SIGTERM; scripts/suite-helper.sh stops that helper on every exit
# path. The TLS, unix-socket, md5/plain-password and OAuth variables stay
# unset, so pgx skips those tests.
set -euo pipefail

GO="${GO:-go}"
PGX_VERSION=v5.12.0
cd "$(dirname "$0")/.."
root="$PWD"
work="$root/bench/work/pgx-suite"
mkdir -p "$work"

all_targets=(direct session tx split)
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
	targets=("${all_targets[@]}")
elif [[ "${targets[*]}" == summary ]]; then
	targets=() # only rewrite the summary from the stored results
fi
for t in "${targets[@]}"; do
	case "$t" in
	direct | session | tx | split) ;;
	*)
		echo "pgx-suite: unknown target $t (want direct, session, tx or split)" >&2
		exit 2
		;;
	esac
done

suite=pgx-suite
# shellcheck source=scripts/suite-helper.sh
source scripts/suite-helper.sh

echo "pgx-suite: building bin/pgone and the helper"
$GO build -o bin/pgone ./cmd/pgone
$GO build -o "$work/pgxsuite" ./scripts/pgxsuite

# The module cache is read-only: test a writable copy, kept between runs so
# go's build cache can reuse the compiled tests.
src="$work/pgx-$PGX_VERSION"
if [[ ! -f "$src/go.mod" ]]; then
	modjson="$($GO mod download -json "github.com/jackc/pgx/v5@$PGX_VERSION")"
	moddir="$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' <<<"$modjson")"
	if [[ -z "$moddir" || ! -d "$moddir" ]]; then
		echo "pgx-suite: no module directory for pgx $PGX_VERSION:" >&2
		echo "$modjson" >&2
		exit 1
	fi
	rm -rf "$src.tmp"
	cp -r "$moddir" "$src.tmp"
	chmod -R u+w "$src.tmp"
	mv "$src.tmp" "$src"
fi
(cd "$src" && $GO mod download)

# run_target starts the target's servers, runs the suite, stops the servers.
run_target() {
	local t="$1" env="$work/$1.env"
	rm -f "$env" "$work/$t.json" "$work/$t.metrics"
	start_helper "$t" -pool-size "${PGX_SUITE_POOL_SIZE:-20}" \
		${PGX_SUITE_CONSISTENCY:+-consistency "$PGX_SUITE_CONSISTENCY"} || return 1
	echo "pgx-suite: $t: running pgx's tests ($(date -u +%H:%M:%S)Z)"
	local args=(-json -p 1 -count=1 -timeout "${PGX_SUITE_TIMEOUT:-15m}")
	if [[ -n "${PGX_SUITE_RUN:-}" ]]; then
		args+=(-run "$PGX_SUITE_RUN")
	fi
	# shellcheck disable=SC2086 # PGX_SUITE_PKGS is a list of packages
	(
		# Only the variables written by the helper: no PGHOST etc. from outside.
		for v in $(compgen -e | grep -E '^PG[A-Z]*$|^PGX_TEST_' || true); do unset "$v"; done
		# shellcheck disable=SC1090
		source "$env"
		cd "$src"
		exec setsid $GO test "${args[@]}" ${PGX_SUITE_PKGS:-./...} >"$work/$t.json" 2>"$work/$t-build.log"
	) &
	tests_pid=$!
	finish_tests
	echo "$(pgone_revision), pool_size ${PGX_SUITE_POOL_SIZE:-20}$([[ $t == split ]] && echo ", consistency ${PGX_SUITE_CONSISTENCY:-default}"); go test ${args[*]} ${PGX_SUITE_PKGS:-./...}" >"$work/$t.meta"
	echo "pgx-suite: $t: done ($(date -u +%H:%M:%S)Z)"
}

for t in ${targets[@]+"${targets[@]}"}; do
	run_target "$t"
done

bindir="${PGONE_PG_BINDIR:-$(pg_config --bindir 2>/dev/null || true)}"
pgversion="$("$bindir/postgres" --version 2>/dev/null || echo "PostgreSQL (version unknown)")"
results=()
for t in "${all_targets[@]}"; do
	if [[ -s "$work/$t.json" ]]; then
		results+=("$t=$work/$t.json")
	fi
done
out="${PGX_SUITE_OUT:-bench/results/pgx-suite-$(date -u +%Y-%m-%d).md}"
"$work/pgxsuite" summarize -out "$out" \
	-note "pgx $PGX_VERSION; $pgversion; $($GO version | cut -d' ' -f3); $(nproc) CPUs; -p 1, no -race" \
	-note "pgone: server login pgx_md5 for every client (a database user is what enables the split's replica monitor), server TLS off, client auth scram-sha-256; the split's consistency level is pgone's default (read_your_writes) unless the target line says otherwise" \
	-note "Set: PGX_TEST_DATABASE, PGX_TEST_TCP_CONN_STRING (user pgx_md5, a SCRAM password here), PGX_TEST_SCRAM_PASSWORD_CONN_STRING; unset (tests skip): TLS, unix socket, md5, plain password, OAuth, PgBouncer, CrateDB" \
	"${results[@]}"

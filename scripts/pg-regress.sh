#!/usr/bin/env bash
# pg-regress.sh runs PostgreSQL 15's own regression suite (pg_regress with
# the parallel schedule, --use-existing) against
#   direct   PostgreSQL itself (the baseline)
#   session  pgone, session pooling
# each on a fresh throwaway cluster, and writes a summary (pass/fail per
# test, and for each test failing only through pgone the head of its diff)
# to bench/results/pg-regress-DATE.md.
#
#   scripts/pg-regress.sh                both targets (make pg-regress)
#   scripts/pg-regress.sh session        one target (also: tx); the summary
#                                        reuses the others' last results
#   scripts/pg-regress.sh summary        only rewrite the summary
#
# Environment (all optional):
#   PG_REGRESS_MAX_CONN    pg_regress --max-connections (default 4)
#   PG_REGRESS_SCHEDULE    parallel (default) or serial: the serial schedule
#                          is the parallel one, one test per line
#   PG_REGRESS_POOL_SIZE   pgone pool_size (default 20)
#   PG_REGRESS_OUT         summary file (default bench/results/pg-regress-DATE.md)
#
# The tests come from the Debian source package of the installed
# postgresql-15 (apt-get source: needs a deb-src line, see need_source), and
# regress.so is built from its regress.c against the headers of
# postgresql-server-dev-15 (downloaded and unpacked, not installed).
# Everything stays in bench/work/pg-regress/: src/ (sources, lib/), TARGET/
# (pg_regress's output dir: regression.out, regression.diffs, results/),
# TARGET.out (pg_regress's stdout), TARGET-pgone.log, TARGET-up.log.
# The cluster and pgone are started by scripts/pgxsuite (`up -suite
# regress`), which stops them on SIGTERM; scripts/suite-helper.sh stops
# that helper, and pg_regress, on every exit path.
set -euo pipefail

GO="${GO:-go}"
cd "$(dirname "$0")/.."
root="$PWD"
work="$root/bench/work/pg-regress"
mkdir -p "$work"

all_targets=(direct session tx)
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
	targets=(direct session)
elif [[ "${targets[*]}" == summary ]]; then
	targets=()
fi
for t in ${targets[@]+"${targets[@]}"}; do
	case "$t" in
	direct | session | tx) ;;
	*)
		echo "pg-regress: unknown target $t (want direct, session or tx)" >&2
		exit 2
		;;
	esac
done

suite=pg-regress
# shellcheck source=scripts/suite-helper.sh
source scripts/suite-helper.sh

bindir="${PGONE_PG_BINDIR:-$(pg_config --bindir)}"
pkglibdir="$(dirname "$bindir")/lib"
pg_regress="$pkglibdir/pgxs/src/test/regress/pg_regress"
pgversion="$("$bindir/postgres" --version)"
debversion="$(dpkg-query -W -f='${Version}' postgresql-15)"
upstream="${debversion%%-*}"
srcroot="$work/src"
regress="$srcroot/postgresql-$upstream/src/test/regress"
lib="$srcroot/lib"

need_source() {
	cat >&2 <<EOF
pg-regress: apt-get source postgresql-15=$debversion failed. Enable Debian
source packages (as root), then rerun:
  sed 's/^Types: deb\$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources \\
    >/etc/apt/sources.list.d/debian-src.sources && apt-get update
EOF
	exit 1
}

# fetch_tests unpacks src/test/regress of the installed version's source and
# builds regress.so; lib/ holds it beside contrib's autoinc.so and refint.so
# (the triggers test loads them from the same directory, PG_LIBDIR).
fetch_tests() {
	mkdir -p "$srcroot" "$lib"
	if [[ ! -f "$regress/parallel_schedule" ]]; then
		(cd "$srcroot" && apt-get source --download-only "postgresql-15=$debversion") || need_source
		tar -C "$srcroot" -xjf "$srcroot/postgresql-15_$upstream.orig.tar.bz2" "postgresql-$upstream/src/test/regress"
	fi
	if [[ ! -f "$lib/regress.so" ]]; then
		if [[ ! -d "$srcroot/dev/usr/include/postgresql/15/server" ]]; then
			(cd "$srcroot" && apt-get download "postgresql-server-dev-15=$debversion")
			dpkg -x "$srcroot"/postgresql-server-dev-15_*.deb "$srcroot/dev"
		fi
		cc -O2 -fPIC -shared -I"$srcroot/dev/usr/include/postgresql/15/server" -I/usr/include/postgresql \
			-o "$lib/regress.so" "$regress/regress.c"
	fi
	for so in autoinc.so refint.so; do
		if [[ ! -f "$pkglibdir/$so" ]]; then
			echo "pg-regress: $pkglibdir/$so is missing (package postgresql-contrib)" >&2
			exit 1
		fi
		ln -sf "$pkglibdir/$so" "$lib/$so"
	done
}

# schedule prints the schedule file to use.
schedule() {
	if [[ "${PG_REGRESS_SCHEDULE:-parallel}" == serial ]]; then
		awk '/^test:/ { for (i = 2; i <= NF; i++) print "test: " $i }' "$regress/parallel_schedule" >"$work/serial_schedule"
		echo "$work/serial_schedule"
	else
		echo "$regress/parallel_schedule"
	fi
}

echo "pg-regress: building bin/pgone and the helper"
$GO build -o bin/pgone ./cmd/pgone
$GO build -o "$work/pgxsuite" ./scripts/pgxsuite
if [[ ${#targets[@]} -gt 0 ]]; then
	fetch_tests
fi

run_target() {
	local t="$1" env="$work/$1.env" out="$work/$1"
	rm -rf "$env" "$out" "$work/$t.out"
	# The server (OS user postgres) writes COPY TO files into results/.
	mkdir -p "$out/results"
	chmod 0777 "$out" "$out/results"
	start_helper "$t" -suite regress -pool-size "${PG_REGRESS_POOL_SIZE:-20}" || return 1
	echo "pg-regress: $t: running pg_regress ($(date -u +%H:%M:%S)Z)"
	local sched
	sched="$(schedule)"
	(
		for v in $(compgen -e | grep -E '^PG[A-Z]*$' || true); do unset "$v"; done
		# shellcheck disable=SC1090
		source "$env"
		exec setsid "$pg_regress" --use-existing --bindir="$bindir" \
			--inputdir="$regress" --outputdir="$out" --dlpath="$lib" \
			--schedule="$sched" --max-connections="${PG_REGRESS_MAX_CONN:-4}" \
			--host="$PGHOST" --port="$PGPORT" --user="$PGUSER" --dbname=regression \
			>"$work/$t.out" 2>&1
	) &
	tests_pid=$!
	finish_tests
	echo "$(pgone_revision), pool_size ${PG_REGRESS_POOL_SIZE:-20}; pg_regress --use-existing --schedule=$(basename "$sched") --max-connections=${PG_REGRESS_MAX_CONN:-4}" >"$work/$t.meta"
	echo "pg-regress: $t: $(grep -E 'tests (passed|failed)' "$work/$t.out" | sed 's/^ *//; s/ *$//' | head -1) ($(date -u +%H:%M:%S)Z)"
}

for t in ${targets[@]+"${targets[@]}"}; do
	run_target "$t"
done

results=()
for t in "${all_targets[@]}"; do
	if [[ -s "$work/$t.out" ]]; then
		results+=("$t=$work/$t")
	fi
done
out="${PG_REGRESS_OUT:-bench/results/pg-regress-$(date -u +%Y-%m-%d).md}"
"$work/pgxsuite" regress-summary -out "$out" -sql "$regress/sql" \
	-note "$pgversion; tests from the Debian source package postgresql-15 $debversion; regress.so built from its regress.c; $(nproc) CPUs" \
	-note "pgone: \"*\" database served from the primary under the client's own login (superuser postgres, SCRAM), server TLS off; pg_regress runs as that superuser, database regression created beforehand as pg_regress's create_database does" \
	"${results[@]}"

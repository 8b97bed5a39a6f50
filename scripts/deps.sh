#!/usr/bin/env bash
# deps.sh installs what `make test` and `make demo` need, only if something
# is missing: PostgreSQL server binaries (initdb, postgres, pg_basebackup),
# psql, pgbench, redis-server, a C compiler (go test -race needs cgo),
# prometheus and promtool, amtool and alertmanager (Debian's
# prometheus-alertmanager: the deploy/ checks), and helm (built from its Go
# module into ~/.cache/pgone-tools/bin, or $PGONE_TOOLS_DIR).
# On Debian/Ubuntu it uses apt-get; elsewhere it prints what to install and
# fails. Go itself is never installed here. Run it as root (or with sudo).
set -euo pipefail

GO="${GO:-go}"

# pg_bindir prints the PostgreSQL server bin directory, searched exactly like
# internal/pgtest.BinDir: $PGONE_PG_BINDIR, `pg_config --bindir`, the highest
# /usr/lib/postgresql/*/bin, then the directory of initdb on PATH.
pg_bindir() {
	local dir
	if [[ -n "${PGONE_PG_BINDIR:-}" ]]; then
		[[ -x "$PGONE_PG_BINDIR/initdb" ]] && echo "$PGONE_PG_BINDIR"
		return 0
	fi
	if command -v pg_config >/dev/null 2>&1; then
		dir="$(pg_config --bindir 2>/dev/null || true)"
		if [[ -n "$dir" && -x "$dir/initdb" ]]; then
			echo "$dir"
			return 0
		fi
	fi
	dir="$(for d in /usr/lib/postgresql/*/bin; do
		[[ -x "$d/initdb" ]] && echo "$d"
	done | sort -t/ -k5,5 -V | tail -n 1)"
	if [[ -n "$dir" ]]; then
		echo "$dir"
		return 0
	fi
	if command -v initdb >/dev/null 2>&1; then
		dirname "$(readlink -f "$(command -v initdb)")"
	fi
	return 0
}

# has_tool NAME BINDIR: NAME is in the server bin dir or is a real program
# on PATH. Debian's /usr/bin/psql and /usr/bin/pgbench are pg_wrapper links
# (postgresql-client-common) that exist even when the real binary does not.
has_tool() {
	local name="$1" bindir="$2" path
	[[ -n "$bindir" && -x "$bindir/$name" ]] && return 0
	path="$(command -v "$name" 2>/dev/null)" || return 1
	[[ "$(readlink -f "$path")" != */pg_wrapper ]]
}

has_cgo_compiler() {
	local cc
	cc="$("$GO" env CC 2>/dev/null || echo cc)"
	command -v "${cc%% *}" >/dev/null 2>&1 &&
		echo '#include <stdlib.h>' | ${cc} -E - >/dev/null 2>&1
}

missing() {
	local bindir
	bindir="$(pg_bindir)"
	if [[ -z "$bindir" && -n "${PGONE_PG_BINDIR:-}" ]]; then
		echo "PostgreSQL server binaries: PGONE_PG_BINDIR=$PGONE_PG_BINDIR has no initdb (unset it or fix it)"
	elif [[ -z "$bindir" ]]; then
		echo "PostgreSQL server binaries (initdb, postgres, pg_basebackup)"
	else
		for tool in postgres pg_basebackup; do
			[[ -x "$bindir/$tool" ]] || echo "$tool (in $bindir)"
		done
	fi
	has_tool psql "$bindir" || echo "psql"
	has_tool pgbench "$bindir" || echo "pgbench"
	command -v redis-server >/dev/null 2>&1 || echo "redis-server"
	has_cgo_compiler || echo "a C compiler with libc headers (go test -race needs cgo)"
	command -v prometheus >/dev/null 2>&1 || echo "prometheus (Debian package prometheus)"
	command -v promtool >/dev/null 2>&1 || echo "promtool (Debian package prometheus)"
	command -v amtool >/dev/null 2>&1 || echo "amtool (Debian package prometheus-alertmanager)"
	command -v prometheus-alertmanager >/dev/null 2>&1 || command -v alertmanager >/dev/null 2>&1 ||
		echo "alertmanager (Debian package prometheus-alertmanager)"
}

# HELM_VERSION is the helm the deploy/ chart test runs (helm lint, helm template).
HELM_VERSION=v3.21.4
TOOLS_DIR="${PGONE_TOOLS_DIR:-${HOME:-/root}/.cache/pgone-tools/bin}"

# install_helm builds helm from its Go module (the module proxy serves it;
# no other download) unless one is on PATH or in TOOLS_DIR already. The
# first build takes a few minutes.
install_helm() {
	if command -v helm >/dev/null 2>&1 || [[ -x "$TOOLS_DIR/helm" ]]; then
		return 0
	fi
	echo "deps: building helm $HELM_VERSION into $TOOLS_DIR (a few minutes, once)"
	mkdir -p "$TOOLS_DIR"
	GOBIN="$TOOLS_DIR" GOFLAGS=-mod=mod "$GO" install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
}

# no_system_service NAME stops and disables the service a Debian package
# (prometheus, prometheus-alertmanager) starts: the tests run their own on a
# free port, and only the tools and the binary are wanted.
no_system_service() {
	local name="$1"
	if command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
		$SUDO systemctl disable --now "$name" >/dev/null 2>&1 || true
	elif [[ -x "/etc/init.d/$name" ]]; then
		# Without systemd the package starts it through its init script.
		$SUDO "/etc/init.d/$name" stop >/dev/null 2>&1 || true
		$SUDO update-rc.d "$name" disable >/dev/null 2>&1 || true
	fi
}

# no_system_cluster stops the postgresql package from creating and starting
# a "main" cluster on port 5432: pgone's tests start their own.
no_system_cluster() {
	local conf=/etc/postgresql-common/createcluster.conf
	$SUDO mkdir -p /etc/postgresql-common
	if [[ -f "$conf" ]] && grep -Eq '^[#[:space:]]*create_main_cluster' "$conf"; then
		$SUDO sed -i -E 's/^[#[:space:]]*create_main_cluster.*/create_main_cluster = false/' "$conf"
	else
		echo 'create_main_cluster = false' | $SUDO tee -a "$conf" >/dev/null
	fi
}

if ! command -v "$GO" >/dev/null 2>&1; then
	echo "deps: Go not found (looked for '$GO'); install Go from https://go.dev/dl/ and put its bin directory (e.g. /usr/local/go/bin) on PATH" >&2
	exit 1
fi

install_helm

todo="$(missing)"
if [[ -z "$todo" ]]; then
	echo "deps: everything is installed (PostgreSQL in $(pg_bindir))"
	exit 0
fi
echo "deps: missing:"
sed 's/^/  - /' <<<"$todo"

if ! command -v apt-get >/dev/null 2>&1; then
	cat >&2 <<'MSG'
deps: no apt-get here; install these yourself, then run make again:
  - PostgreSQL server binaries, including initdb, postgres and pg_basebackup
    (set PGONE_PG_BINDIR to their directory if pg_config cannot find them)
  - psql and pgbench
  - redis-server
  - a C compiler with libc headers (gcc), for go test -race
  - prometheus and promtool (2.x), for the deploy/ checks
  - alertmanager and amtool (0.25 or later), for the deploy/ checks
MSG
	exit 1
fi

SUDO=""
if [[ "$(id -u)" != 0 ]]; then
	if command -v sudo >/dev/null 2>&1; then
		SUDO="sudo"
	else
		echo "deps: installing needs root; run as root or install sudo" >&2
		exit 1
	fi
fi

no_system_cluster
$SUDO apt-get update
# UCF_FORCE_CONFFOLD and --force-confold keep the createcluster.conf written
# above instead of prompting about it.
$SUDO env DEBIAN_FRONTEND=noninteractive UCF_FORCE_CONFFOLD=1 \
	apt-get install -y --no-install-recommends \
	-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
	postgresql postgresql-client redis-server gcc libc6-dev prometheus \
	prometheus-alertmanager
no_system_service prometheus
no_system_service prometheus-alertmanager

todo="$(missing)"
if [[ -n "$todo" ]]; then
	echo "deps: still missing after apt-get install:" >&2
	sed 's/^/  - /' <<<"$todo" >&2
	exit 1
fi
echo "deps: installed (PostgreSQL in $(pg_bindir))"

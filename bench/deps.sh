#!/usr/bin/env bash
# deps.sh installs what `make bench` needs beyond `make deps` (PostgreSQL,
# pgbench, redis-server): PgBouncer and pgpool-II, only if missing. On
# Debian/Ubuntu it uses apt-get; elsewhere it prints what to install and
# fails. The packages' own services are stopped and disabled after a fresh
# install: the bench starts its own instances on free ports, and the
# packaged ones would hold 6432 and 5433.
set -euo pipefail

have() {
	command -v "$1" >/dev/null 2>&1 || [[ -x "/usr/sbin/$1" ]]
}

todo=()
have pgbouncer || todo+=(pgbouncer)
have pgpool || todo+=(pgpool2)
if [[ ${#todo[@]} -eq 0 ]]; then
	echo "bench deps: pgbouncer and pgpool are installed"
	exit 0
fi
echo "bench deps: missing: ${todo[*]}"

if ! command -v apt-get >/dev/null 2>&1; then
	echo "bench deps: no apt-get here; install PgBouncer and pgpool-II yourself (pgbouncer and pgpool on PATH or in /usr/sbin)" >&2
	exit 1
fi
SUDO=""
if [[ "$(id -u)" != 0 ]]; then
	if command -v sudo >/dev/null 2>&1; then
		SUDO="sudo"
	else
		echo "bench deps: installing needs root; run as root or install sudo" >&2
		exit 1
	fi
fi

$SUDO apt-get update
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${todo[@]}"

# The packages start system services where systemd runs; the bench needs none.
if command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
	for pkg in "${todo[@]}"; do
		$SUDO systemctl disable --now "$pkg" >/dev/null 2>&1 || true
	done
fi

have pgbouncer && have pgpool || {
	echo "bench deps: pgbouncer or pgpool still missing after apt-get install" >&2
	exit 1
}
echo "bench deps: installed ${todo[*]}"

#!/usr/bin/env bash
# fuzz.sh runs every native Go fuzz target in the module for FUZZTIME each
# (default 30s), one after another. Inputs that find a failure are written by
# `go test` to the package's testdata/fuzz/<Target>/ and make the run fail:
# commit them, they become regression cases that plain `go test` replays.
# With FUZZ_SAVE=1 the interesting inputs found are copied from Go's fuzz
# cache into testdata/fuzz too, to grow the committed corpora.
set -euo pipefail

GO="${GO:-go}"
FUZZTIME="${FUZZTIME:-30s}"
cd "$(dirname "$0")/.."

# The module's own packages only (go list): bench/work holds a copy of pgx
# after make pgx-suite, a module of its own with fuzz targets of its own.
mapfile -t targets < <($GO list -f '{{.Dir}}' ./... |
	while read -r abs; do
		dir=".${abs#"$PWD"}"
		cat "$abs"/*_test.go 2>/dev/null | grep -o '^func Fuzz[A-Za-z0-9_]*' | sed "s|^func |$dir |" || true
	done | sort)

cache="$($GO env GOCACHE)/fuzz"
module="$($GO list -m)"
for t in "${targets[@]}"; do
	read -r dir name <<<"$t"
	echo "== $dir $name ($FUZZTIME)"
	$GO test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" "$dir"
	if [[ "${FUZZ_SAVE:-}" == 1 ]]; then
		src="$cache/$module/${dir#./}/$name"
		src="${src%/.}"
		if [[ -d "$src" ]]; then
			mkdir -p "$dir/testdata/fuzz/$name"
			cp -n "$src"/* "$dir/testdata/fuzz/$name/" 2>/dev/null || true
		fi
	fi
done
echo "fuzz: ${#targets[@]} targets, $FUZZTIME each: no failure"

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

mapfile -t targets < <(grep -rl --include='*_test.go' '^func Fuzz' . |
	while read -r f; do
		dir="$(dirname "$f")"
		grep -o '^func Fuzz[A-Za-z0-9_]*' "$f" | sed "s|^func |$dir |"
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

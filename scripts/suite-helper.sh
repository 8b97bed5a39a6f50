# suite-helper.sh is sourced by pgx-suite.sh and pg-regress.sh. It starts
# scripts/pgxsuite's `up` helper (PostgreSQL and pgone for one target) and
# stops it, and the test runner, on every exit path. The sourcing script
# sets root (the checkout), work (results; the helper binary is
# $work/pgxsuite) and suite (its name, for messages).
#
# Both children run in the background and the script waits for them, so a
# signal reaches the traps at once: the tests in their own process group
# (setsid) so that stopping them also stops what they run, then the helper,
# which stops pgone and PostgreSQL.

helper_pid=""
tests_pid=""
stop_tests() {
	if [[ -n "$tests_pid" ]]; then
		kill -TERM -- "-$tests_pid" 2>/dev/null || true
		wait "$tests_pid" 2>/dev/null || true
		tests_pid=""
	fi
}
stop_helper() {
	if [[ -n "$helper_pid" ]]; then
		kill -TERM "$helper_pid" 2>/dev/null || true
		wait "$helper_pid" 2>/dev/null || true
		helper_pid=""
	fi
}
trap 'stop_tests; stop_helper' EXIT
trap 'exit 130' INT TERM

# start_helper TARGET [FLAGS...] runs `pgxsuite up` for TARGET in the
# background (pgone's log in $work/TARGET-pgone.log, its /metrics at the
# end in TARGET.metrics, the helper's own log in TARGET-up.log) and waits
# until it has written $work/TARGET.env; it fails if the helper exits first.
start_helper() {
	local t="$1" env="$work/$1.env"
	shift
	"$work/pgxsuite" up -target "$t" -pgone "$root/bin/pgone" -env "$env" \
		-log "$work/$t-pgone.log" -metrics "$work/$t.metrics" "$@" \
		2>"$work/$t-up.log" &
	helper_pid=$!
	while [[ ! -f "$env" ]]; do
		if ! kill -0 "$helper_pid" 2>/dev/null; then
			wait "$helper_pid" || true
			helper_pid=""
			echo "$suite: $t: the servers did not start:" >&2
			cat "$work/$t-up.log" >&2
			return 1
		fi
		sleep 0.2
	done
}

# finish_tests waits for the tests started in the background as tests_pid
# (failing tests are the point: the summary reports them), then stops the
# helper.
finish_tests() {
	wait "$tests_pid" || true
	tests_pid=""
	stop_helper
}

# pgone_revision names the checkout pgone was built from, for TARGET.meta.
pgone_revision() {
	echo "pgone $(git describe --always --dirty 2>/dev/null || echo unknown) ($(git rev-parse --abbrev-ref HEAD 2>/dev/null || echo '?'))"
}

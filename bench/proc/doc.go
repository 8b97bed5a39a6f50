// Package proc runs the long-lived processes of the bench (bench/), the
// soak (bench/soak/) and the pgx and pg_regress suites' helper
// (scripts/pgxsuite): pgone, PgBouncer, pgpool-II. All three are main
// packages, so what they share lives here rather than in any of them.
//
// A Child runs in its own process group, so a Ctrl-C on the terminal
// reaches only the command, which stops its children in order; the parent
// death signal stops a child if the command itself is killed. Start locks
// the forking goroutine to its OS thread until the child exits: Linux sends
// the parent death signal when the forking thread ends, not the process.
//
// StartOnFreePort starts a child on a free port and waits until a client can
// log in through it (Ping), retrying on a new port if the child dies early.
// TreePids and ReadStat read /proc. Describe names the pgone build a result
// was measured on.
//
// Nothing here is safe for concurrent use except a Child's Exited, Pid and
// Signal; each command owns its children and stops them in its cleanup.
package proc

// Command soak runs pgone for a long while under mixed read/write clients
// and scheduled faults, then checks what must hold after any amount of
// trouble and writes a report.
//
//	make soak             # 10 minutes
//	SOAK=1h make soak     # longer
//	go run ./bench/soak -h
//
// Lifecycle: a PostgreSQL primary and streaming replica (internal/pgtest)
// and bin/pgone (transaction mode, read/write split, admin console,
// metrics), each on a free 127.0.0.1 port. Writers and readers run through
// pgone for the whole duration; after a warm-up, one fault every
// -fault-every, in rotation: every pgone server connection terminated
// (pg_terminate_backend on both servers), the primary restarted, the
// replica frozen with SIGSTOP then resumed, pgone reloaded (SIGHUP) with
// another pool_size, pgone's backends on the primary killed with SIGKILL
// (crash recovery; -faults picks the rotation). The last stretch has no faults, so the end state is
// one pgone should recover to. Env.cleanup stops what the run started, by
// pid, on success, failure and Ctrl-C alike (a frozen replica is resumed
// first); children also get a parent-death signal.
//
// Invariants (exit status 1 when one fails, the report says which):
//   - every acknowledged write is on the primary (read directly), none is
//     there twice, and none pgone called rolled back (08006) is there;
//   - a writer reads its own acknowledged write back through pgone
//     (consistency read_your_writes);
//   - no server connection leaked: once clients are gone the backends of
//     pgone's login in pg_stat_activity are exactly those SHOW SERVERS
//     lists, and after server_idle_timeout there are none;
//   - pgone's RSS grew less than -max-rss-growth from the end of warm-up
//     to the end of the load, and go_goroutines came back to its idle
//     baseline;
//   - pgone is still running and serving after the last fault.
//
// The ledger: each write inserts ids unique to its writer; the writer
// records each id as acknowledged (the statement or COMMIT succeeded),
// rolled back (pgone said 08006), or unknown (anything else: 08007, a
// lost connection, a timeout). The table's primary key is its own serial,
// not the id, so a write applied twice is stored twice and counted rather
// than turned into a unique violation the client might never see.
//
// Files: main.go (flags, the run), env.go (cluster, pgone, cleanup; the
// child process through bench/proc, shared with the bench),
// clients.go (writers, readers, the ledger), faults.go (the schedule),
// observe.go (metrics, admin console, leak check), verify.go (the ledger
// check), report.go (the markdown).
package main

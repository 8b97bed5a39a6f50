// Command bench measures pgone against PostgreSQL itself, PgBouncer and
// pgpool-II in one interleaved run, and writes a results table and a chart.
//
//	make bench-quick   # about 4½ minutes: a few cells, 2s runs
//	make bench         # every cell, 4s runs, under 40 minutes
//	make bench-cache   # issue 13: the result cache off (pgone) and on (pgone-cache)
//	make bench-seed    # issue 17: the seed's workloads and targets
//	make bench-tuner   # issue 15: a wrong static config, the same tuned, a sweep (tunersuite.go)
//	go run ./bench -h  # flags: -quick, -record, -reps, -duration, -targets, -workloads, -pgone-modes, -keep,
//	                   # -suite, -seed-rows, -tiny (a smoke run of a suite in one flag)
//
// Lifecycle: the run starts a primary and a streaming replica
// (internal/pgtest), redis-server, PgBouncer and pgpool-II (as the OS user
// postgres: both refuse root) and bin/pgone, each on a free 127.0.0.1 port;
// initializes pgbench once on the primary; warms every target up; then runs
// the plan. Env.cleanup is the one place that stops what was started, in
// reverse order, on success, failure and Ctrl-C alike; children also get a
// parent-death signal in case the bench is killed.
//
// Method: for each cell (workload, client count) the targets run in turn,
// -reps times, the order rotated every round (A B C D, B C D A, ...), and
// the median is reported with each target's ratio to direct and to
// PgBouncer, and each proxy's CPU per transaction. Direct runs alone: the
// poolers' server connections are closed before it and reopened after it,
// outside the measurement; a lone pgbench run at the start and the end is
// the yardstick direct at 10 clients must match within 10%, or the run
// exits 3 (fair.go). The machine is shared and noisy; ratios from one
// interleaved run are what to quote.
//
// Measuring: pgbench gives TPS and average latency; p99 comes from its
// per-transaction log (-l). pgbench's -T clock includes connecting the
// clients, so -T is extended by the connection time last measured for the
// target (see runPgbench). Workloads pgbench cannot express (connection
// storm, idle clients) are Go functions using pgconn. CPU seconds and
// memory of each proxy's process tree and of PostgreSQL come from /proc.
//
// Suites: a run without -workloads runs one suite: the pooler comparison,
// cache (issue 13) or seed (issue 17). Their Go-client workloads time each
// statement (mix.go); the cache workload checks every read against the
// versions its writer published (stale.go); the seed's data is generated
// on the primary before any target starts (datasets.go); goals.go judges
// each workload against its targets and compares cache off and on.
//
// Files: main.go (flags, setup, teardown), plan.go (warm-up and the
// interleaved loop), fair.go (direct alone, the check, rotation, CPU per
// transaction), workloads.go and suites.go (what runs; adding a workload
// is one struct literal), mix.go, stale.go, datasets.go, goals.go and
// cachetarget.go (pgone-cache and SHOW CACHE), targets.go (starting each target), pgbench.go and
// clients.go (running a cell), proc.go (/proc accounting; child processes
// and logins are bench/proc, shared with bench/soak and scripts/pgxsuite),
// report.go and chart.go (results), env.go (versions and machine).
package main

// Package pgtest starts and stops throwaway PostgreSQL clusters (a primary
// and, optionally, one streaming replica) and redis-server instances, for
// integration tests, `pgone demo` and benchmarks.
//
// # What it owns
//
// StartCluster creates one temp directory under os.TempDir(), runs initdb,
// starts `postgres -D` directly as a child process (no pg_ctl, so the pid is
// ours), and for a replica runs pg_basebackup and starts a hot standby. The
// servers listen only on 127.0.0.1, on free ports, are tuned for speed rather
// than durability (fsync=off), and accept the superuser SuperUser with
// password SuperPassword over TCP (scram-sha-256). StartRedis does the same for
// redis-server with persistence off. Binaries come from the system: BinDir
// finds the PostgreSQL server binaries, PATH finds redis-server. A missing
// binary is an error matching ErrNotInstalled whose text says what to install.
//
// # Lifecycle
//
// Start* returns only once the server accepts connections (a replica: once it
// is also in recovery). If any step fails midway, everything started so far is
// stopped and the directory removed. Stop does a fast shutdown of each server
// (SIGINT to its postgres pid, SIGKILL after 30s) and removes the directory;
// it is idempotent and safe to call from several goroutines. Server.Stop and
// Server.Start restart one server on the same port and data directory.
//
// Children get a parent-death signal (postgres: SIGQUIT, an immediate
// shutdown; redis: SIGTERM), so a test binary that is killed or times out does
// not leave servers running. Callers still own signal handling: on Ctrl-C,
// `pgone demo` calls Stop. StartProcess supervises any other child the same
// way (a benchmark's pgone or pgbouncer).
//
// # Root
//
// PostgreSQL refuses to run as root. When the caller is root, every
// PostgreSQL binary runs as the OS user "postgres" and the temp directory is
// chowned to it.
//
// # Tests
//
// New and NewRedis wrap the above for tests: they register Stop with
// t.Cleanup and fail the test (never skip it) when a binary is missing, so a
// machine without PostgreSQL cannot silently pass. The core API does not
// import package testing beyond those two helpers.
package pgtest

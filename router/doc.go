// Package router decides, for one query text and one session state, where
// the text may run and what it does to the session. It is pure: no I/O, no
// pools, no clock; the proxy acts on the Decision it returns.
//
// # Two halves
//
// Route splits the work by what it depends on:
//
//   - The analysis depends on the text only. bound.go measures the text
//     first, without parsing: pg_query runs C code in the caller's process
//     and its output stage recurses once per tree level on the thread's C
//     stack, so a deep enough text (a 30,000-term sum) would kill the
//     process. A text over the length or estimated depth bound is not
//     parsed nor cached: it goes to the primary (ReasonTooLong,
//     ReasonTooComplex) with the session effects a word scan cannot rule
//     out. Within the bounds, parse.go (with parse_options.go for
//     statement options and parse_normalize.go for SHOW QUERIES' text, the
//     package's only importers of pg_query_go) parses the text with
//     PostgreSQL's own parser,
//     walks every node of every statement once (protobuf reflection, so an
//     expression nested anywhere is seen) and reduces it to a small struct:
//     statement kind, tables read and written, functions called, pins,
//     transaction and settings effects, comment hints, fingerprint.
//     Analyses are cached by exact text in a bounded, sharded LRU, so a
//     text is parsed once while it stays in the cache (a parse costs
//     hundreds of microseconds; a cached Route a few hundred nanoseconds
//     and no allocation). A second level is keyed by the normalised text
//     (normkey.go: literals replaced by typed placeholders, comments
//     kept), so the inlined values of simple-protocol texts cost one
//     parse per statement shape, not per value; an analysis is stored
//     there only when it cannot depend on a literal's value (normalizable
//     in router.go).
//   - The decision depends on the session too: whether a transaction is
//     open and read only, and the volatility of each function called
//     (Session.Functions from pg_proc, config overrides, built-in list).
//     decide computes it on every call from the cached analysis.
//
// # Rules
//
// A statement may go to a replica only if it is a single SELECT, VALUES,
// TABLE, SHOW or EXPLAIN (EXPLAIN ANALYZE only of such a read) with no
// FOR UPDATE/SHARE, no INTO, no data-modifying CTE at any depth, and calls
// no volatile, unknown or write function; and not inside a read-write
// transaction. Everything else goes to the primary: multi-statement texts,
// DML, DDL, COPY, LOCK, LISTEN/NOTIFY, SET, PREPARE/EXECUTE, CALL, DO,
// transaction control of read-write transactions, parse errors, empty texts,
// texts over the parse bounds. A read of per-server state (pg_stat_activity,
// pg_locks, pg_backend_pid(), pg_is_in_recovery()...; perserver.go has the
// list) goes to the primary too (ReasonServerDependent): its answer
// depends on the server that runs it.
// BEGIN READ ONLY (or BEGIN under default_transaction_read_only) and the
// statements ending a read-only transaction may go to a replica.
//
// Hints: a comment containing pgone:primary (/* pgone:primary */ or
// -- pgone:primary, anywhere in the text, case-insensitive) sends a read to
// the primary and makes it uncacheable. pgone:replica lets a read that calls
// volatile or unknown functions, or reads per-server state, go to a
// replica; it never moves a write, a
// locking read, a write function (nextval, advisory locks, set_config...), a
// multi-statement text or a statement in a read-write transaction: a replica
// hint on an INSERT still goes to the primary.
//
// # What the proxy must know
//
// Inside a transaction Target says where the statement could run; the
// proxy must keep every statement of a transaction on the server that runs
// it. Pins and ChangesSettings describe the whole text. Tables are named as
// written (no search_path resolution), views are not expanded, and a bare
// name cannot be known to be a temporary or unlogged table: a pinned
// session with PinTempTable should stay on its primary server. Function
// volatility is by name, not by argument types; operators and casts are
// not checked.
//
// # Concurrency
//
// A Router is safe for concurrent use. Decisions share their slices with
// the cache: callers must not modify them. The cache is bounded in entries
// and in total text length (32 MiB); texts over 64 KiB are not cached.
package router

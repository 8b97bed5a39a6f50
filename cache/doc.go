// Package cache is pgone's result cache: it answers a repeated read with
// the exact reply bytes PostgreSQL sent the first time, and never with a
// result older than a write that committed before the read began. It
// imports no other pgone package; the proxy calls it from its request
// hooks and the cmd wires it.
//
// # Parts
//
//   - key.go: Key, the SHA-256 of everything that changes a reply's bytes
//     or who may see them (KeyInput), each field length-prefixed. A
//     session owns a KeyBuilder, which allocates nothing once warm.
//   - entry.go: Entry, the reply bytes, the tables read with their
//     versions, the epoch, a TTL; Size is what the byte bound counts.
//   - store.go: Store, and Memory, the in-process store (L1, otter v2),
//     bounded by bytes and TTL. A Redis store (L2) will implement Store
//     and sit behind L1.
//   - versions.go, tx.go, lsn.go: the never-stale bookkeeping (Versions,
//     Tx, FillToken): table versions, database epochs, writers in flight,
//     how far in the WAL each table's invalidations reached (an unknown
//     LSN is resolved by a primary LSN read after it).
//   - flight.go: single flight for concurrent misses of one key.
//   - logical.go, logical_state.go, logical_config.go, logical_metrics.go:
//     cache.invalidation: logical, a pgoutput stream per database that
//     bumps the tables every committed change wrote (writes that bypass
//     pgone), with its lag; while it is down or behind its bound the
//     database is held like a writer in flight on all of it, and the
//     release after an outage flushes it.
//   - replicafill.go: what a replica needs to fill (ReplayBar), and
//     unknown LSNs resolved per database.
//   - dbstats.go: the per-database counts SHOW CACHE shows.
//   - cache.go: Cache, the facade; session.go: Session, one client
//     session's handle (key builder, marks, pending fill), what the
//     proxy's hooks call; metrics.go: Stats and the pgone_cache_*
//     metrics; config.go: the cache's Config section.
//
// # Protocol for a caller
//
// Through a Session (or the same calls on Cache and Tx directly):
//
// A cacheable read outside a transaction: build its Key, then
// Cache.Lookup. A hit returns shared reply bytes to write as they are. A
// miss returns a Fill (its token taken inside Lookup, so before the read
// is sent): send the read, then Fill.Store the copied reply frames (or
// Fill.Abandon if it failed, was not cacheable, or outgrew
// MaxEntryBytes). Exactly one of them, always.
//
// A write: the session's Tx.Mark (or MarkAll for a write no table can be
// blamed for) before the write is sent; Tx.Commit with the commit LSN
// after it committed, or Tx.End after PostgreSQL rolled it back. Every Tx
// that marked must end, even when the session or its server dies (with an
// unknown outcome: Commit).
//
// # Why it is never stale
//
// A hit is served only if every table it read has the version it had
// when its read was sent, the database's epoch is unchanged, and nothing
// it read is in flight. A fill is stored only if nothing moved between its
// token and its store and nothing was in flight at either end; from a
// replica, only if the replica replayed the last invalidation of what it
// read. Because a writer is in flight from before its write is sent until
// after its commit is bumped, the window between PostgreSQL's commit and
// the bump (the writer's client may already know) serves no old entry.
//
// # Concurrency
//
// Cache, Versions and Memory are safe for concurrent use by all sessions.
// Session, KeyBuilder, Tx and Fill belong to one session or request. The hit path
// (Lookup returning a hit) does not allocate; it takes two read locks
// (database map, database) and adds to an atomic counter.
package cache

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
//     bounded by bytes and TTL.
//   - redis.go, redis_lookup.go, redis_codec.go, bus.go, breaker.go,
//     lease.go, redis_metrics.go: with cache.redis.address, the shared
//     part: entries in Redis (L2) behind L1, table versions in Redis, the
//     invalidation bus (pub/sub), the circuit breaker, membership leases,
//     pgone_cache_l2_* metrics.
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
//     release after an outage flushes it. Its server can be asked for at
//     each connect (LogicalSource.Dial) and the stream redialed when the
//     database's primary moves (Feed.Redial): positions of the old
//     connection never count for the new one.
//   - replicafill.go: what a replica needs to fill (ReplayBar), and
//     unknown LSNs resolved per database.
//   - dbstats.go: the per-database counts SHOW CACHE shows.
//   - cache.go: Cache, the facade; session.go: Session, one client
//     session's handle (key builder, marks, pending fill), what the
//     proxy's hooks call; metrics.go: Stats and the pgone_cache_*
//     metrics; config.go: the cache's Config section: the mode, and the
//     rules, each naming a table or a statement's fingerprint (as SHOW
//     QUERIES prints it) with a TTL.
//
// What is cached is the proxy's decision, not this package's: a read
// whose database is in mode rules or auto (cache.mode, or the database
// entry's cache_mode overriding it) and that a rule, a hint or (auto) the
// tuner's admission admits. A database in mode off neither looks up nor
// fills, but its writes still mark and bump: the cache keys a database by
// server and dbname, so another pgone database name may cache the same
// tables.
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
// # Across instances (Redis)
//
// Redis holds, under cache.redis.prefix: the entries (e:<key>, with their
// TTL), a hash of versions per database (v:<db>: "t:<table>" and the
// epoch "~e"), a flush counter (all), an invalidation sequence (seq) and
// an incarnation id (gen, set by the first instance to sync after Redis
// started empty). An L2 entry records gen, all, the epoch and its tables'
// versions as Redis held them before its read was sent.
//
// Invalidation. Every bump made on an instance (a Tx's Commit, Bump,
// BumpEpoch, a flush) is first, in one Lua script, applied to Redis's
// versions, given the next seq and PUBLISHed, and then applied to the
// local Versions (a Tx's marks hold meanwhile). Redis first on every
// instance (the others apply it from the bus, after): so a local token
// that counts a bump was taken after Redis had it, and an L2 entry
// validated by a read made after that token is never promoted to L1 with
// old bytes under versions that already count the bump (the checker
// found that hole when the local bump came first). Each instance subscribes and applies the others' messages to
// its own Versions (applyRemote), in seq order; a gap is a loss. So L1
// validity is decided by local Versions fed by the bus.
//
// The proxy runs a commit's bump just before the commit's ReadyForQuery
// is written to the client (proxy's beforeLastReply). So when any client
// learns that a write committed, its bump is in Redis with some seq s.
//
// Why a read R that begins after a write W's commit returned (through
// any instance) never gets a result older than W:
//
//   - An L1 hit is served only after the fence: R reads seq (>= s, since
//     W's bump was in Redis before R began) and waits until the bus applied
//     it; then the local Versions include W's bump, and the entry is
//     re-checked. An entry whose read began before W's commit recorded an
//     older version (or was taken before the bump reached here) and is
//     refused.
//   - An L2 hit is checked in the same script that reads it against the
//     versions Redis holds at that moment, after R began, so after W's
//     bump: an entry read before W's bump recorded the older version.
//   - A fill (the lost-update race: A reads old data, B commits, A stores):
//     its remote token is read before the read is sent, and the store
//     script compares it with Redis atomically at store time. If W's bump
//     came between, the store is refused (RefuseVersion), in L2 and, since
//     L1 is written only after L2 accepted, in L1. If W's bump came after
//     the store, the entry recorded the pre-W version, so it is invalid by
//     the two rules above once W's commit has returned. If it came before
//     the token, the read was sent after W committed in PostgreSQL (the
//     bump follows the commit) and holds W.
//   - A promoted L2 entry goes to L1 under the local token taken before
//     the Redis read: any bump after that read moves the local versions
//     past the token when the bus applies it.
//   - Single flight followers are fenced like an L1 hit: a leader's L2
//     hit was checked when the leader read it, which may precede the
//     follower's start.
//
// In-flight marks stay local and are not published: across instances the
// bump-before-the-commit-is-known rule plus the store-time check and the
// fence are enough, and published marks would need leases to survive a
// pgone that dies holding them. A read concurrent with a commit (begun
// before the client saw it) may see either value, as from PostgreSQL.
//
// Losing Redis. A lost subscription, a missed message, a bump that did
// not reach Redis (error or timeout: it may or may not have applied), or
// the breaker opening: the instance marks itself down, flushes L1
// (BumpAll: also refuses fills in progress) and bypasses the cache (every
// read goes to PostgreSQL, nothing is stored) until the bus loop has
// resubscribed and resynced. The resync subscribes first, then, if this
// instance was ever up or owes a bump, increments all in Redis and
// publishes it (every instance's L1 and every L2 entry from before is
// invalid: whatever was missed while cut off is covered), then reads seq
// and applies only later messages. A new incarnation (Redis restarted
// empty) makes every token and fence from the old one fail. Clients
// never see a Redis error: every failure is a bypass or a refused fill.
//
// A commit's publish is what the argument rests on, so it ignores the
// breaker and retries on fresh connections until its deadline (4x the
// timeout); it gives up at once only when Redis refuses the dial. When
// Redis is down for everyone no instance can serve (hits need the fence,
// L2 lookups need Redis) and the first resync after it returns flushes
// everything, so a commit whose bump was lost then is covered. Found by
// the kill/restart soak: after a restart, a commit's bump failing on a
// dead pooled connection while another instance had already resynced.
//
// A partial partition (one instance cut off from Redis while the others
// are not) is closed by membership leases (lease.go): every instance
// holds a lease in Redis, renewed every lease/4 while it owes no bump
// (an owe is cleared only once the flush that covers it landed); every
// fence and L2 lookup checks that no member's lease has lapsed, and
// bypasses if one has. A commit whose bump did not reach Redis holds
// its reply until the bump, tried again every 25ms, or the resync's
// flush lands, or until the instance's lease has certainly ended
// (renewals carry a not-after time in Redis's clock, so a delayed one
// cannot extend it; a Redis clock stepped back below the latest time a
// renewal saw trusts no lease), so when its client learns of the commit
// no instance serves what it made stale; the cut-off instance's resync
// then flushes every instance. Only commits hold (Tx.Commit,
// Versions.CommitEpoch); other bumps (the logical stream's, a flush) do
// not. A member lapsed for member_timeout is removed by another's
// renewal, which flushes every instance in the same script (a pgone
// killed between a commit and its bump is covered then). If Redis loses
// its data (a new incarnation), each instance enters the peers it knew
// as lapsed before it serves. Not covered: an instance cut off for
// longer than member_timeout that keeps taking writes (once it is
// removed, the others serve again), and one that never reached Redis
// since it started; with cache.invalidation: logical, each instance's
// own stream sees those writes within its lag bound.
//
// Session-mode clients mark their whole database on their own instance
// while they stay; each transaction of theirs that may have written bumps
// the database's epoch (published as above) before its ReadyForQuery
// reaches the client (proxy's cachesession.go). Redis Cluster is not
// supported (the scripts use several keys).
//
// Timeouts: cache.redis.timeout (default 5ms) bounds each call on a read's
// path (L2 lookup, fill, fence); a bump gets 4x, since a failed one
// flushes every instance (and while Redis hangs, each commit's reply
// waits that long). After breaker_failures consecutive failures the
// breaker opens: no call is made (the cache bypasses at no cost) until,
// after breaker_cooldown, one probe succeeds.
//
// # Concurrency
//
// Cache, Versions and Memory are safe for concurrent use by all sessions.
// Session, KeyBuilder, Tx and Fill belong to one session or request. The hit path
// (Lookup returning a hit) does not allocate; it takes two read locks
// (database map, database) and adds to an atomic counter. With Redis a
// hit also makes the fence's call (one MGET, which allocates).
package cache

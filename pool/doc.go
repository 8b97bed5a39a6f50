// Package pool owns pgone's server connections: dialing (pgconn.Connect for
// TLS and server authentication, then Hijack for the raw stream), one pool
// per (database, user), the global cap on server connections, FIFO queueing
// of clients that wait for one, and the cleanup of idle connections.
//
// Sizes: a pool gets its size when it is made (SetSizer, default pool_size)
// and keeps it until SetSize changes it; clients never pass a size.
//
// Lifecycle of a Conn: dialed by Acquire (or reused from the idle list after
// a liveness check), owned by exactly one client session until that session
// hands it back with Release (clean, reusable) or Discard (state unknown,
// closed). The session resets the connection (Reset) before Release; a Conn
// never returns to the idle list mid-transaction.
//
// Replica monitors (Monitor) check a database's replicas each interval
// for reads; one made by NewAutoMonitor also finds the primary among the
// servers and follows a promotion (failover.go); MovePrimary points the
// primary pools at the server it trusts.
//
// Concurrency: Manager is safe for concurrent use; one mutex guards every
// pool's counts, idle lists and waiters. A Conn is used by one goroutine at
// a time (its owner), except Cancel, which only reads immutable fields.
package pool

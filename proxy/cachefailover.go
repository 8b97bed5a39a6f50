package proxy

import "github.com/pgone/pgone/pool"

// The result cache of a database whose servers have role auto
// (failover.go). Its identity (cacheDatabaseOf) is the entry's first
// server for as long as pgone runs, whichever server is primary: every
// pgone instance sharing Redis names it alike, and the versions written
// before and after a switch are one sequence. What the cache reads from
// the primary is read from the primary the monitor trusts at that moment:
//
//   - catalog loads (cachecatalog.go) connect to it at each load;
//   - the logical replication stream (cachefeed.go) asks for it at each
//     connect, and reconnects when the trusted server changes: the
//     database is bypassed until the new stream has caught up;
//   - the primary LSNs that let replicas fill (cachereplica.go) are the
//     monitor's samples of it, forgotten at a promotion (pool/failover.go).
//
// While the monitor trusts no primary, nothing of the database is served
// from the cache or filled. A promotion flushes the database (the new
// primary may lack commits the entries saw; the flush also bars replica
// fills until the new primary is sampled) and has every catalog read
// again, from the new primary.

// cachePrimary returns the server the cache reads pgone database db's
// primary facts from, for sessions connecting as t: t itself, or with
// role auto the primary the monitor trusts now (with t's login and
// database); ok is false while it trusts none.
func (s *Server) cachePrimary(db string, t pool.Target) (pool.Target, bool) {
	return primaryTarget(s.monitorOf(db), t)
}

// cacheFollowPrimary is the cache's part of primaryChanged: at a
// promotion the database is flushed and the catalogs read again; when the
// trusted server changed (or none is trusted now) the stream reconnects.
func (s *Server) cacheFollowPrimary(db string, c pool.PrimaryChange) {
	h := s.hooks.cacheHooks()
	if h == nil {
		return
	}
	d, ok := s.snap.Load().cfg.DatabaseFor(db)
	if !ok {
		return
	}
	cdb := cacheDatabaseOf(pool.Target{Host: d.Host, Port: d.Port, Database: d.ServerDBName(db)})
	if c.Promotion {
		h.c.Flush(cdb)
		h.catalogs.stale()
	}
	if c.Promotion || c.Moved() {
		h.c.RedialFeed(cdb)
	}
}

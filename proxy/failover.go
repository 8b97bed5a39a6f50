package proxy

import (
	"context"
	"net"
	"strconv"
	"strings"

	"github.com/pgone/pgone/pgerr"
	"github.com/pgone/pgone/pool"
)

// Failover (databases whose servers have role auto). The database's
// pool.Monitor (made by pool.NewAutoMonitor) says which server is the
// primary; everything that acquires a primary connection asks it here:
//
//   - acquirePrimary: a session that needs the primary waits, within
//     query_wait_timeout, for a primary the monitor trusts, then gets a
//     connection to it. A split brain (two servers out of recovery) that
//     outlasts the wait is refused with 08004 (the SQL standard's "server
//     rejected establishment of connection": pgone will not connect the
//     write to either claimant; an 08 class error, which clients treat as
//     retryable, with a message naming the split and the console command
//     that ends it). No primary at all (every server in recovery or down)
//     is 08006.
//   - primaryChanged (the monitor's OnPrimaryChange): the primary pools
//     move to the new server (pool.Manager.MovePrimary); sessions holding a
//     connection to the old primary lose it now (lost.go: 08006, or 08007
//     when a commit may have been in flight), so no transaction goes on
//     writing there once another server is trusted; the result cache
//     follows (cachefailover.go): on a promotion the database's entries are
//     flushed, since entries read from the old timeline may hold writes the
//     new one never had.
//   - Read-your-writes: a session's fence (split.go) is a position on the
//     timeline it was taken on; the monitor forgets old-timeline positions
//     at a promotion and numbers its epochs, and pickReplica asks for the
//     fence again when the epoch moved: the first position of the new
//     primary, so reads go to it until replicas of the new timeline have
//     replayed past the promotion.

// failoverFor returns the monitor that finds the session's primary, or
// nil when the database's primary is configured.
func (ss *session) failoverFor() *pool.Monitor {
	return ss.srv.monitorOf(ss.poolKey.Database)
}

// monitorOf returns the monitor that finds pgone database db's primary,
// or nil when its primary is configured.
func (s *Server) monitorOf(db string) *pool.Monitor {
	sets := s.splits.Load()
	if sets == nil {
		return nil
	}
	if set := (*sets)[db]; set != nil && set.auto {
		return set.mon
	}
	return nil
}

// primaryTarget returns t moved to the primary mon trusts now (t itself
// when mon is nil: a configured primary); ok is false while it trusts
// none.
func primaryTarget(mon *pool.Monitor, t pool.Target) (pool.Target, bool) {
	if mon == nil {
		return t, true
	}
	p, ok := mon.View().PrimaryTarget()
	t.Host, t.Port = p.Host, p.Port
	return t, ok
}

// primaryOf returns the session's primary pool and target: the configured
// server, or the one the monitor trusts; ok is false when it trusts none.
func (ss *session) primaryOf() (pool.Key, pool.Target, bool) {
	target, ok := primaryTarget(ss.failoverFor(), ss.target)
	return ss.poolKey, target, ok
}

// stillPrimary reports whether server is of the primary the session's
// monitor trusts now (always, for a configured primary): a server acquired
// just as the primary changed is not used.
func (ss *session) stillPrimary(server *pool.Conn) bool {
	mon := ss.failoverFor()
	if mon == nil {
		return true
	}
	t, ok := mon.View().PrimaryTarget()
	return ok && server.Addr() == net.JoinHostPort(t.Host, strconv.Itoa(t.Port))
}

// waitPrimary waits, within query_wait_timeout, until the monitor mon
// trusts a primary.
func (ss *session) waitPrimary(ctx context.Context, mon *pool.Monitor) error {
	if _, ok := mon.View().PrimaryTarget(); ok {
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, ss.srv.snap.Load().poolCfg.QueryWaitTimeout)
	defer cancel()
	_, v, err := mon.WaitPrimary(wctx)
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return ss.serverUnavailable(ctx.Err())
	}
	err = noPrimaryError(ss.poolKey.Database, v)
	ss.srv.countRefusal(ss.poolKey.Database, err)
	return err
}

// noPrimaryError is what a client that needs the primary hears when the
// monitor trusts none.
func noPrimaryError(db string, v *pool.ReplicaView) error {
	if v != nil && v.Failover.State == pool.PrimarySplitBrain {
		addrs := make([]string, 0, len(v.Failover.Candidates))
		for _, i := range v.Failover.Candidates {
			t := v.Replicas[i].Target
			addrs = append(addrs, net.JoinHostPort(t.Host, strconv.Itoa(t.Port)))
		}
		return pgerr.New(pgerr.ServerRejectedConnection,
			"split brain: %d servers of database %q claim to be primary; pgone sends writes to neither", len(addrs), db).
			WithHint("Demote one of them, or pick one on the pgone console: PRIMARY " + db + " " + addrs[0] +
				" (servers: " + strings.Join(addrs, ", ") + ").")
	}
	return pgerr.New(pgerr.ConnectionFailure, "no primary for database %q: every server is in recovery or unreachable", db)
}

// primaryChanged follows a change of database db's trusted primary (the
// monitor's OnPrimaryChange; see the top of this file).
func (s *Server) primaryChanged(db string, c pool.PrimaryChange) {
	if c.ToOK {
		s.pools.MovePrimary(db, c.To.Host, c.To.Port)
	}
	if c.FromOK && c.Moved() {
		n := s.severServer(db, net.JoinHostPort(c.From.Host, strconv.Itoa(c.From.Port)))
		s.log.Warn("failover: closed the connections to the old primary", "database", db, "sessions", n)
	}
	// The cache last: a flush refuses the fills of reads begun before it,
	// and once the old primary's connections are closed every read of its
	// timeline began before the flush (a live old primary: an operator's
	// pick, the end of a split brain). Flushed earlier, a session still on
	// the old primary could fill the cache after the flush.
	s.cacheFollowPrimary(db, c) // cachefailover.go
}

// severServer closes the server connection of every session of db that
// holds one to addr; each session reports it as lost (lost.go). It returns
// how many it closed.
func (s *Server) severServer(db, addr string) int {
	n := 0
	for _, c := range s.clientList() {
		if !c.known || c.database != db {
			continue
		}
		ss := c.ss
		ss.mu.Lock()
		server := ss.server
		ss.mu.Unlock()
		if server != nil && server.Addr() == addr {
			_ = server.NetConn().Close()
			n++
		}
	}
	return n
}

// primaryAddr is where database name's writes go, for SHOW DATABASES: the
// configured primary, or the one the monitor trusts ("" and 0 while it
// trusts none).
func (s *Server) primaryAddr(name string, db Database) (string, int) {
	if !db.Auto() {
		return db.Host, db.Port
	}
	if mon := s.monitorOf(name); mon != nil {
		if t, ok := mon.View().PrimaryTarget(); ok {
			return t.Host, t.Port
		}
	}
	return "", 0
}

// pickPrimary is the console's PRIMARY <db> <host:port>.
func (s *Server) pickPrimary(db, addr string) error {
	s.replicaMons.mu.Lock()
	e := s.replicaMons.monitors[db]
	s.replicaMons.mu.Unlock()
	if e == nil {
		return pgerr.New(pgerr.ObjectNotInPrerequisiteState, "database %q has no monitored servers", db)
	}
	if err := e.m.PickPrimary(addr); err != nil {
		return pgerr.New(pgerr.ObjectNotInPrerequisiteState, "%v", err)
	}
	return nil
}

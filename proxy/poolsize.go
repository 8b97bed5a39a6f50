package proxy

import "github.com/pgone/pgone/pool"

// poolSize is the configured size of the pools of a client-visible
// database: its pool_size, or the "*" entry's when it has no entry of its
// own (Config.DatabaseFor), else the default pool_size. A replica's pool
// has its primary's size.
func (snap *snapshot) poolSize(database string) int {
	if db, _ := snap.cfg.DatabaseFor(database); db.PoolSize > 0 {
		return db.PoolSize
	}
	return snap.poolCfg.PoolSize
}

// sizePools makes the pools take their sizes from the running snapshot:
// a pool gets its size when it is made, and Reload resizes every existing
// pool at once (resizePools). Clients never pass a size.
func (s *Server) sizePools() {
	s.pools.SetSizer(func(key pool.Key) int { return s.snap.Load().poolSize(key.Database) })
}

// resizePools applies snap's sizes to the existing pools whose configured
// size changed from old's. A pool whose configured size did not change
// keeps the size it has, which the tuner may have set (tuner loop 1): a
// reload of other settings does not undo its work. A pool made meanwhile
// got its size from snap already (the sizer reads the current snapshot),
// so none is missed.
func (s *Server) resizePools(old, snap *snapshot) {
	for _, st := range s.pools.Stats() {
		n := snap.poolSize(st.Key.Database)
		if old != nil && old.poolSize(st.Key.Database) == n {
			continue
		}
		s.pools.SetSize(st.Key, n)
	}
}

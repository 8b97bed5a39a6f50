package proxy

import (
	"strconv"

	"github.com/pgone/pgone/cache"
	"github.com/pgone/pgone/pgerr"
	"github.com/pgone/pgone/pool"
)

// The result cache in the admin console: SHOW CACHE and CACHE FLUSH [db].

// resultCache returns the server's cache, or nil when it is off.
func (s *Server) resultCache() *cache.Cache {
	if h := s.hooks.cacheHooks(); h != nil {
		return h.c
	}
	return nil
}

// showCache is one row of the cache's counters (the cache keeps them for
// all databases together); mode off when pgone runs without it.
func (s *Server) showCache() resultSet {
	rs := resultSet{cols: textCols("mode", "entries", "bytes", "hits", "misses", "hit_ratio", "fills",
		"refused_in_flight", "refused_version", "refused_too_large", "refused_store",
		"invalidations_write", "invalidations_epoch", "invalidations_flush", "single_flight_shared")}
	for i := range rs.cols {
		if name := rs.cols[i].name; name != "mode" && name != "hit_ratio" {
			rs.cols[i].oid = oidInt8
		}
	}
	c := s.resultCache()
	if c == nil {
		return rs
	}
	st := c.Stats()
	rs.rows = append(rs.rows, []string{"on", itoa(int64(st.Entries)), itoa(st.Bytes), itoa(st.Hits), itoa(st.Misses),
		strconv.FormatFloat(st.HitRatio(), 'f', 4, 64), itoa(st.Fills),
		itoa(st.Refused[cache.RefuseInFlight]), itoa(st.Refused[cache.RefuseVersion]),
		itoa(st.Refused[cache.RefuseTooLarge]), itoa(st.Refused[cache.RefuseStore]),
		itoa(st.Invalidations[cache.CauseWrite]), itoa(st.Invalidations[cache.CauseEpoch]),
		itoa(st.Invalidations[cache.CauseFlush]), itoa(st.Shared)})
	return rs
}

// cacheFlush drops the entries of db (all databases if empty).
func (s *Server) cacheFlush(db string) error {
	c := s.resultCache()
	if c == nil {
		return pgerr.New(pgerr.ObjectNotInPrerequisiteState, "the result cache is off (cache.mode)")
	}
	if db == "" {
		c.Flush("")
		return nil
	}
	if err := s.checkDatabase(db, true); err != nil {
		return err
	}
	d, ok := s.snap.Load().cfg.DatabaseFor(db)
	if !ok {
		c.Flush("") // a pool without a config entry any more: flush all
		return nil
	}
	dbname := d.ServerDBName(db)
	c.Flush(cacheDatabaseOf(pool.Target{Host: d.Host, Port: d.Port, Database: dbname}))
	return nil
}

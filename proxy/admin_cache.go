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
	if h, ok := s.hooks.(*cacheHooks); ok {
		return h.c
	}
	return nil
}

// showCache is one row of the cache's counters (the cache keeps them for
// all databases together); mode off when pgone runs without it.
func (s *Server) showCache() resultSet {
	rs := resultSet{cols: textCols("mode", "entries", "bytes", "hits", "misses", "hit_ratio", "fills",
		"refused_in_flight", "refused_version", "refused_too_large", "refused_store",
		"invalidations_write", "invalidations_epoch", "invalidations_flush", "single_flight_shared",
		"l2", "l2_breaker", "l2_hits", "l2_fills", "l2_errors", "l2_bypassed")}
	for i := range rs.cols {
		if name := rs.cols[i].name; name != "mode" && name != "hit_ratio" && name != "l2" && name != "l2_breaker" {
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
	rs.rows[0] = append(rs.rows[0], l2Row(c)...)
	return rs
}

// l2Row is SHOW CACHE's Redis columns: the L2's state (off without
// Redis; up; down: bus lost, bypassing every read; bypassing: breaker
// open), the breaker's state, and its counters.
func l2Row(c *cache.Cache) []string {
	l2, ok := c.L2Stats()
	if !ok {
		return []string{"off", "", "0", "0", "0", "0"}
	}
	return []string{l2.State, l2.Breaker.String(), itoa(l2.Hits), itoa(l2.Fills), itoa(l2.Errors), itoa(l2.Bypassed)}
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

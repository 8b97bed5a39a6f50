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

// showCache is a row of totals (database "*") then one row per database
// (server address/database name, as the cache keys them); mode off and no
// rows when pgone runs without the cache. The replication columns are the
// database's invalidation stream (cache.invalidation: logical): off,
// streaming, behind (bypassed: over replication_max_lag) or down.
func (s *Server) showCache() resultSet {
	rs := resultSet{cols: textCols("mode", "database", "entries", "bytes", "hits", "misses", "hit_ratio", "fills",
		"refused_in_flight", "refused_version", "refused_replica_lsn", "refused_too_large", "refused_store",
		"invalidations_write", "invalidations_epoch", "invalidations_flush", "single_flight_shared",
		"replication", "replication_lag_bytes", "replication_lag_seconds",
		"l2", "l2_breaker", "l2_hits", "l2_fills", "l2_errors", "l2_bypassed")}
	for i := range rs.cols {
		switch rs.cols[i].name {
		case "mode", "database", "hit_ratio", "replication", "replication_lag_seconds", "l2", "l2_breaker":
		default:
			rs.cols[i].oid = oidInt8
		}
	}
	c := s.resultCache()
	if c == nil {
		return rs
	}
	st := c.Stats()
	// The L2 (Redis) is this instance's, shared by every database: its
	// columns are on the totals row, empty on the databases' rows.
	rs.rows = append(rs.rows, append(cacheRow("*", cache.DatabaseStats{Entries: st.Entries, Bytes: st.Bytes,
		Hits: st.Hits, Misses: st.Misses, Fills: st.Fills, Shared: st.Shared,
		Refused: st.Refused, Invalidations: st.Invalidations}), l2Row(c)...))
	for _, d := range c.DatabaseStats() {
		rs.rows = append(rs.rows, append(cacheRow(d.Database, d), "", "", "", "", "", ""))
	}
	return rs
}

func cacheRow(db string, d cache.DatabaseStats) []string {
	repl, lagBytes, lagSeconds := "off", "0", ""
	if f := d.Feed; f != nil {
		switch {
		case !f.Connected:
			repl = "down"
		case f.Bypassed:
			repl = "behind"
		default:
			repl = "streaming"
		}
		lagBytes = itoa(f.LagBytes)
		if f.LagSeconds >= 0 {
			lagSeconds = strconv.FormatFloat(f.LagSeconds, 'f', 3, 64)
		}
	}
	return []string{"on", db, itoa(int64(d.Entries)), itoa(d.Bytes), itoa(d.Hits), itoa(d.Misses),
		strconv.FormatFloat(d.HitRatio(), 'f', 4, 64), itoa(d.Fills),
		itoa(d.Refused[cache.RefuseInFlight]), itoa(d.Refused[cache.RefuseVersion]),
		itoa(d.Refused[cache.RefuseReplicaLSN]), itoa(d.Refused[cache.RefuseTooLarge]), itoa(d.Refused[cache.RefuseStore]),
		itoa(d.Invalidations[cache.CauseWrite]), itoa(d.Invalidations[cache.CauseEpoch]),
		itoa(d.Invalidations[cache.CauseFlush]), itoa(d.Shared), repl, lagBytes, lagSeconds}
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

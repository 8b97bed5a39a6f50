package proxy

import (
	"crypto/tls"
	"fmt"
	"net"
	"sort"
	"strconv"
	"time"

	"github.com/pgone/pgone/pool"
)

// The SHOW commands of the admin console. Column names and order are
// PgBouncer's (1.18+); what pgone does not have reads 0 or empty.

var showCommands = map[string]func(*Server) resultSet{
	"pools":     (*Server).showPools,
	"clients":   (*Server).showClients,
	"servers":   (*Server).showServers,
	"stats":     (*Server).showStats,
	"databases": (*Server).showDatabases,
	"config":    (*Server).showConfig,
	"version":   (*Server).showVersion,
	"replicas":  (*Server).showReplicas,
	"cache":     (*Server).showCache, // admin_cache.go
}

// clientInfo is one session as the console sees it.
type clientInfo struct {
	ss  *session
	pid uint32 // the BackendKeyData process ID the client got
	// known: the session is past authentication and names its user,
	// database and pool (they are written before the atomics that tell).
	known bool
	// attached: the session has had a server, so it belongs to its pool.
	attached       bool
	console        bool
	database, user string
	waitingSince   int64
}

// clientList lists the sessions. It takes Server.mu, then no session lock
// (session.mu is taken before Server.mu elsewhere).
func (s *Server) clientList() []clientInfo {
	s.mu.Lock()
	out := make([]clientInfo, 0, len(s.sessions))
	for ss := range s.sessions {
		out = append(out, clientInfo{ss: ss, pid: ss.cancelKey.pid})
	}
	s.mu.Unlock()
	for i := range out {
		c := &out[i]
		c.waitingSince = c.ss.stats.waitingSince.Load()
		l := c.ss.stats.labels.Load()
		switch {
		case l != nil:
			c.known, c.attached = true, true
			c.database, c.user = l.database, l.user
			c.console = l.database == AdminDatabase
			c.attached = !c.console
		case c.waitingSince != 0:
			c.known = true
			c.database, c.user = c.ss.poolKey.Database, c.ss.poolKey.User
		}
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].ss.stats.connected.Before(out[j].ss.stats.connected)
	})
	return out
}

// poolRow is one line of SHOW POOLS.
type poolRow struct {
	st       pool.Status
	clActive int
	mode     pool.Mode
}

func (s *Server) poolRows() []poolRow {
	statuses := s.pools.Status()
	active := map[pool.Key]int{}
	for _, c := range s.clientList() {
		if c.attached && c.waitingSince == 0 {
			active[pool.Key{Database: c.database, User: c.user}]++
		}
	}
	snap := s.snap.Load()
	rows := make([]poolRow, len(statuses))
	for i, st := range statuses {
		rows[i] = poolRow{st: st, clActive: active[st.Key], mode: poolModeFor(snap, st.Key.Database, st.Key.User)}
	}
	return rows
}

// poolModeFor is the pool mode attach chooses for a client of db as user.
func poolModeFor(snap *snapshot, db, user string) pool.Mode {
	d, _ := snap.cfg.DatabaseFor(db)
	return snap.cfg.PoolModeFor(d, user, snap.poolCfg.Mode)
}

func (s *Server) showPools() resultSet {
	rs := resultSet{cols: []column{
		{"database", oidText}, {"user", oidText},
		{"cl_active", oidInt4}, {"cl_waiting", oidInt4}, {"cl_active_cancel_req", oidInt4}, {"cl_waiting_cancel_req", oidInt4},
		{"sv_active", oidInt4}, {"sv_active_cancel", oidInt4}, {"sv_being_canceled", oidInt4}, {"sv_idle", oidInt4},
		{"sv_used", oidInt4}, {"sv_tested", oidInt4}, {"sv_login", oidInt4},
		{"maxwait", oidInt4}, {"maxwait_us", oidInt4}, {"pool_mode", oidText},
		// pgone's own: the read/write split gives a (database, user) a pool
		// per replica besides the primary's.
		{"role", oidText}, {"server", oidText},
	}}
	for _, r := range s.poolRows() {
		st := r.st
		sec, us := splitWait(st.MaxWait)
		rs.rows = append(rs.rows, []string{
			st.Key.Database, st.Key.User,
			strconv.Itoa(r.clActive), strconv.Itoa(st.Waiting), "0", "0",
			strconv.Itoa(st.Active), "0", "0", strconv.Itoa(st.Idle),
			"0", "0", strconv.Itoa(st.Login),
			sec, us, string(r.mode),
			st.Key.Role(), net.JoinHostPort(st.Host, strconv.Itoa(st.Port)),
		})
	}
	return rs
}

// splitWait is PgBouncer's (seconds, microseconds) pair for a wait.
func splitWait(d time.Duration) (string, string) {
	us := d.Microseconds()
	return itoa(us / 1e6), itoa(us % 1e6)
}

var connCols = []column{
	{"type", oidText}, {"user", oidText}, {"database", oidText}, {"state", oidText},
	{"addr", oidText}, {"port", oidInt4}, {"local_addr", oidText}, {"local_port", oidInt4},
	{"connect_time", oidText}, {"request_time", oidText}, {"wait", oidInt4}, {"wait_us", oidInt4},
	{"close_needed", oidInt4}, {"ptr", oidText}, {"link", oidText}, {"remote_pid", oidInt4},
	{"tls", oidText}, {"application_name", oidText}, {"prepared_statements", oidInt4},
}

func (s *Server) showClients() resultSet {
	rs := resultSet{cols: connCols}
	now := time.Now()
	for _, c := range s.clientList() {
		if !c.known {
			continue // still logging in
		}
		ss := c.ss
		ss.mu.Lock()
		server := ss.server
		requested := ss.stats.lastRequest
		ss.mu.Unlock()
		state, wait := "active", time.Duration(0)
		if c.waitingSince != 0 {
			state, wait = "waiting", now.Sub(time.Unix(0, c.waitingSince))
		}
		if requested.IsZero() {
			requested = ss.stats.connected
		}
		link := ""
		if server != nil {
			link = server.Info().ID
		}
		addr, port := splitAddr(ss.nc.RemoteAddr())
		laddr, lport := splitAddr(ss.nc.LocalAddr())
		sec, us := splitWait(wait)
		rs.rows = append(rs.rows, []string{
			"C", c.user, c.database, state,
			addr, port, laddr, lport,
			formatTime(ss.stats.connected), formatTime(requested), sec, us,
			"0", fmt.Sprintf("%p", ss), link, strconv.FormatUint(uint64(c.pid), 10),
			tlsDescription(ss.nc), paramValue(ss.startupParams, "application_name"), "0",
		})
	}
	return rs
}

func (s *Server) showServers() resultSet {
	rs := resultSet{cols: connCols}
	type row struct {
		info      pool.ConnInfo
		state     string
		link      string
		requested time.Time
	}
	var rows []row
	for _, c := range s.clientList() {
		if !c.attached {
			continue
		}
		ss := c.ss
		ss.mu.Lock()
		server := ss.server
		requested := ss.stats.lastRequest
		ss.mu.Unlock()
		if server != nil {
			rows = append(rows, row{info: server.Info(), state: "active", link: fmt.Sprintf("%p", ss), requested: requested})
		}
	}
	for _, ci := range s.pools.IdleConns() {
		rows = append(rows, row{info: ci, state: "idle", requested: ci.LastUsed})
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].info.Created.Before(rows[j].info.Created) })
	for _, r := range rows {
		ci := r.info
		laddr, lport := splitAddr(ci.LocalAddr)
		tlsText := ""
		if ci.TLS {
			tlsText = "TLS"
		}
		if r.requested.IsZero() {
			r.requested = ci.Created
		}
		rs.rows = append(rs.rows, []string{
			"S", ci.User, ci.Key.Database, r.state,
			ci.Host, strconv.Itoa(ci.Port), laddr, lport,
			formatTime(ci.Created), formatTime(r.requested), "0", "0",
			"0", ci.ID, r.link, strconv.FormatUint(uint64(ci.PID), 10),
			tlsText, "", strconv.Itoa(ci.Prepared),
		})
	}
	return rs
}

func (s *Server) showDatabases() resultSet {
	rs := resultSet{cols: []column{
		{"name", oidText}, {"host", oidText}, {"port", oidInt4}, {"database", oidText}, {"force_user", oidText},
		{"pool_size", oidInt4}, {"min_pool_size", oidInt4}, {"reserve_pool", oidInt4}, {"pool_mode", oidText},
		{"max_connections", oidInt4}, {"current_connections", oidInt4}, {"paused", oidInt4}, {"disabled", oidInt4},
	}}
	snap := s.snap.Load()
	conns := map[string]int{}
	names := map[string]bool{}
	for name := range snap.cfg.Databases {
		names[name] = true
	}
	for _, st := range s.pools.Status() {
		conns[st.Key.Database] += st.Active + st.Idle + st.Login
		if _, ok := snap.cfg.Databases[st.Key.Database]; !ok {
			names[st.Key.Database] = true // served through the wildcard entry
		}
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	for _, name := range sorted {
		db, _ := snap.cfg.DatabaseFor(name)
		dbname := db.ServerDBName(name)
		size := snap.poolSize(name)
		mode := db.PoolMode
		if mode == "" {
			mode = snap.poolCfg.Mode
		}
		paused := "0"
		if name != WildcardDatabase && s.pools.Paused(name) {
			paused = "1"
		}
		host, port := s.primaryAddr(name, db)
		rs.rows = append(rs.rows, []string{
			name, host, strconv.Itoa(port), dbname, db.User,
			strconv.Itoa(size), "0", "0", string(mode),
			"0", strconv.Itoa(conns[name]), paused, "0",
		})
	}
	return rs
}

func (s *Server) showConfig() resultSet {
	rs := resultSet{cols: textCols("key", "value", "default", "changeable")}
	s.admin.mu.Lock()
	rowsOf := s.admin.configRows
	s.admin.mu.Unlock()
	var rows []ConfigRow
	if rowsOf != nil {
		rows = rowsOf()
	} else {
		snap := s.snap.Load()
		rows = ownConfigRows(snap.cfg, snap.poolCfg)
	}
	for _, r := range rows {
		changeable := "yes"
		if !r.Changeable {
			changeable = "no"
		}
		rs.rows = append(rs.rows, []string{r.Key, maskSecret(r.Key, r.Value), maskSecret(r.Key, r.Default), changeable})
	}
	return rs
}

func (s *Server) showVersion() resultSet {
	return resultSet{cols: textCols("version"), rows: [][]string{{s.versionString()}}}
}

// statsPeriod is how often SHOW STATS takes a new sample for its averages,
// as PgBouncer's stats_period.
const statsPeriod = 15 * time.Second

// statsWindow holds the two latest samples of the counters by database; the
// avg_* columns are rates over the window between them. A sample is taken
// by SHOW STATS when the latest is older than statsPeriod, so the averages
// cover the last complete period (or, at first, the time since the pool was
// created). Guarded by adminState.mu.
type statsWindow struct {
	prev, last statsSample
}

type statsSample struct {
	at     time.Time
	totals map[string]pool.Totals
}

func (s *Server) showStats() resultSet {
	rs := resultSet{cols: []column{{"database", oidText}}}
	for _, n := range []string{
		"total_xact_count", "total_query_count", "total_received", "total_sent",
		"total_xact_time", "total_query_time", "total_wait_time",
		"avg_xact_count", "avg_query_count", "avg_recv", "avg_sent",
		"avg_xact_time", "avg_query_time", "avg_wait_time",
	} {
		rs.cols = append(rs.cols, column{n, oidInt8})
	}
	now := time.Now()
	cur := map[string]pool.Totals{}
	created := map[string]time.Time{}
	for _, st := range s.pools.Status() {
		db := st.Key.Database
		cur[db] = cur[db].Add(st.Counters.Totals())
		if c := st.Counters.Created(); created[db].IsZero() || c.Before(created[db]) {
			created[db] = c
		}
	}
	s.admin.mu.Lock()
	w := &s.admin.window
	if w.last.at.IsZero() || now.Sub(w.last.at) >= statsPeriod {
		w.prev, w.last = w.last, statsSample{at: now, totals: cur}
	}
	prev, last := w.prev, w.last
	s.admin.mu.Unlock()

	names := make([]string, 0, len(cur))
	for db := range cur {
		names = append(names, db)
	}
	sort.Strings(names)
	us := func(d time.Duration) int64 { return d.Microseconds() }
	for _, db := range names {
		t := cur[db]
		from, fromAt := prev.totals[db], prev.at
		if _, ok := prev.totals[db]; !ok {
			from, fromAt = pool.Totals{}, created[db]
		}
		to, toAt := last.totals[db], last.at
		if _, ok := last.totals[db]; !ok {
			to, toAt = t, now
		}
		var avg [7]int64
		if secs := toAt.Sub(fromAt).Seconds(); secs > 0 {
			xacts, queries := to.Transactions-from.Transactions, to.Queries-from.Queries
			avg[0] = int64(float64(xacts) / secs)
			avg[1] = int64(float64(queries) / secs)
			avg[2] = int64(float64(to.Received-from.Received) / secs)
			avg[3] = int64(float64(to.Sent-from.Sent) / secs)
			if xacts > 0 {
				avg[4] = us(to.TransactionTime-from.TransactionTime) / xacts
			}
			if queries > 0 {
				avg[5] = us(to.QueryTime-from.QueryTime) / queries
			}
			avg[6] = int64(float64(us(to.WaitTime-from.WaitTime)) / secs)
		}
		row := []string{db,
			itoa(t.Transactions), itoa(t.Queries), itoa(t.Received), itoa(t.Sent),
			itoa(us(t.TransactionTime)), itoa(us(t.QueryTime)), itoa(us(t.WaitTime)),
		}
		for _, v := range avg {
			row = append(row, itoa(v))
		}
		rs.rows = append(rs.rows, row)
	}
	return rs
}

func splitAddr(a net.Addr) (string, string) {
	if a == nil {
		return "", "0"
	}
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String(), "0"
	}
	return host, port
}

func formatTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") }

func tlsDescription(nc net.Conn) string {
	tc, ok := nc.(*tls.Conn)
	if !ok {
		return ""
	}
	st := tc.ConnectionState()
	return tls.VersionName(st.Version) + "/" + tls.CipherSuiteName(st.CipherSuite)
}

package proxy

import (
	"fmt"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pgone/pgone/pool"
	"github.com/pgone/pgone/proxy/auth"
)

// replicaMonitors runs a pool.Monitor for each configured database that has
// replicas; the monitor logs in as the database's server user or, when it
// has none (each client logs in as itself), as the first configured user
// with a plaintext password (monitorLogin). The read/write split routes by
// what they report; they also feed SHOW REPLICAS, the metrics and the log.
type replicaMonitors struct {
	mu       sync.Mutex
	started  bool
	stopped  bool
	monitors map[string]*monitorEntry // by client-visible database name
	// lastWrite keeps each database's read_all_writes clock across
	// reloads, userWrites its read_user_writes clocks.
	lastWrite  map[string]*atomic.Int64
	userWrites map[string]*sync.Map
}

type monitorEntry struct {
	m        *pool.Monitor
	cat      *catalog // loaded by m (catalog.go)
	identity string   // what it was built from; a reload that changes it restarts it
}

// replicaRow is one replica's status for the console and the metrics.
type replicaRow struct {
	database string
	pool.ReplicaStatus
	primaryState string // "" unless the database's servers have role auto
}

// syncMonitors starts, restarts and stops monitors to match snap. Before
// the first Serve and after Shutdown it does nothing.
func (s *Server) syncMonitors(snap *snapshot, start bool) {
	rm := &s.replicaMons
	rm.mu.Lock()
	defer rm.mu.Unlock()
	if start {
		rm.started = true
	}
	if !rm.started || rm.stopped {
		return
	}
	if rm.monitors == nil {
		rm.monitors = map[string]*monitorEntry{}
	}
	want := map[string]bool{}
	// With the result cache on, a database without replicas gets a monitor
	// too, for its catalog (function volatility: the cache's verdicts).
	catalogOnly := s.hooks.cacheHooks() != nil
	for name, db := range snap.cfg.Databases {
		if name == WildcardDatabase || len(db.Replicas) == 0 && !catalogOnly {
			continue
		}
		user, password, ok := monitorLogin(db, snap.cfg)
		if !ok && len(db.Replicas) == 0 {
			continue // no login to read its catalog with: unknown functions stay volatile
		}
		if !ok {
			s.log.Warn("read/write split off: no login to monitor the replicas with; reads go to the primary",
				"database", name, "fix", "set databases."+name+".user and password")
			continue
		}
		want[name] = true
		dbname := db.ServerDBName(name)
		primary := pool.Target{Host: db.Host, Port: db.Port, Database: dbname, User: user, Password: password}
		replicas := make([]pool.Target, len(db.Replicas))
		for i, r := range db.Replicas {
			replicas[i] = pool.Target{Host: r.Host, Port: r.Port, Database: dbname, User: user, Password: password}
		}
		mcfg := pool.MonitorConfig{Interval: snap.poolCfg.ReplicaCheckInterval, MaxLag: snap.poolCfg.MaxReplicaLag,
			PrimaryTaskEvery: snap.cfg.Routing.FunctionsRefreshInterval}
		identity := fmt.Sprintf("%v|%v|%v|%v|%s|%s|%s", db.Auto(), primary, replicas, mcfg,
			snap.poolCfg.ServerTLS.SSLMode, snap.poolCfg.ServerTLS.RootCert, snap.poolCfg.ServerConnectTimeout)
		if e := rm.monitors[name]; e != nil {
			if e.identity == identity {
				continue
			}
			e.m.Stop()
		}
		log := s.log.With("database", name)
		var m *pool.Monitor
		if db.Auto() {
			m = pool.NewAutoMonitor(mcfg, snap.poolCfg, replicas, log)
			m.OnPrimaryChange = func(c pool.PrimaryChange) { s.primaryChanged(name, c) } // failover.go
		} else {
			m = pool.NewMonitor(mcfg, snap.poolCfg, primary, replicas, log)
		}
		cat := newCatalog(m, log) // its primary task loads the catalog facts
		m.Start()
		rm.monitors[name] = &monitorEntry{m: m, cat: cat, identity: identity}
	}
	for name, e := range rm.monitors {
		if !want[name] {
			e.m.Stop()
			delete(rm.monitors, name)
		}
	}
	s.publishSplits(snap)
}

// monitorLogin returns the server login a database's replica monitor
// uses: its server user, or without one the first client user (by name,
// admin users last) pgone can log in to the server as: a plaintext
// password, as the pools of such a database use (hashes and SCRAM
// verifiers cannot log in), else a trust user (the server may trust it).
// ok is false when there is none: the split cannot be monitored.
func monitorLogin(db Database, cfg Config) (user, password string, ok bool) {
	if db.User != "" {
		return db.User, db.Password, true
	}
	admin := map[string]bool{}
	for _, name := range cfg.AdminUsers {
		admin[name] = true
	}
	names := sortedKeys(cfg.Users)
	sort.SliceStable(names, func(i, j int) bool { return !admin[names[i]] && admin[names[j]] })
	trust := ""
	for _, name := range names {
		pw := cfg.Users[name].Password
		switch {
		case pw == "":
			if trust == "" {
				trust = name
			}
		case auth.IsPlaintext(pw):
			return name, pw, true
		}
	}
	return trust, "", trust != ""
}

// SplitWarnings lists the databases whose replicas are configured but
// cannot be used: no login to monitor them with (see monitorLogin). Each
// text starts with its key path, as Validate's errors do.
func (c *Config) SplitWarnings() []string {
	var out []string
	for _, name := range sortedKeys(c.Databases) {
		db := c.Databases[name]
		if name == WildcardDatabase || len(db.Replicas) == 0 || db.Auto() {
			continue // role auto without a login is a Validate error
		}
		if _, _, ok := monitorLogin(db, *c); !ok {
			out = append(out, fmt.Sprintf("databases.%s.replicas: the read/write split is off: user is empty and no configured user has a plaintext password to monitor the replicas with; set databases.%s.user and password", name, name))
		}
	}
	return out
}

// publishSplits makes the replica set of every monitored database, for
// routing. rm.mu is held.
func (s *Server) publishSplits(snap *snapshot) {
	old := map[string]*replicaSlot{}
	if p := s.splits.Load(); p != nil {
		for _, set := range *p {
			for _, slot := range set.slots {
				old[set.database+"|"+slot.addr] = slot
			}
		}
	}
	sets := map[string]*replicaSet{}
	for name, e := range s.replicaMons.monitors {
		db := snap.cfg.Databases[name]
		clock := s.replicaMons.lastWrite[name]
		if clock == nil {
			if s.replicaMons.lastWrite == nil {
				s.replicaMons.lastWrite = map[string]*atomic.Int64{}
			}
			clock = new(atomic.Int64)
			s.replicaMons.lastWrite[name] = clock
		}
		users := s.replicaMons.userWrites[name]
		if users == nil {
			if s.replicaMons.userWrites == nil {
				s.replicaMons.userWrites = map[string]*sync.Map{}
			}
			users = new(sync.Map)
			s.replicaMons.userWrites[name] = users
		}
		set := &replicaSet{database: name, consistency: db.Consistency, mon: e.m, cat: e.cat, lastWrite: clock, userWrites: users,
			auto: db.Auto()}
		if set.consistency == "" {
			set.consistency = ReadYourWrites
		}
		if len(db.Replicas) == 0 && !set.auto {
			set.consistency = PrimaryOnly // a catalog monitor only: nothing to split
		}
		for _, r := range db.Replicas {
			set.add(r, old)
		}
		sets[name] = set
	}
	s.splits.Store(&sets)
}

// stopMonitors stops every monitor for good (Shutdown).
func (s *Server) stopMonitors() {
	rm := &s.replicaMons
	rm.mu.Lock()
	defer rm.mu.Unlock()
	rm.stopped = true
	s.splits.Store(nil)
	for name, e := range rm.monitors {
		e.m.Stop()
		delete(rm.monitors, name)
	}
}

// replicaRows returns every monitored replica's status, by database then
// configuration order.
func (s *Server) replicaRows() []replicaRow {
	rm := &s.replicaMons
	rm.mu.Lock()
	names := make([]string, 0, len(rm.monitors))
	for name := range rm.monitors {
		names = append(names, name)
	}
	sort.Strings(names)
	var rows []replicaRow
	for _, name := range names {
		m := rm.monitors[name].m
		state := ""
		if v := m.View(); v != nil && v.Failover.Auto {
			state = v.Failover.State.String()
		}
		for _, st := range m.Status() {
			rows = append(rows, replicaRow{database: name, ReplicaStatus: st, primaryState: state})
		}
	}
	rm.mu.Unlock()
	return rows
}

// showReplicas is SHOW REPLICAS: one row per monitored replica.
func (s *Server) showReplicas() resultSet {
	rs := resultSet{cols: []column{
		{"database", oidText}, {"host", oidText}, {"port", oidInt4}, {"state", oidText}, {"usable", oidInt4},
		{"lag_seconds", oidText}, {"lag_bytes", oidInt8}, {"replay_lsn", oidText}, {"checked_ago_ms", oidInt8},
		{"state_changes", oidInt8}, {"error", oidText},
		// Databases whose servers have role auto (failover.go): each
		// server's timeline, and the database's primary: ok,
		// operator_pick, split_brain, no_primary or unknown.
		{"timeline", oidInt8}, {"primary_state", oidText},
	}}
	now := time.Now()
	for _, r := range s.replicaRows() {
		usable, ago := "0", ""
		if r.Usable() {
			usable = "1"
		}
		if !r.CheckedAt.IsZero() {
			ago = strconv.FormatInt(now.Sub(r.CheckedAt).Milliseconds(), 10)
		}
		timeline := ""
		if r.Timeline != 0 {
			timeline = strconv.FormatUint(uint64(r.Timeline), 10)
		}
		replay := ""
		if r.ReplayLSN != 0 {
			replay = r.ReplayLSN.String()
		}
		rs.rows = append(rs.rows, []string{
			r.database, r.Target.Host, strconv.Itoa(r.Target.Port), r.State.String(), usable,
			strconv.FormatFloat(r.Lag.Seconds(), 'f', 3, 64), strconv.FormatInt(r.LagBytes, 10), replay, ago,
			strconv.Itoa(r.Changes), r.Err, timeline, r.primaryState,
		})
	}
	return rs
}

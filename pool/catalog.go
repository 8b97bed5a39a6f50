package pool

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Catalog facts the router needs from the primary, loaded by the replica
// monitor: function volatility (pg_proc) and the roles whose sessions
// default to serializable (pg_db_role_setting). Both are read every
// MonitorConfig.FunctionsEvery and again after DDL through pgone
// (RefreshFunctions).

// functionsQuery lists every function by schema and name with the most
// volatile of its overloads ('i' < 's' < 'v' in byte order).
const functionsQuery = "SELECT n.nspname, p.proname, max(p.provolatile::text) FROM pg_catalog.pg_proc p" +
	" JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace GROUP BY 1, 2"

// Functions returns the volatility of the primary's functions, as
// pg_proc.provolatile ('i', 's', 'v'), by bare name and by "schema.name";
// a bare name shared by several schemas has the most volatile of them.
// It is nil before the first load, after RefreshFunctions until the next
// one, and without MonitorConfig.FunctionsEvery. The map is read only.
func (m *Monitor) Functions() map[string]byte {
	if p := m.functions.Load(); p != nil {
		return *p
	}
	return nil
}

// RefreshFunctions forgets the loaded volatility (a function may have
// changed: DDL ran) and has it loaded again at once.
func (m *Monitor) RefreshFunctions() {
	if m.cfg.FunctionsEvery <= 0 {
		return
	}
	m.functionsMu.Lock()
	m.functionsGen++
	m.functions.Store(nil)
	m.functionsMu.Unlock()
	select {
	case m.functionsKick <- struct{}{}:
	default:
	}
}

// beginFunctionsLoad returns the generation a load starting now must
// still find when it stores its result.
func (m *Monitor) beginFunctionsLoad() uint64 {
	m.functionsMu.Lock()
	defer m.functionsMu.Unlock()
	return m.functionsGen
}

// storeFunctions publishes what a load begun at generation gen read,
// unless RefreshFunctions ran since: then pg_proc may have changed after
// the load read it (DDL committed while it ran), and storing it would
// bring back a volatility the DDL replaced, after the invalidation meant
// to remove it. The load that RefreshFunctions queued reads it again.
func (m *Monitor) storeFunctions(gen uint64, funcs map[string]byte, serializable map[string]bool) bool {
	m.functionsMu.Lock()
	defer m.functionsMu.Unlock()
	if gen != m.functionsGen {
		return false
	}
	m.functions.Store(&funcs)
	m.serializable.Store(&serializable)
	return true
}

// serializableRolesQuery lists the roles whose sessions on the current
// database default to serializable ("" for a setting of every role):
// ALTER ROLE/DATABASE ... SET default_transaction_isolation.
const serializableRolesQuery = "SELECT coalesce(r.rolname, '') FROM pg_catalog.pg_db_role_setting s" +
	" LEFT JOIN pg_catalog.pg_roles r ON r.oid = s.setrole" +
	" WHERE s.setdatabase IN (0, (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database()))" +
	" AND EXISTS (SELECT 1 FROM pg_catalog.unnest(s.setconfig) c WHERE pg_catalog.lower(c) = 'default_transaction_isolation=serializable')"

// SerializableDefault reports whether sessions of role on the monitored
// database default to the serializable isolation level by a role or
// database setting, as of the last load (false before one). A standby
// refuses them: their reads belong on the primary.
func (m *Monitor) SerializableDefault(role string) bool {
	p := m.serializable.Load()
	return p != nil && ((*p)[""] || (*p)[role])
}

// loadFunctions reads pg_proc on the primary; it reports whether it
// stored what it read.
func (m *Monitor) loadFunctions(conns []*Conn) bool {
	gen := m.beginFunctionsLoad() // before the query: it must see every DDL invalidated later
	ctx, cancel := context.WithTimeout(context.Background(), max(m.cfg.Interval, 5*time.Second))
	defer cancel()
	rows, err := m.queryRows(ctx, conns, 0, m.primary, functionsQuery)
	if err != nil {
		m.logLoadFailure("loading function volatility from pg_proc failed", err)
		return false
	}
	roleRows, err := m.queryRows(ctx, conns, 0, m.primary, serializableRolesQuery)
	if err != nil {
		m.logLoadFailure("loading role settings from pg_db_role_setting failed", err)
		return false
	}
	serializable := map[string]bool{}
	for _, r := range roleRows {
		if len(r) == 1 {
			serializable[r[0]] = true
		}
	}
	funcs := make(map[string]byte, 2*len(rows))
	for _, r := range rows {
		if len(r) != 3 || len(r[2]) != 1 {
			continue
		}
		v := r[2][0]
		funcs[r[0]+"."+r[1]] = v
		if old, ok := funcs[r[1]]; !ok || v > old {
			funcs[r[1]] = v
		}
	}
	return m.storeFunctions(gen, funcs, serializable)
}

// logLoadFailure logs a failed load: a primary that cannot be reached at
// debug level (the rounds report it, and the load is retried each round),
// any other failure as a warning.
func (m *Monitor) logLoadFailure(msg string, err error) {
	level := slog.LevelWarn
	if _, unreachable := errors.AsType[*pgconn.ConnectError](err); unreachable {
		level = slog.LevelDebug
	}
	m.log.Log(context.Background(), level, "replica monitor: "+msg, "err", err)
}

package proxy

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgone/pgone/pool"
	"github.com/pgone/pgone/router"
)

// Catalog facts the router needs from a database's primary: function
// volatility (pg_proc, router.ProcVolatilityQuery) and the roles whose
// sessions default to serializable (pg_db_role_setting). They are read by
// the database's replica monitor as its primary task (pool/task.go), on
// its own connection, every routing.functions_refresh_interval and again
// after DDL through pgone (refresh). The pool runs the queries; what they
// mean is decided here and in the router.

// serializableRolesQuery lists the roles whose sessions on the current
// database default to serializable ("" for a setting of every role):
// ALTER ROLE/DATABASE ... SET default_transaction_isolation.
const serializableRolesQuery = "SELECT coalesce(r.rolname, '') FROM pg_catalog.pg_db_role_setting s" +
	" LEFT JOIN pg_catalog.pg_roles r ON r.oid = s.setrole" +
	" WHERE s.setdatabase IN (0, (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database()))" +
	" AND EXISTS (SELECT 1 FROM pg_catalog.unnest(s.setconfig) c WHERE pg_catalog.lower(c) = 'default_transaction_isolation=serializable')"

// catalog holds one database's catalog facts, shared by its sessions.
// Loads run on the monitor's goroutine; reads are lock free.
type catalog struct {
	log  *slog.Logger
	kick func() // has the monitor load again at once (pool.Monitor.KickPrimaryTask)

	functions    atomic.Pointer[router.ProcVolatility]
	serializable atomic.Pointer[map[string]bool]
	// mu orders loads against invalidations: gen counts refresh calls,
	// and a load stores its result only if none happened since it began
	// (see store).
	mu  sync.Mutex
	gen uint64
}

// newCatalog returns the catalog of the database mon monitors, loaded by
// mon as its primary task (set before mon starts).
func newCatalog(mon *pool.Monitor, log *slog.Logger) *catalog {
	c := &catalog{log: log, kick: mon.KickPrimaryTask}
	mon.PrimaryTask = c.load
	return c
}

// Functions returns the volatility the router should use: pg_proc as last
// loaded, or nil (the router's built-in list, unknown functions volatile)
// before the first load and after refresh until the next one.
func (c *catalog) Functions() router.Functions {
	if c == nil {
		return nil
	}
	if p := c.functions.Load(); p != nil {
		return *p
	}
	return nil
}

// serializableDefault reports whether sessions of role default to the
// serializable isolation level by a role or database setting, as of the
// last load (false before one). A standby refuses them: their reads belong
// on the primary.
func (c *catalog) serializableDefault(role string) bool {
	if c == nil {
		return false
	}
	p := c.serializable.Load()
	return p != nil && ((*p)[""] || (*p)[role])
}

// refresh forgets the loaded volatility (a function may have changed: DDL
// ran) and has it loaded again at once.
func (c *catalog) refresh() {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.gen++
	c.functions.Store(nil)
	c.mu.Unlock()
	c.kick()
}

// begin returns the generation a load starting now must still find when
// it stores its result.
func (c *catalog) begin() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// store publishes what a load begun at generation gen read, unless
// refresh ran since: then pg_proc may have changed after the load read it
// (DDL committed while it ran), and storing it would bring back a
// volatility the DDL replaced, after the invalidation meant to remove it.
// The load that refresh queued reads it again.
func (c *catalog) store(gen uint64, funcs router.ProcVolatility, serializable map[string]bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return false
	}
	c.functions.Store(&funcs)
	c.serializable.Store(&serializable)
	return true
}

// load reads the catalog facts on the primary (a pool.PrimaryTask); it
// reports whether it stored what it read.
func (c *catalog) load(ctx context.Context, query pool.PrimaryQuery) bool {
	gen := c.begin() // before the query: it must see every DDL invalidated later
	rows, err := query(ctx, router.ProcVolatilityQuery)
	if err != nil {
		c.logLoadFailure("loading function volatility from pg_proc failed", err)
		return false
	}
	roleRows, err := query(ctx, serializableRolesQuery)
	if err != nil {
		c.logLoadFailure("loading role settings from pg_db_role_setting failed", err)
		return false
	}
	serializable := map[string]bool{}
	for _, r := range roleRows {
		if len(r) == 1 {
			serializable[r[0]] = true
		}
	}
	return c.store(gen, router.NewProcVolatility(rows), serializable)
}

// logLoadFailure logs a failed load: a primary that cannot be reached at
// debug level (the monitor's rounds report it, and the load is retried
// each round), any other failure as a warning.
func (c *catalog) logLoadFailure(msg string, err error) {
	level := slog.LevelWarn
	if _, unreachable := errors.AsType[*pgconn.ConnectError](err); unreachable {
		level = slog.LevelDebug
	}
	c.log.Log(context.Background(), level, "replica monitor: "+msg, "err", err)
}

// functionsChanged has the function volatility of database read again:
// DDL ran through pgone. Until then its reads calling functions other than
// the built-in ones go to the primary.
func (s *Server) functionsChanged(database string) {
	s.cacheCatalogsStale() // cachecatalog.go
	if sets := s.splits.Load(); sets != nil {
		if set := (*sets)[database]; set != nil {
			set.cat.refresh()
		}
	}
}

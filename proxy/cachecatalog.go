package proxy

import (
	"context"
	"crypto/sha256"
	"errors"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgone/pgone/cache"
	"github.com/pgone/pgone/pool"
)

// What the result cache needs from a database's catalogs, read on its
// primary, kept per cache database and read again after DDL through pgone
// (and every routing.functions_refresh_interval):
//
//   - never cached: tables with row security, temporary, foreign and
//     system relations, views calling functions that are not immutable,
//     and any view or inheritance parent that reads one of those;
//   - the relation graph: a view reads its base tables (pg_rewrite,
//     pg_depend), a parent its children (pg_inherits). A read or a write
//     of a relation counts for every relation connected to it, so a write
//     to a partition invalidates reads of its parent, a write to a base
//     table reads of its views, and a write marked before the catalog was
//     known (under the bare name) still meets the reads after.
//
// Until a database's catalog is loaded (the first cacheable read waits
// for it) and from DDL through pgone until it is read again, nothing of
// that database is cached.

// Relation names are bare and lower case (relationName), as the cache
// keeps versions; two relations of one name in different schemas merge,
// which only refuses and invalidates more.
const (
	cacheRelationsQuery = "SELECT pg_catalog.lower(c.relname), c.relkind::text, c.relpersistence::text, c.relrowsecurity::text," +
		" (n.nspname IN ('pg_catalog', 'information_schema') OR n.nspname LIKE 'pg\\_toast%' OR n.nspname LIKE 'pg\\_temp%')::text" +
		" FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace" +
		" WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')"
	// cacheReadsQuery: (relation, what reading it reads).
	cacheReadsQuery = "SELECT pg_catalog.lower(p.relname), pg_catalog.lower(ch.relname) FROM pg_catalog.pg_inherits i" +
		" JOIN pg_catalog.pg_class p ON p.oid = i.inhparent JOIN pg_catalog.pg_class ch ON ch.oid = i.inhrelid" +
		" UNION SELECT pg_catalog.lower(v.relname), pg_catalog.lower(t.relname) FROM pg_catalog.pg_rewrite r" +
		" JOIN pg_catalog.pg_class v ON v.oid = r.ev_class" +
		" JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND d.objid = r.oid" +
		" AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass" +
		" JOIN pg_catalog.pg_class t ON t.oid = d.refobjid WHERE t.oid <> v.oid"
	// cacheVolatileViewsQuery: views whose rules call a function that is
	// not immutable.
	cacheVolatileViewsQuery = "SELECT DISTINCT pg_catalog.lower(v.relname) FROM pg_catalog.pg_rewrite r" +
		" JOIN pg_catalog.pg_class v ON v.oid = r.ev_class" +
		" JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND d.objid = r.oid" +
		" AND d.refclassid = 'pg_catalog.pg_proc'::pg_catalog.regclass" +
		" JOIN pg_catalog.pg_proc p ON p.oid = d.refobjid WHERE p.provolatile <> 'i'"
)

// cacheCatalog is one database's catalog facts; read only once built.
type cacheCatalog struct {
	refuse map[string]string   // relation -> why it is never cached ("" if it may be)
	reads  map[string][]string // relation -> the relations reading it reads
	// verdict is refusal's answer for every relation in refuse, worked
	// out once: a read looks it up without allocating.
	verdict map[string]string
	comp    map[string][]string // relation -> its connected relations (itself included), if any
	sum     [sha256.Size]byte
	gen     uint64 // the DDL generation it was loaded at
	at      time.Time
}

// streamCoverage is what the replication stream carries (logical
// invalidation): every table, or the tables of its publication. A table
// it does not carry is never cached: a write to it that bypasses pgone
// would go unseen.
type streamCoverage struct {
	all    bool
	tables map[string]bool
}

// buildCacheCatalog builds the facts from the three queries' rows. With
// logical invalidation (stream non-nil), relations whose changes the
// stream never carries (unlogged tables, materialized views, tables
// outside its publication) are refused too.
func buildCacheCatalog(rels, reads, volatile [][]string, stream *streamCoverage) *cacheCatalog {
	logical := stream != nil
	c := &cacheCatalog{refuse: map[string]string{}, reads: map[string][]string{}, comp: map[string][]string{}}
	h := sha256.New()
	for _, rows := range [][][]string{rels, reads, volatile} {
		for _, r := range rows {
			for _, f := range r {
				h.Write([]byte(f))
				h.Write([]byte{0})
			}
		}
		h.Write([]byte{1})
	}
	copy(c.sum[:], h.Sum(nil))
	for _, r := range rels {
		if len(r) != 5 {
			continue
		}
		why := ""
		switch {
		case r[4] == "true":
			why = "system relation"
		case r[3] == "true":
			why = "row security"
		case r[2] == "t":
			why = "temporary"
		case r[1] == "f":
			why = "foreign table"
		case logical && r[2] == "u":
			why = "unlogged table (not in the replication stream)"
		case logical && r[1] == "m":
			why = "materialized view (not in the replication stream)"
		case logical && r[1] == "r" && !stream.all && !stream.tables[r[0]]:
			why = "not in the replication stream's publication"
		}
		if old, seen := c.refuse[r[0]]; !seen || old == "" {
			c.refuse[r[0]] = why
		}
	}
	for _, r := range volatile {
		if len(r) == 1 {
			c.refuse[r[0]] = "view calls a function that is not immutable"
		}
	}
	parent := map[string]string{}
	var find func(string) string
	find = func(x string) string {
		for parent[x] != x {
			parent[x] = parent[parent[x]]
			x = parent[x]
		}
		return x
	}
	union := func(a, b string) {
		for _, x := range []string{a, b} {
			if _, ok := parent[x]; !ok {
				parent[x] = x
			}
		}
		parent[find(a)] = find(b)
	}
	for _, r := range reads {
		if len(r) != 2 || r[0] == r[1] {
			continue
		}
		if !slices.Contains(c.reads[r[0]], r[1]) {
			c.reads[r[0]] = append(c.reads[r[0]], r[1])
		}
		union(r[0], r[1])
	}
	groups := map[string][]string{}
	for x := range parent {
		groups[find(x)] = append(groups[find(x)], x)
	}
	for _, g := range groups {
		sort.Strings(g)
		for _, x := range g {
			c.comp[x] = g
		}
	}
	c.verdict = make(map[string]string, len(c.refuse))
	for x := range c.refuse {
		c.verdict[x] = c.walkRefusal(x)
	}
	return c
}

// refusal says why a read of table may not be cached: its own facts or
// those of anything reading it reads; unknown to the catalog counts as a
// refusal (created since the load, or not a relation).
func (c *cacheCatalog) refusal(table string) string {
	why, known := c.verdict[table]
	if !known {
		return "not in the catalog: " + table
	}
	return why
}

func (c *cacheCatalog) walkRefusal(table string) string {
	seen := map[string]bool{}
	var walk func(string) string
	walk = func(x string) string {
		if seen[x] {
			return ""
		}
		seen[x] = true
		why, known := c.refuse[x]
		if !known {
			return "not in the catalog: " + x
		}
		if why != "" {
			return why + ": " + x
		}
		for _, y := range c.reads[x] {
			if why := walk(y); why != "" {
				return why
			}
		}
		return ""
	}
	return walk(table)
}

// names appends the relations a read or write of table counts for.
func (c *cacheCatalog) names(dst []string, table string) []string {
	if c != nil {
		if g, ok := c.comp[table]; ok {
			return append(dst, g...)
		}
	}
	return append(dst, table)
}

// cacheCatalogs are a server's catalogs by cache database.
type cacheCatalogs struct {
	mu sync.Mutex
	m  map[string]*catalogSlot
	// gen counts DDL through pgone: a catalog of an older generation is
	// not used.
	gen atomic.Uint64
}

type catalogSlot struct {
	load sync.Mutex // one load at a time
	cat  atomic.Pointer[cacheCatalog]
	// failedAt is when the last load failed (unix ns): reads do not try
	// again (each would wait for a connect) until catalogRetry passed.
	failedAt atomic.Int64
}

// catalogRetry is how long after a failed load reads go uncached without
// trying again.
const catalogRetry = 5 * time.Second

func (cs *cacheCatalogs) slot(db string) *catalogSlot {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.m == nil {
		cs.m = map[string]*catalogSlot{}
	}
	s := cs.m[db]
	if s == nil {
		s = &catalogSlot{}
		cs.m[db] = s
	}
	return s
}

// loaded returns db's catalog as last loaded (nil if none), current or not:
// what write marks and the replication stream expand names with (they must
// not wait, and a catalog only adds names to the bare one).
func (cs *cacheCatalogs) loaded(db string) *cacheCatalog { return cs.slot(db).cat.Load() }

// stale has every catalog read again before its next use: DDL ran.
func (cs *cacheCatalogs) stale() { cs.gen.Add(1) }

// current returns db's catalog for deciding a read, loading it first if
// it is missing or older than the last DDL; nil if it cannot be had (the
// read is then not cached). One older than every is used and refreshed
// in the background.
func (h *cacheHooks) currentCatalog(ctx context.Context, db string, target pool.Target, pc *pool.Config, every time.Duration, log *slog.Logger) *cacheCatalog {
	cs := &h.catalogs
	s := cs.slot(db)
	gen := cs.gen.Load()
	if c := s.cat.Load(); c != nil && c.gen == gen {
		if every > 0 && time.Since(c.at) > every && s.load.TryLock() {
			conn := catalogConn(target, *pc) // built only to load: reads of a current catalog make no closure
			go func() {
				defer s.load.Unlock()
				h.loadCatalog(context.Background(), db, s, conn, log)
			}()
		}
		return c
	}
	if time.Since(time.Unix(0, s.failedAt.Load())) < catalogRetry {
		return nil
	}
	// One reader loads; the others do not queue behind it (a load may take
	// its whole 5s bound, and each queued reader would then load again):
	// they go uncached meanwhile.
	if !s.load.TryLock() {
		return nil
	}
	defer s.load.Unlock()
	if c := s.cat.Load(); c != nil && c.gen == gen {
		return c // loaded just before this one took the lock
	}
	if time.Since(time.Unix(0, s.failedAt.Load())) < catalogRetry {
		return nil // failed just before
	}
	c := h.loadCatalog(ctx, db, s, catalogConn(target, *pc), log)
	if c == nil || c.gen != gen {
		return nil
	}
	return c
}

// loadCatalog reads db's catalog and publishes it; s.load must be held.
// A catalog that differs from the one before bumps db's epoch: entries
// stored under the old facts may be wrong under the new (DDL that
// bypassed pgone).
func (h *cacheHooks) loadCatalog(ctx context.Context, db string, s *catalogSlot, conn func() (*pgconn.Config, error), log *slog.Logger) *cacheCatalog {
	gen := h.catalogs.gen.Load() // before the queries: they must see every DDL counted later
	failed := func(err error) *cacheCatalog {
		s.failedAt.Store(time.Now().UnixNano())
		log.Warn("cache: reading the catalog failed; the database's reads are not cached until it is read",
			"database", db, "err", err, "retry_in", catalogRetry)
		return nil
	}
	cfg, err := conn()
	if err != nil {
		return failed(err)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	pc, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return failed(err)
	}
	defer pc.Close(context.Background())
	var rows [3][][]string
	for i, q := range []string{cacheRelationsQuery, cacheReadsQuery, cacheVolatileViewsQuery} {
		res, err := pc.Exec(ctx, q).ReadAll()
		if err == nil && len(res) != 1 {
			err = errors.New("unexpected result")
		}
		if err != nil {
			return failed(err)
		}
		for _, r := range res[0].Rows {
			row := make([]string, len(r))
			for j, f := range r {
				row[j] = string(f)
			}
			rows[i] = append(rows[i], row)
		}
	}
	var stream *streamCoverage
	if h.logical != nil {
		if stream, err = h.logical.coverage(ctx, pc); err != nil {
			return failed(err)
		}
	}
	c := buildCacheCatalog(rows[0], rows[1], rows[2], stream)
	c.gen, c.at = gen, time.Now()
	if old := s.cat.Swap(c); old != nil && old.sum != c.sum {
		h.c.Versions().BumpEpoch(db, 0, cache.CauseEpoch)
	}
	return c
}

// catalogConn is the login catalog loads use: the pool's own server login
// to the session's primary.
func catalogConn(t pool.Target, pc pool.Config) func() (*pgconn.Config, error) {
	return func() (*pgconn.Config, error) { return feedConnConfig(t, cache.Config{}, pc) }
}

// tableNames are the names the cache keeps versions under for tables
// read or written in db: each bare name and, once the catalog is known,
// every relation connected to it.
func (h *cacheHooks) tableNames(db string, tables []string) []string {
	c := h.catalogs.loaded(db)
	out := make([]string, 0, len(tables))
	for _, t := range tables {
		out = c.names(out, relationName(t))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// cacheCatalogsStale: DDL ran through pgone (catalog.go's refresh calls it).
func (s *Server) cacheCatalogsStale() {
	if h := s.hooks.cacheHooks(); h != nil {
		h.catalogs.stale()
	}
}

// catalogAllows says whether the catalog lets a read of tables in db be
// cached: loaded (waiting for it if needed, from the primary the session's
// target stands for: cachefailover.go) and no table refused. Nothing is
// cached while a role auto database has no trusted primary.
func (h *cacheHooks) catalogAllows(ctx context.Context, ss *session, db string, target pool.Target, tables []string) bool {
	target, ok := ss.srv.cachePrimary(ss.poolKey.Database, target)
	if !ok {
		return false
	}
	snap := ss.srv.snap.Load()
	every := snap.cfg.Routing.FunctionsRefreshInterval
	c := h.currentCatalog(ctx, db, target, &snap.poolCfg, every, ss.srv.log)
	if c == nil {
		return false
	}
	for _, t := range tables {
		if c.refusal(relationName(t)) != "" {
			return false
		}
	}
	return true
}

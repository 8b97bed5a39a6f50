package proxy

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgone/pgone/cache"
	"github.com/pgone/pgone/pool"
)

// cache.invalidation: logical. Each PostgreSQL database the cache serves
// gets a logical replication stream from its primary (cache/logical.go),
// started when the first session of that database uses the cache, so the
// wildcard database is covered too. Until its stream has caught up the
// database is bypassed. The streams stop with the server.

// cacheLogical starts and keeps the streams of one server's cache.
type cacheLogical struct {
	cfg cache.Config
	mu  sync.Mutex
	// started are the cache databases whose stream was started (or could
	// not be configured), so each is tried once per server.
	started map[string]bool
	stopped bool
}

// SetCacheInvalidation turns on what cfg.Invalidation asks for, on the
// cache SetCache installed; with none it does nothing. Call it after
// SetCache, before Serve.
func (s *Server) SetCacheInvalidation(cfg cache.Config) {
	h := s.hooks.cacheHooks()
	if h == nil || cfg.Invalidation != cache.InvalidationLogical {
		return
	}
	h.logical = &cacheLogical{cfg: cfg, started: map[string]bool{}}
}

// ensureFeed starts the stream of the session's database if none runs.
func (ss *session) ensureFeed(h *cacheHooks, db string) {
	l := h.logical
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.started[db] || l.stopped {
		return
	}
	l.started[db] = true
	srv, name, target := ss.srv, ss.poolKey.Database, ss.target
	// Asked at every connect: the primary may have moved (cachefailover.go).
	dial := func() (*pgconn.Config, error) {
		t, ok := srv.cachePrimary(name, target)
		if !ok {
			return nil, fmt.Errorf("no trusted primary for database %q", name)
		}
		conn, err := feedConnConfig(t, l.cfg, srv.snap.Load().poolCfg)
		if err != nil {
			// The stream fails and keeps the database bypassed.
			srv.log.Error("cache: cannot configure the logical replication stream; the database is not cached",
				"database", db, "err", err)
		}
		return conn, err
	}
	pub, create := l.cfg.Publication, false
	if pub == "" {
		pub, create = cache.DefaultPublication, true
	}
	h.c.StartLogical(cache.LogicalSource{Database: db, Dial: dial, Publication: pub, Create: create,
		Slot: l.cfg.Slot, MaxLag: l.cfg.ReplicationMaxLag, Log: ss.srv.log,
		Names: func(_, name string) []string { return h.catalogs.loaded(db).names(nil, relationName(name)) }})
}

// coverage reads what the stream's publication carries. The default one
// not created yet will be FOR ALL TABLES; a named one that does not exist,
// or one that does not publish every kind of change, carries nothing
// pgone can rely on.
func (l *cacheLogical) coverage(ctx context.Context, pc *pgconn.PgConn) (*streamCoverage, error) {
	pub := l.cfg.Publication
	if pub == "" {
		pub = cache.DefaultPublication
	}
	// A table published with a row filter (PostgreSQL 15 on) is not
	// covered: a change of a row outside the filter is never streamed.
	rowFilter := ""
	if serverMajor(pc) >= 15 {
		rowFilter = " AND t.rowfilter IS NULL"
	}
	lit := "'" + strings.ReplaceAll(pub, "'", "''") + "'"
	res, err := pc.Exec(ctx, "SELECT p.puballtables::text, (p.pubinsert AND p.pubupdate AND p.pubdelete AND p.pubtruncate)::text"+
		" FROM pg_catalog.pg_publication p WHERE p.pubname = "+lit+";"+
		" SELECT pg_catalog.lower(t.tablename) FROM pg_catalog.pg_publication_tables t WHERE t.pubname = "+lit+rowFilter).ReadAll()
	if err != nil {
		return nil, err
	}
	if len(res) != 2 {
		return nil, fmt.Errorf("reading publication %s: unexpected result", pub)
	}
	cov := &streamCoverage{tables: map[string]bool{}}
	switch {
	case len(res[0].Rows) == 0:
		cov.all = l.cfg.Publication == "" // pgone creates it FOR ALL TABLES
	case string(res[0].Rows[0][1]) != "true":
		// Some changes are not published: nothing is covered.
	case string(res[0].Rows[0][0]) == "true":
		cov.all = true
	default:
		for _, r := range res[1].Rows {
			cov.tables[string(r[0])] = true
		}
	}
	return cov, nil
}

// feedConnConfig is the stream's login to t's primary: the replication
// user if configured, else the pool's own server login.
func feedConnConfig(t pool.Target, cfg cache.Config, pc pool.Config) (*pgconn.Config, error) {
	user, password := t.User, t.Password
	if cfg.ReplicationUser != "" {
		user, password = cfg.ReplicationUser, cfg.ReplicationPassword
	}
	q := func(v string) string { return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'" }
	dsn := fmt.Sprintf("host=%s port=%d dbname=%s user=%s password=%s connect_timeout=10",
		q(t.Host), t.Port, q(t.Database), q(user), q(password))
	if pc.ServerTLS.SSLMode != "" {
		dsn += " sslmode=" + q(pc.ServerTLS.SSLMode)
	}
	if pc.ServerTLS.RootCert != "" {
		dsn += " sslrootcert=" + q(pc.ServerTLS.RootCert)
	}
	return pgconn.ParseConfig(dsn)
}

// stopCacheFeeds stops the streams (their temporary slots go with them).
func (s *Server) stopCacheFeeds() {
	h := s.hooks.cacheHooks()
	if h == nil || h.logical == nil {
		return
	}
	h.logical.mu.Lock()
	h.logical.stopped = true
	h.logical.mu.Unlock()
	h.c.StopFeeds()
}

// serverMajor is the server's major version from its server_version
// parameter ("15.18 (Debian ...)" is 15), 0 if unreadable.
func serverMajor(pc *pgconn.PgConn) int {
	v := pc.ParameterStatus("server_version")
	n := 0
	for i := 0; i < len(v) && v[i] >= '0' && v[i] <= '9'; i++ {
		n = n*10 + int(v[i]-'0')
	}
	return n
}

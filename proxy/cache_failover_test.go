package proxy_test

import (
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgone/pgone/cache"
	"github.com/pgone/pgone/config"
	"github.com/pgone/pgone/internal/pgtest"
	"github.com/pgone/pgone/pool"
	"github.com/pgone/pgone/proxy"
)

// TestCacheFollowsFailover: a database whose servers have role auto, the
// cache on with logical invalidation. A read is cached; the primary is
// stopped and the replica promoted. Without a restart of pgone, the
// cache follows the new primary: the entry from before the switch is not
// served (the promotion flushed it), a write through pgone to the new
// primary invalidates, the read is served from the cache again with the
// new value, and a write made on the new primary without pgone reaches
// the cache through the stream, which now reads the new primary.
func TestCacheFollowsFailover(t *testing.T) {
	t.Parallel()
	const db = "cache_failover"
	cl := failoverClusterWith(t, db, pgtest.Options{Replica: true, Settings: map[string]string{"wal_level": "logical"}})
	ctx := testCtx(t)
	const role = "cache_failover_repl"
	if err := cl.Exec(ctx, fmt.Sprintf("CREATE ROLE %s REPLICATION LOGIN PASSWORD '%[1]s-pw'", role)); err != nil {
		t.Fatal(err)
	}
	direct := connect(t, cl.Primary.DSN(appUser, appPassword, db))
	for _, sql := range []string{
		"CREATE TABLE cache_fo (id int PRIMARY KEY, v text)",
		"INSERT INTO cache_fo VALUES (1, 'v0')",
	} {
		if _, err := direct.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	su := connect(t, cl.Primary.DSN(pgtest.SuperUser, pgtest.SuperPassword, db))
	if _, err := su.Exec(ctx, "CREATE PUBLICATION "+cache.DefaultPublication+" FOR ALL TABLES"); err != nil {
		t.Fatal(err)
	}
	if err := cl.WaitReplicaCaughtUp(ctx); err != nil {
		t.Fatal(err)
	}

	ccfg := cache.Config{Mode: cache.ModeRules, Rules: []cache.Rule{{Table: "cache_fo"}},
		Invalidation: cache.InvalidationLogical, ReplicationUser: role, ReplicationPassword: role + "-pw",
		ReplicationMaxLag: time.Second}
	c, p := cacheFailoverProxy(t, cl, db, ccfg, 30*time.Second)
	dsn := p.DSN(appUser, appPassword, db)
	conn := connect(t, dsn)
	const sql = "SELECT v FROM cache_fo WHERE id = 1"
	waitHit(t, c, conn, sql, "v0")

	if err := cl.Primary.Stop(); err != nil {
		t.Fatal(err)
	}
	promote(t, cl.Replica)
	conn = execAfterFailover(t, conn, dsn, "UPDATE cache_fo SET v = 'v1' WHERE id = 1")
	// Every read from now on must say v1; one is served from the cache
	// again within the stream's reconnect and catch-up.
	waitHit(t, c, conn, sql, "v1")

	// A write on the new primary without pgone: the stream reads the new
	// primary, so it invalidates.
	newDirect := connect(t, cl.Replica.DSN(appUser, appPassword, db))
	if _, err := newDirect.Exec(ctx, "UPDATE cache_fo SET v = 'direct' WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the direct write on the new primary to show through the cache", func() bool { return readV(t, conn, sql) == "direct" })
	waitHit(t, c, conn, sql, "direct")

	newAddr := net.JoinHostPort(cl.Replica.Host, strconv.Itoa(cl.Replica.Port))
	admin := p.console(t, adminUser, adminPassword)
	if n := flushes(t, admin); n < 1 {
		t.Errorf("the promotion to %s flushed the result cache %d times, want at least 1", newAddr, n)
	}
}

// cacheFailoverProxy is pgone in transaction mode with a cache made from
// ccfg and database db listing cl's two servers with role auto; requests
// wait up to wait for a primary.
func cacheFailoverProxy(t *testing.T, cl *pgtest.Cluster, db string, ccfg cache.Config, wait time.Duration) (*cache.Cache, *observedProxy) {
	t.Helper()
	ccfg.Defaults()
	c, err := cache.New(ccfg)
	if err != nil {
		t.Fatal(err)
	}
	return c, startObservedProxy(t, func(cfg *config.Config) {
		cfg.Pool.Mode = pool.ModeTransaction
		cfg.Pool.PoolSize = 4
		cfg.Pool.ReplicaCheckInterval = failoverInterval
		cfg.Pool.QueryWaitTimeout = wait
		cfg.Proxy.Databases[db] = proxy.Database{User: appUser, Password: appPassword, Servers: []proxy.DatabaseServer{
			{Host: cl.Primary.Host, Port: cl.Primary.Port, Role: proxy.RoleAuto},
			{Host: cl.Replica.Host, Port: cl.Replica.Port, Role: proxy.RoleAuto},
		}}
		cfg.Defaults()
	}, func(s *proxy.Server) {
		s.SetCache(c, ccfg)
		s.SetCacheInvalidation(ccfg)
	})
}

// execAfterFailover runs sql through pgone (dsn) once the failover lets
// it: the statement waits in pgone for the new primary, and the
// connection may have been cut at the switch (08006), then it connects
// again. It returns the connection it ended on.
func execAfterFailover(t *testing.T, conn *pgx.Conn, dsn, sql string) *pgx.Conn {
	t.Helper()
	var errs []string
	for {
		if conn.IsClosed() {
			conn = connect(t, dsn)
		}
		_, err := conn.Exec(testCtx(t), sql, pgx.QueryExecModeSimpleProtocol)
		if err == nil {
			return conn
		}
		if errs = append(errs, err.Error()); len(errs) > 20 {
			t.Fatalf("%s keeps failing after the promotion: %v", sql, errs)
		}
	}
}

// TestCacheCatalogFollowsFailover: the cache's catalog checks read the
// primary the monitor trusts. After a failover (invalidation through
// pgone only), a table created through pgone on the new primary is
// cached (its catalog is read there, not on the stopped first server),
// and row security enabled on it there stops its caching.
func TestCacheCatalogFollowsFailover(t *testing.T) {
	t.Parallel()
	const db = "cache_failover_cat"
	cl := failoverCluster(t, db)
	ccfg := cache.Config{Mode: cache.ModeRules, Rules: []cache.Rule{{Table: "cache_fo_new"}}}
	c, p := cacheFailoverProxy(t, cl, db, ccfg, 30*time.Second)
	dsn := p.DSN(appUser, appPassword, db)
	conn := connect(t, dsn)
	if _, err := conn.Exec(testCtx(t), "SELECT 1"); err != nil {
		t.Fatal(err)
	}

	if err := cl.Primary.Stop(); err != nil {
		t.Fatal(err)
	}
	promote(t, cl.Replica)
	conn = execAfterFailover(t, conn, dsn, "CREATE TABLE cache_fo_new (id int PRIMARY KEY, v text)")
	if _, err := conn.Exec(testCtx(t), "INSERT INTO cache_fo_new VALUES (1, 'a')"); err != nil {
		t.Fatal(err)
	}
	const sql = "SELECT v FROM cache_fo_new WHERE id = 1"
	waitHit(t, c, conn, sql, "a")

	if _, err := conn.Exec(testCtx(t), "ALTER TABLE cache_fo_new ENABLE ROW LEVEL SECURITY"); err != nil {
		t.Fatal(err)
	}
	hits := c.Stats().Hits
	for range 3 {
		// The owner is not subject to its table's policies: still 'a'.
		if v := readV(t, conn, sql); v != "a" {
			t.Fatalf("%s = %q, want a", sql, v)
		}
	}
	if n := c.Stats().Hits - hits; n != 0 {
		t.Errorf("%d hits of a table with row security (the new primary's catalog says so); want 0", n)
	}
}

// TestCacheBypassedWithoutPrimary: while the monitor trusts no primary (a
// split brain: the replica promoted, the old primary still running), a
// read cached before is not served from the cache, since either claimant
// may have written since. Once the operator picks the new primary the
// database is flushed: a value written on it without pgone during the
// split is read, and cached again.
func TestCacheBypassedWithoutPrimary(t *testing.T) {
	t.Parallel()
	const db = "cache_failover_split"
	cl := failoverCluster(t, db)
	direct := connect(t, cl.Primary.DSN(appUser, appPassword, db))
	for _, sql := range []string{"CREATE TABLE cache_sb (id int PRIMARY KEY, v text)", "INSERT INTO cache_sb VALUES (1, 'v0')"} {
		if _, err := direct.Exec(testCtx(t), sql); err != nil {
			t.Fatal(err)
		}
	}
	if err := cl.WaitReplicaCaughtUp(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	ccfg := cache.Config{Mode: cache.ModeRules, Rules: []cache.Rule{{Table: "cache_sb"}}}
	c, p := cacheFailoverProxy(t, cl, db, ccfg, 500*time.Millisecond)
	dsn := p.DSN(appUser, appPassword, db)
	conn := connect(t, dsn)
	const sql = "SELECT v FROM cache_sb WHERE id = 1"
	waitHit(t, c, conn, sql, "v0")

	promote(t, cl.Replica)
	admin := p.console(t, adminUser, adminPassword)
	eventually(t, "the split brain to be seen", func() bool {
		return serverRows(t, admin, db)[addrOf(cl.Replica)]["primary_state"] == "split_brain"
	})
	newDirect := connect(t, cl.Replica.DSN(appUser, appPassword, db))
	if _, err := newDirect.Exec(testCtx(t), "UPDATE cache_sb SET v = 'split' WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	hits := c.Stats().Hits
	for range 3 {
		var v string
		if err := conn.QueryRow(testCtx(t), sql).Scan(&v); err == nil && v != "split" {
			t.Errorf("read during the split = %q, want split (the new primary's) or an error", v)
		}
	}
	if n := c.Stats().Hits - hits; n != 0 {
		t.Fatalf("%d hits while no primary was trusted; want 0", n)
	}

	show(t, admin, "PRIMARY "+db+" "+addrOf(cl.Replica))
	if conn.IsClosed() {
		conn = connect(t, dsn)
	}
	waitHit(t, c, conn, sql, "split")
}

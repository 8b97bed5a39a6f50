package proxy_test

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgone/pgone/cache"
	"github.com/pgone/pgone/config"
	"github.com/pgone/pgone/internal/pgtest"
	"github.com/pgone/pgone/pool"
	"github.com/pgone/pgone/proxy"
)

// cache.invalidation: logical through pgone: writes made on the primary
// without pgone invalidate its cache through the replication stream.

// execSuper runs sql on appdb as the cluster's superuser.
func execSuper(t *testing.T, sql string) {
	t.Helper()
	c := connect(t, cluster.Primary.DSN(pgtest.SuperUser, pgtest.SuperPassword, appDB))
	if _, err := c.Exec(testCtx(t), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// logicalEnv is one test's database on the shared cluster, with the
// publication pgone would create (FOR ALL TABLES: UPDATE and DELETE then
// need a replica identity on every table of the database, so it is kept
// out of appdb) and a REPLICATION role for the test's stream alone (so
// the test can cut it).
type logicalEnv struct {
	db, role string
	direct   *pgx.Conn // app on db, straight to the primary
}

func newLogicalEnv(t *testing.T, name string) *logicalEnv {
	t.Helper()
	ctx := testCtx(t)
	for _, sql := range []string{
		"DROP DATABASE IF EXISTS " + name + " WITH (FORCE)",
		"CREATE DATABASE " + name + " OWNER " + appUser,
		fmt.Sprintf("DROP ROLE IF EXISTS %s; CREATE ROLE %[1]s REPLICATION LOGIN PASSWORD '%[1]s-pw'", name+"_repl"),
	} {
		if err := cluster.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { _ = cluster.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)") })
	su := connect(t, cluster.Primary.DSN(pgtest.SuperUser, pgtest.SuperPassword, name))
	if _, err := su.Exec(ctx, "CREATE PUBLICATION "+cache.DefaultPublication+" FOR ALL TABLES"); err != nil {
		t.Fatal(err)
	}
	return &logicalEnv{db: name, role: name + "_repl", direct: connect(t, cluster.Primary.DSN(appUser, appPassword, name))}
}

// exec runs sql on the env's database as app, without pgone.
func (e *logicalEnv) exec(t *testing.T, sql string) {
	t.Helper()
	if _, err := e.direct.Exec(testCtx(t), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// cacheDB is the name the cache keeps the env's versions and stats under.
func (e *logicalEnv) cacheDB() string {
	return net.JoinHostPort(cluster.Primary.Host, strconv.Itoa(cluster.Primary.Port)) + "/" + e.db
}

// startLogicalProxy starts pgone (transaction mode, console, metrics) with
// the cache on for table and logical invalidation logging in as role.
func startLogicalProxy(t *testing.T, table string, e *logicalEnv) (*observedProxy, *cache.Cache, *pgx.Conn) {
	t.Helper()
	ccfg := cache.Config{Mode: cache.ModeRules, Rules: []cache.Rule{{Table: table}},
		Invalidation: cache.InvalidationLogical, ReplicationUser: e.role, ReplicationPassword: e.role + "-pw",
		ReplicationMaxLag: time.Second}
	ccfg.Defaults()
	c, err := cache.New(ccfg)
	if err != nil {
		t.Fatal(err)
	}
	p := startObservedProxy(t, func(cfg *config.Config) { cfg.Pool.Mode = pool.ModeTransaction },
		func(s *proxy.Server) {
			s.SetCache(c, ccfg)
			s.SetCacheInvalidation(ccfg)
		})
	if err := c.RegisterMetrics(p.Reg); err != nil {
		t.Fatal(err)
	}
	return p, c, connect(t, p.DSN(appUser, appPassword, e.db))
}

// waitHit reads sql until a read is a hit; every read must return want.
func waitHit(t *testing.T, c *cache.Cache, conn *pgx.Conn, sql, want string) {
	t.Helper()
	waitUntil(t, "a hit of "+want, func() bool {
		before := c.Stats().Hits
		if v := readV(t, conn, sql); v != want {
			t.Fatalf("%s = %q, want %q", sql, v, want)
		}
		return c.Stats().Hits > before
	})
}

// walsenderSlots are the slots the streams of role hold.
func walsenderSlots(t *testing.T, role string) []string {
	t.Helper()
	c := connect(t, cluster.Primary.DSN(pgtest.SuperUser, pgtest.SuperPassword, appDB))
	rows, err := c.Query(testCtx(t), "SELECT slot_name FROM pg_replication_slots WHERE active_pid IN "+
		"(SELECT pid FROM pg_stat_replication WHERE usename = $1)", role)
	if err != nil {
		t.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// TestCacheLogicalDirectWrite: a cached read, then an UPDATE made on the
// primary without pgone: through pgone the new value shows within the
// stream's lag (without the stream it would be served until the TTL),
// and is cached again. When pgone stops, its temporary slot goes.
func TestCacheLogicalDirectWrite(t *testing.T) {
	t.Parallel()
	e := newLogicalEnv(t, "cache_wal_db")
	e.exec(t, "CREATE TABLE cache_wal (id int PRIMARY KEY, v text)")
	e.exec(t, "INSERT INTO cache_wal VALUES (1, 'v0')")
	p, c, conn := startLogicalProxy(t, "cache_wal", e)
	const sql = "SELECT v FROM cache_wal WHERE id = 1"
	waitHit(t, c, conn, sql, "v0")

	e.exec(t, "UPDATE cache_wal SET v = 'direct' WHERE id = 1")
	start := time.Now()
	waitUntil(t, "the direct write to show through the cache", func() bool { return readV(t, conn, sql) == "direct" })
	t.Logf("the direct write showed after %v", time.Since(start))
	waitHit(t, c, conn, sql, "direct")

	metrics := p.scrape(t)
	for _, m := range []string{"pgone_cache_replication_lag_bytes{", "pgone_cache_replication_lag_seconds{",
		`pgone_cache_replication_connected{database="` + e.cacheDB() + `"} 1`} {
		if !strings.Contains(metrics, m) {
			t.Errorf("metrics lack %s", m)
		}
	}

	slots := walsenderSlots(t, e.role)
	if len(slots) != 1 {
		t.Fatalf("slots of the stream: %v, want one", slots)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	direct := connect(t, cluster.Primary.DSN(pgtest.SuperUser, pgtest.SuperPassword, appDB))
	waitUntil(t, "the temporary slot to go with pgone", func() bool {
		var n int
		if err := direct.QueryRow(testCtx(t), "SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1", slots[0]).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 0
	})
}

// TestCacheLogicalStreamCut: the stream cut (its walsender terminated and
// its role unable to log in again) bypasses the cache: no hits, reads see
// a write made on the primary meanwhile, SHOW CACHE says down. Once the
// stream is back, the entry from before the cut is not served (the gap's
// changes are unknown: flushed) and hits resume.
func TestCacheLogicalStreamCut(t *testing.T) {
	t.Parallel()
	e := newLogicalEnv(t, "cache_cut_db")
	e.exec(t, "CREATE TABLE cache_cut (id int PRIMARY KEY, v text)")
	e.exec(t, "INSERT INTO cache_cut VALUES (1, 'v0')")
	p, c, conn := startLogicalProxy(t, "cache_cut", e)
	admin := p.console(t, adminUser, adminPassword)
	role := e.role
	const sql = "SELECT v FROM cache_cut WHERE id = 1"
	waitHit(t, c, conn, sql, "v0")
	if row := show(t, admin, "SHOW CACHE").row("database", e.cacheDB()); row == nil || row["replication"] != "streaming" {
		t.Fatalf("SHOW CACHE row of %s = %v, want replication streaming", e.cacheDB(), row)
	}

	execSuper(t, "ALTER ROLE "+role+" NOLOGIN")
	execSuper(t, "SELECT pg_terminate_backend(pid) FROM pg_stat_replication WHERE usename = '"+role+"'")
	waitUntil(t, "the cut to be seen", func() bool {
		row := show(t, admin, "SHOW CACHE").row("database", e.cacheDB())
		return row != nil && row["replication"] == "down"
	})
	e.exec(t, "UPDATE cache_cut SET v = 'gap' WHERE id = 1")
	hits := c.Stats().Hits
	for range 3 {
		if v := readV(t, conn, sql); v != "gap" {
			t.Fatalf("read while the stream is down = %q, want gap", v)
		}
	}
	if c.Stats().Hits != hits {
		t.Fatal("a hit while the stream is down")
	}

	execSuper(t, "ALTER ROLE "+role+" LOGIN")
	waitHit(t, c, conn, sql, "gap")
	row := show(t, admin, "SHOW CACHE").row("database", e.cacheDB())
	if row["replication"] != "streaming" || row["invalidations_flush"] == "0" {
		t.Fatalf("SHOW CACHE after the stream is back = %v; want streaming and a flush", row)
	}
}

// TestCacheLogicalPartitionDirectWrite: the stream reports a write to a
// partition under the partition's name; the catalog maps it to its parent,
// so a cached read of the parent sees a write made on the primary
// straight into the partition.
func TestCacheLogicalPartitionDirectWrite(t *testing.T) {
	t.Parallel()
	e := newLogicalEnv(t, "cache_wpart_db")
	e.exec(t, "CREATE TABLE cache_wpart (id int PRIMARY KEY, v text) PARTITION BY RANGE (id)")
	e.exec(t, "CREATE TABLE cache_wpart_1 PARTITION OF cache_wpart FOR VALUES FROM (0) TO (100)")
	e.exec(t, "INSERT INTO cache_wpart VALUES (1, 'v0')")
	_, c, conn := startLogicalProxy(t, "cache_wpart", e)
	const sql = "SELECT v FROM cache_wpart WHERE id = 1"
	waitHit(t, c, conn, sql, "v0")
	e.exec(t, "UPDATE cache_wpart_1 SET v = 'direct' WHERE id = 1")
	waitUntil(t, "the partition's write to show through the parent's entry", func() bool { return readV(t, conn, sql) == "direct" })
	waitHit(t, c, conn, sql, "direct")
}

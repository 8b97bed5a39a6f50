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

// logicalRole creates a REPLICATION role for one test's stream (so the
// test can cut its stream alone) and the publication pgone would create,
// which a role without the privilege cannot.
func logicalRole(t *testing.T, name string) string {
	t.Helper()
	execSuper(t, fmt.Sprintf("DROP ROLE IF EXISTS %s; CREATE ROLE %[1]s REPLICATION LOGIN PASSWORD '%[1]s-pw'", name))
	c := connect(t, cluster.Primary.DSN(pgtest.SuperUser, pgtest.SuperPassword, appDB))
	if _, err := c.Exec(testCtx(t), "CREATE PUBLICATION "+cache.DefaultPublication+" FOR ALL TABLES"); err != nil &&
		!strings.Contains(err.Error(), "42710") {
		t.Fatal(err)
	}
	return name
}

// startLogicalProxy starts pgone (transaction mode, console, metrics) with
// the cache on for table and logical invalidation logging in as role.
func startLogicalProxy(t *testing.T, table, role string) (*observedProxy, *cache.Cache) {
	t.Helper()
	ccfg := cache.Config{Mode: cache.ModeRules, Rules: []cache.Rule{{Table: table}},
		Invalidation: cache.InvalidationLogical, ReplicationUser: role, ReplicationPassword: role + "-pw",
		ReplicationMaxLag: time.Second}
	ccfg.Defaults()
	c, err := cache.New(ccfg)
	if err != nil {
		t.Fatal(err)
	}
	p := startObservedProxy(t, func(cfg *config.Config) { cfg.Pool.Mode = pool.ModeTransaction },
		func(s *proxy.Server) {
			s.SetCache(c, ccfg.Rules)
			s.SetCacheInvalidation(ccfg)
		})
	if err := c.RegisterMetrics(p.Reg); err != nil {
		t.Fatal(err)
	}
	return p, c
}

// cacheDB is the name the cache keeps appdb's versions and stats under.
func cacheDB() string {
	return net.JoinHostPort(cluster.Primary.Host, strconv.Itoa(cluster.Primary.Port)) + "/" + appDB
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
	cacheTable(t, "cache_wal", 1)
	role := logicalRole(t, "repl_direct")
	p, c := startLogicalProxy(t, "cache_wal", role)
	conn := p.Connect(t)
	const sql = "SELECT v FROM cache_wal WHERE id = 1"
	waitHit(t, c, conn, sql, "v0")

	execDirect(t, "UPDATE cache_wal SET v = 'direct' WHERE id = 1")
	start := time.Now()
	waitUntil(t, "the direct write to show through the cache", func() bool { return readV(t, conn, sql) == "direct" })
	t.Logf("the direct write showed after %v", time.Since(start))
	waitHit(t, c, conn, sql, "direct")

	metrics := p.scrape(t)
	for _, m := range []string{"pgone_cache_replication_lag_bytes{", "pgone_cache_replication_lag_seconds{",
		`pgone_cache_replication_connected{database="` + cacheDB() + `"} 1`} {
		if !strings.Contains(metrics, m) {
			t.Errorf("metrics lack %s", m)
		}
	}

	slots := walsenderSlots(t, role)
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
	cacheTable(t, "cache_cut", 1)
	role := logicalRole(t, "repl_cut")
	p, c := startLogicalProxy(t, "cache_cut", role)
	admin := p.console(t, adminUser, adminPassword)
	conn := p.Connect(t)
	const sql = "SELECT v FROM cache_cut WHERE id = 1"
	waitHit(t, c, conn, sql, "v0")
	if row := show(t, admin, "SHOW CACHE").row("database", cacheDB()); row == nil || row["replication"] != "streaming" {
		t.Fatalf("SHOW CACHE row of %s = %v, want replication streaming", cacheDB(), row)
	}

	execSuper(t, "ALTER ROLE "+role+" NOLOGIN")
	execSuper(t, "SELECT pg_terminate_backend(pid) FROM pg_stat_replication WHERE usename = '"+role+"'")
	waitUntil(t, "the cut to be seen", func() bool {
		row := show(t, admin, "SHOW CACHE").row("database", cacheDB())
		return row != nil && row["replication"] == "down"
	})
	execDirect(t, "UPDATE cache_cut SET v = 'gap' WHERE id = 1")
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
	row := show(t, admin, "SHOW CACHE").row("database", cacheDB())
	if row["replication"] != "streaming" || row["invalidations_flush"] == "0" {
		t.Fatalf("SHOW CACHE after the stream is back = %v; want streaming and a flush", row)
	}
}

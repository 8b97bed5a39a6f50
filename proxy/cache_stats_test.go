package proxy_test

import (
	"context"
	"net"
	"strconv"
	"testing"

	"github.com/pgone/pgone/cache"
	"github.com/pgone/pgone/config"
	"github.com/pgone/pgone/pool"
	"github.com/pgone/pgone/proxy"
)

// TestCacheConsolePerDatabase: SHOW CACHE has a totals row and a row per
// database, each with its own entries, hits, misses, hit ratio, fills and
// invalidations: hits in one database and a write in it do not show in
// the other's row.
func TestCacheConsolePerDatabase(t *testing.T) {
	t.Parallel()
	const other = "cache_stats_other"
	ctx := testCtx(t)
	if err := cluster.Exec(ctx, "DROP DATABASE IF EXISTS "+other); err != nil {
		t.Fatal(err)
	}
	if err := cluster.Exec(ctx, "CREATE DATABASE "+other+" OWNER "+appUser); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cluster.Exec(context.Background(), "DROP DATABASE IF EXISTS "+other+" WITH (FORCE)") })
	od := connect(t, cluster.Primary.DSN(appUser, appPassword, other))
	for _, sql := range []string{"CREATE TABLE cache_stats (id int PRIMARY KEY, v text)", "INSERT INTO cache_stats VALUES (1, 'o0')"} {
		if _, err := od.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	cacheTable(t, "cache_stats", 1)

	ccfg := cache.Config{Mode: cache.ModeRules, Rules: []cache.Rule{{Table: "cache_stats"}}}
	ccfg.Defaults()
	c, err := cache.New(ccfg)
	if err != nil {
		t.Fatal(err)
	}
	p := startObservedProxy(t, func(cfg *config.Config) { cfg.Pool.Mode = pool.ModeTransaction },
		func(s *proxy.Server) { s.SetCache(c, ccfg) })
	admin := p.console(t, adminUser, adminPassword)
	app := p.Connect(t)
	oc := connect(t, p.DSN(appUser, appPassword, other))

	const sql = "SELECT v FROM cache_stats WHERE id = 1"
	waitHit(t, c, app, sql, "v0")
	if v := readV(t, oc, sql); v != "o0" {
		t.Fatalf("read in %s = %q", other, v)
	}
	waitUntil(t, "the fill in "+other, func() bool { return c.Stats().Fills >= 2 })
	if _, err := app.Exec(ctx, "UPDATE cache_stats SET v = 'v1' WHERE id = 1"); err != nil {
		t.Fatal(err)
	}

	addr := net.JoinHostPort(cluster.Primary.Host, strconv.Itoa(cluster.Primary.Port))
	tb := show(t, admin, "SHOW CACHE")
	total, mine, theirs := tb.row("database", "*"), tb.row("database", addr+"/"+appDB), tb.row("database", addr+"/"+other)
	if total == nil || mine == nil || theirs == nil {
		t.Fatalf("SHOW CACHE rows: %v; want *, %s/%s and %s/%s", tb.rows, addr, appDB, addr, other)
	}
	hits := func(r map[string]string) int { n, _ := strconv.Atoi(r["hits"]); return n }
	if hits(mine) < 1 || hits(theirs) != 0 || hits(total) != hits(mine) {
		t.Errorf("hits: total %s, %s %s, %s %s; want all of them in %s", total["hits"], appDB, mine["hits"], other, theirs["hits"], appDB)
	}
	if theirs["misses"] != "1" || theirs["fills"] != "1" || theirs["entries"] != "1" || theirs["hit_ratio"] != "0.0000" {
		t.Errorf("%s row = %v; want 1 miss, 1 fill, 1 entry, ratio 0", other, theirs)
	}
	if mine["invalidations_write"] == "0" || theirs["invalidations_write"] != "0" {
		t.Errorf("invalidations_write: %s %s, %s %s; want the write in %s only",
			appDB, mine["invalidations_write"], other, theirs["invalidations_write"], appDB)
	}
	if mine["replication"] != "off" {
		t.Errorf("replication without logical invalidation = %q, want off", mine["replication"])
	}
}

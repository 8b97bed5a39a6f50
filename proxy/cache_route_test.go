package proxy_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgone/pgone/cache"
	"github.com/pgone/pgone/config"
	"github.com/pgone/pgone/pool"
	"github.com/pgone/pgone/proxy"
)

// TestCacheSimpleProtocolRoutesByNormalisedText: with the cache on every
// request is planned (its writes are marked before it is sent), so with the
// simple protocol each literal would be a parse. The router's normalised
// level (router/normkey.go) answers the variants instead, and the cache
// still sees the right tables: a write of one id invalidates the read.
func TestCacheSimpleProtocolRoutesByNormalisedText(t *testing.T) {
	t.Parallel()
	cacheTable(t, "cache_norm", 100)
	ccfg := cache.Config{Mode: cache.ModeRules, Rules: []cache.Rule{{Table: "cache_norm", TTL: time.Hour}}}
	ccfg.Defaults()
	c, err := cache.New(ccfg)
	if err != nil {
		t.Fatal(err)
	}
	p := startObservedProxy(t, func(cfg *config.Config) { cfg.Pool.Mode = pool.ModeTransaction },
		func(s *proxy.Server) { s.SetCache(c, ccfg) })
	ctx := testCtx(t)
	conn := connect(t, p.AppDSN())
	simple := pgx.QueryExecModeSimpleProtocol
	before := metricValue(t, p.scrape(t), "pgone_router_cache_misses_total")
	const rounds = 100
	for i := 1; i <= rounds; i++ {
		if _, err := conn.Exec(ctx, fmt.Sprintf("UPDATE cache_norm SET n = n + %d WHERE id = %d", i, i), simple); err != nil {
			t.Fatal(err)
		}
		var v string
		if err := conn.QueryRow(ctx, fmt.Sprintf("SELECT v FROM cache_norm WHERE id = %d", i), simple).Scan(&v); err != nil {
			t.Fatal(err)
		}
	}
	body := p.scrape(t)
	normalized := metricValue(t, body, "pgone_router_cache_normalized_hits_total")
	if parsed := metricValue(t, body, "pgone_router_cache_misses_total") - before; parsed > 10 || normalized < 2*rounds-10 {
		t.Errorf("%d simple-protocol statements with distinct literals: %v parsed, %v routed by normalised text; want all but a few normalised", 2*rounds, parsed, normalized)
	}

	// The normalised decision carries the tables: a read is cached, and a
	// write with another literal invalidates it.
	read := func() string { return readV(t, conn, "SELECT v FROM cache_norm WHERE id = 7", simple) }
	if got := read(); got != "v0" {
		t.Fatalf("read %q, want v0", got)
	}
	hits := c.Stats().Hits
	if got := read(); got != "v0" || c.Stats().Hits != hits+1 {
		t.Fatalf("second read %q, hits %d -> %d; want v0 from the cache", got, hits, c.Stats().Hits)
	}
	if _, err := conn.Exec(ctx, "UPDATE cache_norm SET v = 'v1' WHERE id = 7", simple); err != nil {
		t.Fatal(err)
	}
	if got := read(); got != "v1" {
		t.Errorf("after an UPDATE routed by normalised text the read returned %q, want v1 (stale)", got)
	}
}

// TestCacheKnowsUserFunctionsWithoutReplicas: a database without replicas
// (no read/write split) still gets its functions' volatility from pg_proc
// when the cache is on, so a read calling a user-defined immutable
// function is cached, and one calling a volatile function is not.
func TestCacheKnowsUserFunctionsWithoutReplicas(t *testing.T) {
	t.Parallel()
	cacheTable(t, "cache_fn", 10)
	for _, sql := range []string{
		"CREATE OR REPLACE FUNCTION cache_fn_imm(int) RETURNS int IMMUTABLE LANGUAGE sql AS 'SELECT $1 + 1'",
		"CREATE OR REPLACE FUNCTION cache_fn_vol(int) RETURNS int VOLATILE LANGUAGE sql AS 'SELECT $1 + 1'",
	} {
		execDirect(t, sql)
	}
	ccfg := cache.Config{Mode: cache.ModeRules, Rules: []cache.Rule{{Table: "cache_fn", TTL: time.Hour}}}
	ccfg.Defaults()
	c, err := cache.New(ccfg)
	if err != nil {
		t.Fatal(err)
	}
	p := startObservedProxy(t, func(cfg *config.Config) { cfg.Pool.Mode = pool.ModeTransaction },
		func(s *proxy.Server) { s.SetCache(c, ccfg) })
	conn := connect(t, p.AppDSN())
	// The catalog is loaded by the database's monitor soon after the start.
	deadline := time.Now().Add(10 * time.Second)
	for {
		hits := c.Stats().Hits
		readV(t, conn, "SELECT v FROM cache_fn WHERE id = cache_fn_imm(0)")
		readV(t, conn, "SELECT v FROM cache_fn WHERE id = cache_fn_imm(0)")
		if c.Stats().Hits > hits {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a read calling an immutable user function was never cached: pg_proc's volatility never reached the router")
		}
		time.Sleep(50 * time.Millisecond)
	}
	hits := c.Stats().Hits
	for i := 0; i < 3; i++ {
		readV(t, conn, "SELECT v FROM cache_fn WHERE id = cache_fn_vol(0)")
	}
	if got := c.Stats().Hits; got != hits {
		t.Errorf("a read calling a volatile user function was answered from the cache (%d hits)", got-hits)
	}
}

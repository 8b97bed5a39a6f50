package proxy_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pgone/pgone/cache"
)

// The cache's catalog checks through a pgx client: row security never
// cached (also once DDL through pgone turns it on), a write to a
// partition invalidates reads of its parent, a write to a view's base
// table invalidates reads of the view.

// sqlSetup runs statements directly on the primary as app, and drops
// what they created when the test ends.
func sqlSetup(t *testing.T, drop string, stmts ...string) {
	t.Helper()
	execDirect(t, drop)
	for _, s := range stmts {
		execDirect(t, s)
	}
	t.Cleanup(func() {
		if c, err := pgx.Connect(context.Background(), directDSN()); err == nil {
			_, _ = c.Exec(context.Background(), drop)
			c.Close(context.Background())
		}
	})
}

// TestCacheCatalogRowSecurity: a table with row security is never cached,
// though a rule names it; a plain table beside it is. Row security turned
// on through pgone applies at once.
func TestCacheCatalogRowSecurity(t *testing.T) {
	t.Parallel()
	cacheTable(t, "cache_rls_plain", 1)
	cacheTable(t, "cache_rls", 1)
	execDirect(t, "ALTER TABLE cache_rls ENABLE ROW LEVEL SECURITY")
	execDirect(t, "CREATE POLICY cache_rls_all ON cache_rls USING (true)")
	p, c := startCacheProxy(t, func(cc *cache.Config) {
		cc.Rules = []cache.Rule{{Table: "cache_rls"}, {Table: "cache_rls_plain"}}
	})
	conn := p.Connect(t)
	waitHit(t, c, conn, "SELECT v FROM cache_rls_plain WHERE id = 1", "v0")

	before := c.Stats()
	for range 3 {
		readV(t, conn, "SELECT v FROM cache_rls WHERE id = 1")
	}
	if after := c.Stats(); after.Hits != before.Hits || after.Fills != before.Fills {
		t.Fatalf("reads of a row security table: hits %d -> %d, fills %d -> %d; want none",
			before.Hits, after.Hits, before.Fills, after.Fills)
	}

	if _, err := conn.Exec(testCtx(t), "ALTER TABLE cache_rls_plain ENABLE ROW LEVEL SECURITY"); err != nil {
		t.Fatal(err)
	}
	before = c.Stats()
	for range 3 {
		readV(t, conn, "SELECT v FROM cache_rls_plain WHERE id = 1")
	}
	if after := c.Stats(); after.Hits != before.Hits || after.Fills != before.Fills {
		t.Fatalf("reads after ENABLE ROW LEVEL SECURITY through pgone: hits %d -> %d, fills %d -> %d; want none",
			before.Hits, after.Hits, before.Fills, after.Fills)
	}
}

// TestCacheCatalogPartitionWrite: a read of a partitioned table is cached;
// an UPDATE of one of its partitions (named directly) through pgone
// invalidates it: the next read sees the new value.
func TestCacheCatalogPartitionWrite(t *testing.T) {
	t.Parallel()
	sqlSetup(t, "DROP TABLE IF EXISTS cache_part",
		"CREATE TABLE cache_part (id int, v text) PARTITION BY RANGE (id)",
		"CREATE TABLE cache_part_1 PARTITION OF cache_part FOR VALUES FROM (0) TO (100)",
		"CREATE TABLE cache_part_2 PARTITION OF cache_part FOR VALUES FROM (100) TO (200)",
		"INSERT INTO cache_part VALUES (1, 'v0'), (101, 'w0')")
	p, c := startCacheProxy(t, func(cc *cache.Config) { cc.Rules = []cache.Rule{{Table: "cache_part"}} })
	conn := p.Connect(t)
	const sql = "SELECT string_agg(v, ',' ORDER BY id) FROM cache_part"
	waitHit(t, c, conn, sql, "v0,w0")
	if _, err := conn.Exec(testCtx(t), "UPDATE cache_part_1 SET v = 'v1' WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	if v := readV(t, conn, sql); v != "v1,w0" {
		t.Fatalf("read of the parent after a write to its partition = %q, want v1,w0", v)
	}
	waitHit(t, c, conn, sql, "v1,w0")
}

// TestCacheCatalogViewBaseWrite: a read of a view is cached; an UPDATE of
// its base table through pgone invalidates it.
func TestCacheCatalogViewBaseWrite(t *testing.T) {
	t.Parallel()
	cacheTable(t, "cache_vbase", 1)
	sqlSetup(t, "DROP VIEW IF EXISTS cache_view",
		"CREATE VIEW cache_view AS SELECT id, upper(v) AS v FROM cache_vbase")
	p, c := startCacheProxy(t, func(cc *cache.Config) { cc.Rules = []cache.Rule{{Table: "cache_view"}} })
	conn := p.Connect(t)
	const sql = "SELECT v FROM cache_view WHERE id = 1"
	waitHit(t, c, conn, sql, "V0")
	if _, err := conn.Exec(testCtx(t), "UPDATE cache_vbase SET v = 'v1' WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	if v := readV(t, conn, sql); v != "V1" {
		t.Fatalf("read of the view after a write to its base table = %q, want V1", v)
	}
	waitHit(t, c, conn, sql, "V1")
}

package proxy_test

import (
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgone/pgone/cache"
	"github.com/pgone/pgone/config"
	"github.com/pgone/pgone/pool"
	"github.com/pgone/pgone/router"
)

// fakeAdmission admits the fingerprints in its set.
type fakeAdmission struct {
	mu  sync.Mutex
	fps map[uint64]bool
}

func (a *fakeAdmission) Admitted(fp uint64) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.fps[fp]
}

// TestCacheAdmissionAuto: in cache.mode auto with no rules, a read the
// admission names is cached (the second call is a hit) and a read it does
// not name is not; through a database name whose cache_mode is rules (the
// same PostgreSQL database, so the same cache key) the admitted read is
// not cached: admission is for databases in mode auto only; an admitted
// statement still gets no hit after a write to its table through pgone;
// an admitted read of a catalog is never cached (the rules' checks stay).
func TestCacheAdmissionAuto(t *testing.T) {
	t.Parallel()
	e := newLogicalEnv(t, "admitdb") // admission needs logical invalidation
	e.exec(t, "CREATE TABLE admit_items (id int PRIMARY KEY, v text)")
	e.exec(t, "INSERT INTO admit_items SELECT g, 'v0' FROM generate_series(1, 3) g")
	const admitted, other = "SELECT v FROM admit_items WHERE id = 1", "SELECT v FROM admit_items WHERE id > 1 ORDER BY id LIMIT 1"
	const catalog = "SELECT relname FROM pg_class WHERE relname = 'pg_class'"
	fp := func(text string) uint64 { return router.NewRouter(0).Route(text, router.Session{}).Fingerprint }
	adm := &fakeAdmission{fps: map[uint64]bool{fp(admitted): true, fp(catalog): true}}
	ccfg := cache.Config{Mode: cache.ModeAuto,
		Invalidation: cache.InvalidationLogical, ReplicationUser: e.role, ReplicationPassword: e.role + "-pw",
		ReplicationMaxLag: time.Second}
	ccfg.Defaults()
	c, err := cache.New(ccfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg := validConfig(t, baseConfig(), func(c *config.Config) {
		c.Pool.Mode = pool.ModeTransaction
		rules := c.Proxy.Databases["*"]
		rules.DBName, rules.CacheMode = e.db, cache.ModeRules
		c.Proxy.Databases["admit_rules"] = rules
	})
	p := serveProxy(t, cfg, testLog(), func(p *testProxy) {
		p.Srv.SetCache(c, ccfg)
		p.Srv.SetCacheInvalidation(ccfg)
		p.Srv.SetCacheAdmission(adm)
	})
	ctx := testCtx(t)
	conn := connect(t, p.DSN(appUser, appPassword, e.db))
	simple := pgx.QueryExecModeSimpleProtocol
	read := func(sql string) string {
		t.Helper()
		var v string
		if err := conn.QueryRow(ctx, sql, simple).Scan(&v); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return v
	}
	hits := func() int64 { return c.Stats().Hits }

	read(other)
	read(other)
	if h := hits(); h != 0 {
		t.Fatalf("%d hits for a read no rule and no admission names; want 0", h)
	}
	waitHit(t, c, conn, admitted, "v0") // once the stream is up
	inRules := connect(t, p.DSN(appUser, appPassword, "admit_rules"))
	before := hits()
	for range 2 {
		readV(t, inRules, admitted, simple)
	}
	if h := hits(); h != before {
		t.Errorf("the admitted read through a database in mode rules was served from the cache")
	}
	if _, err := conn.Exec(ctx, "UPDATE admit_items SET v = 'v1' WHERE id = 1", simple); err != nil {
		t.Fatal(err)
	}
	if v := read(admitted); v != "v1" {
		t.Fatalf("admitted read after the UPDATE: %q; want v1", v)
	}
	read(catalog)
	before = hits()
	read(catalog)
	if h := hits(); h != before {
		t.Errorf("an admitted read of a catalog was served from the cache")
	}
}

// TestCacheAdmissionNeedsLogical: without logical invalidation an admitted
// statement is not cached (writes pgone cannot attribute, such as a
// cascade from another table, would leave it stale); rules still work.
func TestCacheAdmissionNeedsLogical(t *testing.T) {
	t.Parallel()
	cacheTable(t, "admit_nolog", 3)
	const admitted = "SELECT v FROM admit_nolog WHERE id = 1"
	fp := router.NewRouter(0).Route(admitted, router.Session{}).Fingerprint
	ccfg := cache.Config{Mode: cache.ModeAuto}
	ccfg.Defaults()
	c, err := cache.New(ccfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg := validConfig(t, baseConfig(), func(c *config.Config) { c.Pool.Mode = pool.ModeTransaction })
	p := serveProxy(t, cfg, testLog(), func(p *testProxy) {
		p.Srv.SetCache(c, ccfg)
		p.Srv.SetCacheAdmission(&fakeAdmission{fps: map[uint64]bool{fp: true}})
	})
	conn := p.Connect(t)
	for i := 0; i < 3; i++ {
		readV(t, conn, admitted)
	}
	if h := c.Stats().Hits; h != 0 {
		t.Errorf("%d hits for an admitted statement without logical invalidation; want 0", h)
	}
}

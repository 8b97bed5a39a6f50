package proxy_test

import (
	"maps"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgone/pgone/cache"
	"github.com/pgone/pgone/config"
	"github.com/pgone/pgone/pool"
	"github.com/pgone/pgone/router"
	"github.com/pgone/pgone/tuner"
)

// startCacheModesProxy starts pgone in transaction mode with the cache
// built from ccfg (as cmd does when any database caches) and two more
// database names, cm_a and cm_b, for the same PostgreSQL database appdb,
// with the cache_mode given for each ("" inherits ccfg.Mode).
func startCacheModesProxy(t *testing.T, ccfg cache.Config, modeA, modeB cache.Mode) (*testProxy, *cache.Cache) {
	t.Helper()
	ccfg.Defaults()
	c, err := cache.New(ccfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg := validConfig(t, baseConfig(), func(c *config.Config) {
		c.Pool.Mode = pool.ModeTransaction
		c.Cache = ccfg
		app := c.Proxy.Databases[appDB]
		app.DBName = appDB
		a, b := app, app
		a.CacheMode, b.CacheMode = modeA, modeB
		c.Proxy.Databases["cm_a"], c.Proxy.Databases["cm_b"] = a, b
	})
	if !cfg.CacheOn() {
		t.Fatal("CacheOn is false with a database that caches: cmd would not build the cache")
	}
	p := serveProxy(t, cfg, testLog(), func(p *testProxy) {
		p.Srv.SetCache(c, ccfg)
		p.Srv.SetCacheInvalidation(ccfg)
	})
	return p, c
}

// TestCacheModePerDatabase: with the cache on for database name cm_a
// (mode rules) and off for cm_b, both names of one PostgreSQL database (so
// their reads have the same cache key): a repeated read through cm_a is a
// hit; the same read through cm_b never looks the cache up nor fills it,
// although cm_a's entry would answer it; a write through cm_b still
// invalidates cm_a's entry. Both ways round: cache.mode off with cm_a's
// cache_mode rules, and cache.mode rules with cm_b's cache_mode off.
func TestCacheModePerDatabase(t *testing.T) {
	t.Parallel()
	cacheTable(t, "cm_items", 1)
	rules := []cache.Rule{{Table: "cm_items", TTL: time.Hour}}
	for _, tc := range []struct {
		name         string
		global       cache.Mode
		modeA, modeB cache.Mode
	}{
		{"global off, cm_a rules", cache.ModeOff, cache.ModeRules, ""},
		{"global rules, cm_b off", cache.ModeRules, "", cache.ModeOff},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, c := startCacheModesProxy(t, cache.Config{Mode: tc.global, Rules: rules}, tc.modeA, tc.modeB)
			a := connect(t, p.DSN(appUser, appPassword, "cm_a"))
			b := connect(t, p.DSN(appUser, appPassword, "cm_b"))
			execDirect(t, "UPDATE cm_items SET v = 'v0' WHERE id = 1")
			const sql = "SELECT v FROM cm_items WHERE id = 1"
			fills := c.Stats().Fills
			readV(t, a, sql)
			waitUntil(t, "cm_a's fill", func() bool { return c.Stats().Fills == fills+1 })
			hits := c.Stats().Hits
			if v := readV(t, a, sql); v != "v0" {
				t.Fatalf("cm_a read %q; want v0", v)
			}
			if c.Stats().Hits != hits+1 {
				t.Fatal("cm_a's second read was not a hit")
			}

			before := c.Stats()
			for range 3 {
				if v := readV(t, b, sql); v != "v0" {
					t.Fatalf("cm_b read %q; want v0", v)
				}
			}
			if after := c.Stats(); after.Hits != before.Hits || after.Misses != before.Misses || after.Fills != before.Fills {
				t.Fatalf("cm_b (off) used the cache: hits %d->%d misses %d->%d fills %d->%d",
					before.Hits, after.Hits, before.Misses, after.Misses, before.Fills, after.Fills)
			}

			if _, err := b.Exec(testCtx(t), "UPDATE cm_items SET v = 'from_b' WHERE id = 1"); err != nil {
				t.Fatal(err)
			}
			if v := readV(t, a, sql); v != "from_b" {
				t.Fatalf("cm_a read %q after a write through cm_b (off); want from_b: the write did not invalidate", v)
			}
		})
	}
}

// TestCacheModeFollowsReload: a RELOAD that turns cm_b from off to rules
// makes its connected clients' next reads use the cache, and one that
// turns it off again stops them.
func TestCacheModeFollowsReload(t *testing.T) {
	t.Parallel()
	cacheTable(t, "cm_reload", 1)
	p, c := startCacheModesProxy(t, cache.Config{Mode: cache.ModeOff,
		Rules: []cache.Rule{{Table: "cm_reload", TTL: time.Hour}}}, cache.ModeRules, "")
	b := connect(t, p.DSN(appUser, appPassword, "cm_b"))
	const sql = "SELECT v FROM cm_reload WHERE id = 1"
	setModeB := func(m cache.Mode) {
		t.Helper()
		next := *p.Cfg
		next.Proxy.Databases = maps.Clone(p.Cfg.Proxy.Databases)
		d := next.Proxy.Databases["cm_b"]
		d.CacheMode = m
		next.Proxy.Databases["cm_b"] = d
		if err := p.Srv.Reload(next.Proxy, next.Pool); err != nil {
			t.Fatal(err)
		}
	}
	readV(t, b, sql)
	readV(t, b, sql)
	if s := c.Stats(); s.Hits != 0 || s.Misses != 0 {
		t.Fatalf("cm_b off: hits %d misses %d; want no lookup", s.Hits, s.Misses)
	}
	setModeB(cache.ModeRules)
	readV(t, b, sql)
	waitUntil(t, "cm_b's fill after the reload", func() bool { return c.Stats().Fills == 1 })
	readV(t, b, sql)
	if h := c.Stats().Hits; h != 1 {
		t.Fatalf("cm_b in rules after the reload: %d hits; want 1", h)
	}
	setModeB(cache.ModeOff)
	before := c.Stats()
	readV(t, b, sql)
	if after := c.Stats(); after.Hits != before.Hits || after.Misses != before.Misses {
		t.Fatalf("cm_b off again: hits %d->%d misses %d->%d; want no lookup", before.Hits, after.Hits, before.Misses, after.Misses)
	}
}

// TestCacheFingerprintRule: a rule naming a statement's fingerprint, as
// SHOW QUERIES prints it, caches that statement (with any constant) though
// no table rule names its table; other statements on the table are not
// cached; a write through pgone invalidates its entries.
func TestCacheFingerprintRule(t *testing.T) {
	t.Parallel()
	cacheTable(t, "cm_fp", 3)
	shown := func(text string) string {
		return tuner.QueryRow{Fingerprint: router.NewRouter(0).Route(text, router.Session{}).Fingerprint}.FingerprintHex()
	}
	rules := []cache.Rule{{Table: "cm_other"}, {Fingerprint: shown("SELECT v FROM cm_fp WHERE id = 1"), TTL: time.Hour}}
	p, c := startCacheProxy(t, func(c *cache.Config) { c.Rules = rules })
	conn := p.Connect(t)
	simple := pgx.QueryExecModeSimpleProtocol
	const named, other = "SELECT v FROM cm_fp WHERE id = 2", "SELECT v FROM cm_fp WHERE id > 2"

	readV(t, conn, other, simple)
	readV(t, conn, other, simple)
	if s := c.Stats(); s.Hits != 0 || s.Fills != 0 {
		t.Fatalf("a statement no rule names: hits %d fills %d; want none", s.Hits, s.Fills)
	}
	readV(t, conn, named, simple)
	waitUntil(t, "the named statement's fill", func() bool { return c.Stats().Fills == 1 })
	if v := readV(t, conn, named, simple); v != "v0" {
		t.Fatalf("read %q; want v0", v)
	}
	if h := c.Stats().Hits; h != 1 {
		t.Fatalf("the statement the fingerprint rule names: %d hits; want 1", h)
	}
	if _, err := conn.Exec(testCtx(t), "UPDATE cm_fp SET v = 'v1' WHERE id = 2"); err != nil {
		t.Fatal(err)
	}
	if v := readV(t, conn, named, simple); v != "v1" {
		t.Fatalf("read %q after an UPDATE through pgone; want v1", v)
	}
}

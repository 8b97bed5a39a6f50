package proxy_test

import (
	"testing"
	"time"

	"github.com/pgone/pgone/cache"
	"github.com/pgone/pgone/config"
	"github.com/pgone/pgone/internal/pgtest"
	"github.com/pgone/pgone/pool"
	"github.com/pgone/pgone/proxy"
)

// TestCacheLogicalRowFilterNotCovered: a table published with a row
// filter is never cached under logical invalidation (a direct write of a
// row outside the filter is not streamed), while a table of the same
// publication without one is.
func TestCacheLogicalRowFilterNotCovered(t *testing.T) {
	t.Parallel()
	e := newLogicalEnv(t, "rowfilterdb")
	for _, sql := range []string{
		"CREATE TABLE rf_all (id int PRIMARY KEY, v text)",
		"CREATE TABLE rf_some (id int PRIMARY KEY, v text)",
		"INSERT INTO rf_all VALUES (1, 'a')",
		"INSERT INTO rf_some VALUES (1, 'a')",
	} {
		e.exec(t, sql)
	}
	su := connect(t, cluster.Primary.DSN(pgtest.SuperUser, pgtest.SuperPassword, e.db))
	if _, err := su.Exec(testCtx(t), "CREATE PUBLICATION rf_pub FOR TABLE rf_all, rf_some WHERE (id > 1)"); err != nil {
		t.Fatal(err)
	}
	ccfg := cache.Config{Mode: cache.ModeRules, Rules: []cache.Rule{{Table: "rf_all"}, {Table: "rf_some"}},
		Invalidation: cache.InvalidationLogical, Publication: "rf_pub",
		ReplicationUser: e.role, ReplicationPassword: e.role + "-pw", ReplicationMaxLag: time.Second}
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
	conn := connect(t, p.DSN(appUser, appPassword, e.db))
	waitHit(t, c, conn, "SELECT v FROM rf_all WHERE id = 1", "a") // the stream is up
	before := c.Stats().Hits
	for i := 0; i < 3; i++ {
		readV(t, conn, "SELECT v FROM rf_some WHERE id = 1")
	}
	if h := c.Stats().Hits - before; h != 0 {
		t.Errorf("%d hits on a table published with a row filter; want 0 (a direct write outside the filter is never streamed)", h)
	}
}

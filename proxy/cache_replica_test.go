package proxy_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/pgone/pgone/cache"
	"github.com/pgone/pgone/config"
	"github.com/pgone/pgone/internal/pgtest"
	"github.com/pgone/pgone/pool"
	"github.com/pgone/pgone/proxy"
)

// TestCacheReplicaFill: a cache miss runs on a replica that has replayed
// the last invalidation of what it reads, and a lagging replica never
// plants an old result: with replay paused (pg_wal_replay_pause) after a
// write through pgone, a plain read on the replica sees the old value,
// but every cache miss goes to the primary and every hit is the new value.
// Once replay resumes, misses run on the replica again.
func TestCacheReplicaFill(t *testing.T) {
	t.Parallel()
	cl := pgtest.New(t, pgtest.Options{Replica: true})
	ctx := testCtx(t)
	for _, sql := range []string{
		fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", appUser, appPassword),
		fmt.Sprintf("CREATE DATABASE %s OWNER %s", appDB, appUser),
	} {
		if err := cl.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	direct := connect(t, cl.Primary.DSN(appUser, appPassword, appDB))
	for _, sql := range []string{"CREATE TABLE cache_lag (id int PRIMARY KEY, v text)", "INSERT INTO cache_lag VALUES (1, 'v0')"} {
		if _, err := direct.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	if err := cl.WaitReplicaCaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
	ccfg := cache.Config{Mode: cache.ModeRules, Rules: []cache.Rule{{Table: "cache_lag"}}}
	ccfg.Defaults()
	c, err := cache.New(ccfg)
	if err != nil {
		t.Fatal(err)
	}
	p := startObservedProxy(t, func(cfg *config.Config) {
		cfg.Pool.Mode = pool.ModeTransaction
		cfg.Pool.ReplicaCheckInterval = 50 * time.Millisecond
		cfg.Pool.MaxReplicaLag = time.Hour // the paused replica stays in use
		cfg.Proxy.Databases[appDB] = proxy.Database{Host: cl.Primary.Host, Port: cl.Primary.Port,
			User: appUser, Password: appPassword, Consistency: proxy.ReadYourWrites,
			Replicas: []proxy.Replica{{Host: cl.Replica.Host, Port: cl.Replica.Port}}}
		cfg.Proxy.Routing.ReadFunctions = []string{"inet_server_port"}
	}, func(s *proxy.Server) { s.SetCache(c, ccfg) })
	reader, writer := p.Connect(t), p.Connect(t)
	waitForReplicaReads(t, reader, cl)

	const sql = "SELECT v FROM cache_lag WHERE id = 1"
	replicaFills := `pgone_route_requests_total{database="appdb",reason="read",route="replica"}`
	primaryFills := `pgone_route_requests_total{database="appdb",reason="cache_fill",route="primary"}`
	// missOn reads once with a text not read before (a miss: the key
	// holds the text) and says whether it ran on the replica. Not a flush:
	// a flush bars every replica until the primary is read after it.
	n := 0
	missOn := func(want string) bool {
		n++
		before := metricValue(t, p.scrape(t), replicaFills)
		if v := readV(t, reader, fmt.Sprintf("%s /* miss %d */", sql, n)); v != want {
			t.Fatalf("cache miss = %q, want %q", v, want)
		}
		return metricValue(t, p.scrape(t), replicaFills) > before
	}
	// Until the monitor has read the primary once since pgone first saw
	// the database, what was written before is at an unknown position.
	eventually(t, "a miss of a table never written through pgone on the replica", func() bool { return missOn("v0") })
	waitHit(t, c, reader, sql, "v0")

	replica := connect(t, cl.Replica.DSN(pgtest.SuperUser, pgtest.SuperPassword, appDB))
	if _, err := replica.Exec(ctx, "SELECT pg_wal_replay_pause()"); err != nil {
		t.Fatal(err)
	}
	if _, err := writer.Exec(ctx, "UPDATE cache_lag SET v = 'v1' WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	if v := readV(t, reader, sql+" /* pgone:nocache */"); v != "v0" {
		t.Fatalf("a plain read on the paused replica = %q, want v0 (the replica must lag for this test)", v)
	}
	primaryBefore := metricValue(t, p.scrape(t), primaryFills)
	// Several monitor rounds: the write's unknown LSN gets resolved to a
	// primary position the paused replica has not replayed.
	for start := time.Now(); time.Since(start) < time.Second; {
		if missOn("v1") {
			t.Fatal("a miss ran on the replica that has not replayed the write")
		}
		if v := readV(t, reader, sql); v != "v1" {
			t.Fatalf("read after the write = %q, want v1", v)
		}
	}
	if metricValue(t, p.scrape(t), primaryFills) <= primaryBefore {
		t.Fatal("misses barred from the replica were not counted as cache_fill on the primary")
	}

	if _, err := replica.Exec(ctx, "SELECT pg_wal_replay_resume()"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a miss on the replica again", func() bool { return missOn("v1") })

	// A flush (asked for after a write pgone did not see) bars the
	// replicas until a primary position read after it: with replay
	// paused, none is reached.
	if _, err := replica.Exec(ctx, "SELECT pg_wal_replay_pause()"); err != nil {
		t.Fatal(err)
	}
	if _, err := connect(t, cl.Primary.DSN(appUser, appPassword, appDB)).Exec(ctx, "UPDATE cache_lag SET v = 'v2' WHERE id = 1"); err != nil {
		t.Fatal(err) // straight to the primary: pgone does not see it
	}
	c.Flush("")
	for start := time.Now(); time.Since(start) < time.Second; {
		if missOn("v2") {
			t.Fatal("after a direct write and a flush, a miss ran on the replica that has not replayed it")
		}
	}
	if _, err := replica.Exec(ctx, "SELECT pg_wal_replay_resume()"); err != nil {
		t.Fatal(err)
	}
}

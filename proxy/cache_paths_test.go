package proxy_test

// The cache through pgone under concurrency, a lost server, replicas, the
// console, statements and several names for one database (cache_test.go
// has the helpers and the single-client paths).

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgone/pgone/cache"
	"github.com/pgone/pgone/config"
	"github.com/pgone/pgone/pool"
	"github.com/pgone/pgone/proxy"
)

// TestCacheNeverStaleUnderConcurrency: writers bump counters through
// pgone, readers read them through pgone (both protocols); every read
// returns a value at least as new as every write that committed before
// the read began.
func TestCacheNeverStaleUnderConcurrency(t *testing.T) {
	t.Parallel()
	const keys = 3
	cacheTable(t, "cache_hist", keys)
	p, c := startCacheProxy(t, func(c *cache.Config) { c.Rules = []cache.Rule{{Table: "cache_hist"}} })
	ctx := testCtx(t)
	var mu sync.Mutex
	type done struct {
		at time.Time
		n  int
	}
	committed := make([][]done, keys+1) // per key: values with when their commit returned
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var failures []string
	fail := func(s string) { mu.Lock(); failures = append(failures, s); mu.Unlock() }
	for w := range 2 {
		conn := p.Connect(t)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k := 1 + (i+w)%keys
				var n int
				var err error
				if i%2 == 0 {
					err = conn.QueryRow(ctx, "UPDATE cache_hist SET n = n + 1 WHERE id = $1 RETURNING n", k).Scan(&n)
				} else { // inside an explicit transaction
					err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
						return tx.QueryRow(ctx, "UPDATE cache_hist SET n = n + 1 WHERE id = $1 RETURNING n", k).Scan(&n)
					})
				}
				if err != nil {
					fail(err.Error())
					return
				}
				mu.Lock()
				committed[k] = append(committed[k], done{time.Now(), n})
				mu.Unlock()
				time.Sleep(5 * time.Millisecond) // pace the writers so that reads hit
			}
		}()
	}
	for r := range 4 {
		conn := p.Connect(t)
		mode := pgx.QueryExecModeCacheStatement
		if r%2 == 1 {
			mode = pgx.QueryExecModeSimpleProtocol
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k := 1 + i%keys
				start := time.Now()
				var n int
				if err := conn.QueryRow(ctx, "SELECT n FROM cache_hist WHERE id = $1", mode, k).Scan(&n); err != nil {
					fail(err.Error())
					return
				}
				mu.Lock()
				least := 0
				for _, d := range committed[k] {
					if d.at.Before(start) && d.n > least {
						least = d.n
					}
				}
				mu.Unlock()
				if n < least {
					fail(fmt.Sprintf("stale read of key %d: %d, but %d had committed before the read began", k, n, least))
					return
				}
			}
		}()
	}
	time.AfterFunc(2*time.Second, func() { close(stop) })
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d failures, first: %s", len(failures), failures[0])
	}
	s := c.Stats()
	t.Logf("hits %d misses %d fills %d refused %v", s.Hits, s.Misses, s.Fills, s.Refused)
	if s.Hits == 0 || s.Fills == 0 {
		t.Fatalf("the run exercised no hits (%d) or fills (%d)", s.Hits, s.Fills)
	}
}

// TestCacheInDoubtCommitInvalidates: a COMMIT whose server died after
// writing its commit record (08007, outcome unknown) must invalidate as a
// commit, never be taken as a rollback; the session's marks then end, so
// the table is served from the cache again.
func TestCacheInDoubtCommitInvalidates(t *testing.T) {
	// Not parallel: synchronous_standby_names is set for the whole cluster.
	ctx := testCtx(t)
	ownDatabase(t, "cachedoubt")
	direct := connect(t, cluster.Primary.DSN(appUser, appPassword, "cachedoubt"))
	if _, err := direct.Exec(ctx, "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'v0')"); err != nil {
		t.Fatal(err)
	}
	if err := cluster.Exec(ctx, "ALTER SYSTEM SET synchronous_standby_names = 'pgone_nobody'"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		_ = cluster.Exec(ctx, "ALTER SYSTEM RESET synchronous_standby_names")
		_ = cluster.Exec(ctx, "SELECT pg_reload_conf()")
	})
	if err := cluster.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the reload applies", func() bool {
		var v string
		return direct.QueryRow(ctx, "SHOW synchronous_standby_names").Scan(&v) == nil && v == "pgone_nobody"
	})
	p, c := startCacheProxy(t, func(c *cache.Config) { c.Rules = []cache.Rule{{Table: "t"}} })
	reader := connect(t, p.DSN(appUser, appPassword, "cachedoubt"))
	writer := connect(t, p.DSN(appUser, appPassword, "cachedoubt"))
	const sql = "SELECT v FROM t WHERE id = 1"
	readV(t, reader, sql)
	waitUntil(t, "the fill", func() bool { return c.Stats().Fills == 1 })

	for _, s := range []string{"BEGIN", "SET LOCAL synchronous_commit = on", "UPDATE t SET v = 'doubt' WHERE id = 1"} {
		if _, err := writer.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	done := make(chan error, 1)
	go func() {
		_, err := writer.Exec(ctx, "COMMIT")
		done <- err
	}()
	var pid int
	waitUntil(t, "COMMIT waits for the standby", func() bool {
		return direct.QueryRow(ctx, "SELECT pid FROM pg_stat_activity WHERE datname = 'cachedoubt' AND wait_event = 'SyncRep'").Scan(&pid) == nil
	})
	if _, err := direct.Exec(ctx, "SELECT pg_terminate_backend($1)", pid); err != nil {
		t.Fatal(err)
	}
	var pgErr *pgconn.PgError
	if err := <-done; !errors.As(err, &pgErr) || pgErr.Code != "08007" {
		t.Fatalf("COMMIT: %v; want 08007", err)
	}
	if v := readV(t, reader, sql); v != "doubt" {
		t.Fatalf("read after the in-doubt commit = %q, want doubt (taken as a rollback?)", v)
	}
	waitUntil(t, "the read is cached again", func() bool {
		hits := c.Stats().Hits
		return readV(t, reader, sql) == "doubt" && c.Stats().Hits > hits
	})
}

// TestCacheFillsWithReplicas: with a replica, reads go to it, but a
// cacheable miss runs on the primary so that its result can be stored
// (a replica's may predate the last invalidation): the next read is a
// hit, and a write through pgone is seen at once.
func TestCacheFillsWithReplicas(t *testing.T) {
	t.Parallel()
	cacheTable(t, "cache_split", 1)
	p, c := startCacheProxyWith(t, func(c *config.Config) {
		c.Pool.ReplicaCheckInterval = 100 * time.Millisecond
		c.Proxy.Routing.ReadFunctions = []string{"inet_server_port"}
		db := c.Proxy.Databases[appDB]
		db.Replicas = []proxy.Replica{{Host: cluster.Replica.Host, Port: cluster.Replica.Port}}
		c.Proxy.Databases[appDB] = db
	}, func(c *cache.Config) { c.Rules = []cache.Rule{{Table: "cache_split"}} })
	conn := p.Connect(t)
	const sql = "SELECT v FROM cache_split WHERE id = 1"
	waitForReplicaReads(t, conn, cluster)
	waitUntil(t, "the replica has the table", func() bool {
		var n int
		return conn.QueryRow(testCtx(t), "/* pgone:nocache */ SELECT count(*) FROM cache_split").Scan(&n) == nil && n == 1
	})
	readV(t, conn, sql)
	waitUntil(t, "the fill", func() bool { return c.Stats().Fills == 1 })
	hits := c.Stats().Hits
	readV(t, conn, sql)
	if c.Stats().Hits != hits+1 {
		t.Fatalf("no hit after a miss with a replica configured: %+v", c.Stats())
	}
	if _, err := conn.Exec(testCtx(t), "UPDATE cache_split SET v = 'new' WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	if v := readV(t, conn, sql); v != "new" {
		t.Fatalf("read after the write = %q, want new", v)
	}
}

// TestCacheConsole: SHOW CACHE shows the hits and fills; CACHE FLUSH
// [db] drops the entries, so the next read is a miss.
func TestCacheConsole(t *testing.T) {
	t.Parallel()
	cacheTable(t, "cache_console", 1)
	ccfg := cache.Config{Mode: cache.ModeRules, Rules: []cache.Rule{{Table: "cache_console"}}}
	ccfg.Defaults()
	c, err := cache.New(ccfg)
	if err != nil {
		t.Fatal(err)
	}
	p := startObservedProxy(t, func(cfg *config.Config) { cfg.Pool.Mode = pool.ModeTransaction },
		func(s *proxy.Server) { s.SetCache(c, ccfg) })
	conn := p.Connect(t)
	admin := p.console(t, adminUser, adminPassword)
	const sql = "SELECT v FROM cache_console WHERE id = 1"
	readV(t, conn, sql)
	waitUntil(t, "the fill", func() bool { return c.Stats().Fills == 1 })
	readV(t, conn, sql)
	row := show(t, admin, "SHOW CACHE").row("mode", "on")
	if row["hits"] != "1" || row["fills"] != "1" || row["entries"] == "0" || row["hit_ratio"] != "0.5000" {
		t.Fatalf("SHOW CACHE = %v; want 1 hit, 1 fill, an entry, ratio 0.5", row)
	}
	for _, cmd := range []string{"CACHE FLUSH " + appDB, "cache flush"} {
		if _, err := admin.Exec(testCtx(t), cmd).ReadAll(); err != nil {
			t.Fatalf("%s: %v", cmd, err)
		}
		before := c.Stats()
		readV(t, conn, sql)
		if c.Stats().Misses != before.Misses+1 {
			t.Fatalf("read after %s was not a miss", cmd)
		}
		waitUntil(t, "the fill", func() bool { return c.Stats().Fills == before.Fills+1 })
	}
	if _, err := admin.Exec(testCtx(t), "CACHE FLUSH nosuchdb").ReadAll(); err == nil {
		t.Error("CACHE FLUSH of an unknown database succeeded")
	}
}

// TestCacheHitKeepsUnnamedStatement: a hit answers a Parse of the unnamed
// statement without a server, but the client's unnamed statement is then
// that one, as on PostgreSQL: a later Bind of it without a Parse runs it.
func TestCacheHitKeepsUnnamedStatement(t *testing.T) {
	t.Parallel()
	cacheTable(t, "cache_unnamed", 1)
	p, c := startCacheProxy(t, func(c *cache.Config) { c.Rules = []cache.Rule{{Table: "cache_unnamed"}} })
	mc := connectMsg(t, p.AppDSN())
	param := [][]byte{[]byte("1")}
	run := func(query string) string {
		msgs := []pgproto3.FrontendMessage{&pgproto3.Bind{Parameters: param}, &pgproto3.Execute{}, &pgproto3.Sync{}}
		if query != "" {
			msgs = append([]pgproto3.FrontendMessage{&pgproto3.Parse{Query: query}}, msgs...)
		}
		mc.send(msgs...)
		return strings.Join(mc.readUntil(isRFQ), " ")
	}
	const cached = "SELECT v FROM cache_unnamed WHERE id = $1"
	run(cached)
	waitUntil(t, "the fill", func() bool { return c.Stats().Fills == 1 })
	run("SELECT 'other' WHERE $1::int = 1")
	hits := c.Stats().Hits
	if got := run(cached); !strings.Contains(got, `"v0"`) || c.Stats().Hits != hits+1 {
		t.Fatalf("the repeated unnamed Parse: %s, hits %d->%d; want a hit with v0", got, hits, c.Stats().Hits)
	}
	if got := run(""); !strings.Contains(got, `"v0"`) {
		t.Fatalf("Bind of the unnamed statement after a hit ran another statement: %s", got)
	}
}

// TestCacheWritesThroughOtherNames: a write through another pgone
// database name for the same PostgreSQL database (an alias in transaction
// mode, or a session-mode entry, whose writes pgone does not see one by
// one) invalidates reads through the first name.
func TestCacheWritesThroughOtherNames(t *testing.T) {
	t.Parallel()
	cacheTable(t, "cache_alias", 1)
	p, _ := startCacheProxyWith(t, func(c *config.Config) {
		db := c.Proxy.Databases[appDB]
		db.DBName = appDB
		c.Proxy.Databases["alias_tx"] = db
		db.PoolMode = pool.ModeSession
		c.Proxy.Databases["alias_session"] = db
	}, func(c *cache.Config) { c.Rules = []cache.Rule{{Table: "cache_alias"}} })
	reader := p.Connect(t)
	const sql = "SELECT v FROM cache_alias WHERE id = 1"
	for _, alias := range []string{"alias_tx", "alias_session"} {
		readV(t, reader, sql)
		readV(t, reader, sql) // served from the cache
		w := connect(t, p.DSN(appUser, appPassword, alias))
		if _, err := w.Exec(testCtx(t), "UPDATE cache_alias SET v = $1 WHERE id = 1", alias); err != nil {
			t.Fatal(err)
		}
		if alias == "alias_session" {
			// Session mode: the database counts as written while the
			// client stays; reads then go to PostgreSQL.
			if v := readV(t, reader, sql); v != alias {
				t.Fatalf("read while the session-mode writer is connected = %q, want %q", v, alias)
			}
			w.Close(testCtx(t))
		}
		if v := readV(t, reader, sql); v != alias {
			t.Fatalf("read after a write through %s = %q, want %q", alias, v, alias)
		}
	}
}

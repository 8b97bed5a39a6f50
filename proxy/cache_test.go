package proxy_test

import (
	"bytes"
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

// startCacheProxy starts pgone in transaction mode with the result cache
// on (mode rules), configured by mutate, the way cmd/pgone wires it.
func startCacheProxy(t *testing.T, mutate func(*cache.Config)) (*testProxy, *cache.Cache) {
	t.Helper()
	return startCacheProxyWith(t, nil, mutate)
}

// startCacheProxyWith is startCacheProxy with pgone's config changed by
// mutateCfg too.
func startCacheProxyWith(t *testing.T, mutateCfg func(*config.Config), mutate func(*cache.Config)) (*testProxy, *cache.Cache) {
	t.Helper()
	ccfg := cache.Config{Mode: cache.ModeRules}
	if mutate != nil {
		mutate(&ccfg)
	}
	ccfg.Defaults()
	c, err := cache.New(ccfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg := validConfig(t, baseConfig(), func(c *config.Config) {
		c.Pool.Mode = pool.ModeTransaction
		if mutateCfg != nil {
			mutateCfg(c)
		}
	})
	p := serveProxy(t, cfg, testLog(), func(p *testProxy) { p.Srv.SetCache(c, ccfg.Rules) })
	return p, c
}

// cacheTable creates table name (id int primary key, v text) on the
// primary, owned by app, with rows (1, 'v0') .. (n, 'v0').
func cacheTable(t *testing.T, name string, n int) {
	t.Helper()
	ctx := testCtx(t)
	direct := connect(t, directDSN())
	for _, sql := range []string{
		"DROP TABLE IF EXISTS " + name,
		"CREATE TABLE " + name + " (id int PRIMARY KEY, v text, n int NOT NULL DEFAULT 0, at timestamptz NOT NULL DEFAULT '2026-01-02 03:04:05+00')",
		fmt.Sprintf("INSERT INTO %s (id, v) SELECT g, 'v0' FROM generate_series(1, %d) g", name, n),
	} {
		if _, err := direct.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), directDSN())
		if err == nil {
			_, _ = c.Exec(context.Background(), "DROP TABLE IF EXISTS "+name)
			c.Close(context.Background())
		}
	})
}

// execDirect runs sql on the primary without pgone.
func execDirect(t *testing.T, sql string) {
	t.Helper()
	c := connect(t, directDSN())
	if _, err := c.Exec(testCtx(t), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func readV(t *testing.T, conn *pgx.Conn, sql string, args ...any) string {
	t.Helper()
	var v string
	if err := conn.QueryRow(testCtx(t), sql, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return v
}

// rawReply reads frames up to ReadyForQuery and returns them encoded:
// the bytes the client got.
func (c *msgConn) rawReply() []byte {
	c.t.Helper()
	var out []byte
	for {
		m, err := c.receive(ioTimeout)
		if err != nil {
			c.t.Fatalf("receive: %v", err)
		}
		out, err = m.Encode(out)
		if err != nil {
			c.t.Fatal(err)
		}
		if isRFQ(m) {
			return out
		}
	}
}

// TestCacheHitIsByteIdentical: for the simple protocol, the extended
// protocol with an unnamed statement, and a named prepared statement, the
// second identical request is a hit (the hit counter says so) and its
// reply is byte for byte the miss's.
func TestCacheHitIsByteIdentical(t *testing.T) {
	t.Parallel()
	cacheTable(t, "cache_bytes", 3)
	p, c := startCacheProxy(t, func(c *cache.Config) { c.Rules = []cache.Rule{{Table: "cache_bytes"}} })
	mc := connectMsg(t, p.AppDSN())
	const sql = "SELECT id, v, at FROM cache_bytes WHERE id <= $1 ORDER BY id"
	param := [][]byte{[]byte("2")}
	cases := []struct {
		name string
		send []pgproto3.FrontendMessage
	}{
		{"simple", []pgproto3.FrontendMessage{&pgproto3.Query{String: "SELECT id, v, at FROM cache_bytes ORDER BY id"}}},
		{"extended unnamed", []pgproto3.FrontendMessage{&pgproto3.Parse{Query: sql}, &pgproto3.Bind{Parameters: param},
			&pgproto3.Describe{ObjectType: 'P'}, &pgproto3.Execute{}, &pgproto3.Sync{}}},
		{"extended binary results", []pgproto3.FrontendMessage{&pgproto3.Parse{Query: sql}, &pgproto3.Bind{Parameters: param, ResultFormatCodes: []int16{1}},
			&pgproto3.Describe{ObjectType: 'P'}, &pgproto3.Execute{}, &pgproto3.Sync{}}},
		{"named statement", []pgproto3.FrontendMessage{&pgproto3.Bind{PreparedStatement: "s1", Parameters: param},
			&pgproto3.Describe{ObjectType: 'P'}, &pgproto3.Execute{}, &pgproto3.Sync{}}},
	}
	mc.send(&pgproto3.Parse{Name: "s1", Query: sql}, &pgproto3.Describe{ObjectType: 'S', Name: "s1"}, &pgproto3.Sync{})
	mc.rawReply()
	for _, tc := range cases {
		before := c.Stats()
		mc.send(tc.send...)
		miss := mc.rawReply()
		// The fill is stored just after the client got the reply.
		waitUntil(t, "the fill", func() bool { return c.Stats().Fills == before.Fills+1 })
		mid := c.Stats()
		mc.send(tc.send...)
		hit := mc.rawReply()
		after := c.Stats()
		if mid.Misses != before.Misses+1 || mid.Fills != before.Fills+1 {
			t.Errorf("%s: first request: misses %d->%d fills %d->%d; want one miss stored", tc.name, before.Misses, mid.Misses, before.Fills, mid.Fills)
		}
		if after.Hits != mid.Hits+1 {
			t.Errorf("%s: second request: hits %d->%d; want a hit", tc.name, mid.Hits, after.Hits)
		}
		if !bytes.Equal(miss, hit) {
			t.Errorf("%s: hit differs from miss:\nmiss %q\nhit  %q", tc.name, miss, hit)
		}
		if !bytes.Contains(miss, []byte("SELECT ")) {
			t.Errorf("%s: reply %q has no CommandComplete", tc.name, miss)
		}
	}
	// The results differ between cases: different keys.
	if s := c.Stats(); s.Fills != int64(len(cases)) {
		t.Errorf("fills = %d, want %d (one entry per request shape)", s.Fills, len(cases))
	}
}

// TestCacheWritesInvalidate: a hit does not reach PostgreSQL (a change
// made on the primary without pgone is not seen: the documented limit
// until logical invalidation, bounded by the TTL), and a write through
// another pgone client, autocommit or at COMMIT, is seen by the next
// read; a ROLLBACK leaves the entry usable.
func TestCacheWritesInvalidate(t *testing.T) {
	t.Parallel()
	cacheTable(t, "cache_inv", 1)
	p, c := startCacheProxy(t, func(c *cache.Config) { c.Rules = []cache.Rule{{Table: "cache_inv", TTL: time.Hour}} })
	reader, writer := p.Connect(t), p.Connect(t)
	ctx := testCtx(t)
	const sql = "SELECT v FROM cache_inv WHERE id = 1"
	if v := readV(t, reader, sql); v != "v0" {
		t.Fatalf("first read = %q", v)
	}
	waitUntil(t, "the first read's fill", func() bool { return c.Stats().Fills == 1 })

	t.Run("bypassing write not seen until TTL", func(t *testing.T) {
		execDirect(t, "UPDATE cache_inv SET v = 'direct' WHERE id = 1")
		hits := c.Stats().Hits
		if v := readV(t, reader, sql); v != "v0" {
			t.Fatalf("read after a direct write = %q; want the cached v0 (the read must not reach PostgreSQL)", v)
		}
		if c.Stats().Hits != hits+1 {
			t.Fatal("the read was not a hit")
		}
	})

	t.Run("autocommit write through pgone", func(t *testing.T) {
		if _, err := writer.Exec(ctx, "UPDATE cache_inv SET v = 'auto' WHERE id = 1"); err != nil {
			t.Fatal(err)
		}
		if v := readV(t, reader, sql); v != "auto" {
			t.Fatalf("read after the write = %q, want auto", v)
		}
		readV(t, reader, sql) // cached again
	})

	t.Run("explicit transaction invalidates at commit", func(t *testing.T) {
		tx, err := writer.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, "UPDATE cache_inv SET v = 'tx' WHERE id = 1"); err != nil {
			t.Fatal(err)
		}
		if v := readV(t, reader, sql); v != "auto" {
			t.Fatalf("read during the transaction = %q, want auto", v)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if v := readV(t, reader, sql); v != "tx" {
			t.Fatalf("read after COMMIT = %q, want tx", v)
		}
	})

	t.Run("rollback", func(t *testing.T) {
		readV(t, reader, sql)
		tx, err := writer.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, "UPDATE cache_inv SET v = 'rolled back' WHERE id = 1"); err != nil {
			t.Fatal(err)
		}
		if err := tx.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
		hits := c.Stats().Hits
		if v := readV(t, reader, sql); v != "tx" {
			t.Fatalf("read after ROLLBACK = %q, want tx", v)
		}
		if c.Stats().Hits != hits+1 {
			t.Error("the entry was not served after a ROLLBACK: its marks did not end")
		}
	})

	t.Run("commit then rollback in one query string", func(t *testing.T) {
		waitUntil(t, "the entry served", func() bool {
			hits := c.Stats().Hits
			readV(t, reader, sql)
			return c.Stats().Hits > hits
		})
		multi := "BEGIN; UPDATE cache_inv SET v = 'multi' WHERE id = 1; COMMIT; BEGIN; UPDATE cache_inv SET v = 'no' WHERE false; ROLLBACK"
		if _, err := writer.Exec(ctx, multi); err != nil {
			t.Fatal(err)
		}
		if v := readV(t, reader, sql); v != "multi" {
			t.Fatalf("read after a committed write followed by a ROLLBACK = %q, want multi", v)
		}
	})

	t.Run("DDL bumps the epoch", func(t *testing.T) {
		readV(t, reader, sql)
		if _, err := writer.Exec(ctx, "TRUNCATE cache_inv"); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := reader.QueryRow(ctx, "SELECT count(*) FROM cache_inv").Scan(&n); err != nil || n != 0 {
			t.Fatalf("count after TRUNCATE = %d, %v", n, err)
		}
		err := reader.QueryRow(ctx, sql).Scan(new(string))
		if err != pgx.ErrNoRows {
			t.Fatalf("read after TRUNCATE: %v, want no rows", err)
		}
	})
}

// TestCacheTTLBoundsBypassingWrites: a write made on the primary without
// pgone is served stale from the cache until the entry's TTL passes; then
// the read sees it. Logical invalidation (not built yet) will close this.
func TestCacheTTLBoundsBypassingWrites(t *testing.T) {
	t.Parallel()
	cacheTable(t, "cache_ttl", 1)
	p, _ := startCacheProxy(t, func(c *cache.Config) { c.Rules = []cache.Rule{{Table: "cache_ttl", TTL: 300 * time.Millisecond}} })
	conn := p.Connect(t)
	const sql = "SELECT v FROM cache_ttl WHERE id = 1"
	readV(t, conn, sql)
	execDirect(t, "UPDATE cache_ttl SET v = 'direct' WHERE id = 1")
	start := time.Now()
	waitUntil(t, "the TTL to expire the entry", func() bool { return readV(t, conn, sql) == "direct" })
	if time.Since(start) > 10*time.Second {
		t.Errorf("the stale entry lived %s, past its 300ms TTL", time.Since(start))
	}
}

// TestCacheKeyIsolation: another client user, another TimeZone or
// search_path never gets an entry filled under other settings.
func TestCacheKeyIsolation(t *testing.T) {
	t.Parallel()
	cacheTable(t, "cache_key", 1)
	p, c := startCacheProxy(t, func(c *cache.Config) { c.Rules = []cache.Rule{{Table: "cache_key"}} })
	const sql = "SELECT at::text FROM cache_key WHERE id = 1"
	simple := pgx.QueryExecModeSimpleProtocol
	a := p.Connect(t)
	utc := readV(t, a, sql, simple)
	readV(t, a, sql, simple)
	base := c.Stats()
	if base.Hits != 1 {
		t.Fatalf("hits = %d after a repeated read, want 1", base.Hits)
	}

	t.Run("another role", func(t *testing.T) {
		b := connect(t, p.DSN("scramuser", "scramuser-pw", appDB))
		before := c.Stats()
		readV(t, b, sql, simple)
		if after := c.Stats(); after.Hits != before.Hits || after.Misses != before.Misses+1 {
			t.Fatalf("another user's read: hits %d->%d misses %d->%d; want a miss", before.Hits, after.Hits, before.Misses, after.Misses)
		}
	})

	t.Run("another TimeZone", func(t *testing.T) {
		b := p.Connect(t)
		if _, err := b.Exec(testCtx(t), "SET TimeZone = 'Asia/Tokyo'"); err != nil {
			t.Fatal(err)
		}
		got := readV(t, b, sql, simple)
		if got == utc || !strings.Contains(got, "+09") {
			t.Fatalf("Tokyo read = %q (UTC read %q): got another time zone's entry", got, utc)
		}
		if again := readV(t, b, sql, simple); again != got {
			t.Fatalf("second Tokyo read = %q, want %q", again, got)
		}
		if back := readV(t, a, sql, simple); back != utc {
			t.Fatalf("UTC read after Tokyo's = %q, want %q", back, utc)
		}
	})

	t.Run("another search_path", func(t *testing.T) {
		b := p.Connect(t)
		before := c.Stats()
		if _, err := b.Exec(testCtx(t), "SET search_path = public, pg_catalog"); err != nil {
			t.Fatal(err)
		}
		readV(t, b, sql, simple)
		if after := c.Stats(); after.Hits != before.Hits {
			t.Fatal("a session with another search_path got a hit")
		}
	})
}

// TestCacheNeverCached: what must never be served from the cache.
func TestCacheNeverCached(t *testing.T) {
	t.Parallel()
	cacheTable(t, "cache_never", 1)
	p, c := startCacheProxy(t, func(c *cache.Config) {
		c.Rules = []cache.Rule{{Table: "cache_never"}}
		c.MaxEntryBytes = 512
	})
	conn := p.Connect(t)
	ctx := testCtx(t)
	noHit := func(t *testing.T, run func()) {
		t.Helper()
		before := c.Stats()
		for range 3 {
			run()
		}
		if after := c.Stats(); after.Hits != before.Hits || after.Fills != before.Fills {
			t.Fatalf("hits %d->%d fills %d->%d; want none", before.Hits, after.Hits, before.Fills, after.Fills)
		}
	}
	for _, sql := range []string{
		"SELECT v || now()::text FROM cache_never WHERE id = 1",
		"SELECT v || random()::text FROM cache_never WHERE id = 1",
		"/* pgone:cache ttl=1m */ SELECT now()::text",
		"SELECT v || current_user::text FROM cache_never WHERE id = 1",
		"/* pgone:nocache */ SELECT v FROM cache_never WHERE id = 1",
		"SELECT v FROM cache_never WHERE id = 1 FOR UPDATE",
		"SELECT relname::text FROM pg_class WHERE relname = 'cache_never'",
		"SELECT repeat(v, 300) FROM cache_never WHERE id = 1", // over max_entry_bytes
	} {
		t.Run(sql, func(t *testing.T) {
			noHit(t, func() { readV(t, conn, sql, pgx.QueryExecModeSimpleProtocol) })
		})
	}
	t.Run("not under a rule", func(t *testing.T) {
		noHit(t, func() { readV(t, conn, "SELECT 'x' || 'y'") })
	})
	t.Run("inside a transaction", func(t *testing.T) {
		readV(t, conn, "SELECT v FROM cache_never WHERE id = 1") // fills outside
		noHit(t, func() {
			tx, err := conn.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback(ctx)
			var v string
			if err := tx.QueryRow(ctx, "SELECT v FROM cache_never WHERE id = 1").Scan(&v); err != nil {
				t.Fatal(err)
			}
		})
	})
	t.Run("hint caches a table under no rule", func(t *testing.T) {
		before := c.Stats()
		for range 2 {
			readV(t, conn, "/* pgone:cache ttl=1m */ SELECT 'x' || 'y'")
		}
		if c.Stats().Hits != before.Hits+1 {
			t.Fatal("the pgone:cache hint did not cache")
		}
	})
}

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
		func(s *proxy.Server) { s.SetCache(c, ccfg.Rules) })
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

package proxy_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgone/pgone/cache"
	"github.com/pgone/pgone/config"
	"github.com/pgone/pgone/internal/pgtest"
	"github.com/pgone/pgone/pool"
	"github.com/pgone/pgone/proxy"
)

// sharedInstance is one pgone of several sharing a Redis.
type sharedInstance struct {
	*observedProxy
	c *cache.Cache
}

// startSharedInstance starts pgone in transaction mode with the cache on
// (rules: table) and its L2 on the Redis at addr, as cmd/pgone wires it,
// and waits until its invalidation bus is in sync.
func startSharedInstance(t *testing.T, addr string, tables ...string) *sharedInstance {
	t.Helper()
	return startSharedInstanceIn(t, addr, pool.ModeTransaction, tables...)
}

// startSharedInstanceIn is startSharedInstance with the pool mode given.
func startSharedInstanceIn(t *testing.T, addr string, mode pool.Mode, tables ...string) *sharedInstance {
	t.Helper()
	var rules []cache.Rule
	for _, table := range tables {
		rules = append(rules, cache.Rule{Table: table, TTL: time.Hour})
	}
	ccfg := cache.Config{Mode: cache.ModeRules, Rules: rules,
		// Generous bounds: the test machine is shared and runs -race.
		Redis: cache.Redis{Address: addr, Timeout: 250 * time.Millisecond, BreakerCooldown: 100 * time.Millisecond}}
	ccfg.Defaults()
	c, err := cache.New(ccfg)
	if err != nil {
		t.Fatal(err)
	}
	p := startObservedProxy(t, func(cfg *config.Config) { cfg.Pool.Mode = mode },
		func(s *proxy.Server) { s.SetCache(c, ccfg) })
	if err := c.RegisterMetrics(p.Reg); err != nil {
		t.Fatal(err)
	}
	c.Start(testLog())
	t.Cleanup(c.Close)
	in := &sharedInstance{observedProxy: p, c: c}
	in.waitL2(t, "up")
	return in
}

func (in *sharedInstance) waitL2(t *testing.T, state string) {
	t.Helper()
	waitUntil(t, "L2 "+state, func() bool { s, _ := in.c.L2Stats(); return s.State == state })
}

// TestCacheL2WriteOnOtherInstance: two pgone instances share one Redis.
// A's fill is B's L2 hit, byte for byte; then writes through B (autocommit
// and an explicit transaction) are seen by A's very next read, though A
// had the old row cached, and by B's.
func TestCacheL2WriteOnOtherInstance(t *testing.T) {
	cacheTable(t, "l2_other", 1)
	r := pgtest.NewRedis(t)
	a, b := startSharedInstance(t, r.Addr, "l2_other"), startSharedInstance(t, r.Addr, "l2_other")

	q := &pgproto3.Query{String: "SELECT id, v, at FROM l2_other ORDER BY id"}
	ma, mb := connectMsg(t, a.AppDSN()), connectMsg(t, b.AppDSN())
	ma.send(q)
	miss := ma.rawReply()
	waitUntil(t, "A's fill", func() bool { return a.c.Stats().Fills == 1 })
	mb.send(q)
	l2hit := mb.rawReply()
	if s, _ := b.c.L2Stats(); s.Hits != 1 {
		t.Fatalf("B's L2 hits = %d, want 1", s.Hits)
	}
	if !bytes.Equal(miss, l2hit) {
		t.Fatalf("B's L2 hit differs from A's miss:\nmiss %q\nhit  %q", miss, l2hit)
	}

	ra, rb, wb := a.Connect(t), b.Connect(t), b.Connect(t)
	ctx := testCtx(t)
	const sql = "SELECT v FROM l2_other WHERE id = 1"
	for i := 1; i <= 6; i++ {
		readV(t, ra, sql)
		waitUntil(t, "A's fill", func() bool {
			h := a.c.Stats().Hits
			readV(t, ra, sql)
			return a.c.Stats().Hits > h
		})
		want := fmt.Sprintf("w%d", i)
		if i%2 == 0 {
			tx, err := wb.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tx.Exec(ctx, "UPDATE l2_other SET v = $1 WHERE id = 1", want); err != nil {
				t.Fatal(err)
			}
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
		} else if _, err := wb.Exec(ctx, "UPDATE l2_other SET v = $1 WHERE id = 1", want); err != nil {
			t.Fatal(err)
		}
		if got := readV(t, ra, sql); got != want {
			t.Fatalf("write %d: A read %q after B's commit returned, want %q", i, got, want)
		}
		if got := readV(t, rb, sql); got != want {
			t.Fatalf("write %d: B read %q after its commit returned, want %q", i, got, want)
		}
	}
	cacheRows := show(t, a.console(t, adminUser, adminPassword), "SHOW CACHE")
	row := cacheRows.row("mode", "on")
	if row["l2"] != "up" || row["l2_breaker"] != "closed" || row["l2_fills"] == "0" {
		t.Fatalf("A's SHOW CACHE = %v; want l2 up, breaker closed, L2 fills", row)
	}
	// The database's own row counts the hits and misses made through Redis
	// too, as the totals row does.
	perDB := 0
	for _, r := range cacheRows.rows {
		if r["database"] == "*" {
			continue
		}
		perDB++
		if r["hits"] != row["hits"] || r["misses"] != row["misses"] {
			t.Errorf("A's SHOW CACHE row for %s: hits %s misses %s; the totals say %s and %s (one database)",
				r["database"], r["hits"], r["misses"], row["hits"], row["misses"])
		}
	}
	if perDB == 0 {
		t.Errorf("A's SHOW CACHE has no row per database: %v", cacheRows.rows)
	}
	m := b.scrape(t)
	for _, want := range []string{"pgone_cache_l2_up 1", "pgone_cache_l2_breaker_state 0", "pgone_cache_l2_errors_total 0"} {
		if !strings.Contains(m, want+"\n") {
			t.Errorf("B's metrics lack %q", want)
		}
	}
	if !strings.Contains(m, "pgone_cache_l2_hits_total ") || strings.Contains(m, "pgone_cache_l2_hits_total 0\n") {
		t.Errorf("B's metrics do not count its L2 hits")
	}
}

// op is one client call in a history: a write of value v to key k, or a
// read that returned v, from start to end.
type op struct {
	in         int // the instance it went through
	write      bool
	k          int
	v          int64
	start, end time.Time
}

// staleReads returns every read that returned a value older than a
// write to its key that committed (returned) before the read began.
func staleReads(h []op) []string {
	writes := map[int][]op{}
	for _, o := range h {
		if o.write {
			writes[o.k] = append(writes[o.k], o)
		}
	}
	// Per key, by end time, the highest value committed so far.
	for k := range writes {
		w := writes[k]
		sort.Slice(w, func(i, j int) bool { return w[i].end.Before(w[j].end) })
		for i := 1; i < len(w); i++ {
			w[i].v = max(w[i].v, w[i-1].v)
		}
	}
	var bad []string
	for _, o := range h {
		if o.write {
			continue
		}
		w := writes[o.k]
		i := sort.Search(len(w), func(i int) bool { return !w[i].end.Before(o.start) }) // first write ending at or after the read began
		if i > 0 && o.v < w[i-1].v {
			bad = append(bad, fmt.Sprintf("key %d: read %d through instance %d at %s, but %d had committed at %s",
				o.k, o.v, o.in, o.start.Format("15:04:05.000000"), w[i-1].v, w[i-1].end.Format("15:04:05.000000")))
		}
	}
	return bad
}

// TestStaleReadsChecker: the checker finds a read older than a committed
// write, and accepts reads concurrent with a write either way.
func TestStaleReadsChecker(t *testing.T) {
	t0 := time.Now()
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	h := []op{
		{write: true, k: 1, v: 1, start: at(0), end: at(10)},
		{write: true, k: 1, v: 2, start: at(20), end: at(30)},
		{k: 1, v: 1, start: at(25), end: at(26)}, // concurrent with v2: fine
		{k: 1, v: 2, start: at(31), end: at(32)},
		{k: 1, v: 1, start: at(40), end: at(41)}, // stale
		{k: 2, v: 0, start: at(40), end: at(41)}, // nothing written to 2
	}
	if bad := staleReads(h); len(bad) != 1 {
		t.Fatalf("checker found %v, want exactly the read of 1 at 40ms", bad)
	}
}

// checkerTables creates the checker's keys: one table per key (so a
// write invalidates one key's entries), named prefix_1 .. prefix_n.
func checkerTables(t *testing.T, prefix string, n int) []string {
	var tables []string
	for k := 1; k <= n; k++ {
		name := fmt.Sprintf("%s_%d", prefix, k)
		cacheTable(t, name, 1)
		tables = append(tables, name)
	}
	return tables
}

// checkerLoad runs writers and readers through every instance on the
// keys (tables) until ctx ends and returns the history. Writers increment
// a key (autocommit, or in an explicit transaction), so a key's values
// grow in commit order; the writers of instance i write the keys k with
// k % len(ins) == i, so another instance's cached copy of a key is
// invalidated only by the bus. Readers read every key through the cache.
// Any client error fails the test.
func checkerLoad(ctx context.Context, t *testing.T, tables []string, cl checkerClients) []op {
	var mu sync.Mutex
	var h []op
	var wg sync.WaitGroup
	record := func(o op) {
		mu.Lock()
		h = append(h, o)
		mu.Unlock()
	}
	run := func(conn *pgx.Conn, seed uint64, write bool, instance int) {
		defer wg.Done()
		rng := rand.New(rand.NewPCG(seed, 7))
		for ctx.Err() == nil {
			k := rng.IntN(len(tables))
			if write {
				k = k - k%len(cl.writers) + instance
				if k >= len(tables) {
					k = instance
				}
			}
			table := tables[k]
			o := op{in: instance, write: write, k: k, start: time.Now()}
			var err error
			switch {
			case !write:
				err = conn.QueryRow(ctx, "SELECT n FROM "+table+" WHERE id = 1").Scan(&o.v)
			case rng.IntN(2) == 0:
				err = conn.QueryRow(ctx, "UPDATE "+table+" SET n = n + 1 WHERE id = 1 RETURNING n").Scan(&o.v)
			default:
				err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
					return tx.QueryRow(ctx, "UPDATE "+table+" SET n = n + 1 WHERE id = 1 RETURNING n").Scan(&o.v)
				})
			}
			o.end = time.Now()
			if ctx.Err() != nil {
				return // the call may have been cut by the end of the run
			}
			if err != nil {
				t.Errorf("client error (write %v): %v", write, err)
				return
			}
			record(o)
			if write {
				time.Sleep(time.Duration(2+rng.IntN(8)) * time.Millisecond) // pacing, not synchronisation
			}
		}
	}
	seed := uint64(1)
	for j := range cl.writers {
		for _, conn := range cl.writers[j] {
			wg.Add(1)
			go run(conn, seed, true, j)
			seed++
		}
		for _, conn := range cl.readers[j] {
			wg.Add(1)
			go run(conn, seed, false, j)
			seed++
		}
	}
	wg.Wait()
	return h
}

// checkerClients are the checker's connections, per instance: two
// writers and three readers each, opened before the clock starts.
type checkerClients struct{ writers, readers [][]*pgx.Conn }

func openCheckerClients(t *testing.T, ins ...*sharedInstance) checkerClients {
	var cl checkerClients
	for _, in := range ins {
		var w, r []*pgx.Conn
		for i := 0; i < 2; i++ {
			w = append(w, connect(t, in.AppDSN()))
		}
		for i := 0; i < 3; i++ {
			r = append(r, connect(t, in.AppDSN()))
		}
		cl.writers, cl.readers = append(cl.writers, w), append(cl.readers, r)
	}
	return cl
}

// checkerDuration is how long the checker runs: a few seconds in the
// test suite, PGONE_CACHE_SOAK (a Go duration) for a long run (make
// soak-cache).
func checkerDuration(t *testing.T, short time.Duration) time.Duration {
	if s := os.Getenv("PGONE_CACHE_SOAK"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("PGONE_CACHE_SOAK=%q: %v", s, err)
		}
		return d
	}
	return short
}

func reportHistory(t *testing.T, h []op, ins ...*sharedInstance) {
	t.Helper()
	reads := 0
	for _, o := range h {
		if !o.write {
			reads++
		}
	}
	for i, in := range ins {
		s := in.c.Stats()
		l2, _ := in.c.L2Stats()
		t.Logf("instance %d: hits %d misses %d fills %d; L2 hits %d fills %d refused %d errors %d bypassed %d losses %d",
			i, s.Hits, s.Misses, s.Fills, l2.Hits, l2.Fills, l2.Refused, l2.Errors, l2.Bypassed, l2.Losses)
	}
	t.Logf("%d operations, %d reads", len(h), reads)
	if bad := staleReads(h); len(bad) > 0 {
		t.Fatalf("%d stale reads, first: %v", len(bad), bad[:min(len(bad), 5)])
	}
}

// TestCacheL2NeverStale: writers and readers through two instances
// sharing one Redis, on four keys: every read returns a value at least
// as new as every write that committed before it began, through either
// instance; and the cache answered some reads on both.
func TestCacheL2NeverStale(t *testing.T) {
	tables := checkerTables(t, "l2_check", 4)
	r := pgtest.NewRedis(t)
	a, b := startSharedInstance(t, r.Addr, tables...), startSharedInstance(t, r.Addr, tables...)
	cl := openCheckerClients(t, a, b)
	ctx, cancel := context.WithTimeout(context.Background(), checkerDuration(t, 3*time.Second))
	defer cancel()
	h := checkerLoad(ctx, t, tables, cl)
	reportHistory(t, h, a, b)
	for i, in := range []*sharedInstance{a, b} {
		if in.c.Stats().Hits == 0 {
			t.Errorf("instance %d: no read was a hit; the checker did not exercise the cache", i)
		}
	}
}

// TestCacheL2RedisKilledUnderLoad: under the checker's load, Redis is
// killed and restarted. No client sees an error, no read is stale, both
// instances bypass while it is down (SHOW CACHE says so), and after the
// restart they resync and hits resume.
func TestCacheL2RedisKilledUnderLoad(t *testing.T) {
	tables := checkerTables(t, "l2_kill", 4)
	r := pgtest.NewRedis(t)
	a, b := startSharedInstance(t, r.Addr, tables...), startSharedInstance(t, r.Addr, tables...)
	stop := startCheckerLoad(t, tables, a, b)
	waitUntil(t, "hits before the kill", func() bool { return a.c.Stats().Hits > 0 && b.c.Stats().Hits > 0 })
	admin := a.console(t, adminUser, adminPassword)
	// One kill and restart, more under PGONE_CACHE_SOAK.
	dur, began := checkerDuration(t, 0), time.Now()
	for cycle := 0; cycle == 0 || time.Since(began) < dur; cycle++ {
		if err := r.Kill(); err != nil {
			t.Fatal(err)
		}
		a.waitL2(t, "down")
		b.waitL2(t, "down")
		if row := show(t, admin, "SHOW CACHE").row("mode", "on"); row["l2"] != "down" {
			t.Errorf("SHOW CACHE l2 = %q while Redis is down, want down", row["l2"])
		}
		bypassed := func() int64 { s, _ := a.c.L2Stats(); return s.Bypassed }
		n := bypassed()
		waitUntil(t, "reads bypassing while Redis is down", func() bool { return bypassed() > n+20 })
		if err := r.Restart(context.Background()); err != nil {
			t.Fatal(err)
		}
		a.waitL2(t, "up")
		b.waitL2(t, "up")
		hitsA, hitsB := a.c.Stats().Hits, b.c.Stats().Hits
		waitUntil(t, "hits after the restart", func() bool { return a.c.Stats().Hits > hitsA && b.c.Stats().Hits > hitsB })
	}
	h := stop()
	if row := show(t, admin, "SHOW CACHE").row("mode", "on"); row["l2"] != "up" {
		t.Errorf("SHOW CACHE l2 = %q after the restart, want up", row["l2"])
	}
	reportHistory(t, h, a, b)
}

// TestCacheL2PartialPartitionUnderLoad: under the checker's load, one
// instance (A) is cut off from Redis while B is not. A's commits cannot
// tell B; no read through either instance is stale (B bypasses while A's
// lease has lapsed, and A's first such commit waits for its lease to end),
// no client sees an error, and once A reaches Redis again both serve hits.
func TestCacheL2PartialPartitionUnderLoad(t *testing.T) {
	tables := checkerTables(t, "l2_part", 4)
	r := pgtest.NewRedis(t)
	cut := pgtest.NewCuttable(t, r.Addr)
	a, b := startSharedInstance(t, cut.Addr(), tables...), startSharedInstance(t, r.Addr, tables...)
	stop := startCheckerLoad(t, tables, a, b)
	waitUntil(t, "hits before the cut", func() bool { return a.c.Stats().Hits > 0 && b.c.Stats().Hits > 0 })
	cut.Cut()
	a.waitL2(t, "down")
	lapsed := func() int64 { s, _ := b.c.L2Stats(); return s.Lapsed }
	waitUntil(t, "B bypassing for A's lapsed lease", func() bool { return lapsed() > 20 })
	if s, _ := a.c.L2Stats(); s.LeaseWaits == 0 {
		t.Errorf("A held no commit for its lease: %+v", s)
	}
	cut.Mend()
	a.waitL2(t, "up")
	hitsA, hitsB := a.c.Stats().Hits, b.c.Stats().Hits
	waitUntil(t, "hits after A is back", func() bool { return a.c.Stats().Hits > hitsA && b.c.Stats().Hits > hitsB })
	reportHistory(t, stop(), a, b)
}

// startCheckerLoad runs the checker's writers and readers through the
// instances in the background until stop, which returns the history.
func startCheckerLoad(t *testing.T, tables []string, ins ...*sharedInstance) (stop func() []op) {
	cl := openCheckerClients(t, ins...)
	ctx, cancel := context.WithCancel(context.Background())
	var h []op
	done := make(chan struct{})
	go func() {
		defer close(done)
		h = checkerLoad(ctx, t, tables, cl)
	}()
	stop = func() []op {
		cancel()
		<-done
		return h
	}
	t.Cleanup(func() { stop() }) // a test that failed before stop
	return stop
}

package main

import (
	"context"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgone/pgone/internal/pgtest"
)

// tunerServeConfig: one database in transaction mode whose pool starts at
// 2 servers, the pool loop on with a short interval; %d is the primary's
// port.
const tunerServeConfig = `listen: "127.0.0.1:0"
databases:
  app:
    host: 127.0.0.1
    port: %d
    dbname: postgres
    user: postgres
    password: postgres
    pool_mode: transaction
    pool_size: 2
users:
  alice:
    password: alice-secret
  admin:
    password: admin-secret
admin_users: [admin]
tuner:
  interval: 300ms
  cooldown: 600ms
  step: 4
  max_pool_size: 32
  pool_size: "on"
  query_stats: true
http:
  listen: "127.0.0.1:0"
`

// tunerLoad runs sql from clients concurrent clients until stop, and
// records each query's client-side latency with its end time.
type tunerLoad struct {
	sql  atomic.Pointer[string] // what the clients run; changed while they run
	mu   sync.Mutex
	done []latencyAt
	errs []error
}

type latencyAt struct {
	end time.Time
	d   time.Duration
}

func startTunerLoad(ctx context.Context, t *testing.T, proxyAddr, sql string, clients int) (*tunerLoad, func()) {
	t.Helper()
	host, port, _ := net.SplitHostPort(proxyAddr)
	dsn := fmt.Sprintf("host=%s port=%s user=alice password=alice-secret dbname=app sslmode=disable", host, port)
	l := &tunerLoad{}
	l.sql.Store(&sql)
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i := 0; i < clients; i++ {
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer conn.Close(context.Background())
			for ctx.Err() == nil {
				start := time.Now()
				_, err := conn.Exec(ctx, *l.sql.Load(), pgx.QueryExecModeSimpleProtocol)
				now := time.Now()
				l.mu.Lock()
				if err != nil && ctx.Err() == nil {
					l.errs = append(l.errs, err)
				} else if err == nil {
					l.done = append(l.done, latencyAt{now, now.Sub(start)})
				}
				l.mu.Unlock()
			}
		}()
	}
	return l, func() { cancel(); wg.Wait() }
}

// p returns the q-quantile of the latencies of queries that ended in
// [from, to).
func (l *tunerLoad) p(q float64, from, to time.Time) (time.Duration, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var ds []time.Duration
	for _, x := range l.done {
		if !x.end.Before(from) && x.end.Before(to) {
			ds = append(ds, x.d)
		}
	}
	if len(ds) == 0 {
		return 0, 0
	}
	slices.Sort(ds)
	return ds[min(int(q*float64(len(ds))), len(ds)-1)], len(ds)
}

var tunerSizeRE = regexp.MustCompile(`size=(\d+)`)

// tunerPoolSize reads the pool's size from SHOW TUNER (0 before the
// tuner saw it), and the actions SHOW TUNER lists.
func tunerPoolSize(t *testing.T, c *pgconn.PgConn) (size int, actions []string) {
	t.Helper()
	res, err := c.Exec(context.Background(), "SHOW TUNER").ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	for _, row := range res[0].Rows {
		loop, target, state, action := string(row[0]), string(row[2]), string(row[3]), string(row[5])
		if loop == "pool" && action == "" && target == "app/alice" {
			if m := tunerSizeRE.FindStringSubmatch(state); m != nil {
				size, _ = strconv.Atoi(m[1])
			}
		}
		if action != "" {
			actions = append(actions, action)
		}
	}
	return size, actions
}

// TestTunerGrowsAStarvedPool: 16 clients, a pool of 2 and queries that
// only sleep in PostgreSQL (it has room: latency does not rise with
// concurrency). The tuner grows the pool until clients stop waiting, and
// the wait p95 (SHOW QUERIES) drops: the clients run one statement while
// the pool is small or growing, another once it has grown, so each has
// its own numbers.
func TestTunerGrowsAStarvedPool(t *testing.T) {
	c := pgtest.New(t, pgtest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rs, err := startServeConfig(t, fmt.Sprintf(tunerServeConfig, c.Primary.Port), serveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const small, grown = "SELECT pg_sleep(0.02)", "SELECT pg_sleep(0.02), 'grown'"
	load, stop := startTunerLoad(ctx, t, rs.proxyAddr, small, 16)
	defer stop()
	console := rs.console(t)
	for {
		size, _ := tunerPoolSize(t, console)
		if size >= 16 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the pool did not grow to 16: size %d", size)
		}
		time.Sleep(50 * time.Millisecond) // polling SHOW TUNER, not synchronising
	}
	load.sql.Store(ptr(grown))
	var stats map[string]map[string]string
	for {
		stats = queryStats(t, console)
		if n, _ := strconv.Atoi(stats["SELECT pg_sleep($1), $2"]["calls"]); n >= 200 || ctx.Err() != nil {
			break
		}
		time.Sleep(50 * time.Millisecond) // polling SHOW QUERIES
	}
	stop()
	before, _ := strconv.Atoi(stats["SELECT pg_sleep($1)"]["p95_wait_time"])
	after, _ := strconv.Atoi(stats["SELECT pg_sleep($1), $2"]["p95_wait_time"])
	if before <= 0 || after*2 > before {
		t.Errorf("wait p95 %dµs while the pool was small, %dµs once grown; want it at least halved (SHOW QUERIES %v)", before, after, stats)
	}
	if len(load.errs) > 0 {
		t.Errorf("errors under load: %v", load.errs[0])
	}
	_, body := rs.get(t, "/metrics")
	if !strings.Contains(body, `pgone_tuner_decisions_total{action="grow",loop="pool"}`) {
		t.Error("no pgone_tuner_decisions_total{loop=pool,action=grow} in /metrics")
	}
	if !strings.Contains(body, `pgone_tuner_query_calls_total{`) {
		t.Error("no pgone_tuner_query_calls_total in /metrics")
	}
}

func ptr[T any](v T) *T { return &v }

// queryStats is SHOW QUERIES by normalised text, each row by column.
func queryStats(t *testing.T, c *pgconn.PgConn) map[string]map[string]string {
	t.Helper()
	res, err := c.Exec(context.Background(), "SHOW QUERIES").ReadAll()
	if err != nil || len(res) != 1 {
		t.Fatalf("SHOW QUERIES: %v", err)
	}
	out := map[string]map[string]string{}
	for _, row := range res[0].Rows {
		m := map[string]string{}
		for i, fd := range res[0].FieldDescriptions {
			m[fd.Name] = string(row[i])
		}
		out[m["query"]] = m
	}
	return out
}

// TestTunerDoesNotGrowASaturatedPool: every query holds one advisory
// lock while it sleeps, so PostgreSQL runs one at a time whatever the
// pool: more servers only raise latency. The tuner's grow buys no
// throughput, so it is undone and growing backs off: the pool stays
// small, and the clients' latency is no worse than with the same pool
// left static (pgone with the loop off, same workload, run first).
func TestTunerDoesNotGrowASaturatedPool(t *testing.T) {
	c := pgtest.New(t, pgtest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	const sql = "SELECT pg_advisory_xact_lock(42), pg_sleep(0.004)"
	static := strings.Replace(fmt.Sprintf(tunerServeConfig, c.Primary.Port), `pool_size: "on"`, `pool_size: "off"`, 1)
	rs, err := startServeConfig(t, static, serveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	load, stop := startTunerLoad(ctx, t, rs.proxyAddr, sql, 16)
	waitLoad(ctx, 3*time.Second)
	stop()
	staticP50, ns := load.p(0.5, time.Now().Add(-2*time.Second), time.Now())

	rs, err = startServeConfig(t, fmt.Sprintf(tunerServeConfig, c.Primary.Port), serveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	load, stop = startTunerLoad(ctx, t, rs.proxyAddr, sql, 16)
	defer stop()
	console := rs.console(t)
	maxSize := 0
	var actions []string
	for time.Since(start) < 6*time.Second && ctx.Err() == nil {
		var size int
		size, actions = tunerPoolSize(t, console)
		maxSize = max(maxSize, size)
		time.Sleep(50 * time.Millisecond) // sampling SHOW TUNER over the run
	}
	end := time.Now()
	stop()
	if !slices.Contains(actions, "revert") {
		t.Errorf("decisions %v; want a grow undone (revert) once it bought no throughput", actions)
	}
	if maxSize > 2+4 {
		t.Errorf("the pool reached %d; want at most one step (4) over its 2", maxSize)
	}
	tunedP50, nt := load.p(0.5, end.Add(-2*time.Second), end)
	if ns < 20 || nt < 20 || float64(tunedP50) > 1.3*float64(staticP50) {
		t.Errorf("client p50 latency %s (%d queries) with the static pool, %s (%d) tuned; want it no worse", staticP50, ns, tunedP50, nt)
	}
}

// waitLoad lets a workload run for d.
func waitLoad(ctx context.Context, d time.Duration) {
	select {
	case <-time.After(d): // the workload's duration, not a synchronisation
	case <-ctx.Done():
	}
}

// tunerCacheConfig: cache.mode auto without rules, the cache admission
// loop on; %d is the primary's port.
const tunerCacheConfig = `listen: "127.0.0.1:0"
databases:
  app:
    host: 127.0.0.1
    port: %d
    dbname: postgres
    user: postgres
    password: postgres
    pool_mode: transaction
    pool_size: 8
users:
  alice:
    password: alice-secret
  admin:
    password: admin-secret
admin_users: [admin]
cache:
  mode: auto
  invalidation: logical  # admission needs it (proxy/cacheadmission.go)
tuner:
  interval: 300ms
  cache_admission: "on"
http:
  listen: "127.0.0.1:0"
`

// TestTunerAdmitsTheSlowFrequentQuery: three reads run side by side
// through pgone with cache.mode auto and no rules: a slow one, a fast
// one, and a slow one of a table written all the time. The tuner admits
// the first only, and the cache then answers it.
func TestTunerAdmitsTheSlowFrequentQuery(t *testing.T) {
	c := pgtest.New(t, pgtest.Options{Settings: map[string]string{"wal_level": "logical"}})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, sql := range []string{
		"CREATE TABLE adm_report (id int PRIMARY KEY, v int)",
		"INSERT INTO adm_report SELECT g, g FROM generate_series(1, 2000) g",
		"CREATE TABLE adm_items (id int PRIMARY KEY, v text)",
		"INSERT INTO adm_items VALUES (1, 'a')",
		"CREATE TABLE adm_orders (id int PRIMARY KEY, v int)",
		"INSERT INTO adm_orders SELECT g, g FROM generate_series(1, 2000) g",
		"GRANT ALL ON adm_report, adm_items, adm_orders TO PUBLIC",
	} {
		if err := c.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	rs, err := startServeConfig(t, fmt.Sprintf(tunerCacheConfig, c.Primary.Port), serveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const slow = "SELECT sum(a.v * b.v) FROM adm_report a CROSS JOIN adm_report b WHERE b.id <= 100"
	const fast = "SELECT v FROM adm_items WHERE id = 1"
	const written = "SELECT sum(a.v * b.v) FROM adm_orders a CROSS JOIN adm_orders b WHERE b.id <= 100"
	const write = "UPDATE adm_orders SET v = v + 1 WHERE id = 1"
	var stops []func()
	for _, sql := range []string{slow, fast, written, write} {
		_, stop := startTunerLoad(ctx, t, rs.proxyAddr, sql, 2)
		stops = append(stops, stop)
	}
	defer func() {
		for _, stop := range stops {
			stop()
		}
	}()
	console := rs.console(t)
	admitted := func() map[string]string {
		res, err := console.Exec(context.Background(), "SHOW QUERIES").ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		cols := map[string]int{}
		for i, fd := range res[0].FieldDescriptions {
			cols[fd.Name] = i
		}
		out := map[string]string{}
		for _, row := range res[0].Rows {
			out[string(row[cols["query"]])] = string(row[cols["cache_admitted"]]) + " avg=" + string(row[cols["avg_time"]]) + " calls=" + string(row[cols["calls"]]) + " hits=" + string(row[cols["cache_hits"]])
		}
		return out
	}
	normal := func(s string) string { // the texts as SHOW QUERIES shows them
		s = strings.Replace(s, "<= 100", "<= $1", 1)
		return strings.Replace(strings.Replace(s, "id = 1", "id = $1", 1), "v + 1", "v + $2", 1)
	}
	var got map[string]string
	for ctx.Err() == nil {
		got = admitted()
		if strings.HasPrefix(got[normal(slow)], "yes") && !strings.HasSuffix(got[normal(slow)], " hits=0") {
			break
		}
		time.Sleep(100 * time.Millisecond) // polling SHOW QUERIES
	}
	if !strings.HasPrefix(got[normal(slow)], "yes") || strings.HasSuffix(got[normal(slow)], " hits=0") {
		t.Fatalf("SHOW QUERIES: %v; want the slow query admitted and hit", got)
	}
	if !strings.HasPrefix(got[normal(fast)], "no") || !strings.HasPrefix(got[normal(written)], "no") {
		t.Errorf("SHOW QUERIES: %v; want the fast query and the often-written table's query not admitted", got)
	}
}

package proxy_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgone/pgone/config"
	"github.com/pgone/pgone/internal/pgtest"
	"github.com/pgone/pgone/pool"
)

// txProxy is pgone in transaction mode with a pool of size servers.
func txProxy(t *testing.T, size int, mutate func(*config.Config)) *testProxy {
	return startProxy(t, func(c *config.Config) {
		c.Pool.Mode = pool.ModeTransaction
		c.Pool.PoolSize = size
		if mutate != nil {
			mutate(c)
		}
	})
}

// serverBackends counts the server connections pgone holds to db as app.
func serverBackends(t *testing.T, db string) int {
	t.Helper()
	conn := connect(t, cluster.Primary.DSN("postgres", "postgres", "postgres"))
	var n int
	if err := conn.QueryRow(testCtx(t),
		"SELECT count(*) FROM pg_stat_activity WHERE usename = $1 AND datname = $2 AND pid <> pg_backend_pid()", appUser, db).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// ownDatabase creates a database owned by app for one test and drops it after.
func ownDatabase(t *testing.T, db string) { ownDatabaseOn(t, cluster, db) }

// ownDatabaseOn is ownDatabase on cluster cl.
func ownDatabaseOn(t *testing.T, cl *pgtest.Cluster, db string) {
	t.Helper()
	ctx := testCtx(t)
	for _, sql := range []string{
		fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", db),
		fmt.Sprintf("CREATE DATABASE %s OWNER %s", db, appUser),
	} {
		if err := cl.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = cl.Exec(ctx, fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", db))
	})
}

func TestTxModePgxStatementCacheAcrossServers(t *testing.T) {
	t.Parallel()
	const db = "txcache"
	ownDatabase(t, db)
	p := txProxy(t, 2, nil)
	const clients, iterations = 10, 40
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			conn, err := pgx.Connect(ctx, p.DSN(appUser, appPassword, db)) // default mode: cached prepared statements
			if err != nil {
				errs <- err
				return
			}
			defer conn.Close(ctx)
			for i := 0; i < iterations; i++ {
				var got int
				var s string
				if err := conn.QueryRow(ctx, "SELECT $1::int * 2, $2::text", c*1000+i, "x"+strconv.Itoa(i)).Scan(&got, &s); err != nil {
					errs <- fmt.Errorf("client %d iteration %d: %w", c, i, err)
					return
				}
				if got != (c*1000+i)*2 || s != "x"+strconv.Itoa(i) {
					errs <- fmt.Errorf("client %d iteration %d: got %d %q", c, i, got, s)
					return
				}
				tx, err := conn.Begin(ctx)
				if err != nil {
					errs <- err
					return
				}
				if err := tx.QueryRow(ctx, "SELECT count(*) FROM generate_series(1, $1::int)", i+1).Scan(&got); err != nil || got != i+1 {
					errs <- fmt.Errorf("in transaction: %v, got %d", err, got)
					tx.Rollback(ctx)
					return
				}
				if err := tx.Commit(ctx); err != nil {
					errs <- err
					return
				}
			}
		}(c)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := serverBackends(t, db); n > 2 {
		t.Errorf("%d server connections to %s, pool size is 2", n, db)
	}
}

func TestTxModeSameStatementNameDifferentQueries(t *testing.T) {
	t.Parallel()
	p := txProxy(t, 1, nil)
	ctx := testCtx(t)
	a := connect(t, p.AppDSN()).PgConn()
	b := connect(t, p.AppDSN()).PgConn()
	if _, err := a.Prepare(ctx, "stmt", "SELECT 'from a' || $1::text", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Prepare(ctx, "stmt", "SELECT 'from b' || $1::text, 2", nil); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		for _, c := range []struct {
			conn *pgconn.PgConn
			want string
			cols int
		}{{a, "from a", 1}, {b, "from b", 2}} {
			res := c.conn.ExecPrepared(ctx, "stmt", [][]byte{[]byte(strconv.Itoa(i))}, nil, nil).Read()
			if res.Err != nil {
				t.Fatal(res.Err)
			}
			if len(res.Rows) != 1 || len(res.Rows[0]) != c.cols || string(res.Rows[0][0]) != c.want+strconv.Itoa(i) {
				t.Fatalf("got %q, want %q with %d columns", res.Rows, c.want+strconv.Itoa(i), c.cols)
			}
		}
	}
	// Closing a's statement leaves b's working.
	if err := a.Deallocate(ctx, "stmt"); err != nil {
		t.Fatal(err)
	}
	if res := b.ExecPrepared(ctx, "stmt", [][]byte{[]byte("z")}, nil, nil).Read(); res.Err != nil {
		t.Fatal(res.Err)
	}
	if res := a.ExecPrepared(ctx, "stmt", [][]byte{[]byte("z")}, nil, nil).Read(); res.Err == nil {
		t.Fatal("a's statement still works after Deallocate")
	}
}

func TestTxModePgbenchPreparedOverSmallPool(t *testing.T) {
	t.Parallel()
	const db = "txbench"
	ownDatabase(t, db)
	p := txProxy(t, 5, nil)
	runPgbench(t, p, db, "-i", "-s", "1", "-q")
	for _, mode := range []string{"prepared", "extended", "simple"} {
		out := runPgbench(t, p, db, "-n", "-M", mode, "-T", "3", "-c", "50", "-j", "2")
		pm, fm := pgbenchProcessed.FindStringSubmatch(out), pgbenchFailed.FindStringSubmatch(out)
		if pm == nil || fm == nil {
			t.Fatalf("-M %s: pgbench output lacks its summary:\n%s", mode, out)
		}
		if n, _ := strconv.Atoi(pm[1]); n <= 0 || fm[1] != "0" {
			t.Fatalf("-M %s: processed %s, failed %s:\n%s", mode, pm[1], fm[1], out)
		}
		if n := serverBackends(t, db); n > 5 {
			t.Errorf("-M %s: %d server connections, pool size 5", mode, n)
		}
	}
}

func TestTxModeSettingsFollowTheClient(t *testing.T) {
	t.Parallel()
	p := txProxy(t, 2, nil)
	ctx := testCtx(t)
	a := connect(t, p.AppDSN()+" application_name=client_a")
	b := connect(t, p.AppDSN())
	if _, err := a.Exec(ctx, "SET search_path = a_schema, public; SET TimeZone = 'Asia/Tokyo'", pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatal(err)
	}
	// What a fresh session sees, straight from PostgreSQL.
	direct := connect(t, directDSN())
	var dsp, dtz string
	if err := direct.QueryRow(ctx, "SELECT current_setting('search_path'), current_setting('TimeZone')").Scan(&dsp, &dtz); err != nil {
		t.Fatal(err)
	}
	// a and b take turns on the two servers; check a's settings every time
	// and that b never sees them.
	for i := 0; i < 20; i++ {
		var sp, tz, app string
		if err := a.QueryRow(ctx, "SELECT current_setting('search_path'), current_setting('TimeZone'), current_setting('application_name')").Scan(&sp, &tz, &app); err != nil {
			t.Fatal(err)
		}
		if sp != "a_schema, public" || tz != "Asia/Tokyo" || app != "client_a" {
			t.Fatalf("iteration %d: client a sees search_path %q, TimeZone %q, application_name %q", i, sp, tz, app)
		}
		if err := b.QueryRow(ctx, "SELECT current_setting('search_path'), current_setting('TimeZone'), current_setting('application_name')").Scan(&sp, &tz, &app); err != nil {
			t.Fatal(err)
		}
		if sp != dsp || tz != dtz || app != "" {
			t.Fatalf("iteration %d: client b sees a's settings: search_path %q, TimeZone %q, application_name %q", i, sp, tz, app)
		}
	}
	// A SET rolled back with its transaction is forgotten; RESET returns to
	// the startup value, as in PostgreSQL.
	tx, err := a.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "SET TimeZone = 'UTC'"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Exec(ctx, "SET application_name = 'changed'; RESET application_name", pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		var tz, app string
		if err := a.QueryRow(ctx, "SELECT current_setting('TimeZone'), current_setting('application_name')").Scan(&tz, &app); err != nil {
			t.Fatal(err)
		}
		if tz != "Asia/Tokyo" || app != "client_a" {
			t.Fatalf("after rollback and RESET: TimeZone %q, application_name %q", tz, app)
		}
	}
}

func TestTxModePinsListenAndTempTables(t *testing.T) {
	t.Parallel()
	p := txProxy(t, 3, nil)
	ctx := testCtx(t)
	listener := connect(t, p.AppDSN())
	if _, err := listener.Exec(ctx, "LISTEN txmode_channel"); err != nil {
		t.Fatal(err)
	}
	notifier := connect(t, p.AppDSN())
	if _, err := notifier.Exec(ctx, "NOTIFY txmode_channel, 'hello'"); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	n, err := listener.WaitForNotification(wctx)
	if err != nil {
		t.Fatal(err)
	}
	if n.Payload != "hello" {
		t.Fatalf("payload %q", n.Payload)
	}

	temp := connect(t, p.AppDSN())
	if _, err := temp.Exec(ctx, "CREATE TEMP TABLE txmode_tmp (x int)"); err != nil {
		t.Fatal(err)
	}
	var pid1 uint32
	if err := temp.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid1); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		if _, err := temp.Exec(ctx, "INSERT INTO txmode_tmp VALUES ($1)", i); err != nil {
			t.Fatalf("temp table lost after %d inserts: %v", i, err)
		}
		// Other clients take turns on the remaining server meanwhile.
		var one int
		if err := notifier.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
			t.Fatal(err)
		}
	}
	var count int
	var pid2 uint32
	if err := temp.QueryRow(ctx, "SELECT count(*), pg_backend_pid() FROM txmode_tmp").Scan(&count, &pid2); err != nil {
		t.Fatal(err)
	}
	if count != 10 || pid1 != pid2 {
		t.Fatalf("temp table has %d rows, backend %d then %d: the client was not pinned", count, pid1, pid2)
	}
}

func TestTxModeIdleTransactionTimeout(t *testing.T) {
	t.Parallel()
	p := txProxy(t, 1, func(c *config.Config) { c.Proxy.Limits.IdleTransactionTimeout = 300 * time.Millisecond })
	ctx := testCtx(t)
	idle := connect(t, p.AppDSN())
	if _, err := idle.Exec(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	_, err := idle.Exec(ctx, "SELECT 1")
	var pgErr *pgconn.PgError
	if err == nil || !errors.As(err, &pgErr) || pgErr.Code != "25P03" {
		t.Fatalf("idle in transaction past the timeout: got %v, want 25P03", err)
	}
	// The only server is free again: another client gets it.
	other := connect(t, p.AppDSN())
	var one int
	if err := other.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		t.Fatal(err)
	}
}

// TestTxModeClientIdleTimeout: a client idle outside a transaction past
// client_idle_timeout is closed with 57P05; a client that keeps working is
// not, and one waiting for a slow reply is not idle.
func TestTxModeClientIdleTimeout(t *testing.T) {
	t.Parallel()
	p := txProxy(t, 2, func(c *config.Config) { c.Proxy.Limits.ClientIdleTimeout = 400 * time.Millisecond })
	ctx := testCtx(t)
	idle := connect(t, p.AppDSN())
	busy := connect(t, p.AppDSN())
	if _, err := idle.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	// busy: a query longer than the timeout, then queries closer together.
	if _, err := busy.Exec(ctx, "SELECT pg_sleep(0.6)"); err != nil {
		t.Fatalf("a query longer than client_idle_timeout: %v", err)
	}
	for i := 0; i < 6; i++ {
		time.Sleep(150 * time.Millisecond)
		if _, err := busy.Exec(ctx, "SELECT 1"); err != nil {
			t.Fatalf("active client closed after %d queries: %v", i, err)
		}
	}
	_, err := idle.Exec(ctx, "SELECT 1")
	var pgErr *pgconn.PgError
	if err == nil || !errors.As(err, &pgErr) || pgErr.Code != "57P05" {
		t.Fatalf("idle past client_idle_timeout: got %v, want 57P05", err)
	}
}

func TestTxModePreparedStatementAfterDDL(t *testing.T) {
	t.Parallel()
	const db = "txddl"
	ownDatabase(t, db)
	setup := connect(t, cluster.Primary.DSN(appUser, appPassword, db))
	ctx := testCtx(t)
	if _, err := setup.Exec(ctx, "CREATE TABLE ddl_t (a int); INSERT INTO ddl_t VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	p := txProxy(t, 2, nil)
	a := connect(t, p.DSN(appUser, appPassword, db))
	b := connect(t, p.DSN(appUser, appPassword, db))
	const q = "SELECT * FROM ddl_t"
	// Prepare the statement on both servers: b holds one in a transaction
	// while a runs on the other, then the other way round.
	for _, pair := range [][2]*pgx.Conn{{a, b}, {b, a}} {
		tx, err := pair[1].Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, "SELECT 1"); err != nil {
			t.Fatal(err)
		}
		rows, err := pair[0].Query(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		tx.Rollback(ctx)
	}
	if _, err := setup.Exec(ctx, "ALTER TABLE ddl_t ADD COLUMN b text DEFAULT 'x'"); err != nil {
		t.Fatal(err)
	}
	failures := 0
	for i := 0; i < 10; i++ {
		var x int
		var y string
		err := a.QueryRow(ctx, q).Scan(&x, &y)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "0A000" {
			t.Logf("attempt %d: %v", i, err)
			failures++
			continue
		}
		if err != nil {
			t.Fatalf("attempt %d: %v", i, err)
		}
		if x != 1 || y != "x" {
			t.Fatalf("attempt %d: got %d %q", i, x, y)
		}
		// Keep the other server busy now and then so a lands on both.
		if i%2 == 0 {
			if _, err := b.Exec(ctx, "SELECT 1"); err != nil {
				t.Fatal(err)
			}
		}
	}
	if failures > 1 {
		t.Fatalf("client saw 'cached plan must not change result type' %d times, want at most once", failures)
	}
}

func TestTxModeLongWaitGetsNotice(t *testing.T) {
	t.Parallel()
	p := txProxy(t, 1, func(c *config.Config) { c.Pool.WaitNoticeAfter = 200 * time.Millisecond })
	ctx := testCtx(t)
	holder := connect(t, p.AppDSN())
	tx, err := holder.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	notices := make(chan *pgconn.Notice, 4)
	cfg, err := pgx.ParseConfig(p.AppDSN())
	if err != nil {
		t.Fatal(err)
	}
	cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) { notices <- n }
	waiter, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer waiter.Close(ctx)
	done := make(chan error, 1)
	go func() { _, err := waiter.Exec(ctx, "SELECT 2"); done <- err }()
	select {
	case n := <-notices:
		if n.Severity != "NOTICE" || !strings.Contains(n.Message, "waiting for a server connection") {
			t.Errorf("notice %+v", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no NOTICE while waiting for the only server")
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("query after the wait: %v", err)
	}
}

// TestTxModeExtendedCopyReleasesServer: a COPY FROM STDIN sent the way libpq
// sends it in the extended protocol (a Sync right behind the Execute, which
// PostgreSQL ignores in copy-in mode) leaves the client idle, so its server
// goes back to the pool for the next client.
func TestTxModeExtendedCopyReleasesServer(t *testing.T) {
	t.Parallel()
	const table = "txmode_copy"
	createTable(t, table)
	p := txProxy(t, 1, nil)
	c := connectMsg(t, p.AppDSN())
	for round := 0; round < 3; round++ {
		c.send(&pgproto3.Parse{Query: "COPY " + table + " FROM STDIN"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
		c.readUntil(func(m pgproto3.BackendMessage) bool { _, ok := m.(*pgproto3.CopyInResponse); return ok })
		c.send(&pgproto3.CopyData{Data: []byte("x\n")}, &pgproto3.CopyDone{}, &pgproto3.Sync{})
		c.readUntil(isRFQ)
	}
	// The only server must be free for another client.
	other := connect(t, p.AppDSN())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var n int
	if err := other.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil {
		t.Fatalf("another client could not get the server after the COPY: %v", err)
	}
	if n != 3 {
		t.Fatalf("%d rows copied, want 3", n)
	}
}

// TestTxModeSettingsAndStatementOnFreshServer: a client with its own
// settings and a prepared statement whose shape pgone knows lands on a new
// server (the old one was terminated). pgone must send the settings, the
// Parse and the shape check in the order it expects their replies; it once
// sent the settings after the check and the client hung.
func TestTxModeSettingsAndStatementOnFreshServer(t *testing.T) {
	t.Parallel()
	p := txProxy(t, 1, nil)
	ctx := testCtx(t)
	c := connect(t, p.AppDSN())
	admin := connect(t, directDSN())
	if _, err := c.Exec(ctx, "SET TimeZone = 'Asia/Tokyo'", pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatal(err)
	}
	const q = "SELECT current_setting('TimeZone'), pg_backend_pid()"
	for i := 0; i < 3; i++ {
		var tz string
		var pid uint32
		// pgx prepares q once (its statement cache) and binds it after.
		if err := c.QueryRow(ctx, q).Scan(&tz, &pid); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		if tz != "Asia/Tokyo" {
			t.Fatalf("round %d: TimeZone %q on backend %d, want Asia/Tokyo", i, tz, pid)
		}
		terminateBackend(t, admin, pid)
	}
}

package proxy_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgone/pgone/config"
	"github.com/pgone/pgone/internal/pgtest"
	"github.com/pgone/pgone/pool"
	"github.com/pgone/pgone/proxy"
)

// sampleBackends records the largest number of app's server connections to
// any of dbs seen on the primary until stop is closed; wait returns it once
// sampling has ended.
func sampleBackends(t *testing.T, dbs []string, stop <-chan struct{}) (wait func() int64) {
	t.Helper()
	conn := connect(t, cluster.Primary.DSN("postgres", "postgres", "postgres"))
	var most int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			var n int64
			err := conn.QueryRow(context.Background(),
				"SELECT count(*) FROM pg_stat_activity WHERE usename = $1 AND datname = ANY($2) AND backend_type = 'client backend'", appUser, dbs).Scan(&n)
			if err == nil && n > most {
				most = n
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return func() int64 { <-done; return most }
}

func TestTxModeThousandClientsOnTwentyServers(t *testing.T) {
	t.Parallel()
	const db, clients, size = "txthousand", 1000, 20
	ownDatabase(t, db)
	setup := connect(t, cluster.Primary.DSN(appUser, appPassword, db))
	if _, err := setup.Exec(testCtx(t), "CREATE TABLE hits (client int PRIMARY KEY, n int)"); err != nil {
		t.Fatal(err)
	}
	setup.Close(testCtx(t)) // only pgone's connections may count below
	p := txProxy(t, size, nil)
	stop := make(chan struct{})
	most := sampleBackends(t, []string{db}, stop)

	var wg sync.WaitGroup
	errs := make(chan error, clients)
	start := make(chan struct{})
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			conn, err := pgconn.Connect(ctx, p.DSN("trustuser", "unused", db))
			if err != nil {
				errs <- fmt.Errorf("client %d connect: %w", i, err)
				return
			}
			defer conn.Close(ctx)
			<-start
			for round := 0; round < 3; round++ {
				sql := fmt.Sprintf("BEGIN; INSERT INTO hits VALUES (%d, 1) ON CONFLICT (client) DO UPDATE SET n = hits.n + 1; COMMIT", i)
				if _, err := conn.Exec(ctx, sql).ReadAll(); err != nil {
					errs <- fmt.Errorf("client %d round %d: %w", i, round, err)
					return
				}
			}
		}(i)
	}
	close(start)
	wg.Wait()
	close(stop)
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	var rows, total int
	setup = connect(t, cluster.Primary.DSN(appUser, appPassword, db))
	if err := setup.QueryRow(testCtx(t), "SELECT count(*), coalesce(sum(n), 0) FROM hits").Scan(&rows, &total); err != nil {
		t.Fatal(err)
	}
	if rows != clients || total != 3*clients {
		t.Errorf("hits has %d rows summing to %d, want %d and %d", rows, total, clients, 3*clients)
	}
	if m := most(); m > size {
		t.Errorf("PostgreSQL saw %d server connections from pgone, the pool size is %d", m, size)
	}
	eventually(t, "clients to leave and servers to go idle", func() bool {
		if p.Srv.Clients() != 0 {
			return false
		}
		for _, s := range p.Pools.Status() {
			if s.Key.Database == db && (s.Active != 0 || s.Waiting != 0) {
				return false
			}
		}
		return true
	})
}

func TestTxModeMaxServerConnectionsAcrossPools(t *testing.T) {
	t.Parallel()
	dbs := []string{"txcap1", "txcap2", "txcap3"}
	for _, db := range dbs {
		ownDatabase(t, db)
	}
	p := txProxy(t, 5, func(c *config.Config) {
		c.Pool.MaxServerConnections = 3
		c.Pool.QueryWaitTimeout = 600 * time.Millisecond
	})
	ctx := testCtx(t)
	// Three clients in three pools each hold a server in a transaction.
	for _, db := range dbs {
		c := connect(t, p.DSN(appUser, appPassword, db))
		if _, err := c.Exec(ctx, "BEGIN"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Exec(ctx, "SELECT 1"); err != nil {
			t.Fatal(err)
		}
	}
	if n := serverBackends(t, dbs[0]) + serverBackends(t, dbs[1]) + serverBackends(t, dbs[2]); n > 3 {
		t.Fatalf("%d server connections across the pools, max_server_connections is 3", n)
	}
	// A fourth client, in a pool with room of its own, waits for the global
	// cap and gets 53300 at query_wait_timeout.
	fourth := connect(t, p.DSN(appUser, appPassword, dbs[0]))
	began := time.Now()
	_, err := fourth.Exec(ctx, "SELECT 1")
	waited := time.Since(began)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "53300" {
		t.Fatalf("fourth client: got %v, want 53300", err)
	}
	if waited < 500*time.Millisecond {
		t.Errorf("53300 after %s, before query_wait_timeout (600ms)", waited)
	}
	// The client is still usable once a server frees up.
	if n := serverBackends(t, dbs[0]) + serverBackends(t, dbs[1]) + serverBackends(t, dbs[2]); n > 3 {
		t.Errorf("%d server connections after the wait", n)
	}
}

func TestTxModeDisconnectInTransactionFreesLockAndServer(t *testing.T) {
	t.Parallel()
	const db = "txdisconnect"
	ownDatabase(t, db)
	setup := connect(t, cluster.Primary.DSN(appUser, appPassword, db))
	if _, err := setup.Exec(testCtx(t), "CREATE TABLE acct (id int PRIMARY KEY, balance int); INSERT INTO acct VALUES (1, 100)"); err != nil {
		t.Fatal(err)
	}
	p := txProxy(t, 1, nil)
	ctx := testCtx(t)
	a, err := pgx.Connect(ctx, p.DSN(appUser, appPassword, db))
	if err != nil {
		t.Fatal(err)
	}
	var pidA uint32
	if _, err := a.Exec(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	if err := a.QueryRow(ctx, "UPDATE acct SET balance = 0 WHERE id = 1 RETURNING pg_backend_pid()").Scan(&pidA); err != nil {
		t.Fatal(err)
	}
	a.PgConn().Conn().Close() // vanish without Terminate, mid-transaction

	b := connect(t, p.DSN(appUser, appPassword, db))
	var balance int
	var pidB uint32
	if _, err := b.Exec(ctx, "SET lock_timeout = '5s'"); err != nil {
		t.Fatal(err)
	}
	tx, err := b.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.QueryRow(ctx, "SELECT balance, pg_backend_pid() FROM acct WHERE id = 1 FOR UPDATE").Scan(&balance, &pidB); err != nil {
		t.Fatalf("the row lock was not released: %v", err)
	}
	tx.Rollback(ctx)
	if balance != 100 {
		t.Errorf("balance %d: the abandoned transaction was committed", balance)
	}
	if pidB != pidA {
		t.Errorf("b got backend %d, a had %d: the only server was not reused", pidB, pidA)
	}
}

// terminateBackend ends a server session with pg_terminate_backend and
// waits until it is gone.
func terminateBackend(t *testing.T, admin *pgx.Conn, pid uint32) {
	t.Helper()
	ctx := testCtx(t)
	if _, err := admin.Exec(ctx, "SELECT pg_terminate_backend($1)", pid); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the backend to exit", func() bool {
		var n int
		_ = admin.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid).Scan(&n)
		return n == 0
	})
	waitBackendExited(t, pid)
}

// waitBackendExited waits until the server process pid has exited, so its
// socket is closed and its last words (a FATAL) sent: pg_stat_activity drops
// the backend a little before that.
func waitBackendExited(t *testing.T, pid uint32) {
	t.Helper()
	eventually(t, fmt.Sprintf("backend process %d to exit", pid), func() bool {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return errors.Is(err, os.ErrNotExist)
		}
		// pid (comm) state ...: a zombie has closed its sockets.
		i := bytes.LastIndexByte(stat, ')')
		return i >= 0 && i+2 < len(stat) && (stat[i+2] == 'Z' || stat[i+2] == 'X')
	})
}

func TestTxModeServerTerminatedBetweenAndDuringTransactions(t *testing.T) {
	t.Parallel()
	const db = "txterminate"
	ownDatabase(t, db)
	p := txProxy(t, 1, nil)
	ctx := testCtx(t)
	c := connect(t, p.DSN(appUser, appPassword, db))
	admin := connect(t, cluster.Primary.DSN("postgres", "postgres", "postgres"))
	terminate := func(pid uint32) {
		t.Helper()
		terminateBackend(t, admin, pid)
	}
	var pid1, pid2 uint32
	if err := c.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid1); err != nil {
		t.Fatal(err)
	}
	terminate(pid1)
	// Between transactions: invisible.
	if err := c.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid2); err != nil {
		t.Fatalf("query after the idle server was terminated: %v", err)
	}
	if pid2 == pid1 {
		t.Fatal("the terminated backend answered")
	}
	// During a transaction: that transaction fails, the next one works.
	tx, err := c.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var pid3 uint32
	if err := tx.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid3); err != nil {
		t.Fatal(err)
	}
	terminate(pid3)
	if _, err := tx.Exec(ctx, "SELECT 1"); err == nil {
		t.Fatal("the transaction went on after its server was terminated")
	}
	_ = tx.Rollback(ctx)
	var v int
	if err := c.QueryRow(ctx, "SELECT 7").Scan(&v); err != nil || v != 7 {
		t.Fatalf("next transaction: %v (got %d)", err, v)
	}
	// And while a query runs: the client gets PostgreSQL's error, not a closed connection.
	done := make(chan error, 1)
	go func() { _, err := c.Exec(ctx, "SELECT pg_sleep(10)"); done <- err }()
	var sleeper uint32
	eventually(t, "the sleep to start", func() bool {
		return admin.QueryRow(ctx, "SELECT pid FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(10)' AND datname = $1", db).Scan(&sleeper) == nil
	})
	terminate(sleeper)
	err = <-done
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "57P01" {
		t.Fatalf("query on a terminated server: got %v, want PostgreSQL's 57P01", err)
	}
	if err := c.QueryRow(ctx, "SELECT 8").Scan(&v); err != nil || v != 8 {
		t.Fatalf("after the terminated query: %v (got %d)", err, v)
	}
}

func TestTxModePostgresRestartUnderLoad(t *testing.T) {
	t.Parallel()
	own := pgtest.New(t, pgtest.Options{})
	ctx := testCtx(t)
	if err := own.Exec(ctx, fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'; CREATE TABLE public.t (x int); GRANT ALL ON public.t TO %s", appUser, appPassword, appUser)); err != nil {
		t.Fatal(err)
	}
	p := txProxy(t, 4, func(c *config.Config) {
		c.Proxy.Databases["own"] = proxy.Database{Host: own.Primary.Host, Port: own.Primary.Port, DBName: "postgres", User: appUser, Password: appPassword}
		c.Pool.QueryWaitTimeout = 30 * time.Second
	})
	const clients = 8
	var ok, failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	failures := make([]atomic.Int64, clients)
	afterRestart := make(chan struct{})
	var lateFailures atomic.Int64
	// Every client logs in before the restart: what is under test is the
	// transactions in flight, not a login racing the restart.
	conns := make([]*pgx.Conn, clients)
	for i := range conns {
		conns[i] = connect(t, p.DSN(appUser, appPassword, "own"))
	}
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			conn := conns[i]
			for {
				select {
				case <-stop:
					return
				default:
				}
				_, err := conn.Exec(context.Background(), "BEGIN; INSERT INTO t VALUES ("+strconv.Itoa(i)+"); SELECT pg_sleep(0.01); COMMIT", pgx.QueryExecModeSimpleProtocol)
				if err != nil {
					failed.Add(1)
					if failures[i].Add(1) == 1 {
						t.Logf("client %d: first failure at %s: %v", i, time.Now().Format("15:04:05.000"), err)
					}
					if conn.IsClosed() {
						t.Errorf("client %d: connection closed by %v; pgone must keep it", i, err)
						return
					}
					select {
					case <-afterRestart:
						lateFailures.Add(1)
						t.Logf("client %d after the restart: %v", i, err)
					default:
					}
					continue
				}
				ok.Add(1)
			}
		}(i)
	}
	// Every client is under way before the stop.
	eventually(t, "transactions before the restart", func() bool { return ok.Load() >= 4*clients })
	if err := own.Primary.Stop(); err != nil {
		t.Fatal(err)
	}
	// Clients run into the outage before the primary comes back.
	eventually(t, "a transaction to fail while the primary is down", func() bool { return failed.Load() > 0 })
	if err := own.Primary.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// Transactions that start after the restart must all succeed: the
	// clients first get one through each (what was in flight has ended).
	restarted := ok.Load()
	eventually(t, "transactions after the restart", func() bool { return ok.Load() >= restarted+clients })
	close(afterRestart)
	before := ok.Load()
	eventually(t, "more transactions after the restart", func() bool { return ok.Load() >= before+4*clients })
	close(stop)
	wg.Wait()
	if ok.Load() <= before {
		t.Fatalf("no transaction succeeded after the restart (%d before)", before)
	}
	if n := lateFailures.Load(); n > 0 {
		t.Errorf("%d transactions failed after PostgreSQL was back", n)
	}
	for i := range failures {
		if n := failures[i].Load(); n > 1 {
			t.Errorf("client %d had %d failed transactions; only the one in flight at the restart may fail", i, n)
		}
	}
	t.Logf("%d transactions ok, %d failed (in flight at the restart)", ok.Load(), failed.Load())
}

// TestTxModeSQLPrepareAcrossTransactions: SQL PREPARE pins the client to its
// server. Between its transactions another client holds a transaction open:
// were the preparing client's server released, that client would get it
// (an idle server before a new one) and the EXECUTE would run on another
// backend, without the statement.
func TestTxModeSQLPrepareAcrossTransactions(t *testing.T) {
	t.Parallel()
	p := txProxy(t, 2, nil)
	ctx := testCtx(t)
	c := connect(t, p.AppDSN())
	other := connect(t, p.AppDSN())
	if _, err := c.Exec(ctx, "PREPARE twice(int) AS SELECT $1 * 2", pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatal(err)
	}
	pid := scanSingle[uint32](t, c, "SELECT pg_backend_pid()")
	for i := 0; i < 5; i++ {
		tx, err := other.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var otherPid uint32
		if err := tx.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&otherPid); err != nil {
			t.Fatal(err)
		}
		if otherPid == pid {
			t.Fatalf("another client got backend %d, which the client that ran PREPARE is pinned to", pid)
		}
		var v int
		if err := c.QueryRow(ctx, "EXECUTE twice("+strconv.Itoa(i)+")", pgx.QueryExecModeSimpleProtocol).Scan(&v); err != nil || v != 2*i {
			t.Fatalf("EXECUTE %d while another client holds a transaction: %v (got %d)", i, err, v)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Exec(ctx, "DEALLOCATE twice", pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatal(err)
	}
}

func TestTxModePauseResumeAndReloadUnderPgbench(t *testing.T) {
	t.Parallel()
	const db = "txpause"
	ownDatabase(t, db)
	p := startObservedProxy(t, func(c *config.Config) {
		c.Pool.Mode = pool.ModeTransaction
		c.Pool.PoolSize = 4
	}, nil)
	runPgbench(t, p.testProxy, db, "-i", "-s", "1", "-q")
	done := make(chan string, 1)
	go func() {
		done <- runPgbench(t, p.testProxy, db, "-n", "-M", "prepared", "-T", "6", "-c", "10", "-j", "2")
	}()
	admin := p.console(t, adminUser, adminPassword)
	time.Sleep(500 * time.Millisecond)
	for i := 0; i < 5; i++ {
		if _, err := admin.Exec(testCtx(t), "PAUSE "+db).ReadAll(); err != nil {
			t.Fatalf("PAUSE %d: %v", i, err)
		}
		time.Sleep(100 * time.Millisecond)
		if _, err := admin.Exec(testCtx(t), "RESUME "+db).ReadAll(); err != nil {
			t.Fatalf("RESUME %d: %v", i, err)
		}
		// Reload with a different pool size while clients run.
		cfg := *p.Cfg
		cfg.Pool.PoolSize = 3 + i%3
		if err := p.Srv.Reload(cfg.Proxy, cfg.Pool); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
		time.Sleep(300 * time.Millisecond)
	}
	out := <-done
	pm, fm := pgbenchProcessed.FindStringSubmatch(out), pgbenchFailed.FindStringSubmatch(out)
	if pm == nil || fm == nil {
		t.Fatalf("pgbench output lacks its summary:\n%s", out)
	}
	if n, _ := strconv.Atoi(pm[1]); n <= 0 || fm[1] != "0" {
		t.Fatalf("processed %s, failed %s under PAUSE/RESUME and reload:\n%s", pm[1], fm[1], out)
	}
	if !strings.Contains(out, "number of failed transactions: 0") {
		t.Fatalf("pgbench reports failures:\n%s", out)
	}
}

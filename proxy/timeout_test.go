package proxy_test

import (
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgone/pgone/config"
	"github.com/pgone/pgone/pool"
)

// TestQueryTimeoutCancelsOnServer: in transaction and in session mode a
// request running longer than query_timeout is cancelled on its server by
// a real CancelRequest: the client gets 57014 saying query_timeout,
// quickly; the server's statement is gone (not just the client's wait);
// the same server serves the client's next query; the extended protocol
// is timed the same way; a request within the limit is left alone.
func TestQueryTimeoutCancelsOnServer(t *testing.T) {
	// Not parallel: it counts every active pg_sleep(5) on the primary.
	for _, mode := range []pool.Mode{pool.ModeTransaction, pool.ModeSession} {
		t.Run(string(mode), func(t *testing.T) {
			p := startProxy(t, func(c *config.Config) {
				c.Pool.Mode = mode
				c.Pool.PoolSize = 1
				c.Proxy.Limits.QueryTimeout = 200 * time.Millisecond
			})
			checkQueryTimeoutCancels(t, p)
		})
	}
}

func checkQueryTimeoutCancels(t *testing.T, p *testProxy) {
	ctx := testCtx(t)
	conn := p.Connect(t)
	var before, after int
	if err := conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&before); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := conn.Exec(ctx, "SELECT pg_sleep(5)")
	took := time.Since(start)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "57014" || pgErr.Message != "canceling statement due to query_timeout" {
		t.Fatalf("pg_sleep(5) with query_timeout 200ms: %v; want 57014 canceling statement due to query_timeout", err)
	}
	if took < 200*time.Millisecond || took > 3*time.Second {
		t.Errorf("the timeout took %s; want about 200ms", took)
	}
	direct := connect(t, directDSN())
	var sleeping int
	if err := direct.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query = 'SELECT pg_sleep(5)'").Scan(&sleeping); err != nil {
		t.Fatal(err)
	}
	if sleeping != 0 {
		t.Errorf("%d server statements still running after the timeout: the cancel did not reach the server", sleeping)
	}
	if err := conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&after); err != nil {
		t.Fatalf("next query: %v", err)
	}
	if after != before {
		t.Errorf("server after the timeout = pid %d, before = %d: a server that answered the cancel should be reused", after, before)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_sleep($1)", 5); pgerr(err) != "57014" {
		t.Errorf("extended-protocol pg_sleep(5): %v; want 57014", err)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_sleep(0.05)"); err != nil {
		t.Errorf("a short request: %v", err)
	}
}

// TestTxModeQueryTimeoutPerUserAndDatabase: a database's query_timeout
// applies to its clients, a user's own wins over it, and a database
// without one (the "*" entry here, and no global value) leaves requests
// alone.
func TestTxModeQueryTimeoutPerUserAndDatabase(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	p := txProxy(t, 2, func(c *config.Config) {
		d := c.Proxy.Databases[appDB]
		d.QueryTimeout = 200 * time.Millisecond
		c.Proxy.Databases[appDB] = d
		u := c.Proxy.Users["scramuser"]
		u.QueryTimeout = 10 * time.Second
		c.Proxy.Users["scramuser"] = u
	})
	if _, err := p.Connect(t).Exec(ctx, "SELECT pg_sleep(5)"); pgerr(err) != "57014" {
		t.Errorf("app on %s (the database's query_timeout 200ms): %v; want 57014", appDB, err)
	}
	own := connect(t, p.DSN("scramuser", "scramuser-pw", appDB))
	if _, err := own.Exec(ctx, "SELECT pg_sleep(0.5)"); err != nil {
		t.Errorf("scramuser on %s (its own query_timeout 10s over the database's 200ms): %v", appDB, err)
	}
	untimed := connect(t, p.DSN(appUser, appPassword, "postgres"))
	if _, err := untimed.Exec(ctx, "SELECT pg_sleep(0.5)"); err != nil {
		t.Errorf("app on postgres (no query_timeout): %v", err)
	}
}

// TestTxModeQueryTimeoutFollowsReload: a session takes query_timeout from
// the config in force when each request is sent, so a reload that sets or
// clears it applies to connected clients' next requests (pgone keeps the
// value it looked up per config snapshot, not per session).
func TestTxModeQueryTimeoutFollowsReload(t *testing.T) {
	// Not parallel: it reloads the proxy's config.
	ctx := testCtx(t)
	p := txProxy(t, 1, nil)
	conn := p.Connect(t)
	if _, err := conn.Exec(ctx, "SELECT pg_sleep(0.3)"); err != nil {
		t.Fatalf("no query_timeout: %v", err)
	}
	cfg := *p.Cfg
	cfg.Proxy.Limits.QueryTimeout = 100 * time.Millisecond
	if err := p.Srv.Reload(cfg.Proxy, cfg.Pool); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_sleep(5)"); pgerr(err) != "57014" {
		t.Fatalf("after a reload to query_timeout 100ms: %v; want 57014", err)
	}
	cfg.Proxy.Limits.QueryTimeout = 0
	if err := p.Srv.Reload(cfg.Proxy, cfg.Pool); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_sleep(0.3)"); err != nil {
		t.Errorf("after a reload back to no query_timeout: %v", err)
	}
}

func pgerr(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// TestTxModeQueryTimeoutServerIgnoresCancel: a server that does not
// answer pgone's cancel (stopped, partitioned) is closed after the grace
// period; the client gets the error of a lost server (here a read: 08006)
// and its next request runs on a new server.
func TestTxModeQueryTimeoutServerIgnoresCancel(t *testing.T) {
	t.Parallel()
	s := startScripted(t, func(c *scriptedConn) {
		c.serveUntil(queryIs("SELECT * FROM slow"), false)
		_, _ = c.next() // hangs until pgone closes the connection
	})
	p := s.proxyTo(t, func(c *config.Config) { c.Proxy.Limits.QueryTimeout = 200 * time.Millisecond })
	c := connectMsg(t, p.DSN(appUser, appPassword, "fake"))
	start := time.Now()
	c.send(&pgproto3.Query{String: "SELECT * FROM slow"})
	reply := c.readUntil(isRFQ)
	took := time.Since(start)
	errs := errorsIn(reply)
	if len(errs) != 1 || !strings.Contains(errs[0], `"Code":"08006"`) {
		t.Fatalf("want one 08006 error then ReadyForQuery, got %q", reply)
	}
	waitUntil(t, "the cancel request reaches the server", func() bool { return s.cancelCount() > 0 })
	if n := s.cancelCount(); n != 1 {
		t.Errorf("cancel requests sent = %d; want 1", n)
	}
	// query_timeout, then the grace period for the cancel (1s).
	if took < time.Second || took > 10*time.Second {
		t.Errorf("answered after %s; want about 1.2s", took)
	}
	if errs := errorsIn(c.simpleQuery("SELECT 1")); len(errs) > 0 {
		t.Errorf("next request: %v", errs)
	}
}

// TestTxModeQueryTimeoutFreesClientOnStoppedReplica: issue 11's stopped
// replica, for a client already on it. Its backend is stopped (SIGSTOP)
// mid-read, so it cannot take pgone's cancel: after query_timeout and the
// grace period pgone gives the server up, the client gets 08006 (a read:
// nothing committed) instead of hanging until the replica wakes, and its
// next read works.
func TestTxModeQueryTimeoutFreesClientOnStoppedReplica(t *testing.T) {
	// Not parallel: a stopped backend on the shared replica may hold up
	// its replay, which other tests wait for.
	ctx := testCtx(t)
	const db = "qtreplica"
	_, conn := readySplit(t, db, func(c *config.Config) { c.Proxy.Limits.QueryTimeout = time.Second })

	const slow = "SELECT count(*) FROM generate_series(1, 2000000000)"
	type result struct {
		err  error
		took time.Duration
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		var n int64
		err := conn.QueryRow(ctx, slow).Scan(&n)
		done <- result{err, time.Since(start)}
	}()
	replica := connect(t, cluster.Replica.DSN("postgres", "postgres", "postgres"))
	var pid int
	eventually(t, "the read to run on the replica", func() bool {
		return replica.QueryRow(ctx, "SELECT pid FROM pg_stat_activity WHERE query = $1 AND state = 'active'", slow).Scan(&pid) == nil
	})
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGCONT) })
	var r result
	select {
	case r = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("the client still waits on the stopped replica")
	}
	if pgerr(r.err) != "08006" {
		t.Fatalf("read on a stopped replica with query_timeout 1s: %v; want 08006", r.err)
	}
	if r.took > 5*time.Second {
		t.Errorf("freed after %s; want query_timeout (1s) plus the cancel's grace (1s)", r.took)
	}
	if v := serverPort(t, ctx, conn, portQuery); v == 0 {
		t.Error("next read failed")
	}
}

// TestSessionModeQueryTimeoutServerIgnoresCancel: in session mode a
// server that does not answer the cancel is closed after the grace
// period, and with it the client, which gets FATAL 08006 rather than
// waiting on.
func TestSessionModeQueryTimeoutServerIgnoresCancel(t *testing.T) {
	t.Parallel()
	s := startScripted(t, func(c *scriptedConn) {
		c.serveUntil(queryIs("SELECT * FROM slow"), false)
		_, _ = c.next() // hangs until pgone closes the connection
	})
	p := s.proxyTo(t, func(c *config.Config) {
		c.Pool.Mode = pool.ModeSession
		c.Proxy.Limits.QueryTimeout = 200 * time.Millisecond
	})
	c := connectMsg(t, p.DSN(appUser, appPassword, "fake"))
	c.send(&pgproto3.Query{String: "SELECT * FROM slow"})
	m, err := c.receive(ioTimeout)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	if er, ok := m.(*pgproto3.ErrorResponse); !ok || er.Code != "08006" || er.Severity != "FATAL" {
		t.Fatalf("got %s; want FATAL 08006", recordMsg(m))
	}
	waitUntil(t, "the cancel request reaches the server", func() bool { return s.cancelCount() > 0 })
}

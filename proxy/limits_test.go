package proxy_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgone/pgone/config"
)

// TestMaxClientConn checks that the client beyond max_client_conn gets
// 53300 and that a slot freed by a leaving client can be taken again.
func TestMaxClientConn(t *testing.T) {
	t.Parallel()
	p := startProxy(t, func(cfg *config.Config) { cfg.Proxy.Limits.MaxClientConn = 3 })
	conns := make([]*pgx.Conn, 3)
	for i := range conns {
		conns[i] = p.Connect(t)
	}
	pe := pgErrorOf(t, connectErr(t, p.AppDSN()))
	if pe.Code != "53300" || pe.Severity != "FATAL" {
		t.Fatalf("4th client: %s %s %q, want FATAL 53300", pe.Severity, pe.Code, pe.Message)
	}
	// The refused client took no slot: the three still work.
	for i, c := range conns {
		if err := c.Ping(testCtx(t)); err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
	}
	conns[0].Close(context.Background())
	waitUntil(t, "the first client's session to end", func() bool { return p.Srv.Clients() < 3 })
	c := p.Connect(t)
	if err := c.Ping(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	// And the limit holds again.
	if pe := pgErrorOf(t, connectErr(t, p.AppDSN())); pe.Code != "53300" {
		t.Fatalf("client over the limit again: %s %q, want 53300", pe.Code, pe.Message)
	}
}

// TestPoolQueryWaitTimeout checks that a client waiting for the only server
// connection of a session pool gets 53300 after query_wait_timeout, and that
// the connection serves the next client once its holder leaves.
func TestPoolQueryWaitTimeout(t *testing.T) {
	t.Parallel()
	const wait = 500 * time.Millisecond
	p := startProxy(t, func(cfg *config.Config) {
		cfg.Pool.Mode = "session"
		cfg.Pool.PoolSize = 1
		cfg.Pool.QueryWaitTimeout = wait
	})
	first := p.Connect(t)
	var pid int
	if err := first.QueryRow(testCtx(t), "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err := connectErr(t, p.AppDSN())
	took := time.Since(start)
	pe := pgErrorOf(t, err)
	if pe.Code != "53300" {
		t.Fatalf("waiting client: %s %q, want 53300", pe.Code, pe.Message)
	}
	if took < wait-100*time.Millisecond || took > 10*time.Second {
		t.Fatalf("waiting client refused after %s, want about %s", took, wait)
	}
	// The first client was not disturbed.
	if err := first.Ping(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	first.Close(context.Background())
	next := p.Connect(t)
	var nextPid int
	if err := next.QueryRow(testCtx(t), "SELECT pg_backend_pid()").Scan(&nextPid); err != nil {
		t.Fatal(err)
	}
	// One server connection in all: the next client got the same backend.
	if nextPid != pid {
		t.Errorf("next client runs on backend %d, the first ran on %d; pool size is 1", nextPid, pid)
	}
	if got := p.Pools.Total(); got != 1 {
		t.Errorf("Total() = %d server connections, want 1", got)
	}
}

// TestPoolQueueHandsOverOnRelease checks that a client queued for the pool's
// only connection gets it as soon as the holder leaves, well before
// query_wait_timeout.
func TestPoolQueueHandsOverOnRelease(t *testing.T) {
	t.Parallel()
	p := startProxy(t, func(cfg *config.Config) {
		cfg.Pool.PoolSize = 1
		cfg.Pool.QueryWaitTimeout = 10 * time.Second
	})
	first := p.Connect(t)
	done := make(chan error, 1)
	var second *pgx.Conn
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		var err error
		second, err = pgx.Connect(ctx, p.AppDSN())
		done <- err
	}()
	waitUntil(t, "the second client to queue", func() bool { return poolWaiting(p) == 1 })
	released := time.Now()
	first.Close(context.Background())
	if err := <-done; err != nil {
		t.Fatalf("queued client: %v", err)
	}
	defer second.Close(context.Background())
	if d := time.Since(released); d > 5*time.Second {
		t.Fatalf("queued client got the connection %s after release", d)
	}
	if err := second.Ping(testCtx(t)); err != nil {
		t.Fatal(err)
	}
}

// TestClientLeavingTheQueueLeaksNoServer: a client that gives up while
// queued for the pool's only connection must not keep that connection when
// it is handed over to it later; the next client gets it.
func TestClientLeavingTheQueueLeaksNoServer(t *testing.T) {
	t.Parallel()
	p := startProxy(t, func(cfg *config.Config) {
		cfg.Pool.PoolSize = 1
		cfg.Pool.QueryWaitTimeout = 20 * time.Second
	})
	holder := connect(t, pwDSN(p))
	// A client logs in and queues for the server, then goes away.
	nc := dialProxy(t, p)
	fe := pgproto3.NewFrontend(nc, nc)
	fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber,
		Parameters: map[string]string{"user": "pwuser", "database": appDB}})
	fe.Send(&pgproto3.PasswordMessage{Password: "pwuser-pw"})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the client to queue", func() bool { return poolWaiting(p) == 1 })
	_ = nc.Close()
	holder.Close(context.Background())
	waitUntil(t, "the queued client's session to end", func() bool { return p.Srv.Clients() == 0 })

	start := time.Now()
	next := connect(t, pwDSN(p))
	if err := next.Ping(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("next client waited %s for the only server connection", d)
	}
	if got := p.Pools.Total(); got != 1 {
		t.Fatalf("Total() = %d server connections, want 1", got)
	}
}

// TestQueuedClientOutlivesLoginTimeout: client_login_timeout bounds startup
// and authentication; a logged-in client queued for a server waits up to
// query_wait_timeout and is then served.
func TestQueuedClientOutlivesLoginTimeout(t *testing.T) {
	t.Parallel()
	const loginTimeout = 500 * time.Millisecond
	p := startProxy(t, func(cfg *config.Config) {
		cfg.Pool.PoolSize = 1
		cfg.Pool.QueryWaitTimeout = 20 * time.Second
		cfg.Proxy.Limits.ClientLoginTimeout = loginTimeout
	})
	holder := connect(t, pwDSN(p))
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, pwDSN(p))
		if err == nil {
			err = conn.Ping(ctx)
			conn.Close(context.Background())
		}
		done <- err
	}()
	waitUntil(t, "the second client to queue", func() bool { return poolWaiting(p) == 1 })
	time.Sleep(3 * loginTimeout)
	holder.Close(context.Background())
	if err := <-done; err != nil {
		t.Fatalf("client queued past client_login_timeout: %v", err)
	}
}

// poolWaiting is the number of clients queued in all pools.
func poolWaiting(p *testProxy) int {
	n := 0
	for _, s := range p.Pools.Stats() {
		n += s.Waiting
	}
	return n
}

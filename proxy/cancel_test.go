package proxy_test

import (
	"context"
	"errors"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"

	"github.com/pgone/pgone/config"
	"github.com/pgone/pgone/pool"
)

// connectCancelling opens a pgx connection that answers a cancelled
// context with a CancelRequest, as libpq clients do, and closes the
// connection only if the server has not answered within 5 seconds.
func connectCancelling(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.BuildContextWatcherHandler = func(pc *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: pc, DeadlineDelay: 5 * time.Second}
	}
	conn, err := pgx.ConnectConfig(testCtx(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// sleepCancelledAfter runs pg_sleep(30) with a context cancelled after d
// and returns the error and how long the query took.
func sleepCancelledAfter(t *testing.T, conn *pgx.Conn, d time.Duration) (error, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	start := time.Now()
	_, err := conn.Exec(ctx, "SELECT pg_sleep(30)")
	return err, time.Since(start)
}

func TestCancelRunningQuery(t *testing.T) {
	t.Parallel()
	p := startProxy(t, nil)
	victim := connectCancelling(t, p.AppDSN())
	bystander := p.Connect(t)

	type result struct {
		err     error
		elapsed time.Duration
	}
	bystanderDone := make(chan result, 1)
	go func() {
		start := time.Now()
		_, err := bystander.Exec(context.Background(), "SELECT pg_sleep(1)")
		bystanderDone <- result{err, time.Since(start)}
	}()

	err, elapsed := sleepCancelledAfter(t, victim, 300*time.Millisecond)
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "57014" || pe.Message != "canceling statement due to user request" {
		t.Fatalf("cancelled pg_sleep(30): %v (%T), want 57014 canceling statement due to user request", err, err)
	}
	if elapsed > 2*time.Second {
		t.Errorf("cancel took %s", elapsed)
	}
	// PostgreSQL itself gives the same error.
	direct := connectCancelling(t, directDSN())
	if derr, _ := sleepCancelledAfter(t, direct, 300*time.Millisecond); outcomeCode(derr) != outcomeCode(err) {
		t.Errorf("through pgone %v, PostgreSQL directly %v", err, derr)
	}
	// The connection is still open and works (a failed cancel would have
	// made pgx close it after DeadlineDelay).
	if victim.IsClosed() {
		t.Fatal("connection closed after the cancel")
	}
	requireConnUsable(t, victim)
	if n := scanSingle[int](t, victim, "SELECT count(*) FROM pg_sleep(0.2)"); n != 1 {
		t.Fatalf("query after cancel: %d", n)
	}

	b := <-bystanderDone
	if b.err != nil || b.elapsed < time.Second {
		t.Fatalf("other client's pg_sleep(1): %v after %s, want it to complete", b.err, b.elapsed)
	}
	requireConnUsable(t, bystander)
}

// sendCancelRequest sends a CancelRequest to addr and waits until the
// other side closes the connection, as libpq does.
func sendCancelRequest(t *testing.T, addr string, pid uint32, secret []byte) {
	t.Helper()
	if err := cancelVia(addr, pid, secret); err != nil {
		t.Fatalf("%v; want a plain close", err)
	}
}

// waitActive waits until the server session pid runs a query.
func waitActive(t *testing.T, admin *pgx.Conn, pid uint32) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for scanSingle[int](t, admin, "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND state = 'active'", int(pid)) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("session %d never became active", pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestCancelRequestWithWrongKey(t *testing.T) {
	t.Parallel()
	// Session mode: the key's pid is the server's, which pg_stat_activity shows.
	p := startProxy(t, func(c *config.Config) { c.Pool.Mode = pool.ModeSession })
	addr := net.JoinHostPort(p.Host, strconv.Itoa(p.Port))
	admin := connect(t, directDSN())
	conn := p.Connect(t)
	pid, secret := conn.PgConn().PID(), conn.PgConn().SecretKey()
	wrong := append([]byte(nil), secret...)
	for i := range wrong {
		wrong[i] ^= 0x5a
	}

	done := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := conn.Exec(context.Background(), "SELECT pg_sleep(1.5)")
		done <- err
	}()
	waitActive(t, admin, pid)
	sendCancelRequest(t, addr, pid, wrong)      // right pid, wrong secret
	sendCancelRequest(t, addr, pid+1, secret)   // wrong pid, right secret
	sendCancelRequest(t, addr, pid, secret[:3]) // too short: closed without a reply, as PostgreSQL does
	// The client's key is pgone's own: sent straight to PostgreSQL (the pid
	// is the server's in session mode) it must not cancel anything.
	sendCancelRequest(t, net.JoinHostPort(cluster.Primary.Host, strconv.Itoa(cluster.Primary.Port)), pid, secret)
	if err := <-done; err != nil {
		t.Fatalf("query hit by a cancel with a wrong key: %v", err)
	}
	if d := time.Since(start); d < 1500*time.Millisecond {
		t.Fatalf("pg_sleep(1.5) ended after %s", d)
	}

	// The same raw request with the right key does cancel.
	go func() {
		_, err := conn.Exec(context.Background(), "SELECT pg_sleep(30)")
		done <- err
	}()
	waitActive(t, admin, pid)
	start = time.Now()
	sendCancelRequest(t, addr, pid, secret)
	select {
	case err := <-done:
		if outcomeCode(err) != "57014" {
			t.Fatalf("cancelled with the right key: %v, want 57014", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("cancel with the right key did nothing")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("cancel took %s", d)
	}
	requireConnUsable(t, conn)
}

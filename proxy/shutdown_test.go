package proxy_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// createTable makes a table on the primary owned by app, dropped at the end.
func createTable(t *testing.T, name string) {
	t.Helper()
	conn := connect(t, directDSN())
	if _, err := conn.Exec(testCtx(t), fmt.Sprintf("CREATE TABLE %s (v text)", name)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if c, err := pgconn.Connect(ctx, directDSN()); err == nil {
			_ = c.Exec(ctx, "DROP TABLE IF EXISTS "+name).Close()
			c.Close(ctx)
		}
	})
}

// committedRows reads the table straight from the primary.
func committedRows(t *testing.T, table string) string {
	t.Helper()
	conn := connect(t, directDSN())
	var rows string
	if err := conn.QueryRow(testCtx(t), fmt.Sprintf("SELECT coalesce(string_agg(v, ',' ORDER BY v), '') FROM %s", table)).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	return rows
}

// mustQuery runs a simple query and checks it succeeded with the given
// transaction status.
func (c *msgConn) mustQuery(sql string, txStatus byte) {
	c.t.Helper()
	got := c.simpleQuery(sql)
	for _, r := range got {
		if strings.HasPrefix(r, "*pgproto3.ErrorResponse") {
			c.t.Fatalf("%s: %s", sql, r)
		}
	}
	if want := fmt.Sprintf(`*pgproto3.ReadyForQuery {"Type":"ReadyForQuery","TxStatus":"%c"}`, txStatus); got[len(got)-1] != want {
		c.t.Fatalf("%s: ended with %s, want status %c", sql, got[len(got)-1], txStatus)
	}
}

// expectShutdownClose reads a FATAL 57P01 within timeout, then the end of
// the connection.
func (c *msgConn) expectShutdownClose(timeout time.Duration) {
	c.t.Helper()
	m, err := c.receive(timeout)
	if err != nil {
		c.t.Fatalf("want FATAL 57P01 within %s, got %v", timeout, err)
	}
	er, ok := m.(*pgproto3.ErrorResponse)
	if !ok || er.Code != "57P01" || er.Severity != "FATAL" {
		c.t.Fatalf("want FATAL 57P01, got %s", recordMsg(m))
	}
	if m, err := c.receive(ioTimeout); !isClosed(err) {
		c.t.Fatalf("after 57P01: %T %v, want the connection closed", m, err)
	}
}

// TestGracefulShutdown follows clients through Shutdown: an idle one is
// closed at once, one in a transaction may finish it and is closed after its
// COMMIT, one that does not finish is closed when the grace period ends and
// its transaction is lost, and no new client gets in.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	const table = "shutdown_graceful"
	createTable(t, table)
	p := startProxy(t, nil)

	finishing := connectMsg(t, p.AppDSN())
	finishing.mustQuery("BEGIN", 'T')
	finishing.mustQuery(fmt.Sprintf("INSERT INTO %s VALUES ('a1')", table), 'T')
	lingering := connectMsg(t, p.AppDSN())
	lingering.mustQuery("BEGIN", 'T')
	lingering.mustQuery(fmt.Sprintf("INSERT INTO %s VALUES ('c1')", table), 'T')
	idle := connectMsg(t, p.AppDSN())
	idle.mustQuery("SELECT 1", 'I')

	const grace = 5 * time.Second
	start := time.Now()
	shutdownErr := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), grace)
		defer cancel()
		shutdownErr <- p.Srv.Shutdown(ctx)
	}()

	// The idle client goes at once.
	idle.expectShutdownClose(time.Second)

	// New clients are refused: the dial fails or the connection is closed.
	if err := connectErr(t, p.AppDSN()); err == nil {
		t.Fatal("a new client connected during shutdown")
	}

	// The client in a transaction finishes it, then is closed.
	finishing.mustQuery(fmt.Sprintf("INSERT INTO %s VALUES ('a2')", table), 'T')
	finishing.mustQuery("COMMIT", 'I')
	finishing.expectShutdownClose(time.Second)
	if got := committedRows(t, table); got != "a1,a2" {
		t.Fatalf("committed rows %q after the finishing client's COMMIT, want a1,a2", got)
	}

	// The lingering client is closed when the grace period ends.
	lingering.expectShutdownClose(grace + 5*time.Second)
	if d := time.Since(start); d < grace-500*time.Millisecond {
		t.Errorf("client in a transaction closed %s after Shutdown began, before the %s grace period", d, grace)
	}
	select {
	case err := <-shutdownErr:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Shutdown returned %v, want context.DeadlineExceeded (a session had to be forced)", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown did not return")
	}
	// Its transaction is gone: not committed, and not left open on the server.
	if got := committedRows(t, table); got != "a1,a2" {
		t.Fatalf("committed rows %q, want a1,a2: the forced client's row must not be committed", got)
	}
	direct := connect(t, directDSN())
	waitUntil(t, "no server session to remain in a transaction", func() bool {
		var n int
		err := direct.QueryRow(testCtx(t), `SELECT count(*) FROM pg_stat_activity
			WHERE datname = $1 AND state LIKE 'idle in transaction%' AND query LIKE '%'||$2||'%'`, appDB, table).Scan(&n)
		return err == nil && n == 0
	})

	// A second Shutdown (the harness calls one more at cleanup) returns at once.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := p.Srv.Shutdown(ctx); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
}

// TestShutdownWithoutClients checks that Shutdown returns nil at once when
// no client is connected, and that Serve has returned.
func TestShutdownWithoutClients(t *testing.T) {
	t.Parallel()
	p := startProxy(t, nil)
	conn := p.Connect(t)
	conn.Close(context.Background())
	waitUntil(t, "the client to leave", func() bool { return p.Srv.Clients() == 0 })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := p.Srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Shutdown with no clients took %s", d)
	}
	if err := connectErr(t, p.AppDSN()); err == nil {
		t.Fatal("a client connected after Shutdown")
	}
}

// TestShutdownClosesIdleClientAfterExtendedCopy: a client that sent a COPY in
// the extended protocol the way libpq does (Sync right after Execute, which
// PostgreSQL ignores in copy-in mode, then CopyDone and Sync) is idle
// afterwards and must be closed at once by Shutdown like any idle client.
func TestShutdownClosesIdleClientAfterExtendedCopy(t *testing.T) {
	t.Parallel()
	const table = "shutdown_copy"
	createTable(t, table)
	p := startProxy(t, nil)
	c := connectMsg(t, p.AppDSN())
	c.send(&pgproto3.Parse{Query: "COPY " + table + " FROM STDIN"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
	c.readUntil(func(m pgproto3.BackendMessage) bool { _, ok := m.(*pgproto3.CopyInResponse); return ok })
	c.send(&pgproto3.CopyData{Data: []byte("x\n")}, &pgproto3.CopyDone{}, &pgproto3.Sync{})
	c.readUntil(isRFQ)
	c.mustQuery("SELECT 1", 'I')

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	go func() { _ = p.Srv.Shutdown(ctx) }()
	m, err := c.receive(time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if er, ok := m.(*pgproto3.ErrorResponse); !ok || er.Code != "57P01" {
		t.Fatalf("got %s, want FATAL 57P01", recordMsg(m))
	}
}

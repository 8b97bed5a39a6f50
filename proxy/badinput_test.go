package proxy_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgone/pgone/config"
	"github.com/pgone/pgone/pool"
)

// healthyClient runs queries through p in a loop until stop is called, which
// closes it and returns how many ran and the errors seen.
func healthyClient(t *testing.T, p *testProxy) (stop func() (int, []error)) {
	t.Helper()
	conn := p.Connect(t)
	ctx, cancel := context.WithCancel(context.Background())
	var (
		wg   sync.WaitGroup
		n    int
		errs []error
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			var got int
			err := conn.QueryRow(ctx, "SELECT $1::int + 1", i).Scan(&got)
			switch {
			case ctx.Err() != nil:
				return
			case err != nil:
				errs = append(errs, err)
			case got != i+1:
				errs = append(errs, fmt.Errorf("SELECT %d + 1 returned %d", i, got))
			}
			n++
			time.Sleep(time.Millisecond)
		}
	}()
	return func() (int, []error) {
		cancel()
		wg.Wait()
		conn.Close(context.Background())
		return n, errs
	}
}

// dialProxy opens a plain TCP connection to p with an ioTimeout deadline,
// closed at the end of the test.
func dialProxy(t *testing.T, p *testProxy) net.Conn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", fmt.Sprintf("%s:%d", p.Host, p.Port), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = nc.SetDeadline(time.Now().Add(ioTimeout))
	t.Cleanup(func() { _ = nc.Close() })
	return nc
}

// isClosed reports whether err says the peer closed the connection.
func isClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, net.ErrClosed)
}

// expectFatalThenClose reads from fe: a FATAL ErrorResponse with code, whose
// message contains msgPart, then the end of the connection.
func expectFatalThenClose(t *testing.T, nc net.Conn, fe *pgproto3.Frontend, code, msgPart string) {
	t.Helper()
	_ = nc.SetReadDeadline(time.Now().Add(ioTimeout))
	m, err := fe.Receive()
	if err != nil {
		t.Fatalf("want an ErrorResponse %s, got %v", code, err)
	}
	er, ok := m.(*pgproto3.ErrorResponse)
	if !ok {
		t.Fatalf("want an ErrorResponse %s, got %T %+v", code, m, m)
	}
	if er.Code != code || er.Severity != "FATAL" || !strings.Contains(er.Message, msgPart) {
		t.Fatalf("got %s %s %q, want FATAL %s with %q", er.Severity, er.Code, er.Message, code, msgPart)
	}
	if m, err := fe.Receive(); !isClosed(err) {
		t.Fatalf("after the error: %T %v, want the connection closed", m, err)
	}
}

// badInputConfig makes pool exhaustion easy to see.
func badInputConfig(cfg *config.Config) {
	cfg.Pool.PoolSize = badInputPoolSize
	cfg.Pool.QueryWaitTimeout = 5 * time.Second
}

const badInputPoolSize = 3

// pwDSN logs in with the cleartext method, the quickest one.
func pwDSN(p *testProxy) string { return p.DSN("pwuser", "pwuser-pw", appDB) }

type badInputCase struct {
	name string
	run  func(t *testing.T, p *testProxy)
}

// afterLogin is a raw connection through p, logged in as pwuser.
func afterLogin(t *testing.T, p *testProxy) *msgConn {
	t.Helper()
	c := connectMsg(t, pwDSN(p))
	_ = c.nc.SetWriteDeadline(time.Now().Add(ioTimeout))
	return c
}

// truncatedStartup is the start of a StartupMessage that claims 100 bytes.
func truncatedStartup() []byte {
	pkt := binary.BigEndian.AppendUint32(nil, 100)
	pkt = binary.BigEndian.AppendUint32(pkt, pgproto3.ProtocolVersionNumber)
	return append(pkt, "user\x00pwuser\x00"...)
}

var badInputCases = []badInputCase{
	{"HTTP request instead of a startup packet", func(t *testing.T, p *testProxy) {
		nc := dialProxy(t, p)
		if _, err := nc.Write([]byte("GET / HTTP/1.1\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		expectFatalThenClose(t, nc, pgproto3.NewFrontend(nc, nc), "08P01", "invalid length of startup packet")
	}},
	{"startup length below 8", func(t *testing.T, p *testProxy) {
		nc := dialProxy(t, p)
		if _, err := nc.Write([]byte{0, 0, 0, 4, 0, 3, 0, 0}); err != nil {
			t.Fatal(err)
		}
		expectFatalThenClose(t, nc, pgproto3.NewFrontend(nc, nc), "08P01", "invalid length of startup packet")
	}},
	{"startup length above the maximum", func(t *testing.T, p *testProxy) {
		nc := dialProxy(t, p)
		if _, err := nc.Write(binary.BigEndian.AppendUint32(nil, 0x7fffffff)); err != nil {
			t.Fatal(err)
		}
		expectFatalThenClose(t, nc, pgproto3.NewFrontend(nc, nc), "08P01", "invalid length of startup packet")
	}},
	{"truncated startup packet, then end of input", func(t *testing.T, p *testProxy) {
		nc := dialProxy(t, p)
		if _, err := nc.Write(truncatedStartup()); err != nil {
			t.Fatal(err)
		}
		// As PostgreSQL ("incomplete startup packet"): closed without a reply.
		expectClosedAfterEOF(t, nc, false)
	}},
	{"message length below 4 after login", func(t *testing.T, p *testProxy) {
		c := afterLogin(t, p)
		if _, err := c.nc.Write([]byte{'Q', 0, 0, 0, 2}); err != nil {
			t.Fatal(err)
		}
		expectFatalThenClose(t, c.nc, c.fe, "08P01", "invalid message length")
	}},
	{"negative message length after login", func(t *testing.T, p *testProxy) {
		c := afterLogin(t, p)
		if _, err := c.nc.Write([]byte{'Q', 0xff, 0xff, 0xff, 0xff}); err != nil {
			t.Fatal(err)
		}
		expectFatalThenClose(t, c.nc, c.fe, "08P01", "invalid message length")
	}},
	{"huge message length after login", func(t *testing.T, p *testProxy) {
		c := afterLogin(t, p)
		if _, err := c.nc.Write([]byte{'Q', 0x7f, 0xff, 0xff, 0xff}); err != nil {
			t.Fatal(err)
		}
		expectFatalThenClose(t, c.nc, c.fe, "08P01", "exceeds max_message_size")
	}},
	{"unknown message type after login", func(t *testing.T, p *testProxy) {
		c := afterLogin(t, p)
		if _, err := c.nc.Write([]byte{'z', 0, 0, 0, 4}); err != nil {
			t.Fatal(err)
		}
		expectFatalThenClose(t, c.nc, c.fe, "08P01", "invalid frontend message type")
	}},
	{"password message after login", func(t *testing.T, p *testProxy) {
		c := afterLogin(t, p)
		c.send(&pgproto3.PasswordMessage{Password: "again"})
		expectFatalThenClose(t, c.nc, c.fe, "08P01", "")
	}},
	{"truncated message after login, then end of input", func(t *testing.T, p *testProxy) {
		c := afterLogin(t, p)
		if _, err := c.nc.Write([]byte{'Q', 0, 0, 0, 100, 'S', 'E', 'L'}); err != nil {
			t.Fatal(err)
		}
		// Closed, at most with an 08P01: never an answer to half a query.
		expectClosedAfterEOF(t, c.nc, true)
	}},
	{"close in the middle of an extended request", func(t *testing.T, p *testProxy) {
		// Without a Sync (session mode: PostgreSQL runs an Execute as it
		// comes): the query stops with the client.
		c := afterLogin(t, p)
		const sql = "SELECT pg_sleep(60) /* badinput extended */"
		c.send(&pgproto3.Parse{Query: sql}, &pgproto3.Bind{}, &pgproto3.Execute{})
		watch := connect(t, directDSN())
		waitUntil(t, "the query to run on its server", func() bool { return runningQueries(t, watch, sql) == 1 })
		_ = c.nc.Close()
		waitQueryGone(t, sql)
	}},
	{"close while a query runs", func(t *testing.T, p *testProxy) {
		c := afterLogin(t, p)
		const sql = "SELECT pg_sleep(60) /* badinput running */"
		c.send(&pgproto3.Query{String: sql})
		watch := connect(t, directDSN())
		waitUntil(t, "the query to run on its server", func() bool { return runningQueries(t, watch, sql) == 1 })
		_ = c.nc.Close()
		waitQueryGone(t, sql)
	}},
}

// expectClosedAfterEOF ends the client's side of nc (half-close: what was
// sent stays incomplete for good) and expects pgone to close the
// connection, with an 08P01 ErrorResponse first if allowed, else without a
// byte.
func expectClosedAfterEOF(t *testing.T, nc net.Conn, errorAllowed bool) {
	t.Helper()
	cw, ok := nc.(interface{ CloseWrite() error })
	if !ok {
		t.Fatalf("%T cannot half-close", nc)
	}
	if err := cw.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	_ = nc.SetReadDeadline(time.Now().Add(ioTimeout))
	fe := pgproto3.NewFrontend(nc, nc)
	m, err := fe.Receive()
	if err == nil {
		if er, isErr := m.(*pgproto3.ErrorResponse); !errorAllowed || !isErr || er.Code != "08P01" {
			t.Fatalf("after an incomplete message and end of input: %T %+v, want the connection closed", m, m)
		}
		_, err = fe.Receive()
	}
	if errors.Is(err, os.ErrDeadlineExceeded) || !isClosed(err) {
		t.Fatalf("connection not closed after an incomplete message and end of input: %v", err)
	}
}

// runningQueries counts the server sessions running sql.
func runningQueries(t *testing.T, conn *pgx.Conn, sql string) int {
	t.Helper()
	var n int
	if err := conn.QueryRow(testCtx(t), "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query = $1", sql).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// waitQueryGone waits until no server session runs sql: a client that left
// does not leave its query running (pg_sleep(60) does not end by itself
// within the wait).
func waitQueryGone(t *testing.T, sql string) {
	t.Helper()
	watch := connect(t, directDSN())
	waitUntil(t, "the query of a client that left to stop", func() bool { return runningQueries(t, watch, sql) == 0 })
}

// loginTimeoutCases run with client_login_timeout = 500ms.
var loginTimeoutCases = []badInputCase{
	{"silent client", func(t *testing.T, p *testProxy) {
		expectLoginTimeout(t, dialProxy(t, p))
	}},
	{"truncated startup packet, then silence", func(t *testing.T, p *testProxy) {
		nc := dialProxy(t, p)
		if _, err := nc.Write(truncatedStartup()); err != nil {
			t.Fatal(err)
		}
		expectLoginTimeout(t, nc)
	}},
	{"silent after the password request", func(t *testing.T, p *testProxy) {
		nc := dialProxy(t, p)
		fe := pgproto3.NewFrontend(nc, nc)
		fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber,
			Parameters: map[string]string{"user": "pwuser", "database": appDB}})
		if err := fe.Flush(); err != nil {
			t.Fatal(err)
		}
		_ = nc.SetReadDeadline(time.Now().Add(ioTimeout))
		if m, err := fe.Receive(); err != nil {
			t.Fatal(err)
		} else if _, ok := m.(*pgproto3.AuthenticationCleartextPassword); !ok {
			t.Fatalf("got %T, want a password request", m)
		}
		expectLoginTimeout(t, nc)
	}},
}

// runBadInput sends each case's bad input to a proxy while a healthy client
// runs queries, and checks that each bad client gets the right error and
// that neither the healthy client nor the server connection pool suffers.
func runBadInput(t *testing.T, mutate func(*config.Config), cases []badInputCase) {
	p := startProxy(t, mutate)
	stop := healthyClient(t, p)
	t.Run("cases", func(t *testing.T) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				tc.run(t, p)
				// A new client still works right after.
				conn := connect(t, pwDSN(p))
				var n int
				if err := conn.QueryRow(testCtx(t), "SELECT 1").Scan(&n); err != nil || n != 1 {
					t.Fatalf("new client after %s: %d, %v", tc.name, n, err)
				}
				conn.Close(context.Background())
			})
		}
	})
	n, errs := stop()
	if len(errs) > 0 {
		t.Errorf("healthy client: %d errors in %d queries, first: %v", len(errs), n, errs[0])
	}
	if n == 0 {
		t.Error("healthy client ran no query")
	}
	checkPoolsAfterBadClients(t, p)
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	runBadInput(t, badInputConfig, badInputCases)
}

func TestBadInputLoginTimeout(t *testing.T) {
	t.Parallel()
	runBadInput(t, func(cfg *config.Config) {
		badInputConfig(cfg)
		cfg.Proxy.Limits.ClientLoginTimeout = 500 * time.Millisecond
	}, loginTimeoutCases)
}

// expectLoginTimeout checks that a client that stops talking during startup
// is closed after client_login_timeout (500ms), with 08P01 or without a word.
func expectLoginTimeout(t *testing.T, nc net.Conn) {
	t.Helper()
	start := time.Now()
	_ = nc.SetReadDeadline(start.Add(ioTimeout))
	fe := pgproto3.NewFrontend(nc, nc)
	m, err := fe.Receive()
	if err == nil {
		er, ok := m.(*pgproto3.ErrorResponse)
		if !ok || er.Code != "08P01" {
			t.Fatalf("got %T %+v, want an 08P01 error or the connection closed", m, m)
		}
		_, err = fe.Receive()
	}
	if errors.Is(err, os.ErrDeadlineExceeded) || !isClosed(err) {
		t.Fatalf("connection not closed after %s: %v", time.Since(start), err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("closed after %s, want about 500ms", d)
	}
}

// checkPoolsAfterBadClients waits for the bad clients' sessions to end and
// checks that they left no server connection in use, that no pool is over
// its size, and that a full pool's worth of new clients gets served.
func checkPoolsAfterBadClients(t *testing.T, p *testProxy) {
	t.Helper()
	waitUntil(t, "bad clients to be gone", func() bool { return p.Srv.Clients() == 0 })
	var stats []pool.Stats
	waitUntil(t, "server connections to be released", func() bool {
		stats = p.Pools.Stats()
		for _, s := range stats {
			if s.Open != s.Idle {
				return false
			}
		}
		return true
	})
	total := 0
	for _, s := range stats {
		if s.Open > badInputPoolSize || s.Waiting != 0 {
			t.Errorf("pool %+v: over its size %d or with waiters", s, badInputPoolSize)
		}
		total += s.Open
	}
	if got := p.Pools.Total(); got != total || got > badInputPoolSize*len(stats) {
		t.Errorf("Total() = %d, pools hold %d, %d pools of size %d", got, total, len(stats), badInputPoolSize)
	}
	// Every slot of the bad clients' pool is usable, and every connection in
	// it answers: nothing leaked, nothing poisoned.
	conns := make([]*pgx.Conn, badInputPoolSize)
	for i := range conns {
		conns[i] = connect(t, pwDSN(p))
	}
	var wg sync.WaitGroup
	for i, conn := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var got int
			if err := conn.QueryRow(testCtx(t), "SELECT $1::int", i).Scan(&got); err != nil || got != i {
				t.Errorf("client %d: %d, %v", i, got, err)
			}
		}()
	}
	wg.Wait()
}

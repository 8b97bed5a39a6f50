package proxy_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgone/pgone/config"
	"github.com/pgone/pgone/pool"
)

// TestTxModeServerLostReportsOutcome: a request whose server dies before
// its ReadyForQuery gets exactly one error, then ReadyForQuery, and the
// error says "rolled back" (08006) only when nothing can have committed;
// a request that may have committed gets 08007 (outcome unknown). The
// scripted server dies right after the request reaches it, which a real
// server cannot be made to do on cue.
func TestTxModeServerLostReportsOutcome(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		before []string // simple queries answered normally first
		send   []pgproto3.FrontendMessage
		dies   func(pgproto3.FrontendMessage) bool
		fatal  bool   // the server sends FATAL before dying
		code   string // the one error the request gets
		text   string // part of its message or detail
	}{
		{name: "commit in flight", before: []string{"BEGIN", "INSERT INTO t VALUES (1)"},
			send: []pgproto3.FrontendMessage{&pgproto3.Query{String: "COMMIT"}}, dies: queryIs("COMMIT"),
			code: "08007", text: "may or may not have committed"},
		{name: "end in flight", before: []string{"BEGIN"},
			send: []pgproto3.FrontendMessage{&pgproto3.Query{String: "end"}}, dies: queryIs("end"),
			code: "08007", text: "may or may not have committed"},
		{name: "autocommit write", send: []pgproto3.FrontendMessage{&pgproto3.Query{String: "INSERT INTO t VALUES (1)"}},
			dies: queryIs("INSERT INTO t VALUES (1)"), code: "08007", text: "may or may not have committed"},
		{name: "commit prepared", send: []pgproto3.FrontendMessage{&pgproto3.Query{String: "COMMIT PREPARED 'g1'"}},
			dies: queryIs("COMMIT PREPARED 'g1'"), code: "08007", text: "may or may not have committed"},
		{name: "function call outside a transaction", send: []pgproto3.FrontendMessage{&pgproto3.Query{String: "SELECT nextval('s')"}},
			dies: queryIs("SELECT nextval('s')"), code: "08007", text: "may or may not have committed"},
		{name: "write and commit in one text", before: []string{"BEGIN"},
			send: []pgproto3.FrontendMessage{&pgproto3.Query{String: "INSERT INTO t VALUES (1); COMMIT"}},
			dies: queryIs("INSERT INTO t VALUES (1); COMMIT"), code: "08007", text: "may or may not have committed"},
		{name: "extended write", send: extendedQuery("INSERT INTO t VALUES ($1)"), dies: isSyncMsg,
			code: "08007", text: "may or may not have committed"},
		{name: "commit answered by FATAL", before: []string{"BEGIN", "INSERT INTO t VALUES (1)"},
			send: []pgproto3.FrontendMessage{&pgproto3.Query{String: "COMMIT"}}, dies: queryIs("COMMIT"), fatal: true,
			code: "08007", text: "terminating connection due to administrator command"},
		{name: "autocommit read", send: []pgproto3.FrontendMessage{&pgproto3.Query{String: "SELECT * FROM t"}},
			dies: queryIs("SELECT * FROM t"), code: "08006", text: "rolled back"},
		{name: "extended read", send: extendedQuery("SELECT * FROM t WHERE id = $1"), dies: isSyncMsg,
			code: "08006", text: "rolled back"},
		{name: "write inside a transaction", before: []string{"BEGIN"},
			send: []pgproto3.FrontendMessage{&pgproto3.Query{String: "UPDATE t SET v = 2"}}, dies: queryIs("UPDATE t SET v = 2"),
			code: "08006", text: "rolled back"},
		{name: "rollback", before: []string{"BEGIN", "UPDATE t SET v = 2"},
			send: []pgproto3.FrontendMessage{&pgproto3.Query{String: "ROLLBACK"}}, dies: queryIs("ROLLBACK"),
			code: "08006", text: "rolled back"},
		// PostgreSQL's FATAL while a statement runs aborts it: its own error stands.
		{name: "autocommit write answered by FATAL", send: []pgproto3.FrontendMessage{&pgproto3.Query{String: "INSERT INTO t VALUES (1)"}},
			dies: queryIs("INSERT INTO t VALUES (1)"), fatal: true, code: "57P01", text: "administrator command"},
		{name: "read answered by FATAL", send: []pgproto3.FrontendMessage{&pgproto3.Query{String: "SELECT * FROM t"}},
			dies: queryIs("SELECT * FROM t"), fatal: true, code: "57P01", text: "administrator command"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := startScripted(t, func(c *scriptedConn) { c.serveUntil(tc.dies, tc.fatal) })
			p := s.proxyTo(t, nil)
			c := connectMsg(t, p.DSN(appUser, appPassword, "fake"))
			for _, sql := range tc.before {
				if errs := errorsIn(c.simpleQuery(sql)); len(errs) > 0 {
					t.Fatalf("%s: %v", sql, errs)
				}
			}
			c.send(tc.send...)
			reply := c.readUntil(isRFQ)
			errs := errorsIn(reply)
			if len(errs) != 1 {
				t.Fatalf("want exactly one error then ReadyForQuery, got %q", reply)
			}
			if !strings.Contains(errs[0], `"Code":"`+tc.code+`"`) || !strings.Contains(errs[0], tc.text) {
				t.Errorf("error = %s; want SQLSTATE %s saying %q", errs[0], tc.code, tc.text)
			}
			if !strings.Contains(reply[len(reply)-1], `"TxStatus":"I"`) {
				t.Errorf("ReadyForQuery = %s; want status I (the transaction is gone)", reply[len(reply)-1])
			}
			// The client keeps its connection: its next request gets a new server.
			if errs := errorsIn(c.simpleQuery("SELECT 1")); len(errs) > 0 {
				t.Errorf("next request: %v", errs)
			}
		})
	}
}

// TestTxModeUnsolicitedFatalThenRequestGetsError: a FATAL that arrives
// while no request is outstanding (here the client is idle in its
// transaction, with pgone's pump reading the server) answers nothing. The
// request the client sends next, on that server, which then dies, gets
// its own error before ReadyForQuery, not ReadyForQuery alone ("no
// results" in pgbench after kill -9 of the primary).
func TestTxModeUnsolicitedFatalThenRequestGetsError(t *testing.T) {
	t.Parallel()
	s := startScripted(t, func(c *scriptedConn) {
		begin, ok := c.takeBegin()
		if !ok {
			return
		}
		// BEGIN is answered only once the next query is here: pgone's
		// session goroutine must have handed the replies to its pump
		// goroutine, which goes on reading the server while the client
		// idles in the transaction.
		second, err := c.next()
		if err != nil || c.answer(begin) != nil || c.answer(second) != nil {
			return
		}
		c.sendFatal()
		_, _ = c.next() // the client's next request: then die without a reply
	})
	p := s.proxyTo(t, nil)
	c := connectMsg(t, p.DSN(appUser, appPassword, "fake"))
	c.send(&pgproto3.Query{String: "BEGIN"}, &pgproto3.Query{String: "SELECT * FROM t"})
	n := 0
	reply := c.readUntil(func(m pgproto3.BackendMessage) bool {
		if isRFQ(m) {
			n++
		}
		return n == 2
	})
	if errs := errorsIn(reply); len(errs) > 0 {
		t.Fatalf("BEGIN, SELECT: %v", errs)
	}
	// Whatever the client hears of the FATAL arrives before its next request.
	m, err := c.receive(ioTimeout)
	if err != nil {
		t.Fatalf("no word of the FATAL: %v", err)
	}
	if _, ok := m.(*pgproto3.ReadyForQuery); ok {
		t.Fatalf("a ReadyForQuery nobody asked for")
	}
	if _, ok := m.(*pgproto3.ErrorResponse); ok {
		t.Errorf("the FATAL came as an ErrorResponse while no request was outstanding: %s", recordMsg(m))
	}
	reply = c.simpleQuery("SELECT * FROM t")
	errs := errorsIn(reply)
	if len(errs) != 1 || !strings.Contains(errs[0], `"Code":"08006"`) {
		t.Fatalf("request after the FATAL: want one 08006 error then ReadyForQuery, got %q", reply)
	}
	if errs := errorsIn(c.simpleQuery("SELECT 1")); len(errs) > 0 {
		t.Errorf("next request: %v", errs)
	}
}

// TestInDoubtCommitOnRealServer: a real in-doubt commit, in both pool
// modes. With synchronous_standby_names naming a standby that never
// connects, COMMIT writes its commit record, then waits;
// pg_terminate_backend ends the wait and the connection, with only a
// WARNING to the client. The row is committed, so the client must hear
// 08007 (outcome unknown), not "rolled back" or the server's bare 57P01
// (session mode forwarded that FATAL unchanged). A transaction-mode
// client then keeps working on another server; a session-mode client's
// connection ends with its server, and a new client gets in.
func TestInDoubtCommitOnRealServer(t *testing.T) {
	// Not parallel: synchronous_standby_names is set for the whole cluster.
	ctx := testCtx(t)
	ownDatabase(t, "indoubt")
	direct := connect(t, cluster.Primary.DSN(appUser, appPassword, "indoubt"))
	if _, err := direct.Exec(ctx, "CREATE TABLE t (id int)"); err != nil {
		t.Fatal(err)
	}
	// Only sessions with synchronous_commit on wait (the cluster's default is off).
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

	for id, mode := range []pool.Mode{pool.ModeTransaction, pool.ModeSession} {
		t.Run(string(mode), func(t *testing.T) {
			p := startProxy(t, func(c *config.Config) {
				c.Pool.Mode = mode
				c.Pool.PoolSize = 2
			})
			dsn := p.DSN(appUser, appPassword, "indoubt")
			conn := connect(t, dsn)
			for _, sql := range []string{"BEGIN", "SET LOCAL synchronous_commit = on", fmt.Sprintf("INSERT INTO t VALUES (%d)", id)} {
				if _, err := conn.Exec(ctx, sql); err != nil {
					t.Fatalf("%s: %v", sql, err)
				}
			}
			done := make(chan error, 1)
			go func() {
				_, err := conn.Exec(ctx, "COMMIT")
				done <- err
			}()
			var pid int
			waitUntil(t, "COMMIT waits for the standby", func() bool {
				return direct.QueryRow(ctx, "SELECT pid FROM pg_stat_activity WHERE datname = 'indoubt' AND wait_event = 'SyncRep'").Scan(&pid) == nil
			})
			if _, err := direct.Exec(ctx, "SELECT pg_terminate_backend($1)", pid); err != nil {
				t.Fatal(err)
			}
			err := <-done
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || pgErr.Code != "08007" {
				t.Fatalf("COMMIT whose server died after writing it: %v; want SQLSTATE 08007", err)
			}
			var n int
			if err := direct.QueryRow(ctx, "SELECT count(*) FROM t WHERE id = $1", id).Scan(&n); err != nil || n != 1 {
				t.Fatalf("rows committed = %d (%v); the premise (an in-doubt commit that committed) does not hold", n, err)
			}
			next := conn
			if mode == pool.ModeSession {
				next = connect(t, dsn) // the session ended with its server
			}
			if _, err := next.Exec(ctx, "SELECT 1"); err != nil {
				t.Errorf("next request: %v", err)
			}
		})
	}
}

// TestTxModeReplyFlushedWhenMoreFollowsReady: a server that sends
// something after its ReadyForQuery (here a FATAL, in the same packet)
// while its client stays in a transaction: the reply still reaches the
// client at once. The inline reader used to stop there with the reply
// unflushed, and the client waited forever.
func TestTxModeReplyFlushedWhenMoreFollowsReady(t *testing.T) {
	t.Parallel()
	s := startScripted(t, func(c *scriptedConn) {
		if _, ok := c.takeBegin(); !ok {
			return
		}
		c.tx = 'T'
		c.be.Send(&pgproto3.CommandComplete{CommandTag: []byte("BEGIN")})
		c.be.Send(&pgproto3.ReadyForQuery{TxStatus: 'T'})
		c.sendFatal() // one flush: BEGIN's reply and the FATAL in one packet
		_, _ = c.next()
	})
	p := s.proxyTo(t, nil)
	c := connectMsg(t, p.DSN(appUser, appPassword, "fake"))
	c.send(&pgproto3.Query{String: "BEGIN"})
	reply := c.readUntil(isRFQ)
	if errs := errorsIn(reply); len(errs) > 0 {
		t.Fatalf("BEGIN: %v", errs)
	}
}

// TestTxModeServerDiedWhileIdleInTransaction: the server dies (FATAL, then
// closed) while its client sits idle in a transaction and nobody reads
// it. The client's COMMIT then finds it dead before it is sent: nothing of
// the COMMIT ran and the transaction is gone, so the answer is 08006
// "rolled back", not "outcome unknown".
func TestTxModeServerDiedWhileIdleInTransaction(t *testing.T) {
	t.Parallel()
	died := make(chan struct{})
	var once sync.Once
	s := startScripted(t, func(c *scriptedConn) {
		c.serveUntil(queryIs("INSERT INTO t VALUES (1)"), false)
		// Reached on the connection that got the INSERT: answer it, then die.
		_ = c.answer(&pgproto3.Query{String: "INSERT INTO t VALUES (1)"})
		c.sendFatal()
		c.nc.Close()
		once.Do(func() { close(died) })
	})
	p := s.proxyTo(t, nil)
	c := connectMsg(t, p.DSN(appUser, appPassword, "fake"))
	for _, sql := range []string{"BEGIN", "INSERT INTO t VALUES (1)"} {
		if errs := errorsIn(c.simpleQuery(sql)); len(errs) > 0 {
			t.Fatalf("%s: %v", sql, errs)
		}
	}
	<-died // the FATAL and the end of the stream are in pgone's socket
	reply := c.simpleQuery("COMMIT")
	errs := errorsIn(reply)
	if len(errs) != 1 || !strings.Contains(errs[0], `"Code":"08006"`) || !strings.Contains(errs[0], "rolled back") {
		t.Fatalf("COMMIT after the server died idle: want one 08006 rolled back then ReadyForQuery, got %q", reply)
	}
	if errs := errorsIn(c.simpleQuery("SELECT 1")); len(errs) > 0 {
		t.Errorf("next request: %v", errs)
	}
}

// TestTxModeFatalToPgonesOwnStatementStillAnswersRequest: a new server
// gets pgone's settings statement ahead of the client's request, and
// answers it with a FATAL (the server is going away). pgone swallows the
// replies to its own statements, so the FATAL does not reach the client;
// the client's request must still get its error, then ReadyForQuery.
func TestTxModeFatalToPgonesOwnStatementStillAnswersRequest(t *testing.T) {
	t.Parallel()
	s := startScripted(t, func(c *scriptedConn) {
		for {
			msg, err := c.be.Receive()
			if err != nil {
				return
			}
			q, ok := msg.(*pgproto3.Query)
			switch {
			case !ok:
				_ = c.answer(msg)
			case strings.HasPrefix(q.String, "RESET ALL;"):
				c.sendFatal() // pgone's settings statement on a new server
				return
			case strings.Contains(q.String, "pg_catalog.pg_settings") && c.set:
				// The snapshot after the client's SET: it has changed a setting.
				c.be.Send(&pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{{Name: []byte("name")}, {Name: []byte("setting")}}})
				c.be.Send(&pgproto3.DataRow{Values: [][]byte{[]byte("application_name"), []byte("x")}})
				c.be.Send(&pgproto3.CommandComplete{CommandTag: []byte("SELECT 1")})
				c.be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
				_ = c.be.Flush()
				return // and this server goes away: the next request gets a new one
			default:
				c.set = c.set || strings.HasPrefix(q.String, "SET ")
				_ = c.answer(msg)
			}
		}
	})
	p := s.proxyTo(t, nil)
	c := connectMsg(t, p.DSN(appUser, appPassword, "fake"))
	if errs := errorsIn(c.simpleQuery("SET application_name = 'x'")); len(errs) > 0 {
		t.Fatalf("SET: %v", errs)
	}
	reply := c.simpleQuery("SELECT * FROM t")
	errs := errorsIn(reply)
	if len(errs) != 1 || !strings.Contains(errs[0], `"Code":"08006"`) {
		t.Fatalf("request behind pgone's failed settings statement: want one 08006 error then ReadyForQuery, got %q", reply)
	}
}

// TestTxModeLocalizedFatalOnCommit: a server whose lc_messages is not
// English sends FATAL with a localized severity and "FATAL" only in the
// unlocalized field. Answering a COMMIT it is still a FATAL: the client
// gets 08007 (the commit's outcome is unknown), not the server's error as
// if the commit had failed.
func TestTxModeLocalizedFatalOnCommit(t *testing.T) {
	s := startScripted(t, func(c *scriptedConn) {
		c.serveUntil(queryIs("COMMIT"), false)
		c.be.Send(&pgproto3.ErrorResponse{Severity: "ВАЖНО", SeverityUnlocalized: "FATAL", Code: "57P01",
			Message: "terminating connection due to administrator command"})
		_ = c.be.Flush()
	})
	p := s.proxyTo(t, nil)
	c := connectMsg(t, p.DSN(appUser, appPassword, "fake"))
	for _, sql := range []string{"BEGIN", "INSERT INTO t VALUES (1)"} {
		if errs := errorsIn(c.simpleQuery(sql)); len(errs) > 0 {
			t.Fatalf("%s: %v", sql, errs)
		}
	}
	c.send(&pgproto3.Query{String: "COMMIT"})
	reply := c.readUntil(isRFQ)
	errs := errorsIn(reply)
	if len(errs) != 1 || !strings.Contains(errs[0], `"Code":"08007"`) {
		t.Fatalf("COMMIT answered by a localized FATAL: got %q; want one 08007 error then ReadyForQuery", reply)
	}
}

// extendedQuery is sql run by the extended protocol in one request: its
// unnamed statement and portal, then Sync.
func extendedQuery(sql string) []pgproto3.FrontendMessage {
	return []pgproto3.FrontendMessage{
		&pgproto3.Parse{Query: sql}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{},
	}
}

// isSyncMsg reports whether m is a Sync: a request dies at it.
func isSyncMsg(m pgproto3.FrontendMessage) bool { _, ok := m.(*pgproto3.Sync); return ok }

package proxy_test

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgone/pgone/config"
	"github.com/pgone/pgone/pool"
	"github.com/pgone/pgone/proxy"
)

// TestSessionModeServerLostReportsOutcome: session mode tells a lost
// server connection by transaction mode's rules (lost.go), in one FATAL,
// after which the client's connection ends. A request that may have
// committed (COMMIT, COMMIT PREPARED, a write or call outside a block)
// gets 08007, also when the server answered a commit with FATAL; one that
// cannot have committed gets 08006; a FATAL the server sent while a
// statement that commits by itself ran (so it was aborted) is forwarded.
// Session mode said 08006 "server connection lost" (or forwarded the
// server's FATAL) for every one. The scripted server dies right after the
// request reaches it, which a real server cannot be made to do on cue
// (TestInDoubtCommitOnRealServer has a real one).
func TestSessionModeServerLostReportsOutcome(t *testing.T) {
	t.Parallel()
	query := func(sql string) []pgproto3.FrontendMessage {
		return []pgproto3.FrontendMessage{&pgproto3.Query{String: sql}}
	}
	// A text over maxTrackedText is forwarded without being read: what it
	// may do is unknown, so its loss is reported as outcome unknown.
	long := "SELECT '" + strings.Repeat("x", proxy.MaxTrackedText) + "'"
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
			send: query("COMMIT"), dies: queryIs("COMMIT"), code: "08007", text: "may or may not have committed"},
		{name: "autocommit write", send: query("INSERT INTO t VALUES (1)"),
			dies: queryIs("INSERT INTO t VALUES (1)"), code: "08007", text: "may or may not have committed"},
		{name: "commit prepared", send: query("COMMIT PREPARED 'g1'"),
			dies: queryIs("COMMIT PREPARED 'g1'"), code: "08007", text: "may or may not have committed"},
		{name: "write and commit in one text", before: []string{"BEGIN"},
			send: query("INSERT INTO t VALUES (1); COMMIT"), dies: queryIs("INSERT INTO t VALUES (1); COMMIT"),
			code: "08007", text: "may or may not have committed"},
		{name: "extended write", send: extendedQuery("INSERT INTO t VALUES ($1)"), dies: isSyncMsg,
			code: "08007", text: "may or may not have committed"},
		{name: "commit answered by FATAL", before: []string{"BEGIN", "INSERT INTO t VALUES (1)"},
			send: query("COMMIT"), dies: queryIs("COMMIT"), fatal: true,
			code: "08007", text: "terminating connection due to administrator command"},
		{name: "autocommit read", send: query("SELECT * FROM t"),
			dies: queryIs("SELECT * FROM t"), code: "08006", text: "server connection lost"},
		{name: "extended read", send: extendedQuery("SELECT * FROM t WHERE id = $1"), dies: isSyncMsg,
			code: "08006", text: "server connection lost"},
		{name: "write inside a transaction", before: []string{"BEGIN"},
			send: query("UPDATE t SET v = 2"), dies: queryIs("UPDATE t SET v = 2"),
			code: "08006", text: "server connection lost"},
		{name: "rollback", before: []string{"BEGIN", "UPDATE t SET v = 2"},
			send: query("ROLLBACK"), dies: queryIs("ROLLBACK"), code: "08006", text: "server connection lost"},
		{name: "read over the tracked length", send: query(long), dies: queryIs(long),
			code: "08007", text: "may or may not have committed"},
		{name: "extended read over the tracked length", send: extendedQuery(long), dies: isSyncMsg,
			code: "08007", text: "may or may not have committed"},
		// PostgreSQL's FATAL while a statement runs aborts it: its own error stands.
		{name: "autocommit write answered by FATAL", send: query("INSERT INTO t VALUES (1)"),
			dies: queryIs("INSERT INTO t VALUES (1)"), fatal: true, code: "57P01", text: "administrator command"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := startScripted(t, func(c *scriptedConn) { c.serveUntil(tc.dies, tc.fatal) })
			p := s.proxyTo(t, func(c *config.Config) { c.Pool.Mode = pool.ModeSession })
			c := connectMsg(t, p.DSN(appUser, appPassword, "fake"))
			for _, sql := range tc.before {
				if errs := errorsIn(c.simpleQuery(sql)); len(errs) > 0 {
					t.Fatalf("%s: %v", sql, errs)
				}
			}
			c.send(tc.send...)
			var errs []*pgproto3.ErrorResponse
			for {
				m, err := c.receive(ioTimeout)
				if err != nil {
					if !isClosed(err) {
						t.Fatalf("after %d errors: %v, want the connection closed", len(errs), err)
					}
					break
				}
				switch m := m.(type) {
				case *pgproto3.ErrorResponse:
					errs = append(errs, m)
				case *pgproto3.ReadyForQuery:
					t.Fatalf("ReadyForQuery after the server died; want one FATAL and the end")
				}
			}
			if len(errs) != 1 {
				t.Fatalf("want exactly one error, got %d", len(errs))
			}
			e := errs[0]
			if e.Severity != "FATAL" || e.Code != tc.code || !strings.Contains(e.Message+" "+e.Detail, tc.text) {
				t.Errorf("error = %s %s %q (%q); want FATAL %s saying %q", e.Severity, e.Code, e.Message, e.Detail, tc.code, tc.text)
			}
		})
	}
}

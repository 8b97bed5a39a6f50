package proxy_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
)

// TestTxModeUnnamedStatementAcrossServers: without the split, a client
// parses its unnamed statement A on server S1, then replaces it on S2 (S1
// held by another client): with a new unnamed statement B, a Close of the
// unnamed statement, or a simple Query (which drops it). Then it binds the
// unnamed statement on S1 (S2 held). S1 still holds A, which the client no
// longer has: B must run there (parsed again), or the client gets 26000
// as from PostgreSQL; never A.
func TestTxModeUnnamedStatementAcrossServers(t *testing.T) {
	t.Parallel()
	p := txProxy(t, 2, nil)
	for _, tc := range []struct {
		name    string
		replace []pgproto3.FrontendMessage
		want    string // B's row (the server's pid), or the error's SQLSTATE
	}{
		{"parse", []pgproto3.FrontendMessage{&pgproto3.Parse{Query: "SELECT pg_backend_pid()"}, &pgproto3.Describe{ObjectType: 'S'}, &pgproto3.Sync{}}, "pid"},
		// pgone answers a lone Close itself; with a Parse of a statement no
		// server has seen, the Close goes to S2.
		{"close", []pgproto3.FrontendMessage{&pgproto3.Close{ObjectType: 'S'}, &pgproto3.Sync{}}, "26000"},
		{"close on a server", []pgproto3.FrontendMessage{&pgproto3.Close{ObjectType: 'S'}, &pgproto3.Parse{Name: "n", Query: "SELECT 'unnamed close'"}, &pgproto3.Sync{}}, "26000"},
		{"query", []pgproto3.FrontendMessage{&pgproto3.Query{String: "SELECT 1"}}, "26000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := connectMsg(t, p.AppDSN())
			h := newServerHolders(t, p.AppDSN())
			x.send(&pgproto3.Parse{Query: "SELECT pg_backend_pid(), $1::int"},
				&pgproto3.Bind{Parameters: [][]byte{[]byte("7")}}, &pgproto3.Execute{}, &pgproto3.Sync{})
			rows, _ := unnamedRows(t, x)
			s1 := rows[0][0]
			// Hold S1, so that x's next request runs on S2.
			h1, pid := h.hold()
			if fmt.Sprint(pid) != s1 {
				h2, _ := h.hold() // S1, the only idle server
				h.release(h1)
				h1 = h2
			}
			x.send(tc.replace...)
			if _, code := unnamedRows(t, x); code != "" {
				t.Fatalf("replacing A on S2: %s", code)
			}
			// Hold S2 and free S1, so that x's next request runs on S1.
			h.hold()
			h.release(h1)
			x.send(&pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
			rows, code := unnamedRows(t, x)
			got, want := code, tc.want
			if want == "pid" {
				got, want = fmt.Sprint(rows), fmt.Sprintf("[[%s]]", s1)
			}
			if got != want {
				t.Errorf("Bind of the unnamed statement on S1 (pid %s): got rows %q, error %q; want %s", s1, rows, code, want)
			}
		})
	}
}

// serverHolders hold servers of a transaction-mode pool in transactions.
// They use named statements only: a simple Query would drop the server's
// unnamed statement.
type serverHolders struct {
	t     *testing.T
	conns []*pgx.Conn
}

func newServerHolders(t *testing.T, dsn string) *serverHolders {
	h := &serverHolders{t: t, conns: []*pgx.Conn{connect(t, dsn), connect(t, dsn)}}
	for _, c := range h.conns {
		for _, sql := range []string{"BEGIN", "COMMIT"} {
			if _, err := c.Prepare(testCtx(t), sql, sql); err != nil {
				t.Fatal(err)
			}
		}
	}
	return h
}

// hold begins a transaction on a free holder and returns it and its
// server's pid.
func (h *serverHolders) hold() (*pgx.Conn, int) {
	h.t.Helper()
	ctx := testCtx(h.t)
	for _, c := range h.conns {
		if c.PgConn().TxStatus() != 'I' {
			continue
		}
		var pid int
		if _, err := c.Exec(ctx, "BEGIN"); err != nil {
			h.t.Fatal(err)
		}
		if err := c.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
			h.t.Fatal(err)
		}
		return c, pid
	}
	h.t.Fatal("no free holder")
	return nil, 0
}

func (h *serverHolders) release(c *pgx.Conn) {
	h.t.Helper()
	if _, err := c.Exec(testCtx(h.t), "COMMIT"); err != nil {
		h.t.Fatal(err)
	}
}

// unnamedRows reads up to ReadyForQuery and returns the rows as text and
// the SQLSTATE of an error ("" if none).
func unnamedRows(t *testing.T, c *msgConn) (rows [][]string, code string) {
	t.Helper()
	for {
		m, err := c.receive(ioTimeout)
		if err != nil {
			t.Fatalf("after rows %q: %v", rows, err)
		}
		switch m := m.(type) {
		case *pgproto3.DataRow:
			var row []string
			for _, v := range m.Values {
				row = append(row, string(v))
			}
			rows = append(rows, row)
		case *pgproto3.ErrorResponse:
			code = m.Code
		case *pgproto3.ReadyForQuery:
			return rows, code
		}
	}
}

// TestSplitPgxDescribeExecIsolation: pgx's describe_exec mode through the
// split, several clients at once, each changing its unnamed statement's
// shape (parameters and columns) every query. pgx parses and describes
// the unnamed statement in one request (nothing runs: the primary) and
// binds it in the next (a read: the replica), so each query's unnamed
// statement is parsed on one server and run on another. A server that
// still holds the client's previous unnamed statement must not run it in
// place of the current one: every client gets exactly its own rows, with
// no error.
func TestSplitPgxDescribeExecIsolation(t *testing.T) {
	t.Parallel()
	const db = "splitunnamed"
	p, _ := readySplit(t, db, nil)
	const clients, iterations = 4, 30
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for c := 0; c < clients; c++ {
		conn := connectMode(t, p.DSN(appUser, appPassword, db), pgx.QueryExecModeDescribeExec)
		wg.Add(1)
		go func(c int, conn *pgx.Conn) {
			defer wg.Done()
			errs <- describeExecQueries(t, conn, c, iterations)
		}(c, conn)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// describeExecQueries runs client c's queries: at iteration it, a
// statement of c+1+it%3 parameters and as many columns, column j being
// it+j+1000*c. It returns the first error or wrong row.
func describeExecQueries(t *testing.T, conn *pgx.Conn, c, iterations int) error {
	ctx := testCtx(t)
	for it := 0; it < iterations; it++ {
		n := c + 1 + it%3
		cols := make([]string, n)
		args := make([]any, n)
		want := make([]string, n)
		for j := range cols {
			cols[j] = fmt.Sprintf("$%d::int + %d", j+1, 1000*c)
			args[j] = it + j
			want[j] = fmt.Sprint(it + j + 1000*c)
		}
		rows, err := conn.Query(ctx, "SELECT "+strings.Join(cols, ", "), args...)
		if err != nil {
			return fmt.Errorf("client %d iteration %d: %w", c, it, err)
		}
		vals, err := pgx.CollectExactlyOneRow(rows, func(r pgx.CollectableRow) ([]any, error) { return r.Values() })
		if err != nil {
			return fmt.Errorf("client %d iteration %d: %w", c, it, err)
		}
		if got := fmt.Sprint(vals...); len(vals) != n || got != strings.Join(want, " ") {
			return fmt.Errorf("client %d iteration %d: got %v, want %v: another statement ran", c, it, vals, want)
		}
	}
	return nil
}

// TestTxModeUnnamedStatementAfterStartupOnServer: a client whose startup
// parameters the server does not report logs in on a server, whose
// unnamed statement its startup queries drop. Another client with the
// same settings that parsed its unnamed statement on that server in its
// previous request must get it parsed again, not 26000.
func TestTxModeUnnamedStatementAfterStartupOnServer(t *testing.T) {
	t.Parallel()
	p := txProxy(t, 1, nil)
	dsn := p.AppDSN() + " statement_timeout=0"
	a := connectMsg(t, dsn)
	a.send(&pgproto3.Parse{Query: "SELECT 'a', $1::int"}, &pgproto3.Describe{ObjectType: 'S'}, &pgproto3.Sync{})
	if _, code := unnamedRows(t, a); code != "" {
		t.Fatalf("Parse+Describe: %s", code)
	}
	connectMsg(t, dsn) // logs in on the pool's only server
	a.send(&pgproto3.Bind{Parameters: [][]byte{[]byte("7")}}, &pgproto3.Execute{}, &pgproto3.Sync{})
	if rows, code := unnamedRows(t, a); fmt.Sprint(rows) != "[[a 7]]" || code != "" {
		t.Errorf("Bind after another client's login: got rows %q, error %q; want [[a 7]]", rows, code)
	}
}

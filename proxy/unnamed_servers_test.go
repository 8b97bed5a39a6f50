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
// parses its unnamed statement A on server S1, then a new unnamed
// statement B on S2 (S1 held by another client), then binds B on S1 (S2
// held). S1 still holds A, which the client has replaced: B must run
// there (parsed again), not A.
func TestTxModeUnnamedStatementAcrossServers(t *testing.T) {
	t.Parallel()
	p := txProxy(t, 2, nil)
	ctx := testCtx(t)
	x := connectMsg(t, p.AppDSN())
	// The holders use named statements only: a simple Query would drop
	// the server's unnamed statement.
	holders := []*pgx.Conn{connect(t, p.AppDSN()), connect(t, p.AppDSN())}
	for _, h := range holders {
		for _, sql := range []string{"BEGIN", "COMMIT"} {
			if _, err := h.Prepare(ctx, sql, sql); err != nil {
				t.Fatal(err)
			}
		}
	}
	// hold begins a transaction on a free holder and returns it and its
	// server's pid.
	hold := func() (*pgx.Conn, int) {
		for _, h := range holders {
			if h.PgConn().TxStatus() == 'I' {
				var pid int
				if _, err := h.Exec(ctx, "BEGIN"); err != nil {
					t.Fatal(err)
				}
				if err := h.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
					t.Fatal(err)
				}
				return h, pid
			}
		}
		t.Fatal("no free holder")
		return nil, 0
	}
	release := func(h *pgx.Conn) {
		if _, err := h.Exec(ctx, "COMMIT"); err != nil {
			t.Fatal(err)
		}
	}
	x.send(&pgproto3.Parse{Query: "SELECT pg_backend_pid(), $1::int"},
		&pgproto3.Bind{Parameters: [][]byte{[]byte("7")}}, &pgproto3.Execute{}, &pgproto3.Sync{})
	s1 := unnamedRows(t, x)[0][0]
	// Hold S1, so that x's next request runs on S2.
	h1, pid := hold()
	if fmt.Sprint(pid) != s1 {
		h2, _ := hold() // S1, the only idle server
		release(h1)
		h1 = h2
	}
	x.send(&pgproto3.Parse{Query: "SELECT pg_backend_pid()"}, &pgproto3.Describe{ObjectType: 'S'}, &pgproto3.Sync{})
	unnamedRows(t, x)

	// Hold S2 and free S1, so that x's next request runs on S1.
	hold()
	release(h1)
	x.send(&pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
	if got := unnamedRows(t, x); len(got) != 1 || len(got[0]) != 1 || got[0][0] != s1 {
		t.Errorf("Bind of statement B on S1 (pid %s): got rows %q, want [[%s]]", s1, got, s1)
	}
}

// unnamedRows reads up to ReadyForQuery and returns the rows as text; an
// error fails the test.
func unnamedRows(t *testing.T, c *msgConn) (rows [][]string) {
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
			t.Fatalf("ERROR %s: %s", m.Code, m.Message)
		case *pgproto3.ReadyForQuery:
			return rows
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
	replicaDatabase(t, cluster, db)
	p := splitProxy(t, cluster, db, nil)
	waitForReplicaReads(t, connect(t, p.DSN(appUser, appPassword, db)), cluster)
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

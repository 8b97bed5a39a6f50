package proxy_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// Targeted tests of prepared-statement bookkeeping in transaction mode:
// two clients share one pooled server (pool size 1), and every sequence is
// also sent to PostgreSQL directly, where each client has its own backend;
// the replies must be the same message for message.

// stmtStep is what one of two clients sends, and how many ReadyForQuery
// replies end it. raw, when set, is sent as bytes (malformed messages).
type stmtStep struct {
	client int // 0 or 1
	send   []pgproto3.FrontendMessage
	raw    []byte
	rfq    int
}

// step is a stmtStep answered by one ReadyForQuery.
func step(client int, msgs ...pgproto3.FrontendMessage) stmtStep {
	return stmtStep{client: client, send: msgs, rfq: 1}
}

// runStmtSteps runs steps on two connections to dsn and returns the transcript.
func runStmtSteps(t *testing.T, dsn string, steps []stmtStep) []string {
	t.Helper()
	conns := [2]*msgConn{connectMsg(t, dsn), connectMsg(t, dsn)}
	var out []string
	for i, s := range steps {
		c := conns[s.client]
		out = append(out, fmt.Sprintf("-- step %d client %d", i, s.client))
		if s.raw != nil {
			if _, err := c.nc.Write(s.raw); err != nil {
				t.Fatal(err)
			}
		} else {
			c.send(s.send...)
		}
		n := 0
		out = append(out, c.readUntil(func(m pgproto3.BackendMessage) bool {
			if isRFQ(m) {
				n++
			}
			return n == s.rfq
		})...)
	}
	return out
}

// stmtParity runs steps straight on PostgreSQL and through pgone in
// transaction mode with one server connection, compares the transcripts and
// checks that the direct one holds want (substrings, in order), so the case
// exercises what its name says.
func stmtParity(t *testing.T, steps []stmtStep, want ...string) {
	t.Helper()
	p := txProxy(t, 1, nil)
	direct := runStmtSteps(t, directDSN(), steps)
	proxied := runStmtSteps(t, p.AppDSN(), steps)
	all := strings.Join(direct, "\n")
	at := 0
	for _, w := range want {
		i := strings.Index(all[at:], w)
		if i < 0 {
			t.Fatalf("direct transcript lacks %q (in order):\n%s", w, all)
		}
		at += i + len(w)
	}
	if strings.Join(direct, "\n") != strings.Join(proxied, "\n") {
		t.Fatalf("pgone differs from PostgreSQL:\n%s", diffTranscripts(direct, proxied))
	}
}

var (
	syncMsg = &pgproto3.Sync{}
	execMsg = &pgproto3.Execute{}
)

func bindStmt(stmt string, params ...string) *pgproto3.Bind {
	b := &pgproto3.Bind{PreparedStatement: stmt}
	for _, p := range params {
		b.Parameters = append(b.Parameters, []byte(p))
	}
	return b
}

// TestTxModeUnnamedStatementIsolation: a client never runs, describes or
// closes another client's unnamed statement on a shared server, and keeps
// its own across requests as on PostgreSQL.
func TestTxModeUnnamedStatementIsolation(t *testing.T) {
	t.Parallel()
	stmtParity(t, []stmtStep{
		step(0, &pgproto3.Parse{Query: `SELECT 'a'::text AS a`}, syncMsg),
		// b never parsed the unnamed statement: 26000, not a's statement.
		step(1, bindStmt(""), execMsg, syncMsg),
		step(1, &pgproto3.Describe{ObjectType: 'S'}, syncMsg),
		step(0, bindStmt(""), execMsg, syncMsg),
		step(1, &pgproto3.Parse{Query: `SELECT 'b'::text AS b, 2 AS two`}, &pgproto3.Describe{ObjectType: 'S'}, syncMsg),
		step(0, bindStmt(""), &pgproto3.Describe{ObjectType: 'P'}, execMsg, syncMsg),
		step(1, bindStmt(""), execMsg, syncMsg),
		// A simple query destroys the unnamed statement.
		step(0, &pgproto3.Query{String: `SELECT 1`}),
		step(0, bindStmt(""), execMsg, syncMsg),
		step(1, bindStmt(""), execMsg, syncMsg),
		// So does Close; b's is gone, a's too.
		step(1, &pgproto3.Close{ObjectType: 'S'}, syncMsg),
		step(1, &pgproto3.Describe{ObjectType: 'S'}, syncMsg),
		step(0, &pgproto3.Parse{Query: `SELECT $1::int * 3 AS n`}, syncMsg),
		step(0, bindStmt("", "14"), execMsg, syncMsg),
	},
		`"Code":"26000"`, `"Code":"26000"`, `{"text":"a"}`, `ParameterDescription`, `{"text":"a"}`, `{"text":"b"},{"text":"2"}`,
		`"Code":"26000"`, `{"text":"b"}`, `CloseComplete`, `"Code":"26000"`, `{"text":"42"}`)
}

// TestTxModeUnnamedPortalIsolation: an unnamed portal ends with its
// request's implicit transaction, so another client cannot execute it.
func TestTxModeUnnamedPortalIsolation(t *testing.T) {
	t.Parallel()
	stmtParity(t, []stmtStep{
		step(0, &pgproto3.Parse{Query: `SELECT g FROM generate_series(1, 3) g`}, bindStmt(""), &pgproto3.Execute{MaxRows: 1}, syncMsg),
		step(1, &pgproto3.Execute{}, syncMsg),
		step(1, &pgproto3.Describe{ObjectType: 'P'}, syncMsg),
		step(0, &pgproto3.Execute{}, syncMsg),
	}, `PortalSuspended`, `"Code":"34000"`, `"Code":"34000"`, `"Code":"34000"`)
}

// TestTxModeSkippedCloseKeepsServerUsable: an error earlier in a pipeline
// makes the server skip pgone's injected Close and re-Parse of a shared
// statement; the server keeps the statement, and later clients must not
// fail with 42P05 on it. The skipped Parse of the client's own name was
// never created.
func TestTxModeSkippedCloseKeepsServerUsable(t *testing.T) {
	t.Parallel()
	stmtParity(t, []stmtStep{
		step(0, &pgproto3.Parse{Name: "s1", Query: `SELECT 1`}, bindStmt("s1"), execMsg, syncMsg),
		step(1, &pgproto3.Parse{Query: `SELEC 1`}, &pgproto3.Parse{Name: "s2", Query: `SELECT 1`}, bindStmt("s2"), execMsg, syncMsg),
		step(1, bindStmt("s2"), execMsg, syncMsg),
		step(1, &pgproto3.Parse{Name: "s2", Query: `SELECT 1`}, bindStmt("s2"), execMsg, syncMsg),
		step(0, &pgproto3.Parse{Name: "s3", Query: `SELECT 1`}, bindStmt("s3"), execMsg, syncMsg),
		step(0, bindStmt("s1"), execMsg, syncMsg),
	}, `"Code":"42601"`, `prepared statement \"s2\" does not exist`, `{"text":"1"}`, `{"text":"1"}`, `{"text":"1"}`)
}

// TestTxModeSkippedCloseOfClientStatement: a client's Close skipped after
// an error leaves its statement in place, as on PostgreSQL.
func TestTxModeSkippedCloseOfClientStatement(t *testing.T) {
	t.Parallel()
	stmtParity(t, []stmtStep{
		step(0, &pgproto3.Parse{Name: "s1", Query: `SELECT 7`}, bindStmt("s1"), execMsg, syncMsg),
		step(0, &pgproto3.Parse{Query: `SELECT 1/0`}, bindStmt(""), execMsg, &pgproto3.Close{ObjectType: 'S', Name: "s1"}, syncMsg),
		step(1, &pgproto3.Parse{Name: "x", Query: `SELECT 7`}, bindStmt("x"), execMsg, syncMsg),
		step(0, bindStmt("s1"), execMsg, syncMsg),
	}, `{"text":"7"}`, `"Code":"22012"`, `{"text":"7"}`, `{"text":"7"}`)
}

// TestTxModeDuplicateStatementName: a second Parse of an existing name
// fails with 42P05 naming the client's statement, and the first stays.
func TestTxModeDuplicateStatementName(t *testing.T) {
	t.Parallel()
	stmtParity(t, []stmtStep{
		step(0, &pgproto3.Parse{Name: "s1", Query: `SELECT 1`}, syncMsg),
		step(0, &pgproto3.Parse{Name: "s1", Query: `SELECT 2`}, bindStmt("s1"), execMsg, syncMsg),
		step(0, bindStmt("s1"), execMsg, syncMsg),
		step(0, &pgproto3.Parse{Name: "s1", Query: `SELECT 1`}, syncMsg),
		step(1, &pgproto3.Parse{Name: "s1", Query: `SELECT 2`}, bindStmt("s1"), execMsg, syncMsg),
		step(0, &pgproto3.Parse{Name: "s2", Query: `SELECT 3`}, bindStmt("s2"), execMsg,
			&pgproto3.Parse{Name: "s2", Query: `SELECT 4`}, syncMsg),
		step(0, bindStmt("s2"), execMsg, bindStmt("s1"), execMsg, syncMsg),
	}, `prepared statement \"s1\" already exists`, `{"text":"1"}`, `prepared statement \"s1\" already exists`, `{"text":"2"}`,
		`{"text":"3"}`, `prepared statement \"s2\" already exists`, `{"text":"3"}`, `{"text":"1"}`)
}

// TestTxModeDeallocateSQL: SQL DEALLOCATE of a protocol-level statement
// closes the client's statement; an unknown name gets PostgreSQL's 26000.
func TestTxModeDeallocateSQL(t *testing.T) {
	t.Parallel()
	stmtParity(t, []stmtStep{
		step(0, &pgproto3.Parse{Name: "s1", Query: `SELECT 1`}, syncMsg),
		step(0, &pgproto3.Query{String: `DEALLOCATE s1`}),
		step(0, bindStmt("s1"), execMsg, syncMsg),
		step(0, &pgproto3.Query{String: `DEALLOCATE s1`}),
		step(0, &pgproto3.Query{String: `deallocate nosuch`}),
		// b prepares the same text (answered without a server, maybe), and
		// deallocates it with the PREPARE keyword and a quoted name.
		step(1, &pgproto3.Parse{Name: "Mixed", Query: `SELECT 1`}, syncMsg),
		step(1, &pgproto3.Query{String: `DEALLOCATE PREPARE "Mixed";`}),
		step(1, bindStmt("Mixed"), execMsg, syncMsg),
		// In an aborted transaction DEALLOCATE fails and the statement stays.
		step(0, &pgproto3.Parse{Name: "s2", Query: `SELECT 2`}, syncMsg),
		step(0, &pgproto3.Query{String: `BEGIN`}),
		step(0, &pgproto3.Query{String: `SELECT 1/0`}),
		step(0, &pgproto3.Query{String: `DEALLOCATE s2`}),
		step(0, &pgproto3.Query{String: `ROLLBACK`}),
		step(0, bindStmt("s2"), execMsg, syncMsg),
		// The name is free again for a new statement.
		step(0, &pgproto3.Parse{Name: "s1", Query: `SELECT 'again'`}, bindStmt("s1"), execMsg, syncMsg),
	}, `"CommandTag":"DEALLOCATE"`, `prepared statement \"s1\" does not exist`, `prepared statement \"s1\" does not exist`,
		`prepared statement \"nosuch\" does not exist`, `"CommandTag":"DEALLOCATE"`, `prepared statement \"Mixed\" does not exist`,
		`"Code":"25P02"`, `{"text":"2"}`, `{"text":"again"}`)
}

// TestTxModeParseErrorAtOnce: a named Parse+Sync that PostgreSQL rejects
// is rejected at once, not at its first use, and the name stays free.
func TestTxModeParseErrorAtOnce(t *testing.T) {
	t.Parallel()
	stmtParity(t, []stmtStep{
		step(0, &pgproto3.Parse{Name: "s1", Query: `SELEC 1`}, syncMsg),
		step(0, &pgproto3.Parse{Name: "s2", Query: `SELECT * FROM no_such_table_here`}, syncMsg),
		step(0, &pgproto3.Parse{Name: "s1", Query: `SELECT 1`}, syncMsg),
		step(0, bindStmt("s1"), execMsg, bindStmt("s2"), execMsg, syncMsg),
		step(0, &pgproto3.Parse{Query: `SELEC 2`}, syncMsg),
		step(0, bindStmt(""), execMsg, syncMsg),
	}, `"Code":"42601"`, `"Code":"42P01"`, `ParseComplete`, `{"text":"1"}`, `prepared statement \"s2\" does not exist`,
		`"Code":"42601"`, `unnamed prepared statement does not exist`)
}

// parseDeclaring is a Parse frame that declares n parameter types but
// carries only the OIDs given.
func parseDeclaring(name, query string, n uint16, oids ...uint32) []byte {
	body := append([]byte(name), 0)
	body = append(body, query...)
	body = append(body, 0)
	body = binary.BigEndian.AppendUint16(body, n)
	for _, o := range oids {
		body = binary.BigEndian.AppendUint32(body, o)
	}
	frame := []byte{'P'}
	frame = binary.BigEndian.AppendUint32(frame, uint32(4+len(body)))
	return append(frame, body...)
}

// TestTxModeParameterCountErrors: parameter counts that do not match get
// PostgreSQL's 08P01, naming the client's statement.
func TestTxModeParameterCountErrors(t *testing.T) {
	t.Parallel()
	sync := []byte{'S', 0, 0, 0, 4}
	stmtParity(t, []stmtStep{
		step(0, &pgproto3.Parse{Name: "s1", Query: `SELECT $1::int`, ParameterOIDs: []uint32{23}}, syncMsg),
		step(0, bindStmt("s1"), execMsg, syncMsg),
		step(0, &pgproto3.Parse{Name: "s3", Query: `SELECT $1::int`, ParameterOIDs: []uint32{23, 23}}, syncMsg),
		step(0, bindStmt("s3", "1"), execMsg, syncMsg),
		step(0, bindStmt("s1", "1", "2"), execMsg, syncMsg),
		{client: 0, raw: append(parseDeclaring("s2", "SELECT 1", 65535), sync...), rfq: 1},
		{client: 0, raw: append(parseDeclaring("s4", "SELECT $1::int", 2, 23), sync...), rfq: 1},
		step(0, bindStmt("s2"), execMsg, bindStmt("s4"), execMsg, syncMsg),
		step(0, bindStmt("s1", "5"), execMsg, syncMsg),
	}, `bind message supplies 0 parameters, but prepared statement \"s1\" requires 1`,
		`bind message supplies 1 parameters, but prepared statement \"s3\" requires 2`,
		`bind message supplies 2 parameters, but prepared statement \"s1\" requires 1`,
		`"Code":"08P01"`, `"Code":"08P01"`, `prepared statement \"s2\" does not exist`, `{"text":"5"}`)
}

// TestTxModePgxDescribeExecIsolation: pgx's describe_exec mode prepares
// the unnamed statement in one round trip and runs it in the next; clients
// sharing one server must each run their own statement.
func TestTxModePgxDescribeExecIsolation(t *testing.T) {
	t.Parallel()
	p := txProxy(t, 1, nil)
	const clients, iterations = 4, 60
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for c := 0; c < clients; c++ {
		conn := connectMode(t, p.AppDSN(), pgx.QueryExecModeDescribeExec)
		wg.Add(1)
		go func(c int, conn *pgx.Conn) {
			defer wg.Done()
			ctx := testCtx(t)
			// Each client's statement has its own text and its own number
			// of parameters and columns.
			cols := make([]string, c+1)
			args := make([]any, c+1)
			for i := range cols {
				cols[i] = fmt.Sprintf("$%d::int + %d", i+1, c*100)
			}
			sql := "SELECT " + strings.Join(cols, ", ")
			for it := 0; it < iterations; it++ {
				for i := range args {
					args[i] = it + i
				}
				rows, err := conn.Query(ctx, sql, args...)
				if err != nil {
					errs <- fmt.Errorf("client %d: %w", c, err)
					return
				}
				vals, err := pgx.CollectExactlyOneRow(rows, func(r pgx.CollectableRow) ([]any, error) { return r.Values() })
				if err != nil {
					errs <- fmt.Errorf("client %d iteration %d: %w", c, it, err)
					return
				}
				if len(vals) != c+1 || fmt.Sprint(vals[0]) != strconv.Itoa(it+c*100) {
					errs <- fmt.Errorf("client %d iteration %d: got %v, another client's statement?", c, it, vals)
					return
				}
			}
		}(c, conn)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestTxModePgxBatchBeginErrorLeavesServerUsable is pgx's
// TestConnSendBatchBeginTxBeginError in cache_statement mode on a server
// that already holds the batch's statement: the failed BEGIN makes the
// server skip pgone's Close and re-Parse, and fresh clients must still be
// able to run that statement on the server.
func TestTxModePgxBatchBeginErrorLeavesServerUsable(t *testing.T) {
	t.Parallel()
	p := txProxy(t, 1, nil)
	ctx := testCtx(t)
	mode := pgx.QueryExecModeCacheStatement
	var n int
	if err := connectMode(t, p.AppDSN(), mode).QueryRow(ctx, "select 1").Scan(&n); err != nil {
		t.Fatal(err)
	}
	conn := connectMode(t, p.AppDSN(), mode)
	batch := &pgx.Batch{}
	batch.BeginTx(pgx.TxOptions{BeginQuery: "begin garbage"})
	batch.Queue("select 1")
	br := conn.SendBatch(ctx, batch)
	var pgErr *pgconn.PgError
	if err := br.Close(); !errors.As(err, &pgErr) || pgErr.Code != "42601" {
		t.Fatalf("batch with a bad BEGIN: got %v, want 42601", err)
	}
	for i := 0; i < 3; i++ {
		if err := connectMode(t, p.AppDSN(), mode).QueryRow(ctx, "select 1").Scan(&n); err != nil {
			t.Fatalf("fresh client %d after the failed batch: %v", i, err)
		}
	}
	if err := conn.QueryRow(ctx, "select 1").Scan(&n); err != nil {
		t.Fatalf("the batch's client afterwards: %v", err)
	}
}

// TestTxModePgxPrepareIdempotency is pgx's TestPrepareIdempotency: the same
// name and text again is fine (pgx does not resend it), other text is 42P05.
func TestTxModePgxPrepareIdempotency(t *testing.T) {
	t.Parallel()
	p := txProxy(t, 1, nil)
	ctx := testCtx(t)
	conn := p.Connect(t)
	for i := 0; i < 2; i++ {
		if _, err := conn.Prepare(ctx, "test", "select 42::integer"); err != nil {
			t.Fatal(err)
		}
		var n int32
		if err := conn.QueryRow(ctx, "test").Scan(&n); err != nil || n != 42 {
			t.Fatalf("run %d: %v %d", i, err, n)
		}
	}
	_, err := conn.Prepare(ctx, "test", "select 'fail'::varchar")
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "42P05" || pgErr.Message != `prepared statement "test" already exists` {
		t.Fatalf("second Prepare with other text: got %v, want 42P05 naming \"test\"", err)
	}
	var n int32
	if err := conn.QueryRow(ctx, "select 42::integer").Scan(&n); err != nil || n != 42 {
		t.Fatalf("after the failed Prepare: %v %d", err, n)
	}
}

// TestTxModePgxDeallocateSQL is pgx's
// TestDeallocateMissingPreparedStatementStillClearsFromPreparedStatementMap.
func TestTxModePgxDeallocateSQL(t *testing.T) {
	t.Parallel()
	p := txProxy(t, 1, nil)
	ctx := testCtx(t)
	conn := p.Connect(t)
	if _, err := conn.Prepare(ctx, "ps", "select $1::text"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "deallocate ps"); err != nil {
		t.Fatalf("deallocate ps: %v", err)
	}
	if err := conn.Deallocate(ctx, "ps"); err != nil {
		t.Fatalf("Deallocate after SQL deallocate: %v", err)
	}
	if _, err := conn.Prepare(ctx, "ps", "select $1::text, $2::text"); err != nil {
		t.Fatal(err)
	}
	var s1, s2 string
	if err := conn.QueryRow(ctx, "ps", "hello", "world").Scan(&s1, &s2); err != nil || s1 != "hello" || s2 != "world" {
		t.Fatalf("got %q %q %v", s1, s2, err)
	}
}

// TestTxModeClientCannotReachSharedStatements: a client that learns the
// server-side name of another client's statement (pg_prepared_statements
// on the shared server) can neither run, describe, close nor deallocate
// it: to it the name does not exist, as on PostgreSQL.
func TestTxModeClientCannotReachSharedStatements(t *testing.T) {
	t.Parallel()
	p := txProxy(t, 1, nil)
	a, b := connectMsg(t, p.AppDSN()), connectMsg(t, p.AppDSN())
	a.send(&pgproto3.Parse{Name: "s1", Query: `SELECT 'secret'`}, bindStmt("s1"), execMsg, syncMsg)
	a.readUntil(isRFQ)
	var shared string
	b.send(&pgproto3.Query{String: `SELECT name FROM pg_prepared_statements WHERE statement = 'SELECT ''secret'''`})
	b.readUntil(func(m pgproto3.BackendMessage) bool {
		if dr, ok := m.(*pgproto3.DataRow); ok {
			shared = string(dr.Values[0])
		}
		return isRFQ(m)
	})
	if !strings.HasPrefix(shared, "pgone_") {
		t.Fatalf("no shared statement of pgone's on the server: %q", shared)
	}
	notExist := `prepared statement \"` + shared + `\" does not exist`
	for _, msgs := range [][]pgproto3.FrontendMessage{
		{bindStmt(shared), execMsg, syncMsg},
		{&pgproto3.Describe{ObjectType: 'S', Name: shared}, syncMsg},
		{&pgproto3.Query{String: `DEALLOCATE ` + shared}},
	} {
		b.send(msgs...)
		if got := strings.Join(b.readUntil(isRFQ), "\n"); !strings.Contains(got, notExist) {
			t.Fatalf("%T on %s: got\n%s\nwant %s", msgs[0], shared, got, notExist)
		}
	}
	b.send(&pgproto3.Close{ObjectType: 'S', Name: shared}, syncMsg)
	b.readUntil(isRFQ)
	a.send(bindStmt("s1"), execMsg, syncMsg)
	if got := strings.Join(a.readUntil(isRFQ), "\n"); !strings.Contains(got, `{"text":"secret"}`) {
		t.Fatalf("a's statement after b's Close of its server-side name:\n%s", got)
	}
}

// TestTxModeStatementsPipelined: the same bookkeeping when a client sends
// several requests before reading any reply, so pgone renders each before
// the server has answered the ones before it.
func TestTxModeStatementsPipelined(t *testing.T) {
	t.Parallel()
	stmtParity(t, []stmtStep{
		step(0, &pgproto3.Parse{Name: "s1", Query: `SELECT 1`}, bindStmt("s1"), execMsg, syncMsg),
		{client: 1, rfq: 5, send: []pgproto3.FrontendMessage{
			&pgproto3.Parse{Query: `SELEC 1`}, &pgproto3.Parse{Name: "s2", Query: `SELECT 1`}, syncMsg,
			bindStmt(""), execMsg, syncMsg,
			bindStmt("s2"), execMsg, syncMsg,
			&pgproto3.Parse{Name: "s2", Query: `SELECT 1`}, &pgproto3.Parse{Query: `SELECT 'b'`}, syncMsg,
			bindStmt(""), execMsg, bindStmt("s2"), execMsg, syncMsg,
		}},
		{client: 0, rfq: 4, send: []pgproto3.FrontendMessage{
			&pgproto3.Parse{Name: "s3", Query: `SELECT 3`}, syncMsg,
			&pgproto3.Query{String: `DEALLOCATE s3`},
			bindStmt("s3"), execMsg, syncMsg,
			bindStmt("s1"), execMsg, syncMsg,
		}},
		step(1, bindStmt(""), execMsg, syncMsg),
		// Flush without Sync: the span stays open, nothing to wait for.
		{client: 0, rfq: 2, send: []pgproto3.FrontendMessage{
			&pgproto3.Parse{Name: "s5", Query: `SELECT 5`}, &pgproto3.Flush{},
			bindStmt("s5"), execMsg, &pgproto3.Flush{}, syncMsg,
			&pgproto3.Parse{Name: "s6", Query: `SELECT 6`}, syncMsg,
			bindStmt("s6"), execMsg, &pgproto3.Flush{},
		}},
		step(0, syncMsg),
	}, `"Code":"42601"`, `unnamed prepared statement does not exist`, `prepared statement \"s2\" does not exist`,
		`{"text":"b"}`, `{"text":"1"}`, `"CommandTag":"DEALLOCATE"`, `prepared statement \"s3\" does not exist`, `{"text":"1"}`, `{"text":"b"}`,
		`{"text":"5"}`, `{"text":"6"}`)
}

// TestTxModeDeallocateSQLPrepared: SQL PREPARE pins the client to its
// server, so DEALLOCATE of a SQL-prepared name reaches that server as it
// is; protocol-level statements of the same client are still translated.
func TestTxModeDeallocateSQLPrepared(t *testing.T) {
	t.Parallel()
	stmtParity(t, []stmtStep{
		step(0, &pgproto3.Query{String: `PREPARE q AS SELECT 'sql'`}),
		step(0, &pgproto3.Query{String: `EXECUTE q`}),
		step(0, &pgproto3.Parse{Name: "s1", Query: `SELECT 'protocol'`}, syncMsg),
		step(0, &pgproto3.Query{String: `DEALLOCATE q`}),
		step(0, &pgproto3.Query{String: `EXECUTE q`}),
		step(0, &pgproto3.Query{String: `DEALLOCATE PREPARE q`}),
		step(0, bindStmt("s1"), execMsg, syncMsg),
		step(0, &pgproto3.Query{String: `DEALLOCATE s1`}),
		step(0, bindStmt("s1"), execMsg, syncMsg),
	}, `{"text":"sql"}`, `"CommandTag":"DEALLOCATE"`, `prepared statement \"q\" does not exist`, `prepared statement \"q\" does not exist`,
		`{"text":"protocol"}`, `"CommandTag":"DEALLOCATE"`, `prepared statement \"s1\" does not exist`)
}

// TestTxModeLargeUnnamedStatement: pgone keeps no copy of an unnamed
// statement over 1 MiB, which still works in its request and in its
// transaction, where the server stays the client's.
func TestTxModeLargeUnnamedStatement(t *testing.T) {
	t.Parallel()
	big := `SELECT length('` + strings.Repeat("x", 1<<20+10) + `')`
	stmtParity(t, []stmtStep{
		step(0, &pgproto3.Parse{Query: big}, bindStmt(""), execMsg, syncMsg),
		step(0, &pgproto3.Query{String: `BEGIN`}),
		step(0, &pgproto3.Parse{Query: big}, syncMsg),
		step(0, bindStmt(""), execMsg, syncMsg),
		step(0, &pgproto3.Query{String: `COMMIT`}),
	}, `{"text":"1048586"}`, `{"text":"1048586"}`)
}

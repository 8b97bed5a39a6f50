package proxy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgone/pgone/config"
	"github.com/pgone/pgone/pool"
)

// allExecModes are pgx's query execution modes: the default statement
// cache and the other extended-protocol modes, and the simple protocol.
var allExecModes = []pgx.QueryExecMode{
	pgx.QueryExecModeCacheStatement,
	pgx.QueryExecModeCacheDescribe,
	pgx.QueryExecModeDescribeExec,
	pgx.QueryExecModeExec,
	pgx.QueryExecModeSimpleProtocol,
}

// connectMode opens a pgx connection whose queries use mode by default.
func connectMode(t testing.TB, dsn string, mode pgx.QueryExecMode) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.DefaultQueryExecMode = mode
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("connect %q: %v", dsn, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// execOnPrimary runs sql on appdb straight on the primary, as app.
func execOnPrimary(t testing.TB, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgconn.Connect(ctx, directDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, sql).ReadAll(); err != nil {
		t.Fatalf("direct %q: %v", sql, err)
	}
}

// outcomeCode returns the SQLSTATE of err, or its text when it is not a
// PostgreSQL error, so outcomes can be compared.
func outcomeCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return err.Error()
}

func requireConnUsable(t testing.TB, conn *pgx.Conn) {
	t.Helper()
	var n int
	if err := conn.QueryRow(testCtx(t), "SELECT 7").Scan(&n); err != nil || n != 7 {
		t.Fatalf("connection not usable: %d, %v", n, err)
	}
}

// scanSingle runs sql with args and scans its single value into a T.
func scanSingle[T any](t *testing.T, conn *pgx.Conn, sql string, args ...any) T {
	t.Helper()
	var v T
	if err := conn.QueryRow(testCtx(t), sql, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return v
}

// roundTripVia sends arg as the parameter of sql through pgone and directly,
// and checks both scan back equal to each other and to want.
func roundTripVia[T any](t *testing.T, viaPgone, direct *pgx.Conn, sql string, arg any, want T, eq func(a, b T) bool) {
	t.Helper()
	got := scanSingle[T](t, viaPgone, sql, arg)
	ref := scanSingle[T](t, direct, sql, arg)
	if !eq(got, ref) {
		t.Errorf("%s: pgone returned %s, PostgreSQL directly %s", sql, abbrevValue(got), abbrevValue(ref))
	}
	if !eq(got, want) {
		t.Errorf("%s: got %s, want %s", sql, abbrevValue(got), abbrevValue(want))
	}
}

func abbrevValue(v any) string {
	s := fmt.Sprintf("%#v", v)
	if len(s) > 200 {
		s = s[:200] + fmt.Sprintf("... (%d chars)", len(s))
	}
	return s
}

func reflectEqual[T any](a, b T) bool { return reflect.DeepEqual(a, b) }

func TestPgxTypesRoundTrip(t *testing.T) {
	t.Parallel()
	p := startProxy(t, nil)

	rng := rand.New(rand.NewPCG(1, 2))
	large := make([]byte, 5<<20)
	medium := large[:256<<10]
	for i := range large {
		large[i] = byte(rng.Uint32())
	}
	small := make([]byte, 256)
	for i := range small {
		small[i] = byte(i)
	}
	const text = "héllo wörld ✓ tab\t newline\n quote' dquote\" backslash\\ \x01"
	const jsonText = `{"b": [1, 2.50, null, "x\"y"], "a": {"nested": true}}`
	var jsonValue map[string]any
	if err := json.Unmarshal([]byte(jsonText), &jsonValue); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2024, 2, 29, 23, 59, 58, 123456000, time.UTC)
	a, b := "a,b", `"quoted" {brace}`

	for _, mode := range allExecModes {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			pc := connectMode(t, p.AppDSN(), mode)
			dc := connectMode(t, directDSN(), mode)

			roundTripVia(t, pc, dc, "SELECT $1::int2", int16(math.MinInt16), int16(math.MinInt16), reflectEqual)
			roundTripVia(t, pc, dc, "SELECT $1::int4", int32(math.MinInt32), int32(math.MinInt32), reflectEqual)
			roundTripVia(t, pc, dc, "SELECT $1::int8", int64(math.MaxInt64), int64(math.MaxInt64), reflectEqual)
			roundTripVia(t, pc, dc, "SELECT $1::float8", math.Pi, math.Pi, reflectEqual)
			roundTripVia(t, pc, dc, "SELECT $1::bool", true, true, reflectEqual)
			for _, n := range []string{"-12345678901234567890.000123456789", "0.000000000000000000000000000001", "NaN", "42"} {
				roundTripVia(t, pc, dc, "SELECT $1::numeric::text", n, n, reflectEqual)
				roundTripVia(t, pc, dc, "SELECT $1::numeric", n, n, reflectEqual)
			}
			roundTripVia(t, pc, dc, "SELECT $1::text", text, text, reflectEqual)
			roundTripVia(t, pc, dc, "SELECT $1::bytea", small, small, bytes.Equal)
			roundTripVia(t, pc, dc, "SELECT $1::bytea", medium, medium, bytes.Equal)
			if mode == pgx.QueryExecModeCacheStatement || mode == pgx.QueryExecModeSimpleProtocol {
				// Binary and hex text: exact bytes back are proof enough,
				// and skipping the direct run keeps this fast under -race.
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				defer cancel()
				var got []byte
				if err := pc.QueryRow(ctx, "SELECT $1::bytea", large).Scan(&got); err != nil || !bytes.Equal(got, large) {
					t.Errorf("5 MB bytea came back as %d different bytes (%v)", len(got), err)
				}
			}
			roundTripVia(t, pc, dc, "SELECT $1::timestamptz", at, at, time.Time.Equal)
			roundTripVia(t, pc, dc, "SELECT $1::json", jsonText, jsonText, reflectEqual)
			roundTripVia(t, pc, dc, "SELECT $1::jsonb", jsonText, jsonValue, reflectEqual)
			roundTripVia(t, pc, dc, "SELECT $1::int4[]", []int32{1, -2, 3}, []int32{1, -2, 3}, reflectEqual)
			roundTripVia(t, pc, dc, "SELECT $1::int8[][]", "{{1,2},{3,4}}", [][]int64{{1, 2}, {3, 4}}, reflectEqual)
			roundTripVia(t, pc, dc, "SELECT $1::text[]", []*string{&a, nil, &b}, []*string{&a, nil, &b}, reflectEqual)
			roundTripVia(t, pc, dc, "SELECT $1::int4", nil, (*int32)(nil), reflectEqual)
			roundTripVia(t, pc, dc, "SELECT $1::text", nil, (*string)(nil), reflectEqual)

			// Values made by the server, several per row, NULL among them.
			const sql = `SELECT 1::int2, 2::int4, 3::int8, 4.5::numeric, 'six'::text, '\x0708'::bytea,
				'2001-02-03 04:05:06.789+00'::timestamptz, '{"k": 9}'::json, '{"k": 10}'::jsonb,
				ARRAY[11, NULL, 13]::int4[], NULL::text`
			rowVia := func(c *pgx.Conn) []any {
				rows, err := c.Query(testCtx(t), sql)
				if err != nil {
					t.Fatal(err)
				}
				vals, err := pgx.CollectExactlyOneRow(rows, func(r pgx.CollectableRow) ([]any, error) { return r.Values() })
				if err != nil {
					t.Fatal(err)
				}
				return vals
			}
			if got, want := rowVia(pc), rowVia(dc); !reflect.DeepEqual(got, want) {
				t.Errorf("row of server-made values: pgone %#v, PostgreSQL directly %#v", got, want)
			}
		})
	}
}

// TestPgxResultFormats asks for text, binary and mixed result formats and
// compares every byte and field description with PostgreSQL's own answer.
func TestPgxResultFormats(t *testing.T) {
	t.Parallel()
	p := startProxy(t, nil)
	pc := connect(t, p.AppDSN()).PgConn()
	dc := connect(t, directDSN()).PgConn()
	const sql = `SELECT $1::int4 AS i4, 2::int2, 3::int8, 1.25::numeric, 'text'::text,
		decode(repeat('00ff', 524288), 'hex') AS big, '2020-01-01 00:00:00+00'::timestamptz,
		'{"a": 1}'::jsonb, ARRAY['x', NULL]::text[], NULL::int4, true, 'e3b0c442-98fc-1c14-9afb-f4c8996fb924'::uuid`
	const ncols = 12
	mixed := make([]int16, ncols)
	for i := range mixed {
		mixed[i] = int16(i % 2)
	}
	for _, tc := range []struct {
		name    string
		formats []int16
	}{
		{"text", []int16{0}},
		{"binary", []int16{1}},
		{"mixed", mixed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			run := func(c *pgconn.PgConn) *pgconn.Result {
				// Parameter 1 sent in binary: 42 as a big-endian int4.
				res := c.ExecParams(testCtx(t), sql, [][]byte{{0, 0, 0, 42}}, []uint32{23}, []int16{1}, tc.formats).Read()
				if res.Err != nil {
					t.Fatal(res.Err)
				}
				return res
			}
			got, want := run(pc), run(dc)
			if !reflect.DeepEqual(got.FieldDescriptions, want.FieldDescriptions) {
				t.Errorf("field descriptions: pgone %+v, PostgreSQL directly %+v", got.FieldDescriptions, want.FieldDescriptions)
			}
			if !reflect.DeepEqual(got.Rows, want.Rows) {
				t.Errorf("rows differ from PostgreSQL's")
			}
			if got.CommandTag.String() != want.CommandTag.String() {
				t.Errorf("command tag %q, PostgreSQL %q", got.CommandTag, want.CommandTag)
			}
			for i, fd := range got.FieldDescriptions {
				f := tc.formats[0]
				if len(tc.formats) > 1 {
					f = tc.formats[i]
				}
				if fd.Format != f {
					t.Errorf("column %d format %d, asked for %d", i, fd.Format, f)
				}
			}
			if len(got.Rows) != 1 || len(got.Rows[0][5]) < 1<<20 {
				t.Errorf("big column missing or short")
			}
		})
	}
}

// batchOutcome runs a batch of n queries where query bad divides by zero,
// and returns one outcome string per query.
func batchOutcome(t *testing.T, conn *pgx.Conn, table string, n, bad int) []string {
	t.Helper()
	b := &pgx.Batch{}
	for i := range n {
		switch {
		case i == bad:
			b.Queue("SELECT 10 / $1::int4", 0)
		case i%5 == 0:
			b.Queue("INSERT INTO "+table+" VALUES ($1)", i)
		default:
			b.Queue("SELECT $1::int4 * 2", i)
		}
	}
	br := conn.SendBatch(testCtx(t), b)
	out := make([]string, n)
	for i := range n {
		if i%5 == 0 && i != bad {
			tag, err := br.Exec()
			if err != nil {
				out[i] = "error " + outcomeCode(err)
			} else {
				out[i] = tag.String()
			}
			continue
		}
		var v int
		if err := br.QueryRow().Scan(&v); err != nil {
			out[i] = "error " + outcomeCode(err)
		} else {
			out[i] = strconv.Itoa(v)
		}
	}
	if err := br.Close(); err != nil {
		out = append(out, "close "+outcomeCode(err))
	}
	rows, _ := conn.Query(testCtx(t), "SELECT id FROM "+table+" ORDER BY id", pgx.QueryExecModeSimpleProtocol)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		t.Fatal(err)
	}
	return append(out, fmt.Sprintf("table %v", ids))
}

func TestPgxBatchWithFailingQuery(t *testing.T) {
	t.Parallel()
	p := startProxy(t, nil)
	const n, bad = 40, 21
	for _, mode := range allExecModes {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			suffix := strings.ReplaceAll(mode.String(), " ", "_")
			pc := connectMode(t, p.AppDSN(), mode)
			dc := connectMode(t, directDSN(), mode)
			var results [2][]string
			for i, c := range []*pgx.Conn{pc, dc} {
				table := fmt.Sprintf("clpgx_batch_%s_%d", suffix, i)
				execOnPrimary(t, fmt.Sprintf("DROP TABLE IF EXISTS %[1]s; CREATE TABLE %[1]s (id int)", table))
				results[i] = batchOutcome(t, c, table, n, bad)
				requireConnUsable(t, c)
			}
			got, want := results[0], results[1]
			if !reflect.DeepEqual(got, want) {
				t.Errorf("batch outcomes through pgone:\n%q\nPostgreSQL directly:\n%q", got, want)
			}
			if got[bad] != "error 22012" {
				t.Errorf("query %d: %q, want the division_by_zero error", bad, got[bad])
			}
			for i := range bad {
				if i%5 != 0 && got[i] != strconv.Itoa(2*i) {
					t.Errorf("query %d before the failing one: %q, want %d", i, got[i], 2*i)
				}
			}
		})
	}
}

// TestPgconnPipelineSyncs sends many requests, each with its own Sync, in
// one pipeline: the failing one reports its error and the next ones run.
func TestPgconnPipelineSyncs(t *testing.T) {
	t.Parallel()
	p := startProxy(t, nil)
	run := func(c *pgconn.PgConn) []string {
		const n = 50
		pl := c.StartPipeline(testCtx(t))
		for i := range n {
			sql := "SELECT $1::int4 + 1"
			switch i {
			case 17:
				sql = "SELECT 1 / ($1::int4 - 17)"
			case 31:
				sql = "SELEC $1"
			}
			pl.SendQueryParams(sql, [][]byte{[]byte(strconv.Itoa(i))}, nil, nil, nil)
			pl.SendPipelineSync()
		}
		if err := pl.Flush(); err != nil {
			t.Fatal(err)
		}
		var out []string
		for {
			res, err := pl.GetResults()
			if err != nil {
				out = append(out, "error "+outcomeCode(err))
				continue
			}
			if res == nil {
				break
			}
			switch r := res.(type) {
			case *pgconn.ResultReader:
				rr := r.Read()
				if rr.Err != nil {
					out = append(out, "error "+outcomeCode(rr.Err))
				} else {
					out = append(out, fmt.Sprintf("%s %q", rr.CommandTag, rr.Rows))
				}
			case *pgconn.PipelineSync:
				out = append(out, "sync")
			default:
				out = append(out, fmt.Sprintf("%T", r))
			}
		}
		if err := pl.Close(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	pc, dc := connect(t, p.AppDSN()), connect(t, directDSN())
	got, want := run(pc.PgConn()), run(dc.PgConn())
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("pipeline through pgone:\n%q\nPostgreSQL directly:\n%q", got, want)
	}
	if !containsEach(strings.Join(got, "|"), "error 22012", "error 42601", `SELECT 1 [["50"]]`) {
		t.Fatalf("pipeline outcomes %q lack the errors or the last result", got)
	}
	requireConnUsable(t, pc)
}

func containsEach(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

func copyRows(n int) [][]any {
	rng := rand.New(rand.NewPCG(3, 4))
	base := time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC)
	names := []string{"plain", "tab\there", "new\nline", `back\slash`, "ünïcödé ✓", "", "comma,quote\""}
	rows := make([][]any, n)
	for i := range n {
		var name *string
		if i%11 != 0 {
			s := names[i%len(names)] + strconv.Itoa(i)
			name = &s
		}
		data := make([]byte, rng.IntN(64))
		for j := range data {
			data[j] = byte(rng.Uint32())
		}
		rows[i] = []any{int32(i), name, data, base.Add(time.Duration(i) * 1234567 * time.Microsecond), rng.NormFloat64()}
	}
	return rows
}

// copyOut runs COPY ... TO STDOUT and returns the bytes.
func copyOut(t *testing.T, c *pgconn.PgConn, sql string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tag, err := c.CopyTo(testCtx(t), &buf, sql)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	if !strings.HasPrefix(tag.String(), "COPY ") {
		t.Fatalf("%s: command tag %q", sql, tag)
	}
	return buf.Bytes()
}

func TestPgxCopyFromAndCopyTo(t *testing.T) {
	t.Parallel()
	p := startProxy(t, nil)
	pc, dc := p.Connect(t), connect(t, directDSN())
	const n = 10000
	rows := copyRows(n)
	cols := []string{"id", "name", "data", "at", "score"}
	for _, table := range []string{"clpgx_copy_pgone", "clpgx_copy_direct"} {
		execOnPrimary(t, fmt.Sprintf(`DROP TABLE IF EXISTS %[1]s;
			CREATE TABLE %[1]s (id int4 PRIMARY KEY, name text, data bytea, at timestamptz, score float8)`, table))
	}
	got, err := pc.CopyFrom(testCtx(t), pgx.Identifier{"clpgx_copy_pgone"}, cols, pgx.CopyFromRows(rows))
	if err != nil || got != n {
		t.Fatalf("CopyFrom through pgone: %d rows, %v", got, err)
	}
	if want, err := dc.CopyFrom(testCtx(t), pgx.Identifier{"clpgx_copy_direct"}, cols, pgx.CopyFromRows(rows)); err != nil || want != n {
		t.Fatalf("CopyFrom directly: %d rows, %v", want, err)
	}
	requireConnUsable(t, pc)

	for _, format := range []string{"text", "csv", "binary"} {
		// What pgone stored is what PostgreSQL stores from the same rows.
		q := "COPY (SELECT * FROM %s ORDER BY id) TO STDOUT WITH (FORMAT " + format + ")"
		storedViaPgone := copyOut(t, dc.PgConn(), fmt.Sprintf(q, "clpgx_copy_pgone"))
		storedDirect := copyOut(t, dc.PgConn(), fmt.Sprintf(q, "clpgx_copy_direct"))
		if !bytes.Equal(storedViaPgone, storedDirect) {
			t.Errorf("%s: rows copied in through pgone differ from the same rows copied in directly", format)
		}
		// COPY TO through pgone is byte-exact.
		out := copyOut(t, pc.PgConn(), fmt.Sprintf(q, "clpgx_copy_pgone"))
		if !bytes.Equal(out, storedViaPgone) {
			t.Errorf("%s: COPY TO through pgone (%d bytes) differs from PostgreSQL's (%d bytes)", format, len(out), len(storedViaPgone))
		}
		if format == "text" && bytes.Count(out, []byte("\n")) != n {
			t.Errorf("COPY TO text has %d lines, want %d", bytes.Count(out, []byte("\n")), n)
		}
	}

	// A large COPY TO streams through unchanged.
	const big = "COPY (SELECT g, md5(g::text), g * 0.5 FROM generate_series(1, 100000) g) TO STDOUT"
	if out, want := copyOut(t, pc.PgConn(), big), copyOut(t, dc.PgConn(), big); !bytes.Equal(out, want) {
		t.Errorf("large COPY TO: %d bytes through pgone, %d directly, or contents differ", len(out), len(want))
	}
}

// TestPgconnCopyFromErrors covers COPY FROM that the server rejects and
// that the client aborts: both report the error and the connection stays
// usable.
func TestPgconnCopyFromErrors(t *testing.T) {
	t.Parallel()
	p := startProxy(t, nil)
	execOnPrimary(t, "DROP TABLE IF EXISTS clpgx_copyerr; CREATE TABLE clpgx_copyerr (id int, name text)")
	pc, dc := p.Connect(t), connect(t, directDSN())
	copyErr := func(c *pgx.Conn) *pgconn.PgError {
		_, err := c.PgConn().CopyFrom(testCtx(t), strings.NewReader("1\tone\nnot-a-number\ttwo\n3\tthree\n"),
			"COPY clpgx_copyerr FROM STDIN")
		var pe *pgconn.PgError
		if !errors.As(err, &pe) {
			t.Fatalf("COPY FROM bad data: %v, want a PostgreSQL error", err)
		}
		return pe
	}
	if got, want := copyErr(pc), copyErr(dc); !reflect.DeepEqual(got, want) {
		t.Errorf("COPY FROM bad data: pgone %#v, PostgreSQL directly %#v", got, want)
	}
	requireConnUsable(t, pc)

	// The client gives up mid-stream: pgx sends CopyFail.
	fail := errors.New("source gave up")
	abort := func(c *pgx.Conn) error {
		i := 0
		_, err := c.CopyFrom(testCtx(t), pgx.Identifier{"clpgx_copyerr"}, []string{"id", "name"},
			pgx.CopyFromFunc(func() ([]any, error) {
				i++
				if i > 5000 {
					return nil, fail
				}
				return []any{i, "x"}, nil
			}))
		return err
	}
	got, want := abort(pc), abort(dc)
	if got == nil || outcomeCode(got) != outcomeCode(want) {
		t.Errorf("aborted CopyFrom: pgone %v, PostgreSQL directly %v", got, want)
	}
	requireConnUsable(t, pc)
	if n := scanSingle[int](t, dc, "SELECT count(*) FROM clpgx_copyerr"); n != 0 {
		t.Errorf("%d rows stored by failed copies", n)
	}
}

func TestPgxListenNotify(t *testing.T) {
	t.Parallel()
	p := startProxy(t, nil)
	listener := p.Connect(t)
	if _, err := listener.Exec(testCtx(t), `LISTEN "clpgx chan"`); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		notifier *pgx.Conn
	}{
		{"notifier direct", connect(t, directDSN())},
		{"notifier through pgone", p.Connect(t)},
	} {
		payload := "payload from " + tc.name + " ✓"
		if _, err := tc.notifier.Exec(testCtx(t), `SELECT pg_notify('clpgx chan', $1)`, payload); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		n, err := listener.WaitForNotification(ctx)
		cancel()
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if n.Channel != "clpgx chan" || n.Payload != payload || n.PID != tc.notifier.PgConn().PID() {
			t.Errorf("%s: got %+v, want channel %q payload %q from pid %d", tc.name, n, "clpgx chan", payload, tc.notifier.PgConn().PID())
		}
	}
	// A notification sent while the listener runs a query arrives too.
	notifier := connect(t, directDSN())
	sent := make(chan error, 1)
	go func() {
		// Once the listener's query runs on its server.
		for deadline := time.Now().Add(ioTimeout); ; {
			var n int
			err := notifier.QueryRow(context.Background(),
				`SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query = 'SELECT pg_sleep(0.3) /* clpgx late */'`).Scan(&n)
			if err != nil || n > 0 || time.Now().After(deadline) {
				break
			}
		}
		_, err := notifier.Exec(context.Background(), `NOTIFY "clpgx chan", 'late'`)
		sent <- err
	}()
	if _, err := listener.Exec(testCtx(t), `SELECT pg_sleep(0.3) /* clpgx late */`); err != nil {
		t.Fatal(err)
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if n, err := listener.WaitForNotification(ctx); err != nil || n.Payload != "late" {
		t.Fatalf("late notification: %+v, %v", n, err)
	}
	requireConnUsable(t, listener)
}

func TestPgxErrorsMatchPostgres(t *testing.T) {
	t.Parallel()
	p := startProxy(t, nil)
	execOnPrimary(t, `DROP TABLE IF EXISTS clpgx_err;
		CREATE TABLE clpgx_err (id int CONSTRAINT clpgx_err_pk PRIMARY KEY, v text NOT NULL, n int CHECK (n > 0));
		INSERT INTO clpgx_err VALUES (1, 'one', 1)`)
	cases := []struct {
		name, sql string
		code      string
	}{
		{"syntax error", "SELECT * FORM clpgx_err", "42601"},
		{"undefined column", "SELECT id, nosuchcol FROM clpgx_err", "42703"},
		{"unique violation", "INSERT INTO clpgx_err VALUES (1, 'dup', 2)", "23505"},
		{"not null violation", "INSERT INTO clpgx_err (id, v) VALUES (2, NULL)", "23502"},
		{"check violation", "INSERT INTO clpgx_err VALUES (3, 'x', -1)", "23514"},
		{"division by zero", "SELECT 1 / (count(*) - count(*)) FROM clpgx_err", "22012"},
		{"raise with every field", `DO $$ BEGIN RAISE EXCEPTION 'custom %', 42 USING ERRCODE = 'P0099',
			DETAIL = 'the detail', HINT = 'the hint', COLUMN = 'col', CONSTRAINT = 'con', DATATYPE = 'typ',
			TABLE = 'tab', SCHEMA = 'sch'; END $$`, "P0099"},
	}
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeExec, pgx.QueryExecModeSimpleProtocol} {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			pc := connectMode(t, p.AppDSN(), mode)
			dc := connectMode(t, directDSN(), mode)
			for _, tc := range cases {
				get := func(c *pgx.Conn) *pgconn.PgError {
					_, err := c.Exec(testCtx(t), tc.sql)
					var pe *pgconn.PgError
					if !errors.As(err, &pe) {
						t.Fatalf("%s: %v, want a PostgreSQL error", tc.name, err)
					}
					return pe
				}
				got, want := get(pc), get(dc)
				if !reflect.DeepEqual(got, want) {
					t.Errorf("%s:\npgone      %#v\nPostgreSQL %#v", tc.name, got, want)
				}
				if got.Code != tc.code {
					t.Errorf("%s: SQLSTATE %s, want %s", tc.name, got.Code, tc.code)
				}
				requireConnUsable(t, pc)
			}
		})
	}
	// Spot checks that the compared fields are really there.
	pc := p.Connect(t)
	_, err := pc.Exec(testCtx(t), "SELECT * FORM clpgx_err")
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Position != int32(strings.Index("SELECT * FORM clpgx_err", "FORM")+1) {
		t.Errorf("syntax error position: %#v", err)
	}
	_, err = pc.Exec(testCtx(t), "INSERT INTO clpgx_err VALUES (1, 'dup', 2)")
	if !errors.As(err, &pe) || pe.ConstraintName != "clpgx_err_pk" || pe.TableName != "clpgx_err" || pe.SchemaName != "public" || pe.Detail == "" {
		t.Errorf("unique violation fields: %#v", err)
	}
}

func TestPgxLargeResultStreams(t *testing.T) {
	t.Parallel()
	p := startProxy(t, nil)
	const n = 200000
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeSimpleProtocol} {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			conn := connectMode(t, p.AppDSN(), mode)
			rows, err := conn.Query(testCtx(t), "SELECT g, repeat('x', g % 10) FROM generate_series(1, $1::int) g", n)
			if err != nil {
				t.Fatal(err)
			}
			var count, sum, textLen int64
			for rows.Next() {
				var g int64
				var s string
				if err := rows.Scan(&g, &s); err != nil {
					t.Fatal(err)
				}
				count++
				sum += g
				textLen += int64(len(s))
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			var wantSum, wantLen int64
			dc := connect(t, directDSN())
			if err := dc.QueryRow(testCtx(t), "SELECT sum(g), sum(g % 10) FROM generate_series(1, $1::int) g", n).Scan(&wantSum, &wantLen); err != nil {
				t.Fatal(err)
			}
			if count != n || sum != wantSum || textLen != wantLen || wantSum != int64(n)*(n+1)/2 {
				t.Fatalf("got %d rows, sum %d, text %d bytes; want %d rows, sum %d, text %d bytes", count, sum, textLen, n, wantSum, wantLen)
			}
			if tag := rows.CommandTag().String(); tag != fmt.Sprintf("SELECT %d", n) {
				t.Errorf("command tag %q", tag)
			}
			requireConnUsable(t, conn)
		})
	}
}

func TestPgxEmptyQuery(t *testing.T) {
	t.Parallel()
	p := startProxy(t, nil)
	pc, dc := p.Connect(t), connect(t, directDSN())
	describe := func(c *pgx.Conn) string {
		var parts []string
		for _, sql := range []string{"", ";", "  -- only a comment"} {
			res, err := c.PgConn().Exec(testCtx(t), sql).ReadAll()
			parts = append(parts, fmt.Sprintf("simple %q: %d results %v", sql, len(res), err))
			for _, r := range res {
				parts = append(parts, fmt.Sprintf("tag %q rows %d", r.CommandTag, len(r.Rows)))
			}
			er := c.PgConn().ExecParams(testCtx(t), sql, nil, nil, nil, nil).Read()
			parts = append(parts, fmt.Sprintf("extended %q: tag %q %v", sql, er.CommandTag, er.Err))
			_, err = c.Exec(testCtx(t), sql)
			parts = append(parts, fmt.Sprintf("pgx %q: %v", sql, err))
		}
		return strings.Join(parts, "\n")
	}
	if got, want := describe(pc), describe(dc); got != want {
		t.Fatalf("empty queries through pgone:\n%s\nPostgreSQL directly:\n%s", got, want)
	}
	requireConnUsable(t, pc)
}

// wireConn is a connection after startup, for sending exact messages.
type wireConn struct {
	fe *pgproto3.Frontend
}

// dialWire logs in with pgconn, then takes over the wire.
func dialWire(t *testing.T, dsn string) *wireConn {
	t.Helper()
	pc, err := pgconn.Connect(testCtx(t), dsn)
	if err != nil {
		t.Fatal(err)
	}
	hc, err := pc.Hijack()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hc.Conn.Close() })
	_ = hc.Conn.SetDeadline(time.Now().Add(30 * time.Second))
	return &wireConn{fe: hc.Frontend}
}

// roundTripVia sends msgs and returns every reply, as JSON, up to and
// including ReadyForQuery.
func (r *wireConn) roundTripVia(t *testing.T, msgs ...pgproto3.FrontendMessage) []string {
	t.Helper()
	for _, m := range msgs {
		r.fe.Send(m)
	}
	if err := r.fe.Flush(); err != nil {
		t.Fatal(err)
	}
	var out []string
	for {
		msg, err := r.fe.Receive()
		if err != nil {
			t.Fatalf("receive after %q: %v", out, err)
		}
		b, err := json.Marshal(msg)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b))
		if _, ok := msg.(*pgproto3.ReadyForQuery); ok {
			return out
		}
	}
}

// TestFunctionCallMessage sends the protocol's FunctionCall ('F') message,
// and compares the replies with PostgreSQL's.
func TestFunctionCallMessage(t *testing.T) {
	t.Parallel()
	p := startProxy(t, nil)
	dc := connect(t, directDSN())
	oid := func(fn string) uint32 { return scanSingle[uint32](t, dc, "SELECT $1::regprocedure::oid", fn) }
	int4pl, int4div, upper := oid("int4pl(int4,int4)"), oid("int4div(int4,int4)"), oid("upper(text)")
	i4 := func(v int32) []byte { return []byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)} }
	calls := []*pgproto3.FunctionCall{
		{Function: int4pl, ArgFormatCodes: []uint16{1}, Arguments: [][]byte{i4(20), i4(22)}, ResultFormatCode: 1},
		{Function: int4pl, ArgFormatCodes: []uint16{0}, Arguments: [][]byte{[]byte("20"), []byte("22")}, ResultFormatCode: 0},
		{Function: upper, ArgFormatCodes: []uint16{0}, Arguments: [][]byte{[]byte("pgone")}, ResultFormatCode: 0},
		{Function: upper, ArgFormatCodes: []uint16{0}, Arguments: [][]byte{nil}, ResultFormatCode: 0},
		{Function: int4div, ArgFormatCodes: []uint16{1}, Arguments: [][]byte{i4(1), i4(0)}, ResultFormatCode: 1},
	}
	run := func(dsn string) [][]string {
		rc := dialWire(t, dsn)
		var out [][]string
		for _, c := range calls {
			out = append(out, rc.roundTripVia(t, c))
		}
		out = append(out, rc.roundTripVia(t, &pgproto3.Query{String: "SELECT 'still usable'"}))
		return out
	}
	got, want := run(p.AppDSN()), run(directDSN())
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("function calls through pgone:\n%q\nPostgreSQL directly:\n%q", got, want)
	}
	if !strings.Contains(got[0][0], `"FunctionCallResponse"`) || !strings.Contains(got[4][0], `"22012"`) {
		t.Fatalf("unexpected replies %q", got)
	}
}

// TestSessionPoolResetsState checks that a server connection reused by the
// next client carries nothing of the previous client's session.
func TestSessionPoolResetsState(t *testing.T) {
	t.Parallel()
	p := startProxy(t, func(c *config.Config) {
		c.Pool.Mode = pool.ModeSession
		c.Pool.PoolSize = 1
		db := c.Proxy.Databases[appDB]
		db.PoolSize = 1
		c.Proxy.Databases[appDB] = db
	})
	// What a fresh session shows, asked of PostgreSQL itself.
	const stateSQL = `SELECT current_setting('search_path'), coalesce(current_setting('clpgx.custom', true), ''),
		current_setting('statement_timeout'), current_setting('application_name'),
		(SELECT count(*) FROM pg_prepared_statements),
		(SELECT count(*) FROM pg_class WHERE relnamespace = pg_my_temp_schema()),
		(SELECT count(*) FROM pg_listening_channels()),
		(SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()),
		(SELECT count(*) FROM pg_cursors)`
	type state struct {
		searchPath, custom, timeout, appName    string
		prepared, temp, listens, locks, cursors int
	}
	read := func(c *pgx.Conn) state {
		var s state
		err := c.QueryRow(testCtx(t), stateSQL, pgx.QueryExecModeSimpleProtocol).Scan(&s.searchPath, &s.custom,
			&s.timeout, &s.appName, &s.prepared, &s.temp, &s.listens, &s.locks, &s.cursors)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	fresh := read(connect(t, directDSN()))

	a := connect(t, p.AppDSN())
	pidA := a.PgConn().PID()
	for _, sql := range []string{
		"SET search_path = pg_catalog, clpgx_nowhere",
		"SET clpgx.custom = 'from A'",
		"SET statement_timeout = '17s'",
		"SET application_name = 'client A'",
		"PREPARE clpgx_stmt AS SELECT 1",
		"CREATE TEMP TABLE clpgx_tmp (x int)",
		"LISTEN clpgx_chan",
		"SELECT pg_advisory_lock(4242)",
		"BEGIN; DECLARE clpgx_cur CURSOR WITH HOLD FOR SELECT 1; COMMIT",
	} {
		if _, err := a.Exec(testCtx(t), sql, pgx.QueryExecModeSimpleProtocol); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	// pgx's statement cache adds a protocol-level prepared statement too.
	if _, err := a.Exec(testCtx(t), "SELECT $1::int", 1); err != nil {
		t.Fatal(err)
	}
	dirty := read(a)
	if dirty.custom != "from A" || dirty.prepared < 2 || dirty.temp == 0 || dirty.listens != 1 || dirty.locks != 1 || dirty.cursors != 1 {
		t.Fatalf("client A's session state was not set up: %+v", dirty)
	}
	a.Close(testCtx(t))

	b := connect(t, p.AppDSN())
	if pidB := b.PgConn().PID(); pidB != pidA {
		t.Fatalf("client B got server pid %d, client A had %d: the pool did not reuse the connection", pidB, pidA)
	}
	if got := read(b); got != fresh {
		t.Fatalf("client B sees %+v; a fresh session has %+v", got, fresh)
	}
	// A's advisory lock is free for others.
	var locked bool
	if err := connect(t, directDSN()).QueryRow(testCtx(t), "SELECT pg_try_advisory_lock(4242)").Scan(&locked); err != nil || !locked {
		t.Fatalf("advisory lock of client A still held: %v %v", locked, err)
	}
}

// TestDisconnectInTransactionReleasesLocks: a client that goes away inside
// a transaction leaves nothing committed and no lock held.
func TestDisconnectInTransactionReleasesLocks(t *testing.T) {
	t.Parallel()
	p := startProxy(t, func(c *config.Config) {
		c.Pool.Mode = pool.ModeSession
		c.Pool.PoolSize = 4
	})
	execOnPrimary(t, `DROP TABLE IF EXISTS clpgx_lock; CREATE TABLE clpgx_lock (id int PRIMARY KEY, v int);
		INSERT INTO clpgx_lock VALUES (1, 1), (2, 1)`)
	for _, tc := range []struct {
		name  string
		id    int
		leave func(*pgx.Conn)
	}{
		{"Terminate", 1, func(c *pgx.Conn) { c.Close(testCtx(t)) }},
		{"socket closed", 2, func(c *pgx.Conn) { c.PgConn().Conn().Close() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			holder := p.Connect(t)
			other := p.Connect(t)
			if holder.PgConn().PID() == other.PgConn().PID() {
				t.Fatal("both clients on one server connection")
			}
			for _, sql := range []string{
				"BEGIN",
				fmt.Sprintf("UPDATE clpgx_lock SET v = 99 WHERE id = %d", tc.id),
				fmt.Sprintf("SELECT * FROM clpgx_lock WHERE id = %d FOR UPDATE", tc.id),
			} {
				if _, err := holder.Exec(testCtx(t), sql); err != nil {
					t.Fatalf("%s: %v", sql, err)
				}
			}
			// The lock is really held while the holder is there.
			if _, err := other.Exec(testCtx(t), "SET lock_timeout = '200ms'"); err != nil {
				t.Fatal(err)
			}
			_, err := other.Exec(testCtx(t), fmt.Sprintf("SELECT v FROM clpgx_lock WHERE id = %d FOR UPDATE", tc.id))
			if outcomeCode(err) != "55P03" {
				t.Fatalf("while held: %v, want lock_not_available", err)
			}
			tc.leave(holder)
			if _, err := other.Exec(testCtx(t), "SET lock_timeout = '3s'"); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			var v int
			err = other.QueryRow(testCtx(t), fmt.Sprintf("SELECT v FROM clpgx_lock WHERE id = %d FOR UPDATE", tc.id)).Scan(&v)
			if err != nil {
				t.Fatalf("after the holder left: %v (after %s)", err, time.Since(start))
			}
			if v != 1 {
				t.Fatalf("v = %d: the abandoned update was committed", v)
			}
			if time.Since(start) > 2*time.Second {
				t.Errorf("lock became free only after %s", time.Since(start))
			}
		})
	}
}

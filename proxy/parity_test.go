package proxy_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgone/pgone/config"
	"github.com/pgone/pgone/proxy"
)

// msgConn is a logged-in connection driven message by message: pgconn does
// the startup and authentication, then the test takes the socket.
type msgConn struct {
	t      testing.TB
	nc     net.Conn
	fe     *pgproto3.Frontend
	params map[string]string // ParameterStatus values reported at startup
}

// connectMsg logs in with dsn and hijacks the connection.
func connectMsg(t testing.TB, dsn string) *msgConn {
	t.Helper()
	ctx := testCtx(t)
	pc, err := pgconn.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	return hijackMsg(t, pc)
}

func hijackMsg(t testing.TB, pc *pgconn.PgConn) *msgConn {
	t.Helper()
	if err := pc.SyncConn(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	hc, err := pc.Hijack()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = hc.Conn.Close() })
	return &msgConn{t: t, nc: hc.Conn, fe: hc.Frontend, params: hc.ParameterStatuses}
}

// send writes msgs and flushes them.
func (c *msgConn) send(msgs ...pgproto3.FrontendMessage) {
	c.t.Helper()
	_ = c.nc.SetWriteDeadline(time.Now().Add(ioTimeout))
	for _, m := range msgs {
		c.fe.Send(m)
	}
	if err := c.fe.Flush(); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// receive reads one message within timeout.
func (c *msgConn) receive(timeout time.Duration) (pgproto3.BackendMessage, error) {
	_ = c.nc.SetReadDeadline(time.Now().Add(timeout))
	return c.fe.Receive()
}

// readUntil reads messages, recorded as text, up to and including the one
// stop accepts.
func (c *msgConn) readUntil(stop func(pgproto3.BackendMessage) bool) []string {
	c.t.Helper()
	var got []string
	for {
		m, err := c.receive(ioTimeout)
		if err != nil {
			c.t.Fatalf("receive after %q: %v", got, err)
		}
		got = append(got, recordMsg(m))
		if stop(m) {
			return got
		}
	}
}

// simpleQuery runs sql with the simple protocol and returns the recorded reply.
func (c *msgConn) simpleQuery(sql string) []string {
	c.t.Helper()
	c.send(&pgproto3.Query{String: sql})
	return c.readUntil(isRFQ)
}

func isRFQ(m pgproto3.BackendMessage) bool {
	_, ok := m.(*pgproto3.ReadyForQuery)
	return ok
}

// recordMsg renders a message as its type and every field, so two transcripts
// compare exactly. It must be called before the next Receive.
func recordMsg(m pgproto3.BackendMessage) string {
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Sprintf("%T <%v>", m, err)
	}
	return fmt.Sprintf("%T %s", m, b)
}

// parityStep sends its messages, then reads until stopAt (a message type
// such as "*pgproto3.CopyInResponse") or, when stopAt is empty, until rfq
// ReadyForQuery messages have come.
type parityStep struct {
	send   []pgproto3.FrontendMessage
	rfq    int
	stopAt string
}

type parityCase struct {
	name  string
	setup []string // simple queries run first on each side; replies not compared
	steps []parityStep
	// expect lists message types that must appear, in this order, in the
	// direct transcript, so that each case exercises what its name says.
	expect []string
}

func (s parityStep) run(c *msgConn) []string {
	c.t.Helper()
	c.send(s.send...)
	n := 0
	return c.readUntil(func(m pgproto3.BackendMessage) bool {
		if s.stopAt != "" {
			return fmt.Sprintf("%T", m) == s.stopAt
		}
		if isRFQ(m) {
			n++
		}
		return n == s.rfq
	})
}

func (pc parityCase) run(c *msgConn) []string {
	c.t.Helper()
	for _, sql := range pc.setup {
		for _, r := range c.simpleQuery(sql) {
			if strings.HasPrefix(r, "*pgproto3.ErrorResponse") {
				c.t.Fatalf("setup %q: %s", sql, r)
			}
		}
	}
	var out []string
	for i, s := range pc.steps {
		out = append(out, fmt.Sprintf("-- step %d", i))
		out = append(out, s.run(c)...)
	}
	return out
}

// queryStep is a one-Query step.
func queryStep(sql string) parityStep {
	return parityStep{send: []pgproto3.FrontendMessage{&pgproto3.Query{String: sql}}, rfq: 1}
}

// binInt4 is the binary form of an int4.
func binInt4(v int32) []byte { return binary.BigEndian.AppendUint32(nil, uint32(v)) }

func parityCases(int4abs uint32) []parityCase {
	sync := &pgproto3.Sync{}
	flush := &pgproto3.Flush{}
	return []parityCase{
		{
			name:   "simple query",
			steps:  []parityStep{queryStep(`SELECT 1 AS one, 'two'::text AS two, NULL::int AS three`)},
			expect: []string{"RowDescription", "DataRow", "CommandComplete", "ReadyForQuery"},
		},
		{
			name:   "multi-statement simple query",
			steps:  []parityStep{queryStep(`SELECT 1; SELECT 2, 3; VALUES (4), (5)`)},
			expect: []string{"RowDescription", "CommandComplete", "RowDescription", "CommandComplete", "RowDescription", "DataRow", "DataRow", "CommandComplete", "ReadyForQuery"},
		},
		{
			name:   "error in the middle of a multi-statement query",
			steps:  []parityStep{queryStep(`SELECT 1; SELECT 1/0; SELECT 3`), queryStep(`SELECT 4`)},
			expect: []string{"CommandComplete", "ErrorResponse", "ReadyForQuery", "DataRow", "ReadyForQuery"},
		},
		{
			name:   "empty query",
			steps:  []parityStep{queryStep(``), queryStep(`;`)},
			expect: []string{"EmptyQueryResponse", "ReadyForQuery", "EmptyQueryResponse", "ReadyForQuery"},
		},
		{
			name: "transaction status in ReadyForQuery",
			steps: []parityStep{queryStep(`BEGIN`), queryStep(`SELECT 1/0`), queryStep(`SELECT 1`), queryStep(`ROLLBACK`),
				queryStep(`BEGIN; SELECT 1`), queryStep(`COMMIT`)},
			expect: []string{"ErrorResponse", "ErrorResponse", "ReadyForQuery"},
		},
		{
			name: "extended Parse Bind Describe Execute Sync",
			steps: []parityStep{{send: []pgproto3.FrontendMessage{
				&pgproto3.Parse{Query: `SELECT $1::int + 1 AS n, $2::text AS t`, ParameterOIDs: []uint32{23, 25}},
				&pgproto3.Bind{Parameters: [][]byte{[]byte("41"), []byte("forty-one")}},
				&pgproto3.Describe{ObjectType: 'P'},
				&pgproto3.Execute{},
				sync,
			}, rfq: 1}, {send: []pgproto3.FrontendMessage{
				&pgproto3.Parse{Query: `SELECT $1::int4 * 2`},
				&pgproto3.Bind{ParameterFormatCodes: []int16{1}, Parameters: [][]byte{binInt4(21)}, ResultFormatCodes: []int16{1}},
				&pgproto3.Describe{ObjectType: 'P'},
				&pgproto3.Execute{},
				sync,
			}, rfq: 1}},
			expect: []string{"ParseComplete", "BindComplete", "RowDescription", "DataRow", "CommandComplete", "ReadyForQuery", "DataRow"},
		},
		{
			name: "Parse error discards to Sync",
			steps: []parityStep{{send: []pgproto3.FrontendMessage{
				&pgproto3.Parse{Query: `SELEC 1`},
				&pgproto3.Bind{},
				&pgproto3.Describe{ObjectType: 'P'},
				&pgproto3.Execute{},
				sync,
				&pgproto3.Parse{Query: `SELECT 2`},
				&pgproto3.Bind{},
				&pgproto3.Execute{},
				sync,
			}, rfq: 2}},
			expect: []string{"ErrorResponse", "ReadyForQuery", "ParseComplete", "BindComplete", "DataRow", "ReadyForQuery"},
		},
		{
			name: "Execute error in a pipeline discards to Sync",
			steps: []parityStep{{send: []pgproto3.FrontendMessage{
				&pgproto3.Parse{Query: `SELECT 1/$1::int`},
				&pgproto3.Bind{Parameters: [][]byte{[]byte("0")}},
				&pgproto3.Execute{},
				&pgproto3.Bind{Parameters: [][]byte{[]byte("1")}},
				&pgproto3.Execute{},
				sync,
			}, rfq: 1}},
			// 1/0 is folded when Bind plans the query: the error comes at Bind.
			expect: []string{"ParseComplete", "ErrorResponse", "ReadyForQuery"},
		},
		{
			name: "pipelined two Syncs",
			steps: []parityStep{{send: []pgproto3.FrontendMessage{
				&pgproto3.Parse{Query: `SELECT 'first'`},
				&pgproto3.Bind{},
				&pgproto3.Execute{},
				sync,
				&pgproto3.Parse{Query: `SELECT 'second', 2`},
				&pgproto3.Bind{},
				&pgproto3.Execute{},
				sync,
			}, rfq: 2}},
			expect: []string{"ParseComplete", "BindComplete", "DataRow", "CommandComplete", "ReadyForQuery", "ParseComplete", "BindComplete", "DataRow", "CommandComplete", "ReadyForQuery"},
		},
		{
			name: "Describe statement with parameters",
			steps: []parityStep{{send: []pgproto3.FrontendMessage{
				&pgproto3.Parse{Name: "described", Query: `SELECT $1::int4 + $2::int8 AS sum, $3::text AS label, $4 = 'x'::varchar AS is_x`},
				&pgproto3.Describe{ObjectType: 'S', Name: "described"},
				&pgproto3.Parse{Name: "nodata", Query: `SET search_path = public`},
				&pgproto3.Describe{ObjectType: 'S', Name: "nodata"},
				&pgproto3.Describe{ObjectType: 'S', Name: "no such statement"},
				sync,
			}, rfq: 1}},
			expect: []string{"ParseComplete", "ParameterDescription", "RowDescription", "ParseComplete", "ParameterDescription", "NoData", "ErrorResponse", "ReadyForQuery"},
		},
		{
			name: "portal suspension",
			steps: []parityStep{
				{send: []pgproto3.FrontendMessage{
					&pgproto3.Parse{Query: `SELECT g FROM generate_series(1, 5) g`},
					&pgproto3.Bind{},
					&pgproto3.Execute{MaxRows: 2},
					flush,
				}, stopAt: "*pgproto3.PortalSuspended"},
				{send: []pgproto3.FrontendMessage{&pgproto3.Execute{MaxRows: 2}, flush}, stopAt: "*pgproto3.PortalSuspended"},
				{send: []pgproto3.FrontendMessage{&pgproto3.Execute{MaxRows: 2}, sync}, rfq: 1},
				// The same without waiting between the Executes.
				{send: []pgproto3.FrontendMessage{
					&pgproto3.Parse{Query: `SELECT g FROM generate_series(1, 3) g`},
					&pgproto3.Bind{},
					&pgproto3.Execute{MaxRows: 2},
					&pgproto3.Execute{MaxRows: 2},
					sync,
				}, rfq: 1},
			},
			expect: []string{"DataRow", "DataRow", "PortalSuspended", "DataRow", "DataRow", "PortalSuspended", "DataRow", "CommandComplete", "ReadyForQuery", "PortalSuspended", "DataRow", "CommandComplete"},
		},
		{
			name: "Close statement and portal",
			steps: []parityStep{
				{send: []pgproto3.FrontendMessage{
					&pgproto3.Parse{Name: "st", Query: `SELECT 1`},
					&pgproto3.Bind{DestinationPortal: "po", PreparedStatement: "st"},
					&pgproto3.Close{ObjectType: 'P', Name: "po"},
					&pgproto3.Close{ObjectType: 'S', Name: "st"},
					&pgproto3.Close{ObjectType: 'S', Name: "never existed"},
					sync,
				}, rfq: 1},
				{send: []pgproto3.FrontendMessage{
					&pgproto3.Bind{DestinationPortal: "po2", PreparedStatement: "st"},
					&pgproto3.Execute{Portal: "po2"},
					sync,
				}, rfq: 1},
			},
			expect: []string{"ParseComplete", "BindComplete", "CloseComplete", "CloseComplete", "CloseComplete", "ReadyForQuery", "ErrorResponse", "ReadyForQuery"},
		},
		{
			name:  "COPY FROM STDIN",
			setup: []string{`CREATE TEMP TABLE parity_copy (a int, b text)`},
			steps: []parityStep{
				{send: []pgproto3.FrontendMessage{&pgproto3.Query{String: `COPY parity_copy FROM STDIN`}}, stopAt: "*pgproto3.CopyInResponse"},
				{send: []pgproto3.FrontendMessage{
					&pgproto3.CopyData{Data: []byte("1\tone\n2\t")},
					&pgproto3.CopyData{Data: []byte("two\n3\t\\N\n")},
					&pgproto3.CopyDone{},
				}, rfq: 1},
				// Not a SELECT: its RowDescription would carry the temp table's OID,
				// which differs between the two sessions.
				queryStep(`COPY parity_copy TO STDOUT`),
			},
			expect: []string{"CopyInResponse", "CommandComplete", "ReadyForQuery", "CopyData", "CopyData", "CopyData", "CopyDone"},
		},
		{
			// As libpq sends it: Sync right after Execute, before it knows the
			// statement is a COPY; PostgreSQL ignores a Sync in copy-in mode.
			name:  "COPY FROM STDIN in the extended protocol",
			setup: []string{`CREATE TEMP TABLE parity_copy (a int, b text)`},
			steps: []parityStep{
				{send: []pgproto3.FrontendMessage{
					&pgproto3.Parse{Query: `COPY parity_copy FROM STDIN`},
					&pgproto3.Bind{},
					&pgproto3.Execute{},
					sync,
				}, stopAt: "*pgproto3.CopyInResponse"},
				{send: []pgproto3.FrontendMessage{
					&pgproto3.CopyData{Data: []byte("1\tone\n")},
					&pgproto3.CopyDone{},
					sync,
				}, rfq: 1},
				queryStep(`COPY parity_copy TO STDOUT`),
			},
			expect: []string{"ParseComplete", "BindComplete", "CopyInResponse", "CommandComplete", "ReadyForQuery", "CopyData", "CopyDone"},
		},
		{
			name:  "COPY FROM STDIN with bad data",
			setup: []string{`CREATE TEMP TABLE parity_copy (a int, b text)`},
			steps: []parityStep{
				{send: []pgproto3.FrontendMessage{&pgproto3.Query{String: `COPY parity_copy FROM STDIN`}}, stopAt: "*pgproto3.CopyInResponse"},
				{send: []pgproto3.FrontendMessage{
					&pgproto3.CopyData{Data: []byte("1\tone\nnot a number\ttwo\n")},
					&pgproto3.CopyDone{},
				}, rfq: 1},
			},
			expect: []string{"CopyInResponse", "ErrorResponse", "ReadyForQuery"},
		},
		{
			name:  "COPY FROM STDIN with CopyFail",
			setup: []string{`CREATE TEMP TABLE parity_copy (a int, b text)`},
			steps: []parityStep{
				{send: []pgproto3.FrontendMessage{&pgproto3.Query{String: `COPY parity_copy FROM STDIN`}}, stopAt: "*pgproto3.CopyInResponse"},
				{send: []pgproto3.FrontendMessage{
					&pgproto3.CopyData{Data: []byte("1\tone\n")},
					&pgproto3.CopyFail{Message: "the client gave up"},
				}, rfq: 1},
				queryStep(`SELECT count(*) FROM parity_copy`),
			},
			expect: []string{"CopyInResponse", "ErrorResponse", "ReadyForQuery", "DataRow"},
		},
		{
			name: "COPY TO STDOUT",
			steps: []parityStep{
				queryStep(`COPY (SELECT g, 'row ' || g FROM generate_series(1, 3) g) TO STDOUT`),
				queryStep(`COPY (SELECT 1 AS a, 'x' AS b) TO STDOUT (FORMAT csv, HEADER)`),
			},
			expect: []string{"CopyOutResponse", "CopyData", "CopyData", "CopyData", "CopyDone", "CommandComplete", "ReadyForQuery"},
		},
		{
			name: "NOTICE",
			steps: []parityStep{
				queryStep(`DO $$ BEGIN RAISE NOTICE 'x'; END $$`),
				queryStep(`DO $$ BEGIN RAISE WARNING 'careful' USING DETAIL = 'd', HINT = 'h'; END $$; SELECT 1`),
			},
			expect: []string{"NoticeResponse", "CommandComplete", "ReadyForQuery", "NoticeResponse", "CommandComplete", "DataRow"},
		},
		{
			name: "FunctionCall",
			steps: []parityStep{
				{send: []pgproto3.FrontendMessage{&pgproto3.FunctionCall{
					Function: int4abs, ArgFormatCodes: []uint16{1}, Arguments: [][]byte{binInt4(-42)}, ResultFormatCode: 1,
				}}, rfq: 1},
				{send: []pgproto3.FrontendMessage{&pgproto3.FunctionCall{
					Function: int4abs, Arguments: [][]byte{[]byte("-7")}, ResultFormatCode: 0,
				}}, rfq: 1},
				{send: []pgproto3.FrontendMessage{&pgproto3.FunctionCall{
					Function: int4abs, Arguments: [][]byte{nil},
				}}, rfq: 1},
				{send: []pgproto3.FrontendMessage{&pgproto3.FunctionCall{Function: 1}}, rfq: 1},
			},
			expect: []string{"FunctionCallResponse", "ReadyForQuery", "FunctionCallResponse", "ReadyForQuery", "FunctionCallResponse", "ReadyForQuery", "ErrorResponse", "ReadyForQuery"},
		},
		{
			name: "SET of a reported parameter",
			steps: []parityStep{
				queryStep(`SET application_name = 'parity'`),
				queryStep(`SET DateStyle = 'SQL, DMY'`),
				queryStep(`BEGIN; SET LOCAL TimeZone = 'Asia/Tokyo'; COMMIT`),
				queryStep(`RESET ALL`),
			},
			// SET LOCAL reverts at COMMIT: PostgreSQL reports nothing for it.
			expect: []string{"ParameterStatus", "ReadyForQuery", "ParameterStatus", "ReadyForQuery", "ReadyForQuery", "ParameterStatus", "ParameterStatus", "ReadyForQuery"},
		},
	}
}

// expectTypesInOrder checks that the types in want occur in got in that order.
func expectTypesInOrder(t *testing.T, got []string, want []string) {
	t.Helper()
	i := 0
	for _, g := range got {
		if i < len(want) && strings.HasPrefix(g, "*pgproto3."+want[i]+" ") {
			i++
		}
	}
	if i < len(want) {
		t.Errorf("direct transcript lacks %s (after %q) in:\n%s", want[i], want[:i], strings.Join(got, "\n"))
	}
}

func diffTranscripts(direct, proxied []string) string {
	var b strings.Builder
	for i := 0; i < max(len(direct), len(proxied)); i++ {
		var d, p string
		if i < len(direct) {
			d = direct[i]
		}
		if i < len(proxied) {
			p = proxied[i]
		}
		mark := "  "
		if d != p {
			mark = "!="
		}
		fmt.Fprintf(&b, "%s direct: %s\n   pgone:  %s\n", mark, d, p)
	}
	return b.String()
}

// TestProtocolParity sends exact message sequences straight to PostgreSQL
// and through pgone, as app on appdb, and compares every backend message.
func TestProtocolParity(t *testing.T) {
	t.Parallel()
	p := startProxy(t, nil)
	var int4abs uint32
	{
		c := connectMsg(t, directDSN())
		c.send(&pgproto3.Query{String: `SELECT oid FROM pg_proc WHERE proname = 'int4abs'`})
		for {
			m, err := c.receive(ioTimeout)
			if err != nil {
				t.Fatal(err)
			}
			if dr, ok := m.(*pgproto3.DataRow); ok {
				_, _ = fmt.Sscan(string(dr.Values[0]), &int4abs)
			}
			if isRFQ(m) {
				break
			}
		}
		if int4abs == 0 {
			t.Fatal("no oid for int4abs")
		}
	}
	for _, pc := range parityCases(int4abs) {
		t.Run(pc.name, func(t *testing.T) {
			t.Parallel()
			direct := pc.run(connectMsg(t, directDSN()))
			proxied := pc.run(connectMsg(t, p.AppDSN()))
			expectTypesInOrder(t, direct, pc.expect)
			if !reflect.DeepEqual(direct, proxied) {
				t.Errorf("transcripts differ:\n%s", diffTranscripts(direct, proxied))
			}
		})
	}
}

// legitimatelyDifferentParams are ParameterStatus names whose startup values
// may differ between a direct connection and one through pgone: none so far.
// pgone reports the values its server connection reported, which for the
// same server, database and role are PostgreSQL's own.
var legitimatelyDifferentParams = map[string]bool{}

func compareParamStatus(t *testing.T, direct, proxied map[string]string) {
	t.Helper()
	names := map[string]bool{}
	for k := range direct {
		names[k] = true
	}
	for k := range proxied {
		names[k] = true
	}
	sorted := make([]string, 0, len(names))
	for k := range names {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	for _, k := range sorted {
		if legitimatelyDifferentParams[k] {
			continue
		}
		dv, dok := direct[k]
		pv, pok := proxied[k]
		if dok != pok || dv != pv {
			t.Errorf("ParameterStatus %s: direct %q (reported %v), through pgone %q (reported %v)", k, dv, dok, pv, pok)
		}
	}
	if len(direct) < 10 {
		t.Errorf("only %d parameters reported directly: %v", len(direct), direct)
	}
}

// TestStartupParameterStatusParity compares the ParameterStatus values a
// client gets at startup directly and through pgone, and the settings the
// server then has. The pool has one server, so the second client gets the
// server the first one changed: the reset must have brought its settings
// back, and pgone must report the defaults again.
func TestStartupParameterStatusParity(t *testing.T) {
	t.Parallel()
	p := startProxy(t, func(c *config.Config) { c.Pool.PoolSize = 1 })
	direct := connectMsg(t, directDSN())
	const settingsSQL = `SELECT pg_backend_pid(), current_setting('application_name'), current_setting('DateStyle'), current_setting('TimeZone')`
	want := direct.row(settingsSQL)[1:]
	first := connectMsg(t, p.AppDSN())
	compareParamStatus(t, direct.params, first.params)
	first.simpleQuery(`SET application_name = 'changed'; SET DateStyle = 'SQL, DMY'; SET TimeZone = 'Asia/Tokyo'`)
	pid := first.row(settingsSQL)[0]
	first.send(&pgproto3.Terminate{})
	_ = first.nc.Close()
	waitUntil(t, "the server connection to go back to the pool", func() bool { return p.Srv.Clients() == 0 })
	second := connectMsg(t, p.AppDSN())
	compareParamStatus(t, direct.params, second.params)
	got := second.row(settingsSQL)
	if got[0] != pid {
		t.Fatalf("second client on backend %s, the first was on %s: the reused connection was not tested", got[0], pid)
	}
	if !slices.Equal(got[1:], want) {
		t.Errorf("settings on the reused server %q, on a new PostgreSQL session %q", got[1:], want)
	}
}

// row runs sql with the simple protocol and returns its one row as text.
func (c *msgConn) row(sql string) []string {
	c.t.Helper()
	c.send(&pgproto3.Query{String: sql})
	var row []string
	for {
		m, err := c.receive(ioTimeout)
		if err != nil {
			c.t.Fatalf("%s: %v", sql, err)
		}
		switch m := m.(type) {
		case *pgproto3.DataRow:
			for _, v := range m.Values {
				row = append(row, string(v))
			}
		case *pgproto3.ErrorResponse:
			c.t.Fatalf("%s: %s", sql, m.Message)
		case *pgproto3.ReadyForQuery:
			if row == nil {
				c.t.Fatalf("%s: no row", sql)
			}
			return row
		}
	}
}

// showStartupSettingsSQL reads the settings the startup parameter tests set.
const showStartupSettingsSQL = `SELECT current_setting('application_name'), current_setting('search_path'),
	current_setting('DateStyle'), current_setting('statement_timeout'), current_setting('lock_timeout'),
	current_setting('work_mem'), current_setting('TimeZone')`

// TestStartupParametersParity connects with run-time parameters and options
// directly and through pgone, and compares what PostgreSQL then reports: the
// settings, the ParameterStatus values, or the error.
func TestStartupParametersParity(t *testing.T) {
	t.Parallel()
	p := startProxy(t, nil)
	for _, tc := range []struct {
		name   string
		params map[string]string
	}{
		{"parameters", map[string]string{"application_name": `it's a \ test`, "DateStyle": "SQL, DMY", "search_path": `"my schema", public`, "TimeZone": "Europe/Paris"}},
		{"options", map[string]string{"options": `-c statement_timeout=1234 --lock-timeout=4321 -cwork_mem=5MB -c search_path=my\ schema,public`}},
		{"options and parameter of the same name", map[string]string{"options": "-c application_name=from_options", "application_name": "from_parameter"}},
		{"escapes in options", map[string]string{"options": `-c application_name=a\\b\ c\'d`}},
		{"trailing backslash in options", map[string]string{"options": `-c application_name=trailing\`}},
		{"unknown parameter", map[string]string{"no_such_parameter": "1"}},
		{"unknown parameter in options", map[string]string{"options": "-c no_such_parameter=1"}},
		{"bad value", map[string]string{"statement_timeout": "soon"}},
		{"option without a value", map[string]string{"options": "-c statement_timeout"}},
		{"-c without a setting", map[string]string{"options": "-c"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			directRes := startupAttempt(t, directDSN(), tc.params)
			proxiedRes := startupAttempt(t, p.AppDSN(), tc.params)
			if directRes.err != proxiedRes.err {
				t.Fatalf("error: direct %q, through pgone %q", directRes.err, proxiedRes.err)
			}
			if directRes.settings != proxiedRes.settings {
				t.Errorf("settings:\n direct %s\n  pgone %s", directRes.settings, proxiedRes.settings)
			}
			if directRes.err == "" {
				compareParamStatus(t, directRes.params, proxiedRes.params)
			}
		})
	}
}

type startupAttemptResult struct {
	err      string // SQLSTATE, severity and message of a failed connect
	settings string
	params   map[string]string
}

func startupAttempt(t *testing.T, dsn string, params map[string]string) startupAttemptResult {
	t.Helper()
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range params {
		cfg.RuntimeParams[k] = v
	}
	ctx := testCtx(t)
	pc, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		var pe *pgconn.PgError
		if !errors.As(err, &pe) {
			t.Fatalf("connect: %v", err)
		}
		return startupAttemptResult{err: pe.Code + " " + pe.Severity + " " + pe.Message}
	}
	defer pc.Close(context.Background())
	res := pc.ExecParams(ctx, showStartupSettingsSQL, nil, nil, nil, nil).Read()
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	var vals []string
	for _, v := range res.Rows[0] {
		vals = append(vals, string(v))
	}
	ps := map[string]string{}
	for _, k := range []string{"application_name", "DateStyle", "TimeZone", "server_encoding", "client_encoding",
		"integer_datetimes", "IntervalStyle", "is_superuser", "session_authorization", "standard_conforming_strings", "server_version"} {
		ps[k] = pc.ParameterStatus(k)
	}
	return startupAttemptResult{settings: strings.Join(vals, " | "), params: ps}
}

// TestQuoteLiteralOnPostgreSQL has PostgreSQL evaluate what quoteLiteral
// builds, with either setting of standard_conforming_strings.
func TestQuoteLiteralOnPostgreSQL(t *testing.T) {
	t.Parallel()
	conn := connect(t, directDSN())
	ctx := testCtx(t)
	inputs := []string{"", "plain", "it's", "''", `\`, `\'`, `'\`, `a\\b`, `\n`, "$$", "line\nbreak", "tab\t", "ünïcødé", "E'x'", `'); DROP TABLE x; --`}
	for _, scs := range []string{"on", "off"} {
		if _, err := conn.Exec(ctx, "SET standard_conforming_strings = "+scs); err != nil {
			t.Fatal(err)
		}
		for _, s := range inputs {
			// Simple protocol: the literal is part of the SQL text itself.
			res, err := conn.PgConn().Exec(ctx, "SELECT "+proxy.QuoteLiteral(s)).ReadAll()
			if err != nil || len(res) != 1 || len(res[0].Rows) != 1 {
				t.Fatalf("scs %s: %q: %v", scs, s, err)
			}
			if got := string(res[0].Rows[0][0]); got != s {
				t.Errorf("standard_conforming_strings %s: %s evaluates to %q, want %q", scs, proxy.QuoteLiteral(s), got, s)
			}
		}
	}
}

// TestApplyParamsSQLOnPostgreSQL runs the statement pgone uses to apply
// startup parameters and compares the settings with a direct startup that
// carried the same parameters.
func TestApplyParamsSQLOnPostgreSQL(t *testing.T) {
	t.Parallel()
	kv := []string{"application_name", `it's a \ test`, "search_path", `"my schema", public`, "DateStyle", "SQL, DMY",
		"statement_timeout", "1234", "TimeZone", "Europe/Paris"}
	params := map[string]string{}
	for i := 0; i < len(kv); i += 2 {
		params[kv[i]] = kv[i+1]
	}
	want := startupAttempt(t, directDSN(), params)

	conn := connect(t, directDSN())
	ctx := testCtx(t)
	if err := conn.PgConn().Exec(ctx, proxy.ApplyParamsSQL(kv...)).Close(); err != nil {
		t.Fatal(err)
	}
	res := conn.PgConn().ExecParams(ctx, showStartupSettingsSQL, nil, nil, nil, nil).Read()
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	var vals []string
	for _, v := range res.Rows[0] {
		vals = append(vals, string(v))
	}
	if got := strings.Join(vals, " | "); got != want.settings {
		t.Fatalf("after ApplyParamsSQL: %s\nstartup parameters: %s", got, want.settings)
	}
}

// ioTimeout bounds a read or write that should succeed: generous, since
// the tests share a small machine with other test runs.
const ioTimeout = 30 * time.Second

// waitUntil polls cond until it holds or ioTimeout passes.
func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(ioTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

package proxy

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgone/pgone/cache"
	"github.com/pgone/pgone/internal/pgmsg"
	"github.com/pgone/pgone/router"
)

func planOf(r *router.Router, text string) StatementPlan {
	d := r.Route(text, router.Session{})
	return StatementPlan{Text: text, Target: d.Target, Reason: d.Reason, ReadTables: d.ReadTables,
		WriteTables: d.WriteTables, Cacheable: d.Cacheable, Fingerprint: d.Fingerprint, Tx: d.Tx}
}

// TestCacheableRead: the router's verdict, then the rules or a hint;
// catalogs and nocache never.
func TestCacheableRead(t *testing.T) {
	r := router.NewRouter(100)
	rules := compileRules([]cache.Rule{{Table: "public.Accounts", TTL: 30 * time.Second}, {Table: "branches"}})
	tests := []struct {
		text string
		ok   bool
		ttl  time.Duration
	}{
		{"SELECT * FROM accounts WHERE id = 1", true, 30 * time.Second},
		{"SELECT * FROM public.accounts a JOIN branches b ON a.b = b.id", true, 30 * time.Second},
		{"SELECT * FROM branches", true, 0},
		{"SELECT * FROM tellers", false, 0},
		{"SELECT * FROM accounts JOIN tellers ON true", false, 0},
		{"/* pgone:cache ttl=5s */ SELECT * FROM tellers", true, 5 * time.Second},
		{"/* pgone:nocache */ SELECT * FROM accounts", false, 0},
		{"SELECT * FROM accounts FOR UPDATE", false, 0},
		{"SELECT now(), * FROM accounts", false, 0},
		{"SELECT random() FROM accounts", false, 0},
		{"/* pgone:cache */ SELECT * FROM pg_class", false, 0},
		{"/* pgone:primary */ SELECT * FROM accounts", false, 0},
		{"UPDATE accounts SET x = 1", false, 0},
		{"SELECT 1; SELECT 2", false, 0},
		{"SELECT 1", false, 0},
	}
	for _, tc := range tests {
		ttl, ok := rules.cacheableRead(planOf(r, tc.text), false)
		if ok != tc.ok || ttl != tc.ttl {
			t.Errorf("%s: cacheable %v ttl %s; want %v %s", tc.text, ok, ttl, tc.ok, tc.ttl)
		}
	}
}

// TestCacheableReadFingerprint: a fingerprint rule admits the statement it
// names (any constants, any comment) although no table rule names its
// tables, and only that statement; every other check of cacheableRead
// still refuses (nocache, catalogs, non-immutable functions); a table rule
// of a table it reads shortens its TTL.
func TestCacheableReadFingerprint(t *testing.T) {
	r := router.NewRouter(100)
	fp := func(text string) string { return fmt.Sprintf("%016x", r.Route(text, router.Session{}).Fingerprint) }
	rules := compileRules([]cache.Rule{
		{Table: "accounts", TTL: 30 * time.Second},
		{Fingerprint: fp("SELECT v FROM tellers WHERE id = 1"), TTL: 10 * time.Second},
		{Fingerprint: fp("SELECT v FROM tellers WHERE id = 1"), TTL: time.Minute}, // the shorter wins
		{Fingerprint: fp("SELECT * FROM tellers t JOIN accounts a ON a.id = t.id"), TTL: time.Minute},
		{Fingerprint: fp("SELECT v FROM branches")},
		{Fingerprint: fp("SELECT relname FROM pg_class WHERE oid = 1")},
		{Fingerprint: fp("SELECT now(), v FROM tellers")},
		{Fingerprint: fp("SELECT 1")},
	})
	tests := []struct {
		text string
		ok   bool
		ttl  time.Duration
	}{
		{"SELECT v FROM tellers WHERE id = 1", true, 10 * time.Second},
		{"SELECT v FROM tellers WHERE id = 42", true, 10 * time.Second},
		{"/* app */ SELECT v FROM tellers WHERE id = 7", true, 10 * time.Second},
		{"SELECT v FROM tellers WHERE id > 1", false, 0},
		{"SELECT v FROM tellers", false, 0},
		{"SELECT * FROM tellers t JOIN accounts a ON a.id = t.id", true, 30 * time.Second},
		{"SELECT v FROM branches", true, 0},
		{"/* pgone:nocache */ SELECT v FROM tellers WHERE id = 1", false, 0},
		{"/* pgone:primary */ SELECT v FROM tellers WHERE id = 1", false, 0},
		{"SELECT relname FROM pg_class WHERE oid = 1", false, 0},
		{"SELECT now(), v FROM tellers", false, 0},
		{"SELECT 1", true, 0},
		{"SELECT 2", true, 0},
	}
	for _, tc := range tests {
		ttl, ok := rules.cacheableRead(planOf(r, tc.text), false)
		if ok != tc.ok || ttl != tc.ttl {
			t.Errorf("%s: cacheable %v ttl %s; want %v %s", tc.text, ok, ttl, tc.ok, tc.ttl)
		}
	}
}

// TestCacheableReadAdmitted: a read the tuner's admission names counts as
// a fingerprint rule without a TTL of its own: cacheable whatever tables
// it reads, with the shorter TTL of a table rule naming one of them, and
// still refused where the router's verdict or a hint refuses it.
func TestCacheableReadAdmitted(t *testing.T) {
	r := router.NewRouter(100)
	rules := compileRules([]cache.Rule{{Table: "accounts", TTL: 30 * time.Second}})
	tests := []struct {
		text string
		ok   bool
		ttl  time.Duration
	}{
		{"SELECT v FROM tellers WHERE id = 1", true, 0},
		{"SELECT * FROM tellers t JOIN accounts a ON a.id = t.id", true, 30 * time.Second},
		{"/* pgone:nocache */ SELECT v FROM tellers WHERE id = 1", false, 0},
		{"SELECT now(), v FROM tellers", false, 0},
	}
	for _, tc := range tests {
		if _, ok := rules.cacheableRead(planOf(r, tc.text), false); ok {
			t.Errorf("%s: cacheable without admission", tc.text)
		}
		ttl, ok := rules.cacheableRead(planOf(r, tc.text), true)
		if ok != tc.ok || ttl != tc.ttl {
			t.Errorf("%s admitted: cacheable %v ttl %s; want %v %s", tc.text, ok, ttl, tc.ok, tc.ttl)
		}
	}
}

// TestWriteOf: what a statement marks before it is sent.
func TestWriteOf(t *testing.T) {
	r := router.NewRouter(100)
	tests := []struct {
		text   string
		tables []string
		all    bool
	}{
		{"SELECT * FROM t", nil, false},
		{"BEGIN", nil, false},
		{"COMMIT", nil, false},
		{"SET TimeZone = 'UTC'", nil, false},
		{"SHOW TimeZone", nil, false},
		{"INSERT INTO t VALUES (1)", []string{"t"}, false},
		{"UPDATE s.t SET v = 1", []string{"s.t"}, false},
		{"WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x", []string{"t"}, false},
		{"TRUNCATE t", nil, true},
		{"ALTER TABLE t ADD COLUMN c int", []string{"t"}, true},
		{"DROP TABLE t", []string{"t"}, true},
		{"GRANT SELECT ON t TO x", []string{"t"}, true},
		{"DO $$ BEGIN UPDATE t SET v = 1; END $$", nil, true},
		{"CALL p()", nil, true},
		{"SELECT my_function()", nil, true},
		{"SELECT nextval('s')", nil, true},
		{"INSERT INTO t VALUES (1); UPDATE u SET v = 1", nil, true},
		{"EXPLAIN ANALYZE UPDATE t SET v = 1", []string{"t"}, false},
		{"EXECUTE x", nil, true},
		{"COPY t FROM STDIN", []string{"t"}, false},
		{"REFRESH MATERIALIZED VIEW mv", nil, true},
		{"SELECT * FROM t FOR UPDATE", nil, false},
		// A prepared transaction's writes become visible at COMMIT
		// PREPARED, whose text names none of them.
		{"PREPARE TRANSACTION 'g'", nil, false},
		{"COMMIT PREPARED 'g'", nil, true},
		{"ROLLBACK PREPARED 'g'", nil, false},
	}
	for _, tc := range tests {
		tables, all := writeOf(planOf(r, tc.text))
		if all != tc.all || (tc.tables != nil && !slices.Equal(tables, tc.tables)) {
			t.Errorf("%s: tables %v all %v; want %v %v", tc.text, tables, all, tc.tables, tc.all)
		}
	}
}

// TestCacheShape: only requests a hit can replay without skipping state.
func TestCacheShape(t *testing.T) {
	enc := func(msgs ...pgproto3.FrontendMessage) *request {
		var req request
		for _, m := range msgs {
			b, err := m.Encode(nil)
			if err != nil {
				t.Fatal(err)
			}
			req.add(b, b[0])
		}
		return &req
	}
	bind := &pgproto3.Bind{}
	exec := &pgproto3.Execute{}
	sync := &pgproto3.Sync{}
	tests := []struct {
		name string
		req  *request
		want cache.Shape
	}{
		{"query", enc(&pgproto3.Query{String: "SELECT 1"}), shapeSimple},
		{"unnamed", enc(&pgproto3.Parse{Query: "SELECT 1"}, bind, &pgproto3.Describe{ObjectType: 'P'}, exec, sync), shapeExtended},
		{"prepared", enc(&pgproto3.Bind{PreparedStatement: "s"}, exec, sync), shapeExtended},
		{"named parse", enc(&pgproto3.Parse{Name: "s", Query: "SELECT 1"}, bind, exec, sync), shapeNone},
		{"named portal", enc(&pgproto3.Bind{DestinationPortal: "p"}, &pgproto3.Execute{Portal: "p"}, sync), shapeNone},
		{"row limit", enc(bind, &pgproto3.Execute{MaxRows: 10}, sync), shapeNone},
		{"two executes", enc(bind, exec, exec, sync), shapeNone},
		{"two syncs", enc(bind, exec, sync, bind, exec, sync), shapeNone},
		{"close", enc(bind, exec, &pgproto3.Close{ObjectType: 'S', Name: "s"}, sync), shapeNone},
		{"flush", enc(bind, exec, &pgproto3.Flush{}), shapeNone},
		{"two queries", enc(&pgproto3.Query{String: "SELECT 1"}, &pgproto3.Query{String: "SELECT 1"}), shapeNone},
	}
	for _, tc := range tests {
		if got := cacheShape(tc.req); got != tc.want {
			t.Errorf("%s: shape %d, want %d", tc.name, got, tc.want)
		}
	}
}

// TestReplayable: only a read's replies, ending at one idle ReadyForQuery.
func TestReplayable(t *testing.T) {
	enc := func(msgs ...pgproto3.BackendMessage) ReplyFrames {
		var b []byte
		for _, m := range msgs {
			b, _ = m.Encode(b)
		}
		return ReplyFrames{b: b, complete: true}
	}
	rd := &pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{{Name: []byte("a"), DataTypeOID: 23, DataTypeSize: 4}}}
	row := &pgproto3.DataRow{Values: [][]byte{[]byte("1")}}
	cc := &pgproto3.CommandComplete{CommandTag: []byte("SELECT 1")}
	idle := &pgproto3.ReadyForQuery{TxStatus: pgmsg.TxIdle}
	tests := []struct {
		name string
		f    ReplyFrames
		want bool
	}{
		{"read", enc(rd, row, cc, idle), true},
		{"extended", enc(&pgproto3.ParseComplete{}, &pgproto3.BindComplete{}, rd, row, cc, idle), true},
		{"notice", enc(rd, &pgproto3.NoticeResponse{Message: "x"}, row, cc, idle), false},
		{"parameter status", enc(rd, row, cc, &pgproto3.ParameterStatus{Name: "TimeZone", Value: "x"}, idle), false},
		{"in transaction", enc(rd, row, cc, &pgproto3.ReadyForQuery{TxStatus: 'T'}), false},
		{"suspended", enc(rd, row, &pgproto3.PortalSuspended{}, idle), false},
		{"no ready", enc(rd, row, cc), false},
		{"incomplete", ReplyFrames{b: enc(rd, row, cc, idle).b}, false},
	}
	for _, tc := range tests {
		if got := replayable(tc.f); got != tc.want {
			t.Errorf("%s: replayable %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestCacheHint(t *testing.T) {
	tests := []struct {
		text             string
		nocache, cacheIt bool
		ttl              time.Duration
	}{
		{"SELECT 1", false, false, 0},
		{"/* pgone:cache ttl=30s */ SELECT 1", false, true, 30 * time.Second},
		{"/* PGONE:CACHE */ SELECT 1", false, true, 0},
		{"/* pgone:cache ttl=bogus */ SELECT 1", false, true, 0},
		{"/* pgone:nocache */ SELECT 1", true, false, 0},
		{"/* pgone:cache */ /* pgone:nocache */ SELECT 1", true, false, 0},
		{"/* pgone:primary */ SELECT 1", false, false, 0},
		{"/* PgOne:NoCache */ SELECT 1", true, false, 0},
		{"SELECT 'pgone' || ':cache'", false, false, 0},
		{"/* pgone:cache ttl=1m", false, true, time.Minute},
	}
	for _, tc := range tests {
		n, c, ttl := cacheHint(tc.text)
		if n != tc.nocache || c != tc.cacheIt || ttl != tc.ttl {
			t.Errorf("%s: %v %v %s; want %v %v %s", tc.text, n, c, ttl, tc.nocache, tc.cacheIt, tc.ttl)
		}
	}
}

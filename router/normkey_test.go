package router

import (
	"reflect"
	"strings"
	"testing"
)

// shown makes a key readable: placeholders print as ?s, ?i...
func shown(key []byte) string { return strings.ReplaceAll(string(key), "\x00", "?") }

func TestNormalizedKey(t *testing.T) {
	cases := []struct {
		text, want string // want "" means no key
	}{
		// Numbers.
		{"SELECT 1", "SELECT ?i"},
		{"SELECT 2147483647, 2147483648, 007", "SELECT ?i, ?f, ?i"},
		{"SELECT 1.5, .5, 1., 1e5, 1.5E10", "SELECT ?f, ?f, ?f, ?f, ?f"},
		{"SELECT 1.5e-3, 1e+5", "SELECT ?g, ?g"},
		{"SELECT -3 - -4", "SELECT -?i - -?i"},
		{"SELECT a[1:2] FROM t", "SELECT a[?i:?i] FROM t"},
		{"SELECT 1::int", "SELECT ?i::int"},
		{"SELECT 0x1F", ""},
		{"SELECT 1_000", ""},
		{"SELECT 1abc", ""},
		{"SELECT 1e", ""},
		{"SELECT 1..2", ""},
		{"SELECT 1.5.5", ""},
		// Digits after identifier characters belong to the identifier.
		{"SELECT t1.c2 FROM t1", "SELECT t1.c2 FROM t1"},
		{"SELECT a$1 FROM t WHERE b = $1 AND c = $12", "SELECT a$1 FROM t WHERE b = $1 AND c = $12"},
		{"SELECT $1abc", ""},
		// Strings.
		{"SELECT 'abc'", "SELECT ?s"},
		{"SELECT 'it''s', ''", "SELECT ?s, ?s"},
		{"SELECT E'a\\'b', e'plain'", "SELECT E'a\\'b', ?s"},
		{"SELECT E'it''s'", "SELECT ?s"},
		{"SELECT B'101', X'1F', b'0'", "SELECT ?b, ?x, ?b"},
		{"SELECT N'abc'", "SELECT N?s"},
		{"SELECT $$a'b$$, $tag$ $$ x $tag$, $a$$b$$a$", "SELECT ?s, ?s, ?s"},
		{"SELECT date '2024-01-01', interval '1 day'", "SELECT date ?s, interval ?s"},
		{"SELECT x'", ""},
		{"SELECT 'abc", ""},
		{"SELECT 'a\\b'", ""}, // standard_conforming_strings may be off
		{"SELECT E'abc", ""},
		{"SELECT E'a\\'", ""},
		{"SELECT U&'\\0041'", ""},
		{`SELECT U&"a" FROM t`, ""},
		{"SELECT $$abc", ""},
		{"SELECT $tag$abc$tga$", ""},
		{"SELECT $ 1", ""},
		{"SELECT 'a'\n'b'", ""},
		{"SELECT 'a' -- c\n 'b'", ""},
		{"SELECT B'1''0'", ""},
		{"SELECT 'a\x00'", ""},
		{"SELECT 'a\x8f'", ""}, // pg_query rejects it: found by FuzzRoute
		// Time words stay verbatim, as isTimeLiteral reads them.
		{"SELECT 'now'::timestamptz, ' Today ', 'TOMORROW', 'yesterday', 'nowx'", "SELECT 'now'::timestamptz, ' Today ', 'TOMORROW', 'yesterday', ?s"},
		{"SELECT timestamp 'now', E'now', $$now$$, $x$ today $x$", "SELECT timestamp 'now', E'now', $$now$$, $x$ today $x$"},
		// Identifiers, comments and hints are kept.
		{`SELECT "a'b", "x""y" FROM "T1"`, `SELECT "a'b", "x""y" FROM "T1"`},
		{`SELECT "a`, ""},
		{"/* pgone:cache ttl=30s */ SELECT * FROM t WHERE a = 5", "/* pgone:cache ttl=30s */ SELECT * FROM t WHERE a = ?i"},
		{"SELECT 1 /* pgone:nocache */", "SELECT ?i /* pgone:nocache */"},
		{"SELECT 1 -- 'x' 2\n, 3", "SELECT ?i -- 'x' 2\n, ?i"},
		{"SELECT /* a /* 'b' */ 5 */ 6", "SELECT /* a /* 'b' */ 5 */ ?i"},
		{"SELECT /* a /* b */ 6", ""},
		{"SELECT 1 --", "SELECT ?i --"},
		{"SELECT 1 */ 2", "SELECT ?i */ ?i"},
		{"SELECT a<>-1", "SELECT a<>-?i"},
	}
	for _, c := range cases {
		key, _, ok := normalizedKey(nil, c.text, nil)
		got := shown(key)
		if !ok {
			got = ""
		}
		if got != c.want {
			t.Errorf("normalizedKey(%q) = %q, want %q", c.text, got, c.want)
		}
	}
}

// TestNormalizedKeySpans: the spans recorded are the literals replaced.
func TestNormalizedKeySpans(t *testing.T) {
	const text = "SELECT 'a''b', -12, E'x', $q$y$q$, B'1' FROM t WHERE x = 1.5e-3 AND y = 'now'"
	var lits []litSpan
	if _, n, ok := normalizedKey(nil, text, &lits); !ok || n != len(lits) {
		t.Fatal("no key")
	}
	var got []string
	for _, l := range lits {
		got = append(got, text[l.start:l.end])
	}
	want := []string{"'a''b'", "12", "E'x'", "$q$y$q$", "B'1'", "1.5e-3"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("spans %q, want %q", got, want)
	}
}

func TestNormalizedKeyAllocatesNothing(t *testing.T) {
	const text = "UPDATE pgbench_accounts SET abalance = abalance + -3105 WHERE aid = 61234;"
	buf := make([]byte, 0, 256)
	if n := testing.AllocsPerRun(100, func() { buf, _, _ = normalizedKey(buf, text, nil) }); n != 0 {
		t.Fatalf("%v allocations", n)
	}
}

// literalVariants are replacements tried for each literal of a corpus
// text: same-kind values (shared keys) and other kinds (other keys).
var literalVariants = []string{
	"0", "7", "-3", "2147483647", "2147483648", "1.5", ".5", "1e5", "1.5e-3",
	"'x'", "''", "'it''s'", "'now'", "' Today '", "'2024-01-01'", "'t'", "E'y'",
	"E'\\n'", "$$z$$", "$q$now$q$", "B'101'", "X'1F'",
}

// variantsOf returns text with all its literals replaced by each of
// values at once and, with oneByOne, each literal alone by each value.
func variantsOf(text string, values []string, oneByOne bool) []string {
	var lits []litSpan
	if _, _, ok := normalizedKey(nil, text, &lits); !ok || len(lits) == 0 {
		return nil
	}
	replaced := func(pick func(i int) string) string {
		var b strings.Builder
		last := 0
		for i, l := range lits {
			b.WriteString(text[last:l.start])
			b.WriteString(pick(i))
			last = int(l.end)
		}
		b.WriteString(text[last:])
		return b.String()
	}
	var out []string
	for _, v := range values {
		out = append(out, replaced(func(int) string { return v }))
		for j := 0; oneByOne && j < len(lits); j++ {
			out = append(out, replaced(func(i int) string {
				if i == j {
					return v
				}
				return text[lits[i].start:lits[i].end]
			}))
		}
	}
	return out
}

// normalizedCorpus holds statements with literals whose value could
// matter, beside pgbench's and the route table's.
var normalizedCorpus = []string{
	// pgbench -S and TPC-B, simple protocol.
	"SELECT abalance FROM pgbench_accounts WHERE aid = 61234;",
	"UPDATE pgbench_accounts SET abalance = abalance + -3105 WHERE aid = 61234;",
	"UPDATE pgbench_accounts SET abalance = abalance + 2000 WHERE aid = 1;",
	"UPDATE pgbench_tellers SET tbalance = tbalance + 17 WHERE tid = 3;",
	"UPDATE pgbench_branches SET bbalance = bbalance + 17 WHERE bid = 1;",
	"INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (3, 1, 61234, -3105, CURRENT_TIMESTAMP);",
	"BEGIN;", "END;",
	// Time words, typed literals, casts.
	"SELECT * FROM t WHERE ts > 'now'::timestamptz - interval '1 day'",
	"SELECT * FROM t WHERE ts > timestamp 'today' AND a = 5",
	"SELECT * FROM t WHERE d = date '2024-01-01'",
	"SELECT '2024-01-01'::date, 'x'::regclass, 5::int8, 'now'",
	"SELECT $$now$$::timestamptz, E'today'::date",
	"SELECT x::numeric(10,2), y::varchar(5), z::float(10), w::float(30), v::int[5] FROM t",
	"SELECT x::bit(3), B'101' | X'F', 'a' || 'b' FROM t",
	// Write functions, advisory locks, sequences, settings.
	"SELECT nextval('s'), setval('s', 5)",
	"SELECT currval('order_seq') FROM t WHERE id = 1",
	"SELECT set_config('search_path', 'app', false)",
	"SELECT pg_advisory_lock(42)", "SELECT pg_try_advisory_xact_lock(42, 7)",
	"SELECT pg_advisory_unlock(42)",
	"SET search_path = 'app'", "SET LOCAL statement_timeout = 5000", "SET LOCAL work_mem = '64MB'",
	"SET statement_timeout TO 100", "RESET ALL",
	// Hints, locking, CTEs, subqueries, DML.
	"/* pgone:primary */ SELECT * FROM t WHERE a = 1",
	"/* pgone:replica */ SELECT random() FROM t WHERE a = 1",
	"/* pgone:cache ttl=30s */ SELECT * FROM t WHERE a = 1",
	"/* pgone:nocache */ SELECT * FROM t WHERE a = 'x'",
	"SELECT * FROM t WHERE a = 1 -- pgone:primary\n",
	"SELECT 'pgone:primary' FROM t WHERE a = 1",
	"SELECT * FROM t WHERE id = 5 FOR UPDATE",
	"SELECT * FROM t WHERE id = 5 FOR SHARE SKIP LOCKED",
	"WITH x AS (SELECT * FROM t WHERE a = 1) SELECT * FROM x WHERE b > 2.5",
	"WITH d AS (DELETE FROM t WHERE a = 1 RETURNING *) SELECT * FROM d",
	"INSERT INTO t (a, b) VALUES (1, 'x'), (2, 'y') ON CONFLICT (a) DO UPDATE SET b = 'z'",
	"INSERT INTO t SELECT * FROM u WHERE a < 10 RETURNING a",
	"DELETE FROM t WHERE a IN (1, 2, 3)",
	"MERGE INTO t USING u ON t.id = u.id WHEN MATCHED THEN UPDATE SET a = 1 WHEN NOT MATCHED THEN INSERT VALUES (u.id, 2)",
	"SELECT * FROM t ORDER BY 1 LIMIT 10 OFFSET 5",
	"SELECT * FROM t FETCH FIRST 5 ROWS ONLY",
	"SELECT * FROM t TABLESAMPLE SYSTEM (10) REPEATABLE (5)",
	"SELECT * FROM t TABLESAMPLE SYSTEM (10)",
	"SELECT a FROM t WHERE b LIKE 'x%' ESCAPE '!' AND c SIMILAR TO 'y'",
	"SELECT extract(epoch FROM ts), extract('year' FROM ts), ts AT TIME ZONE 'UTC' FROM t",
	"SELECT a INTO new_t FROM t WHERE b = 1",
	"SELECT * FROM pg_stat_activity WHERE pid = 5",
	"SELECT pg_backend_pid(), 1",
	"SELECT * FROM t WHERE a = $1 AND b = 5",
	"SELECT 1; SELECT 2",
	"UPDATE t SET a = 1; DELETE FROM u WHERE b = 'x'",
	// Utility statements with literals: never shared, still routed.
	"EXPLAIN (ANALYZE 1) SELECT * FROM t WHERE a = 1",
	"EXPLAIN (ANALYZE 0) INSERT INTO t VALUES (1)",
	"EXPLAIN (ANALYZE 'off') DELETE FROM t",
	"EXPLAIN SELECT * FROM t WHERE a = 1",
	"BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY",
	"PREPARE TRANSACTION 'g1'", "COMMIT PREPARED 'g1'",
	"COPY t FROM STDIN WITH (FORMAT 'csv', DELIMITER ';')",
	"NOTIFY ch, 'payload'", "LISTEN ch",
	"DECLARE c CURSOR WITH HOLD FOR SELECT * FROM t WHERE a = 1",
	"FETCH 5 FROM c",
	"CREATE TABLE t2 (a int DEFAULT 5, b text DEFAULT 'x')",
	"CREATE TEMP TABLE tt AS SELECT 1",
	"CREATE SEQUENCE s START 5",
	"COMMENT ON TABLE t IS 'x'",
	"LOAD 'auto_explain'",
	"DO $$BEGIN PERFORM 1; END$$",
	"CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$SELECT 1$$",
	"ALTER TABLE t ALTER a SET STATISTICS 100",
	"EXECUTE p(1, 'x')",
	"CALL proc(1)",
}

func corpusTexts() []string {
	texts := append([]string{}, normalizedCorpus...)
	for _, c := range routeCases {
		texts = append(texts, c.sql)
	}
	return append(texts, trickyTexts...)
}

// TestNormalizedMatchesUncached is the differential test: for every
// variant of every corpus text, a warm router (which answers most
// variants from the normalised level) decides exactly as a router that
// parses every text.
func TestNormalizedMatchesUncached(t *testing.T) {
	warm := NewRouter(100000)
	fresh := NewRouter(0)
	sessions := []Session{{}, withProc, withCfg, rwTx, roTx, defRO, defSer}
	checked := 0
	for _, text := range corpusTexts() {
		for _, v := range append([]string{text}, variantsOf(text, literalVariants, true)...) {
			parsed := fresh.analysisFor(v) // what fresh.Route(v, s) decides from
			for _, s := range sessions {
				got, want := warm.Route(v, s), decide(parsed, &s)
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("%q in %+v: warm router %+v, parsing router %+v (variant of %q)", v, s, got, want, text)
				}
				checked++
			}
		}
	}
	hits, _ := warm.NormalizedStats()
	t.Logf("%d decisions compared, %d normalised hits, %d normalised keys", checked, hits, warm.NormalizedLen())
	if hits < uint64(checked)/20 {
		t.Fatalf("only %d normalised hits in %d routes: the differential test proves little", hits, checked)
	}
}

// TestNormalizedSharing: which texts share an analysis, and which are
// parsed each time.
func TestNormalizedSharing(t *testing.T) {
	cases := []struct {
		first, second string
		shared        bool
	}{
		{"SELECT abalance FROM pgbench_accounts WHERE aid = 61234;", "SELECT abalance FROM pgbench_accounts WHERE aid = 7;", true},
		{"UPDATE pgbench_accounts SET abalance = abalance + 5 WHERE aid = 1;", "UPDATE pgbench_accounts SET abalance = abalance + 2000 WHERE aid = 99;", true},
		{"SELECT * FROM t WHERE a = 'x'", "SELECT * FROM t WHERE a = $$y$$", true},
		{"/* pgone:cache ttl=30s */ SELECT * FROM t WHERE a = 1", "/* pgone:cache ttl=30s */ SELECT * FROM t WHERE a = 2", true},
		{"SELECT nextval('a')", "SELECT nextval('b')", true},
		{"SELECT pg_advisory_xact_lock(1)", "SELECT pg_advisory_xact_lock(2)", true},
		// Not shared: other keys, or an analysis that may read literals.
		{"SELECT * FROM t WHERE a = 1", "SELECT * FROM t WHERE a = 1.5", false},
		{"SELECT * FROM t WHERE a = 1", "SELECT * FROM t WHERE a = 2147483648", false},
		{"SELECT 'x'::timestamptz", "SELECT 'now'::timestamptz", false},
		{"/* pgone:cache ttl=30s */ SELECT 1", "/* pgone:nocache */ SELECT 2", false},
		{"SELECT pg_advisory_lock(1)", "SELECT pg_advisory_lock(2)", false},
		{"SELECT set_config('a', 'b', false)", "SELECT set_config('a', 'c', false)", false},
		{"SET LOCAL work_mem = 5", "SET LOCAL work_mem = 6", false},
		{"EXPLAIN (ANALYZE 1) SELECT 1", "EXPLAIN (ANALYZE 0) SELECT 1", false},
		{"SELECT x::float(10) FROM t", "SELECT x::float(30) FROM t", false},
		{"SELECT x::int[5] FROM t", "SELECT x::int[6] FROM t", false},
		{"SELECT 1; SELECT 2", "SELECT 3; SELECT 4", false},
		{"BEGIN; SELECT 1", "BEGIN; SELECT 2", false},
		{"SELECT 'a\\b'", "SELECT 'a\\c'", false},
	}
	for _, c := range cases {
		r := NewRouter(100)
		r.Route(c.first, Session{})
		r.Route(c.second, Session{})
		hits, _ := r.NormalizedStats()
		if (hits == 1) != c.shared {
			t.Errorf("%q then %q: %d normalised hits, want shared %v", c.first, c.second, hits, c.shared)
		}
		if h, m := r.Stats(); h != hits || m != 2-hits {
			t.Errorf("%q then %q: Stats() = %d, %d; want %d, %d", c.first, c.second, h, m, hits, 2-hits)
		}
	}
}

// TestRouteNormalizedHitAllocatesNothing: a text answered by the
// normalised level costs no allocation.
func TestRouteNormalizedHitAllocatesNothing(t *testing.T) {
	r := NewRouter(100)
	r.Route("SELECT abalance FROM pgbench_accounts WHERE aid = 1;", Session{})
	const text = "SELECT abalance FROM pgbench_accounts WHERE aid = 61234;"
	n := testing.AllocsPerRun(100, func() {
		if d := r.Route(text, Session{}); d.Target != TargetReplica {
			t.Fatal(d.Reason)
		}
	})
	if n != 0 {
		t.Fatalf("%v allocations per Route", n)
	}
	if hits, _ := r.NormalizedStats(); hits < 100 {
		t.Fatalf("%d normalised hits", hits)
	}
}

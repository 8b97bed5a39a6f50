package router

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// chain repeats sep+term n-1 times after head+term.
func chain(head, term, sep string, n int, tail string) string {
	return head + term + strings.Repeat(sep+term, n-1) + tail
}

// nest wraps term in n copies of open/close.
func nest(open, term, close string, n int) string {
	return strings.Repeat(open, n) + term + strings.Repeat(close, n)
}

// crashShapes are the tree shapes measured to crash pg_query_go in a child
// process, with the number of levels that crashed it on an 8 MB stack.
var crashShapes = []struct {
	name    string
	crashAt int
	text    func(n int) string
}{
	{"plus", 24000, func(n int) string { return chain("select (", "1", "+", n, ")") }},
	{"concat", 24000, func(n int) string { return chain("select ", "'a'", "||", n, "") }},
	{"cast", 24000, func(n int) string { return "select 1" + strings.Repeat("::int", n) }},
	{"arrow", 24000, func(n int) string { return chain("select ", "j", "->'a'", n, " from t") }},
	{"operator", 24000, func(n int) string { return chain("select ", "1", " operator(pg_catalog.+) ", n, "") }},
	{"join", 24000, func(n int) string { return chain("select * from ", "t", " join t on true", n, "") }},
	{"union", 48000, func(n int) string { return chain("", "select 1", " union all ", n, "") }},
	{"subselect", 8000, func(n int) string { return nest("select (", "select 1", ")", n) }},
	{"case", 12000, func(n int) string { return nest("select case when true then ", "1", " end", n) }},
	{"func", 24000, func(n int) string { return nest("select f(", "1", ")", n) }},
	{"array", 24000, func(n int) string { return nest("select array[", "1", "]", n) }},
	{"at_time_zone", 24000, func(n int) string { return "select now()" + strings.Repeat(" at time zone 'UTC'", n) }},
	{"collate", 24000, func(n int) string { return "select 'a'" + strings.Repeat(` collate "C"`, n) }},
}

// TestDepthBoundBelowCrash: at a quarter of the depth that crashed, every
// measured shape is over the default bound, so it never reaches pg_query.
func TestDepthBoundBelowCrash(t *testing.T) {
	t.Parallel()
	for _, sh := range crashShapes {
		text := sh.text(sh.crashAt / 4)
		if got := depthEstimate(text, math.MaxInt); got <= maxParseDepth {
			t.Errorf("%s at %d levels: estimate %d, want over %d", sh.name, sh.crashAt/4, got, maxParseDepth)
		}
	}
}

// TestDepthEstimateBoundsTree: the estimate is never below half the real
// tree depth in messages (a chain level is two: Node and the expression),
// over every routing case and every shape at sizes pg_query parses.
func TestDepthEstimateBoundsTree(t *testing.T) {
	t.Parallel()
	var texts []string
	for _, c := range routeCases {
		texts = append(texts, c.sql)
	}
	for _, sh := range crashShapes {
		texts = append(texts, sh.text(3), sh.text(150))
	}
	texts = append(texts, trickyTexts...)
	checked := 0
	for _, text := range texts {
		if checkDepthEstimate(t, text) {
			checked++
		}
	}
	if checked < len(texts)/2 {
		t.Fatalf("only %d of %d texts parsed", checked, len(texts))
	}
}

// trickyTexts nest in ways the scanner must see through.
var trickyTexts = []string{
	"select 1 where a = 1 and b = 2 or c = 3 and not d",
	"select case x when 1 then 2 when 3 then (select 4) else case when y then 1+1+1 end end from t",
	"select a from t where b between 1+1+1 and 2*2*2 and c like 'x' escape '!'",
	"select x is not distinct from y is not null from t",
	"select -(-(-(-1))), not not not true, ~ ~ ~ 1",
	"select (1+1)[1:2]::int[] collate \"C\" from t",
	"select exists (select 1 from t where t.a in (select b from u where u.c = any (array[1,2,3])))",
	"with a as (select 1), b as (with c as (select 2) select * from c) select * from a join b on true join (a a2 join b b2 using (x)) on true",
	"select count(*) filter (where a > 1) over (partition by b order by c rows between 1 preceding and current row) from t",
	"insert into t select * from u union select * from v intersect select * from w except (select 1)",
	"select 'a' || 'b' || E'\\'' || 'c' || $$d$$ || $x$e$x$ || U&'f'",
}

// checkDepthEstimate reports whether text parsed; if so it checks the
// estimate against the tree.
func checkDepthEstimate(t *testing.T, text string) bool {
	t.Helper()
	depth, ok := treeDepth(text)
	if !ok {
		return false
	}
	if est := depthEstimate(text, math.MaxInt); depth > 2*est+slackMessages {
		t.Errorf("estimate %d for a tree %d messages deep: %.200q", est, depth, text)
	}
	return true
}

// slackMessages covers the fixed levels of any statement (RawStmt, the
// statement, a target, a value) the estimate does not count.
const slackMessages = 24

// TestDepthScanSkipsQuoted: operators in literals, quoted identifiers,
// dollar quotes and comments do not count, and nothing the lexer reads as
// code can hide in something the scanner reads as a literal.
func TestDepthScanSkipsQuoted(t *testing.T) {
	t.Parallel()
	deep := strings.Repeat("+1", 6000)
	for _, tc := range []struct {
		text string
		over bool
	}{
		{"select 1" + deep, true},
		{"select '" + deep + "'", false},
		{"select 'it''s" + deep + "'", false},
		{`select "` + deep + `"`, false},
		{"select $$" + deep + "$$", false},
		{"select $a$ $$ " + deep + " $a$", false},
		{"select $1" + deep, true},
		{"select 1 -- " + deep, false},
		{"select 1 -- x\n" + deep, true},
		{"select 1 /* /* */ " + deep + " */", false},
		{"select 1 /* */ " + deep, true},
		// Standard strings: a backslash is a plain character, so the
		// literal ends at the second quote and the chain is code.
		{`select '\' ` + deep + ` '`, true},
		// E-strings: \' stays inside; the chain after it is code.
		{`select e'\'' ` + deep, true},
		{`select E'\\' ` + deep, true},
		{`select E'\'` + deep + `'`, false},
		// An identifier ending in e is not an E-string prefix.
		{`select somee'\' ` + deep + ` '`, true},
		// A dollar inside a word is part of it, not a quote.
		{"select a$b$" + deep, true},
		{"select 1" + strings.Repeat(", 1+1", 6000), false},
		{"select 1 where " + strings.Repeat("a = 1 and ", 6000) + "true", false},
		{"select 1;" + strings.Repeat("select 1+1+1;", 6000), false},
	} {
		if got := depthOver(tc.text, maxParseDepth); got != tc.over {
			t.Errorf("depthOver(%.60q...) = %v, want %v", tc.text, got, tc.over)
		}
	}
}

// TestBoundKeepsLargeFlatQueriesParsed: big IN lists, multi-row VALUES,
// long AND chains and CASE lists are flat in the tree: their depth
// estimate does not grow with their length, so they stay within the
// bounds and are parsed and routed as before. Only the texts pg_query
// parses fast are routed here: a 200 KB OR chain takes a second to parse
// and walk under -race, and their parsing is pg_query's, not the bound's.
func TestBoundKeepsLargeFlatQueriesParsed(t *testing.T) {
	t.Parallel()
	ints := make([]string, 30000)
	for i := range ints {
		ints[i] = strconv.Itoa(i)
	}
	rows := make([]string, 4000)
	for i := range rows {
		rows[i] = fmt.Sprintf("(%d, 'name %d', %d.5, now() - interval '1 day')", i, i, -i)
	}
	whens := make([]string, 3000)
	for i := range whens {
		whens[i] = fmt.Sprintf("when %d then 'v%d'", i, i)
	}
	r := NewRouter(100)
	for _, tc := range []struct {
		name, text string
		maxDepth   int    // the most the estimate may be
		reason     Reason // the routing of a text routed here; 0 to skip
	}{
		{"in_30000", "select * from t where id in (" + strings.Join(ints, ",") + ")", 10, 0},
		{"any_array_30000", "select * from t where id = any('{" + strings.Join(ints, ",") + "}'::int[])", 10, ReasonRead},
		{"values_4000", "insert into t values " + strings.Join(rows, ", "), 10, 0},
		{"and_10000", "select * from t where " + chain("", "a <> 1", " and ", 10000, ""), 10, 0},
		{"or_10000", "select * from t where " + chain("", "(a = 1 and b = 2)", " or ", 10000, ""), 10, 0},
		{"case_3000", "select case id " + strings.Join(whens, " ") + " end from t", 10, ReasonRead},
		{"chain_1000", chain("select ", "a", " + ", 1000, " from t"), 1010, ReasonRead},
	} {
		if _, over := overBound(tc.text, maxParseDepth); over {
			t.Errorf("%s: %d bytes, depth estimate %d: over a bound", tc.name, len(tc.text), depthEstimate(tc.text, math.MaxInt))
		}
		if est := depthEstimate(tc.text, math.MaxInt); est > tc.maxDepth {
			t.Errorf("%s: depth estimate %d, want at most %d", tc.name, est, tc.maxDepth)
		}
		if tc.reason == 0 {
			continue
		}
		if d := r.Route(tc.text, Session{}); d.Reason != tc.reason || d.Statements != 1 || d.Fingerprint == 0 {
			t.Errorf("%s (%d bytes): %s, %d statements, fingerprint %x; want %s, parsed", tc.name, len(tc.text), d.Reason, d.Statements, d.Fingerprint, tc.reason)
		}
	}
}

// TestRouteUnparsed: texts over a bound go to the primary unparsed and
// uncached, counted by reason, with the settings change and pins the word
// scans cannot rule out (data in a bulk INSERT's literals pins nothing).
func TestRouteUnparsed(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("x", maxParseLen)
	deep := "select (1" + strings.Repeat("+1", 29999) + ")"
	for _, tc := range []struct {
		name, text string
		reason     Reason
		settings   bool
		pins       []Pin
		unlisten   bool
	}{
		{"long_literal", "select '" + big + "'", ReasonTooLong, false, nil, false},
		{"long_literal_words", "insert into t values ('" + big + " temp role hold listen')", ReasonTooLong, true, nil, false},
		{"long_temp", "select 1 as temp, '" + big + "'", ReasonTooLong, true, pins(PinTempTable), false},
		{"long_do", "do $$ begin listen x; perform pg_advisory_lock(1); end $$ /*" + big + "*/", ReasonTooLong, true, pins(PinListen, PinAdvisoryLock), false},
		{"long_multi", "unlisten x; prepare p as select 1; select '" + big + "'", ReasonTooLong, true, pins(PinPrepare), true},
		// A quote in a comment, a quoted identifier or a dollar quote opens
		// no literal: what follows is still scanned.
		{"long_quote_in_comment", "insert into t values (1) -- don't\n; listen x; select '" + big + "'", ReasonTooLong, true, pins(PinListen), false},
		{"long_quote_in_block_comment", "select 1 /* it's */; set role x; select '" + big + "'", ReasonTooLong, true, pins(PinSessionAuthorization), false},
		{"long_quote_in_identifier", `select 1 as "it's"; select pg_advisory_lock(1); select '` + big + "'", ReasonTooLong, true, pins(PinAdvisoryLock), false},
		{"long_quote_in_dollar", "select $$it's$$; create temp table x (a int); select '" + big + "'", ReasonTooLong, true, pins(PinTempTable), false},
		{"deep", deep, ReasonTooComplex, false, nil, false},
		{"deep_temp", deep + " as temp", ReasonTooComplex, true, pins(PinTempTable), false},
		{"deep_role", "set role x; " + deep, ReasonTooComplex, true, pins(PinSessionAuthorization), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := NewRouter(100)
			for i := 0; i < 2; i++ {
				for _, s := range []Session{{}, roTx, defRO} {
					d := r.Route(tc.text, s)
					want := Decision{Target: P, Reason: tc.reason, Statements: 1, ChangesSettings: tc.settings, Pins: tc.pins, Unlisten: tc.unlisten}
					if diff := diffDecision(d, want); diff != "" || d.Fingerprint != 0 {
						t.Fatalf("Route:%s (fingerprint %x)", diff, d.Fingerprint)
					}
				}
			}
			if n := r.Len(); n != 0 {
				t.Errorf("cached %d texts, want none", n)
			}
			if got := r.Unparsed(tc.reason); got != 6 {
				t.Errorf("Unparsed(%s) = %d, want 6", tc.reason, got)
			}
		})
	}
}

func TestDepthLimitFor(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		stack uint64
		want  int
	}{
		{0, maxParseDepth},
		{8 << 20, maxParseDepth},
		{64 << 20, maxParseDepth},
		{1 << 20, 655},
		{2 << 20, 1310},
		{16 << 10, 64},
	} {
		if got := depthLimitFor(tc.stack); got != tc.want {
			t.Errorf("depthLimitFor(%d) = %d, want %d", tc.stack, got, tc.want)
		}
	}
}

// smallStackEnv makes TestRouteSmallStack's child route texts.
const smallStackEnv = "PGONE_ROUTER_SMALL_STACK_CHILD"

// TestRouteSmallStack runs the router in a child whose stack limit is
// 1 MB (pg_query_go crashed there at 3,000 terms): the bound follows
// RLIMIT_STACK, so 2,900 terms go unparsed and the child lives, while a
// chain just under the smaller bound is still parsed.
func TestRouteSmallStack(t *testing.T) {
	if os.Getenv(smallStackEnv) != "" {
		r := NewRouter(0)
		for _, n := range []int{2900, parseDepthLimit - 10} {
			d := r.Route(chain("select (", "1", "+", n, ")"), Session{})
			fmt.Printf("limit=%d n=%d reason=%s\n", parseDepthLimit, n, d.Reason)
		}
		return
	}
	cmd := exec.Command("sh", "-c", `ulimit -s 1024 && exec "$0" "$@"`, os.Args[0], "-test.run=^TestRouteSmallStack$", "-test.count=1")
	cmd.Env = append(childEnv(), smallStackEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child with a 1 MB stack died: %v\n%s", err, firstLines(string(out), 6))
	}
	for _, want := range []string{"limit=655 n=2900 reason=too_complex", "limit=655 n=645 reason=read"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("want %q in the child's output:\n%s", want, out)
		}
	}
}

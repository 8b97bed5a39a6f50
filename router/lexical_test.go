package router

import (
	"strings"
	"testing"
)

func TestNoSessionEffects(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		sql  string
		want bool
	}{
		{"SELECT 1", true},
		{"  select abalance from pgbench_accounts where aid = 61234;", true},
		{"UPDATE pgbench_accounts SET abalance = abalance + -3105 WHERE aid = 61234;", true},
		{"INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (1, 1, 2, 3, CURRENT_TIMESTAMP);", true},
		{"INSERT INTO t VALUES (1) ON CONFLICT (a) DO NOTHING", true},
		{"WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x", true},
		{"BEGIN;", true},
		{"END;", true},
		{"COMMIT", true},
		{"SELECT $1::int, $$dollar$$", true},
		{"", false},
		{"   ", false},
		{";", false},
		{"SELECT 1; SELECT 2", false},
		{"SELECT 1;;  ", true},
		{"SET search_path = x", false},
		{"set local work_mem = '1MB'", false},
		{"RESET ALL", false},
		{"DISCARD ALL", false},
		{"DEALLOCATE ALL", false},
		{"PREPARE p AS SELECT 1", false},
		{"LISTEN ch", false},
		{"CREATE TEMP TABLE t (a int)", false},
		{"DECLARE c CURSOR WITH HOLD FOR SELECT 1", false},
		{"DO $$BEGIN PERFORM 1; END$$", false},
		{"CALL p()", false},
		{"SELECT pg_advisory_lock(1)", false},
		{"SELECT pg_catalog.pg_try_advisory_lock_shared(1)", false},
		{"SELECT set_config('a.b', '1', false)", false},
		{"SELECT * INTO TEMP t FROM u", false},
		{"SELECT * INTO TEMPORARY t FROM u", false},
		{"SELECT * FROM pg_temp.t", false},
		{"SELECT * FROM pg_temp_3.t", false},
		{"SELECT 1 /* pgone:primary */", true},
		{"/* c */ SELECT 1", false},
		{"-- c\nSELECT 1", false},
		{"(SELECT 1)", false},
		{`SELECT "Hold" FROM t`, false},
		{"SELECT 'listen'", false},
		{"SELECT averyveryveryveryverylongidentifiername_over_thirty_two FROM t", true},
		{"averyveryveryveryverylongidentifiername_over_thirty_two", false},
		{"SELECTED 1", false},
		{"SHOW work_mem", false},
		{"SELECT 1\x00; SET x = 1", false},
	} {
		if got := NoSessionEffects(tc.sql); got != tc.want {
			t.Errorf("NoSessionEffects(%q) = %v, want %v", tc.sql, got, tc.want)
		}
	}
}

// TestNoSessionEffectsAgreesWithRoute: whatever the lexical check passes,
// the parser finds no session effect in, over every routing case.
func TestNoSessionEffectsAgreesWithRoute(t *testing.T) {
	t.Parallel()
	r := NewRouter(0)
	passed := 0
	for _, tc := range routeCases {
		if !NoSessionEffects(tc.sql) {
			continue
		}
		passed++
		if d := r.Route(tc.sql, tc.s); hasSessionEffects(d) {
			t.Errorf("%q passes the lexical check but has session effects: %+v", tc.sql, d)
		}
	}
	if passed < 50 {
		t.Errorf("only %d of %d routing cases pass the lexical check: it is too strict to help", passed, len(routeCases))
	}
}

func hasSessionEffects(d Decision) bool {
	return len(d.Pins) > 0 || d.ChangesSettings || d.DiscardAll || d.DeallocateAll || d.Unlisten
}

func TestPlainRead(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		sql  string
		want bool
	}{
		{"SELECT 1", true},
		{"SELECT abalance FROM pgbench_accounts WHERE aid = 61234;", true},
		{"select abalance from pgbench_accounts where aid = $1", true},
		{"SELECT a, b FROM s.t WHERE x = 'it''s' AND y <> 2.5e3 ORDER BY a LIMIT 10", true},
		{`SELECT "My Col" FROM "My Table"`, true},
		{"SELECT 'x'::date", true},
		{"TABLE t", true},
		{"SELECT 1;  ", true},
		{"SELECT * FROM t FOR UPDATE", false},
		{"SELECT * FROM t for share", false},
		{"SELECT 1for update", false},
		{"SELECT * INTO u FROM t", false},
		{"SELECT nextval('s')", false},
		{"SELECT count(*) FROM t", false},
		{"SELECT 1; SELECT 2", false},
		{"SELECT 1; DELETE FROM t", false},
		{"SELECT 1 /* pgone:primary */", false},
		{"SELECT 1 -- pgone:primary", false},
		{"/* pgone:primary */ SELECT 1", false},
		{"WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x", false},
		{"INSERT INTO t VALUES (1)", false},
		{"SHOW work_mem", false},
		{"SELECT E'\\'' FROM t", false},
		{"SELECT 'a\\' , ' FROM t for update -- '", false},
		{"SELECT $$x$$", false},
		{"SELECT $tag$ for update $tag$", false},
		{"SELECT 'unterminated", false},
		{`SELECT "unterminated`, false},
		{"SELECT U&'d\\0061t' FROM t", false},
		{"SELECT B'101'", false},
		{"SELECT a FROM t WHERE b ~ 'x'", false},
		{"SELECTED 1", false},
		{"", false},
		{"'SELECT' 1", false},
		{"SELECT 1\x00; SET x = 1", false},
		{"SELECT * FROM pg_stat_activity", false},
		{"SELECT pid FROM PG_LOCKS", false},
		{"SELECT * FROM pg_catalog.pg_statio_user_tables", false},
		{`SELECT * FROM "pg_locks"`, false},
		{"SELECT * FROM pg_class", true},
	} {
		if got := PlainRead(tc.sql); got != tc.want {
			t.Errorf("PlainRead(%q) = %v, want %v", tc.sql, got, tc.want)
		}
	}
}

// TestPlainReadAgreesWithRoute: whatever the lexical check calls a read,
// the parser sends to a replica outside a transaction or cannot parse (any
// server answers that with the same syntax error), over every routing case.
func TestPlainReadAgreesWithRoute(t *testing.T) {
	t.Parallel()
	r := NewRouter(0)
	passed := 0
	for _, tc := range routeCases {
		if !PlainRead(tc.sql) {
			continue
		}
		passed++
		if d := r.Route(tc.sql, Session{}); d.Target != TargetReplica && d.Reason != ReasonParseError {
			t.Errorf("%q passes the lexical read check but routes to the %s (%s)", tc.sql, d.Target, d.Reason)
		}
	}
	if passed < 15 {
		t.Errorf("only %d of %d routing cases pass the lexical read check: it is too strict to help", passed, len(routeCases))
	}
}

// TestServerWordNamesStartWithPg: serverWord skips words without the
// "pg_" prefix, so every server-dependent view name must have it.
func TestServerWordNamesStartWithPg(t *testing.T) {
	names := append([]string(nil), serverViewPrefixes...)
	for v := range serverViews {
		names = append(names, v)
	}
	for _, v := range names {
		if !strings.HasPrefix(v, "pg_") || !serverWord(v) {
			t.Errorf("%q: serverWord misses it", v)
		}
	}
}

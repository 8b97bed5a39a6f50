package router

import (
	"fmt"
	"slices"
	"testing"
)

// fakeFuncs is a hand-written Functions standing in for a pg_proc snapshot.
type fakeFuncs map[string]byte

func (f fakeFuncs) Volatility(name string) (byte, bool) {
	v, ok := f[name]
	return v, ok
}

const (
	P = TargetPrimary
	R = TargetReplica
)

var (
	pgProc = fakeFuncs{
		"my_immutable": 'i', "app.slugify": 'i', "MyFunc": 'i', "my_stable": 's',
		"my_volatile": 'v', "lower": 'i', "now": 's', "random": 'v', "nextval": 'v',
	}
	withProc = Session{Functions: pgProc}
	withCfg  = Session{
		WriteFunctions: map[string]bool{"audit_log": true, "app.touch": true},
		ReadFunctions:  map[string]bool{"my_report": true, "nextval": true},
	}
	procAndReadCfg = Session{Functions: pgProc, ReadFunctions: map[string]bool{"my_volatile": true, "my_immutable": true}}
	lowerIsWrite   = Session{WriteFunctions: map[string]bool{"lower": true}}
	rwTx           = Session{InTransaction: true}
	roTx           = Session{InTransaction: true, TxReadOnly: true}
	defRO          = Session{DefaultReadOnly: true}
	defROTx        = Session{InTransaction: true, DefaultReadOnly: true}
	defROTxRW      = Session{InTransaction: true, DefaultReadOnly: true, TxReadWrite: true}
	defSer         = Session{DefaultSerializable: true}
	roSerTx        = Session{InTransaction: true, TxReadOnly: true, DefaultSerializable: true}
)

func tl(names ...string) []string { return names }
func pins(p ...Pin) []Pin         { return p }

type routeCase struct {
	sql  string
	s    Session
	want Decision // Fingerprint is not compared; Statements 0 means 1 unless Reason is empty/parse_error
}

var routeCases = []routeCase{
	// Plain reads.
	{sql: "SELECT 1", want: Decision{Target: R, Reason: ReasonRead, Cacheable: true}},
	{sql: "select 1", want: Decision{Target: R, Reason: ReasonRead, Cacheable: true}},
	{sql: "SELECT * FROM t", want: Decision{Target: R, Reason: ReasonRead, Cacheable: true, ReadTables: tl("t")}},
	{sql: "SELECT a, b FROM public.t WHERE a = 1", want: Decision{Target: R, Reason: ReasonRead, Cacheable: true, ReadTables: tl("public.t")}},
	{sql: `SELECT * FROM "My Table"`, want: Decision{Target: R, Reason: ReasonRead, Cacheable: true, ReadTables: tl("My Table")}},
	{sql: `SELECT * FROM "Sales"."Q1"`, want: Decision{Target: R, Reason: ReasonRead, Cacheable: true, ReadTables: tl("Sales.Q1")}},
	{sql: "SELECT * FROM db.public.t", want: Decision{Target: R, Reason: ReasonRead, Cacheable: true, ReadTables: tl("db.public.t")}},
	{sql: "SELECT * FROM T", want: Decision{Target: R, Reason: ReasonRead, Cacheable: true, ReadTables: tl("t")}},
	{sql: "SELECT * FROM t1 JOIN t2 ON t1.id = t2.id", want: Decision{Target: R, Reason: ReasonRead, Cacheable: true, ReadTables: tl("t1", "t2")}},
	{sql: "SELECT * FROM a LEFT JOIN b USING (id) RIGHT JOIN c ON true CROSS JOIN d", want: Decision{Target: R, Reason: ReasonRead, Cacheable: true, ReadTables: tl("a", "b", "c", "d")}},
	{sql: "SELECT * FROM t WHERE id IN (SELECT id FROM u)", want: Decision{Target: R, Reason: ReasonRead, Cacheable: true, ReadTables: tl("t", "u")}},
	{sql: "SELECT * FROM t WHERE EXISTS (SELECT 1 FROM u WHERE u.id = t.id)", want: Decision{Target: R, Reason: ReasonRead, Cacheable: true, ReadTables: tl("t", "u")}},
	{sql: "SELECT (SELECT max(x) FROM u) FROM t", want: Decision{Target: R, Reason: ReasonRead, Cacheable: true, ReadTables: tl("t", "u")}},
	{sql: "SELECT * FROM (SELECT * FROM t) AS s", want: Decision{Target: R, Reason: ReasonRead, Cacheable: true, ReadTables: tl("t")}},
	{sql: "SELECT * FROM t, LATERAL (SELECT * FROM u WHERE u.t_id = t.id) l", want: Decision{Target: R, Reason: ReasonRead, Cacheable: true, ReadTables: tl("t", "u")}},
	{sql: "SELECT a, count(*) FROM t GROUP BY a HAVING count(*) > 1 ORDER BY 1 LIMIT 10 OFFSET 5", want: Decision{Target: R, Reason: ReasonRead, Cacheable: true, ReadTables: tl("t")}},
	{sql: "SELECT a FROM t UNION SELECT a FROM u", want: Decision{Target: R, Reason: ReasonRead, Cacheable: true, ReadTables: tl("t", "u")}},
	{sql: "SELECT a FROM t INTERSECT SELECT a FROM u EXCEPT SELECT a FROM v", want: Decision{Target: R, Reason: ReasonRead, Cacheable: true, ReadTables: tl("t", "u", "v")}},
	{sql: "VALUES (1), (2)", want: Decision{Target: R, Reason: ReasonRead, Cacheable: true}},
	{sql: "VALUES ((SELECT max(a) FROM t))", want: Decision{Target: R, Reason: ReasonRead, Cacheable: true, ReadTables: tl("t")}},
	{sql: "TABLE t", want: Decision{Target: R, Reason: ReasonRead, Cacheable: true, ReadTables: tl("t")}},
	{sql: "TABLE public.t", want: Decision{Target: R, Reason: ReasonRead, Cacheable: true, ReadTables: tl("public.t")}},
	{sql: "SELECT * FROM v_orders o JOIN customers c ON c.id = o.customer_id", want: Decision{Target: R, Reason: ReasonRead, Cacheable: true, ReadTables: tl("customers", "v_orders")}},
	{sql: "SELECT lower(name), upper(name), length(name) FROM users", want: Decision{Target: R, Reason: ReasonRead, Cacheable: true, ReadTables: tl("users")}},
	{sql: "SELECT coalesce(a, 0), nullif(b, 1), greatest(a, b), least(a, b) FROM t", want: Decision{Target: R, Reason: ReasonRead, Cacheable: true, ReadTables: tl("t")}},
	{sql: "SELECT abs(-1), round(2.5), sqrt(4)", want: Decision{Target: R, Reason: ReasonRead, Cacheable: true}},
	{sql: "SELECT CASE WHEN a > 0 THEN 'p' ELSE 'n' END FROM t", want: Decision{Target: R, Reason: ReasonRead, Cacheable: true, ReadTables: tl("t")}},
	{sql: "SELECT a::text, CAST(b AS int) FROM t", want: Decision{Target: R, Reason: ReasonRead, Cacheable: true, ReadTables: tl("t")}},
	{sql: "SELECT * FROM t WHERE a = $1", want: Decision{Target: R, Reason: ReasonRead, Cacheable: true, ReadTables: tl("t")}},
	{sql: "SELECT * FROM t WHERE a = ANY($1::int[]) LIMIT $2", want: Decision{Target: R, Reason: ReasonRead, Cacheable: true, ReadTables: tl("t")}},
	{sql: "SELECT string_agg(name, ',') FROM t", want: Decision{Target: R, Reason: ReasonRead, Cacheable: true, ReadTables: tl("t")}},
	{sql: "SELECT row_number() OVER (PARTITION BY a ORDER BY b) FROM t", want: Decision{Target: R, Reason: ReasonRead, Cacheable: true, ReadTables: tl("t")}},
	{sql: "SELECT DISTINCT ON (a) a, b FROM t ORDER BY a, b", want: Decision{Target: R, Reason: ReasonRead, Cacheable: true, ReadTables: tl("t")}},
	{sql: "SELECT count(*) FILTER (WHERE a > 0) FROM t", want: Decision{Target: R, Reason: ReasonRead, Cacheable: true, ReadTables: tl("t")}},
	{sql: "SELECT x FROM unnest(ARRAY[1, 2]) AS x", want: Decision{Target: R, Reason: ReasonRead, Cacheable: true}},
	{sql: "SELECT substring(s FROM 2 FOR 3), position('a' IN s), trim(s) FROM t", want: Decision{Target: R, Reason: ReasonRead, Cacheable: true, ReadTables: tl("t")}},
	{sql: "SELECT pg_catalog.lower('A')", want: Decision{Target: R, Reason: ReasonRead, Cacheable: true}},
	{sql: "SELECT * FROM t TABLESAMPLE SYSTEM (10) REPEATABLE (42)", want: Decision{Target: R, Reason: ReasonRead, Cacheable: true, ReadTables: tl("t")}},
	{sql: "SELECT 'pgone:primary'", want: Decision{Target: R, Reason: ReasonRead, Cacheable: true}},

	// CTEs are not tables; scope follows PostgreSQL.
	{sql: "WITH x AS (SELECT * FROM t) SELECT * FROM x", want: Decision{Target: R, Reason: ReasonRead, Cacheable: true, ReadTables: tl("t")}},
	{sql: "WITH x AS (SELECT * FROM t) SELECT * FROM x JOIN u ON true", want: Decision{Target: R, Reason: ReasonRead, Cacheable: true, ReadTables: tl("t", "u")}},
	{sql: "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 10) SELECT * FROM r", want: Decision{Target: R, Reason: ReasonRead, Cacheable: true}},
	{sql: "WITH a AS (SELECT * FROM t), b AS (SELECT * FROM a) SELECT * FROM b", want: Decision{Target: R, Reason: ReasonRead, Cacheable: true, ReadTables: tl("t")}},
	{sql: "WITH t AS (SELECT 1) SELECT * FROM public.t, t", want: Decision{Target: R, Reason: ReasonRead, Cacheable: true, ReadTables: tl("public.t")}},
	{sql: "WITH x AS (SELECT * FROM t) SELECT * FROM x, (SELECT * FROM x) y", want: Decision{Target: R, Reason: ReasonRead, Cacheable: true, ReadTables: tl("t")}},
	{sql: "SELECT * FROM (WITH x AS (SELECT 1) SELECT * FROM x) s, x", want: Decision{Target: R, Reason: ReasonRead, Cacheable: true, ReadTables: tl("x")}},
	{sql: "WITH x AS (SELECT * FROM x) SELECT * FROM x", want: Decision{Target: R, Reason: ReasonRead, Cacheable: true, ReadTables: tl("x")}},
	{sql: "WITH b AS (SELECT * FROM a), a AS (SELECT 1) SELECT * FROM a, b", want: Decision{Target: R, Reason: ReasonRead, Cacheable: true, ReadTables: tl("a")}},

	// Stable and time-dependent: a read, not cacheable.
	{sql: "SELECT now()", want: Decision{Target: R, Reason: ReasonRead}},
	{sql: "SELECT current_timestamp", want: Decision{Target: R, Reason: ReasonRead}},
	{sql: "SELECT CURRENT_DATE, LOCALTIMESTAMP, CURRENT_TIME(3)", want: Decision{Target: R, Reason: ReasonRead}},
	{sql: "SELECT current_user, session_user, current_role, user", want: Decision{Target: R, Reason: ReasonRead}},
	{sql: "SELECT current_schema, current_catalog", want: Decision{Target: R, Reason: ReasonRead}},
	{sql: "SELECT * FROM t WHERE created_at > now() - interval '1 day'", want: Decision{Target: R, Reason: ReasonRead, ReadTables: tl("t")}},
	{sql: "SELECT 'now'::timestamptz", want: Decision{Target: R, Reason: ReasonRead}},
	{sql: "SELECT date 'today', timestamp 'Tomorrow'", want: Decision{Target: R, Reason: ReasonRead}},
	{sql: "SELECT current_setting('search_path')", want: Decision{Target: R, Reason: ReasonRead}},
	{sql: "SELECT version()", want: Decision{Target: R, Reason: ReasonRead}},
	{sql: "SELECT to_char(now(), 'YYYY')", want: Decision{Target: R, Reason: ReasonRead}},
	{sql: "SELECT EXTRACT(year FROM d) FROM t", want: Decision{Target: R, Reason: ReasonRead, ReadTables: tl("t")}},
	{sql: "SELECT * FROM generate_series(1, 10)", want: Decision{Target: R, Reason: ReasonRead}},
	{sql: "SELECT * FROM t TABLESAMPLE SYSTEM (10)", want: Decision{Target: R, Reason: ReasonRead, ReadTables: tl("t")}},

	// System catalogs: a read, never cached.
	{sql: "SELECT * FROM pg_class", want: Decision{Target: R, Reason: ReasonRead, ReadTables: tl("pg_class")}},
	{sql: "SELECT relname FROM pg_catalog.pg_class c JOIN t ON true", want: Decision{Target: R, Reason: ReasonRead, ReadTables: tl("pg_catalog.pg_class", "t")}},
	{sql: "SELECT * FROM information_schema.tables", want: Decision{Target: R, Reason: ReasonRead, ReadTables: tl("information_schema.tables")}},
	{sql: "SELECT * FROM pg_temp.scratch", want: Decision{Target: R, Reason: ReasonRead, ReadTables: tl("pg_temp.scratch")}},

	// The grammar turns LIKE ... ESCAPE, SIMILAR TO and IS NORMALIZED into
	// calls of immutable functions.
	{sql: "SELECT * FROM t WHERE a LIKE 'x!%' ESCAPE '!'", want: Decision{Target: R, Reason: ReasonRead, Cacheable: true, ReadTables: tl("t")}},
	{sql: "SELECT * FROM t WHERE a SIMILAR TO 'x%'", want: Decision{Target: R, Reason: ReasonRead, Cacheable: true, ReadTables: tl("t")}},
	{sql: "SELECT a IS NFC NORMALIZED FROM t", want: Decision{Target: R, Reason: ReasonRead, Cacheable: true, ReadTables: tl("t")}},

	// Server-dependent: the answer depends on which server runs it
	// (perserver.go), so the primary unless hinted (issue 10, item 7).
	{sql: "SELECT pg_backend_pid()", want: Decision{Target: P, Reason: ReasonServerDependent}},
	{sql: "SELECT pg_catalog.pg_backend_pid()", want: Decision{Target: P, Reason: ReasonServerDependent}},
	{sql: "SELECT app.pg_backend_pid()", want: Decision{Target: P, Reason: ReasonVolatileFunction}},
	{sql: "SELECT * FROM pg_stat_activity", want: Decision{Target: P, Reason: ReasonServerDependent, ReadTables: tl("pg_stat_activity")}},
	{sql: "SELECT pid, query FROM pg_catalog.pg_stat_activity WHERE query LIKE '%x%'", want: Decision{Target: P, Reason: ReasonServerDependent, ReadTables: tl("pg_catalog.pg_stat_activity")}},
	{sql: "SELECT * FROM app.pg_stat_activity", want: Decision{Target: R, Reason: ReasonRead, Cacheable: true, ReadTables: tl("app.pg_stat_activity")}},
	{sql: "SELECT count(*) FROM pg_locks l JOIN t ON true", want: Decision{Target: P, Reason: ReasonServerDependent, ReadTables: tl("pg_locks", "t")}},
	{sql: "SELECT * FROM t WHERE id IN (SELECT objid FROM pg_locks)", want: Decision{Target: P, Reason: ReasonServerDependent, ReadTables: tl("pg_locks", "t")}},
	{sql: "SELECT * FROM pg_stat_user_tables", want: Decision{Target: P, Reason: ReasonServerDependent, ReadTables: tl("pg_stat_user_tables")}},
	{sql: "SELECT * FROM pg_statio_user_tables", want: Decision{Target: P, Reason: ReasonServerDependent, ReadTables: tl("pg_statio_user_tables")}},
	{sql: "SELECT * FROM pg_stat_replication", want: Decision{Target: P, Reason: ReasonServerDependent, ReadTables: tl("pg_stat_replication")}},
	{sql: "SELECT * FROM pg_prepared_xacts", want: Decision{Target: P, Reason: ReasonServerDependent, ReadTables: tl("pg_prepared_xacts")}},
	{sql: "SELECT * FROM pg_replication_slots", want: Decision{Target: P, Reason: ReasonServerDependent, ReadTables: tl("pg_replication_slots")}},
	{sql: "SELECT setting FROM pg_settings WHERE name = 'work_mem'", want: Decision{Target: P, Reason: ReasonServerDependent, ReadTables: tl("pg_settings")}},
	{sql: "SELECT * FROM pg_prepared_statements", want: Decision{Target: P, Reason: ReasonServerDependent, ReadTables: tl("pg_prepared_statements")}},
	{sql: "SELECT pg_is_in_recovery()", want: Decision{Target: P, Reason: ReasonServerDependent}},
	{sql: "SELECT pg_last_wal_replay_lsn(), pg_last_xact_replay_timestamp()", want: Decision{Target: P, Reason: ReasonServerDependent}},
	{sql: "SELECT pg_postmaster_start_time(), pg_conf_load_time()", want: Decision{Target: P, Reason: ReasonServerDependent}},
	{sql: "SELECT inet_server_addr(), inet_server_port()", want: Decision{Target: P, Reason: ReasonServerDependent}},
	{sql: "SELECT inet_client_addr()", want: Decision{Target: P, Reason: ReasonServerDependent}},
	{sql: "SELECT txid_current_if_assigned()", want: Decision{Target: P, Reason: ReasonServerDependent}},
	{sql: "SELECT pg_current_xact_id_if_assigned()", want: Decision{Target: P, Reason: ReasonServerDependent}},
	{sql: "SELECT pg_current_snapshot()", want: Decision{Target: P, Reason: ReasonServerDependent}},
	{sql: "SELECT pg_blocking_pids(123)", want: Decision{Target: P, Reason: ReasonServerDependent}},
	{sql: "SELECT pg_stat_get_backend_pid(1)", want: Decision{Target: P, Reason: ReasonServerDependent}},
	{sql: "SELECT pg_stat_get_numscans('t'::regclass)", want: Decision{Target: P, Reason: ReasonServerDependent}},
	{sql: "SELECT pg_xact_status('1'::xid8)", want: Decision{Target: P, Reason: ReasonServerDependent}},
	{sql: "SELECT * FROM pg_ls_waldir()", want: Decision{Target: P, Reason: ReasonServerDependent}},
	{sql: "SELECT * FROM pg_control_checkpoint()", want: Decision{Target: P, Reason: ReasonServerDependent}},
	{sql: "SELECT pg_is_wal_replay_paused()", want: Decision{Target: P, Reason: ReasonServerDependent}},
	{sql: "SELECT pg_listening_channels()", want: Decision{Target: P, Reason: ReasonServerDependent}},
	{sql: "SELECT inet_same_family('1.2.3.4'::inet, '::1'::inet)", want: Decision{Target: P, Reason: ReasonVolatileFunction}},
	{sql: "SELECT inet_same_family('1.2.3.4'::inet, '::1'::inet)", s: Session{Functions: fakeFuncs{"inet_same_family": 'i'}}, want: Decision{Target: R, Reason: ReasonRead, Cacheable: true}},
	{sql: "SELECT pg_walfile_name('0/0'::pg_lsn)", s: Session{Functions: fakeFuncs{"pg_walfile_name": 'i'}}, want: Decision{Target: R, Reason: ReasonRead, Cacheable: true}},
	// Volatility from pg_proc does not make them safe; a replica hint does,
	// and so does config read_functions for a function (not for a view).
	{sql: "SELECT pg_backend_pid()", s: Session{Functions: fakeFuncs{"pg_backend_pid": 's'}}, want: Decision{Target: P, Reason: ReasonServerDependent}},
	{sql: "SELECT pg_backend_pid()", s: Session{ReadFunctions: map[string]bool{"pg_backend_pid": true}}, want: Decision{Target: R, Reason: ReasonRead}},
	{sql: "SELECT inet_server_port(), pg_backend_pid()", s: Session{ReadFunctions: map[string]bool{"inet_server_port": true}}, want: Decision{Target: P, Reason: ReasonServerDependent}},
	{sql: "SELECT inet_server_port() FROM pg_locks", s: Session{ReadFunctions: map[string]bool{"inet_server_port": true}}, want: Decision{Target: P, Reason: ReasonServerDependent, ReadTables: tl("pg_locks")}},
	{sql: "/* pgone:replica */ SELECT * FROM pg_stat_activity", want: Decision{Target: R, Reason: ReasonHintReplica, ReadTables: tl("pg_stat_activity")}},
	{sql: "/* pgone:replica */ SELECT pg_is_in_recovery()", want: Decision{Target: R, Reason: ReasonHintReplica}},
	{sql: "SELECT * FROM pg_stat_activity", s: roTx, want: Decision{Target: P, Reason: ReasonServerDependent, ReadTables: tl("pg_stat_activity")}},
	// Their own volatility does not matter (pg_is_in_recovery is volatile
	// in pg_proc); another volatile call does: it may write.
	{sql: "SELECT pg_is_in_recovery(), now()", s: withProc, want: Decision{Target: P, Reason: ReasonServerDependent}},
	{sql: "SELECT pg_is_in_recovery()", s: Session{Functions: fakeFuncs{"pg_is_in_recovery": 'v'}}, want: Decision{Target: P, Reason: ReasonServerDependent}},
	{sql: "SELECT pg_backend_pid(), my_volatile()", s: withProc, want: Decision{Target: P, Reason: ReasonVolatileFunction}},
	{sql: "SELECT my_volatile() FROM pg_stat_activity", s: withProc, want: Decision{Target: P, Reason: ReasonVolatileFunction, ReadTables: tl("pg_stat_activity")}},
	{sql: "/* pgone:replica */ SELECT my_volatile() FROM pg_stat_activity", s: withProc, want: Decision{Target: R, Reason: ReasonHintReplica, ReadTables: tl("pg_stat_activity")}},
	// Writes and write functions keep their own reason.
	{sql: "SELECT pg_cancel_backend(pid) FROM pg_stat_activity", want: Decision{Target: P, Reason: ReasonWriteFunction, ReadTables: tl("pg_stat_activity")}},
	{sql: "SELECT pg_terminate_backend(123)", want: Decision{Target: P, Reason: ReasonWriteFunction}},
	{sql: "SELECT pg_current_wal_lsn()", want: Decision{Target: P, Reason: ReasonWriteFunction}},
	{sql: "SELECT pg_stat_reset()", want: Decision{Target: P, Reason: ReasonWriteFunction}},
	{sql: "INSERT INTO log SELECT pid FROM pg_stat_activity", want: Decision{Target: P, Reason: ReasonWrite, ReadTables: tl("pg_stat_activity"), WriteTables: tl("log")}},
	// Not executed: EXPLAIN only plans it.
	{sql: "EXPLAIN SELECT * FROM pg_stat_activity", want: Decision{Target: R, Reason: ReasonRead, ReadTables: tl("pg_stat_activity")}},

	// SHOW and EXPLAIN.
	{sql: "SHOW search_path", want: Decision{Target: R, Reason: ReasonRead}},
	{sql: "SHOW ALL", want: Decision{Target: R, Reason: ReasonRead}},
	{sql: "EXPLAIN SELECT * FROM t", want: Decision{Target: R, Reason: ReasonRead, ReadTables: tl("t")}},
	{sql: "EXPLAIN ANALYZE SELECT * FROM t", want: Decision{Target: R, Reason: ReasonRead, ReadTables: tl("t")}},
	{sql: "EXPLAIN (ANALYZE, BUFFERS) SELECT * FROM t", want: Decision{Target: R, Reason: ReasonRead, ReadTables: tl("t")}},
	{sql: "EXPLAIN (ANALYZE false) DELETE FROM t", want: Decision{Target: R, Reason: ReasonRead, ReadTables: tl("t")}},
	{sql: "EXPLAIN (ANALYZE off, COSTS) UPDATE t SET a = 1", want: Decision{Target: R, Reason: ReasonRead, ReadTables: tl("t")}},
	{sql: "EXPLAIN DELETE FROM t", want: Decision{Target: R, Reason: ReasonRead, ReadTables: tl("t")}},
	{sql: "EXPLAIN ANALYZE DELETE FROM t WHERE id = 1", want: Decision{Target: P, Reason: ReasonWrite, WriteTables: tl("t")}},
	{sql: "EXPLAIN (ANALYZE true) DELETE FROM t", want: Decision{Target: P, Reason: ReasonWrite, WriteTables: tl("t")}},
	{sql: "EXPLAIN ANALYZE INSERT INTO t SELECT * FROM u", want: Decision{Target: P, Reason: ReasonWrite, ReadTables: tl("u"), WriteTables: tl("t")}},
	{sql: "EXPLAIN (ANALYZE) UPDATE t SET a = 1", want: Decision{Target: P, Reason: ReasonWrite, WriteTables: tl("t")}},
	{sql: "EXPLAIN ANALYZE SELECT * FROM t FOR UPDATE", want: Decision{Target: P, Reason: ReasonLockingClause, ReadTables: tl("t")}},
	{sql: "EXPLAIN ANALYZE SELECT nextval('s')", want: Decision{Target: P, Reason: ReasonWriteFunction}},
	{sql: "EXPLAIN SELECT nextval('s')", want: Decision{Target: R, Reason: ReasonRead}},
	{sql: "EXPLAIN SELECT pg_advisory_lock(1)", want: Decision{Target: R, Reason: ReasonRead}},
	{sql: "EXPLAIN ANALYZE SELECT pg_advisory_lock(1)", want: Decision{Target: P, Reason: ReasonWriteFunction, Pins: pins(PinAdvisoryLock)}},
	{sql: "EXPLAIN ANALYZE CREATE TABLE x AS SELECT * FROM t", want: Decision{Target: P, Reason: ReasonDDL, ReadTables: tl("t"), WriteTables: tl("x")}},
	{sql: "EXPLAIN ANALYZE EXECUTE p(1)", want: Decision{Target: P, Reason: ReasonUtility}},

	// Locking clauses.
	{sql: "SELECT * FROM t FOR UPDATE", want: Decision{Target: P, Reason: ReasonLockingClause, ReadTables: tl("t")}},
	{sql: "SELECT * FROM t FOR SHARE", want: Decision{Target: P, Reason: ReasonLockingClause, ReadTables: tl("t")}},
	{sql: "SELECT * FROM t FOR NO KEY UPDATE SKIP LOCKED", want: Decision{Target: P, Reason: ReasonLockingClause, ReadTables: tl("t")}},
	{sql: "SELECT * FROM t FOR KEY SHARE NOWAIT", want: Decision{Target: P, Reason: ReasonLockingClause, ReadTables: tl("t")}},
	{sql: "SELECT * FROM t JOIN u ON true FOR UPDATE OF t", want: Decision{Target: P, Reason: ReasonLockingClause, ReadTables: tl("t", "u")}},
	{sql: "SELECT * FROM (SELECT * FROM t FOR UPDATE) s", want: Decision{Target: P, Reason: ReasonLockingClause, ReadTables: tl("t")}},
	{sql: "SELECT * FROM t WHERE id IN (SELECT id FROM u FOR UPDATE)", want: Decision{Target: P, Reason: ReasonLockingClause, ReadTables: tl("t", "u")}},

	// SELECT INTO.
	{sql: "SELECT * INTO new_t FROM t", want: Decision{Target: P, Reason: ReasonSelectInto, ReadTables: tl("t"), WriteTables: tl("new_t")}},
	{sql: "SELECT 1 INTO TEMP tmp", want: Decision{Target: P, Reason: ReasonSelectInto, WriteTables: tl("tmp"), Pins: pins(PinTempTable)}},
	{sql: "SELECT * INTO UNLOGGED u2 FROM t", want: Decision{Target: P, Reason: ReasonSelectInto, ReadTables: tl("t"), WriteTables: tl("u2")}},

	// Data-modifying CTEs, at any depth.
	{sql: "WITH x AS (INSERT INTO t VALUES (1) RETURNING *) SELECT * FROM x", want: Decision{Target: P, Reason: ReasonDataModifyingCTE, WriteTables: tl("t")}},
	{sql: "WITH x AS (DELETE FROM t WHERE a < 0 RETURNING *) SELECT count(*) FROM x", want: Decision{Target: P, Reason: ReasonDataModifyingCTE, WriteTables: tl("t")}},
	{sql: "WITH x AS (UPDATE t SET a = 1 RETURNING *) SELECT * FROM x JOIN u USING (id)", want: Decision{Target: P, Reason: ReasonDataModifyingCTE, ReadTables: tl("u"), WriteTables: tl("t")}},
	{sql: "WITH a AS (WITH b AS (DELETE FROM t RETURNING id) SELECT id FROM b) SELECT * FROM a", want: Decision{Target: P, Reason: ReasonDataModifyingCTE, WriteTables: tl("t")}},
	{sql: "SELECT * FROM (WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d) s", want: Decision{Target: P, Reason: ReasonDataModifyingCTE, WriteTables: tl("t")}},
	{sql: "WITH d AS (DELETE FROM old RETURNING *) INSERT INTO archive SELECT * FROM d", want: Decision{Target: P, Reason: ReasonWrite, WriteTables: tl("archive", "old")}},
	{sql: "/* pgone:replica */ WITH x AS (INSERT INTO t VALUES (1) RETURNING *) SELECT * FROM x", want: Decision{Target: P, Reason: ReasonDataModifyingCTE, WriteTables: tl("t")}},

	// Functions: volatile, write, unknown.
	{sql: "SELECT nextval('s')", want: Decision{Target: P, Reason: ReasonWriteFunction}},
	{sql: "SELECT setval('s', 10)", want: Decision{Target: P, Reason: ReasonWriteFunction}},
	{sql: "SELECT currval('s')", want: Decision{Target: P, Reason: ReasonVolatileFunction}},
	{sql: "SELECT random()", want: Decision{Target: P, Reason: ReasonVolatileFunction}},
	{sql: "SELECT * FROM t ORDER BY random() LIMIT 1", want: Decision{Target: P, Reason: ReasonVolatileFunction, ReadTables: tl("t")}},
	{sql: "SELECT clock_timestamp()", want: Decision{Target: P, Reason: ReasonVolatileFunction}},
	{sql: "SELECT gen_random_uuid()", want: Decision{Target: P, Reason: ReasonVolatileFunction}},
	{sql: "SELECT pg_sleep(1)", want: Decision{Target: P, Reason: ReasonVolatileFunction}},
	{sql: "SELECT pg_advisory_lock(1)", want: Decision{Target: P, Reason: ReasonWriteFunction, Pins: pins(PinAdvisoryLock)}},
	{sql: "SELECT pg_try_advisory_lock(1)", want: Decision{Target: P, Reason: ReasonWriteFunction, Pins: pins(PinAdvisoryLock)}},
	{sql: "SELECT pg_advisory_lock_shared(1, 2)", want: Decision{Target: P, Reason: ReasonWriteFunction, Pins: pins(PinAdvisoryLock)}},
	{sql: "SELECT pg_try_advisory_lock_shared(1)", want: Decision{Target: P, Reason: ReasonWriteFunction, Pins: pins(PinAdvisoryLock)}},
	{sql: "SELECT pg_catalog.pg_advisory_lock(1)", want: Decision{Target: P, Reason: ReasonWriteFunction, Pins: pins(PinAdvisoryLock)}},
	{sql: "SELECT pg_advisory_xact_lock(1)", want: Decision{Target: P, Reason: ReasonWriteFunction}},
	{sql: "SELECT pg_try_advisory_xact_lock_shared(1)", want: Decision{Target: P, Reason: ReasonWriteFunction}},
	{sql: "SELECT pg_advisory_unlock(1)", want: Decision{Target: P, Reason: ReasonWriteFunction}},
	{sql: "SELECT app.pg_advisory_lock(1)", want: Decision{Target: P, Reason: ReasonVolatileFunction}},
	{sql: "SELECT pg_notify('c', 'x')", want: Decision{Target: P, Reason: ReasonWriteFunction}},
	{sql: "SELECT set_config('a.b', 'c', false)", want: Decision{Target: P, Reason: ReasonWriteFunction, ChangesSettings: true}},
	{sql: "SELECT set_config('a.b', 'c', true)", want: Decision{Target: P, Reason: ReasonWriteFunction, ChangesSettings: true}},
	{sql: "SELECT 1 FROM t WHERE pg_catalog.set_config('x.y', 'z', false) IS NOT NULL", want: Decision{Target: P, Reason: ReasonWriteFunction, ChangesSettings: true, ReadTables: tl("t")}},
	{sql: "SELECT lo_import('/tmp/x')", want: Decision{Target: P, Reason: ReasonWriteFunction}},
	{sql: "SELECT dblink_exec('conn', 'DELETE FROM t')", want: Decision{Target: P, Reason: ReasonWriteFunction}},
	{sql: "SELECT txid_current()", want: Decision{Target: P, Reason: ReasonWriteFunction}},
	{sql: "SELECT (SELECT nextval('s'))", want: Decision{Target: P, Reason: ReasonWriteFunction}},
	{sql: "SELECT my_func(1)", want: Decision{Target: P, Reason: ReasonVolatileFunction}},
	{sql: "SELECT * FROM t WHERE id = my_func(1)", want: Decision{Target: P, Reason: ReasonVolatileFunction, ReadTables: tl("t")}},
	{sql: "SELECT * FROM t JOIN u ON u.id = my_func(t.id)", want: Decision{Target: P, Reason: ReasonVolatileFunction, ReadTables: tl("t", "u")}},
	{sql: "SELECT * FROM my_srf()", want: Decision{Target: P, Reason: ReasonVolatileFunction}},
	{sql: "SELECT my_immutable(1)", s: withProc, want: Decision{Target: R, Reason: ReasonRead, Cacheable: true}},
	{sql: "SELECT my_stable(1)", s: withProc, want: Decision{Target: R, Reason: ReasonRead}},
	{sql: "SELECT my_volatile(1)", s: withProc, want: Decision{Target: P, Reason: ReasonVolatileFunction}},
	{sql: "SELECT my_func(1)", s: withProc, want: Decision{Target: P, Reason: ReasonVolatileFunction}},
	{sql: "SELECT app.slugify(name) FROM t", s: withProc, want: Decision{Target: R, Reason: ReasonRead, Cacheable: true, ReadTables: tl("t")}},
	{sql: "SELECT slugify(name) FROM t", s: withProc, want: Decision{Target: P, Reason: ReasonVolatileFunction, ReadTables: tl("t")}},
	{sql: `SELECT "MyFunc"()`, s: withProc, want: Decision{Target: R, Reason: ReasonRead, Cacheable: true}},
	{sql: "SELECT myfunc()", s: withProc, want: Decision{Target: P, Reason: ReasonVolatileFunction}},
	{sql: "SELECT lower(x) FROM t", s: withProc, want: Decision{Target: R, Reason: ReasonRead, Cacheable: true, ReadTables: tl("t")}},
	{sql: "SELECT upper(x) FROM t", s: withProc, want: Decision{Target: R, Reason: ReasonRead, Cacheable: true, ReadTables: tl("t")}},
	{sql: "SELECT now()", s: withProc, want: Decision{Target: R, Reason: ReasonRead}},
	{sql: "SELECT nextval('s')", s: withProc, want: Decision{Target: P, Reason: ReasonWriteFunction}},
	{sql: "SELECT pg_catalog.now()", s: withProc, want: Decision{Target: R, Reason: ReasonRead}},
	{sql: "SELECT pg_catalog.upper(x) FROM t", s: withProc, want: Decision{Target: R, Reason: ReasonRead, Cacheable: true, ReadTables: tl("t")}},
	{sql: "SELECT my_volatile(1)", s: procAndReadCfg, want: Decision{Target: R, Reason: ReasonRead}},
	{sql: "SELECT my_immutable(1)", s: procAndReadCfg, want: Decision{Target: R, Reason: ReasonRead, Cacheable: true}},
	{sql: "SELECT nextval('s')", s: withCfg, want: Decision{Target: P, Reason: ReasonWriteFunction}},
	{sql: "SELECT my_report(1)", s: withCfg, want: Decision{Target: R, Reason: ReasonRead}},
	{sql: "SELECT audit_log('x')", s: withCfg, want: Decision{Target: P, Reason: ReasonWriteFunction}},
	{sql: "SELECT app.touch(id) FROM t", s: withCfg, want: Decision{Target: P, Reason: ReasonWriteFunction, ReadTables: tl("t")}},
	{sql: "SELECT other.audit_log('x')", s: withCfg, want: Decision{Target: P, Reason: ReasonWriteFunction}},
	{sql: "SELECT lower(name) FROM t", s: lowerIsWrite, want: Decision{Target: P, Reason: ReasonWriteFunction, ReadTables: tl("t")}},

	// Comment hints.
	{sql: "/* pgone:primary */ SELECT * FROM t", want: Decision{Target: P, Reason: ReasonHintPrimary, ReadTables: tl("t")}},
	{sql: "SELECT * FROM t /* pgone:primary */", want: Decision{Target: P, Reason: ReasonHintPrimary, ReadTables: tl("t")}},
	{sql: "SELECT * FROM t -- pgone:primary", want: Decision{Target: P, Reason: ReasonHintPrimary, ReadTables: tl("t")}},
	{sql: "-- pgone:primary\nSELECT 1", want: Decision{Target: P, Reason: ReasonHintPrimary}},
	{sql: "SELECT /*pgone:primary*/ 1", want: Decision{Target: P, Reason: ReasonHintPrimary}},
	{sql: "/* PGONE:PRIMARY */ SELECT 1", want: Decision{Target: P, Reason: ReasonHintPrimary}},
	{sql: "/* app=web, pgone:primary */ SELECT 1", want: Decision{Target: P, Reason: ReasonHintPrimary}},
	{sql: "/* outer /* nested */ pgone:primary */ SELECT 1", want: Decision{Target: P, Reason: ReasonHintPrimary}},
	{sql: "SELECT 1 /* pgone:primaryx */", want: Decision{Target: R, Reason: ReasonRead, Cacheable: true}},
	{sql: "SELECT 'x' AS \"pgone:primary\"", want: Decision{Target: R, Reason: ReasonRead, Cacheable: true}},
	{sql: "/* pgone:primary */ SELECT 1", s: roTx, want: Decision{Target: P, Reason: ReasonHintPrimary}},
	{sql: "/* pgone:primary */ INSERT INTO t VALUES (1)", want: Decision{Target: P, Reason: ReasonWrite, WriteTables: tl("t")}},
	{sql: "/* pgone:primary */ BEGIN READ ONLY", want: Decision{Target: P, Reason: ReasonHintPrimary, Tx: TxBegin, TxReadOnly: true}},
	{sql: "/* pgone:replica */ SELECT my_func(1)", want: Decision{Target: R, Reason: ReasonHintReplica}},
	{sql: "SELECT random() -- pgone:replica", want: Decision{Target: R, Reason: ReasonHintReplica}},
	{sql: "/* pgone:replica */ SELECT * FROM t", want: Decision{Target: R, Reason: ReasonRead, Cacheable: true, ReadTables: tl("t")}},
	{sql: "/* pgone:replica */ INSERT INTO t VALUES (1)", want: Decision{Target: P, Reason: ReasonWrite, WriteTables: tl("t")}},
	{sql: "/* pgone:replica */ SELECT nextval('s')", want: Decision{Target: P, Reason: ReasonWriteFunction}},
	{sql: "/* pgone:replica */ SELECT * FROM t FOR UPDATE", want: Decision{Target: P, Reason: ReasonLockingClause, ReadTables: tl("t")}},
	{sql: "/* pgone:replica */ SELECT my_func(1)", s: rwTx, want: Decision{Target: P, Reason: ReasonTransaction}},
	{sql: "/* pgone:replica */ BEGIN", want: Decision{Target: P, Reason: ReasonTransactionControl, Tx: TxBegin}},
	{sql: "/* pgone:primary */ /* pgone:replica */ SELECT my_func()", want: Decision{Target: P, Reason: ReasonHintPrimary}},

	// Writes.
	{sql: "INSERT INTO t VALUES (1)", want: Decision{Target: P, Reason: ReasonWrite, WriteTables: tl("t")}},
	{sql: "INSERT INTO t (a) VALUES (1) RETURNING *", want: Decision{Target: P, Reason: ReasonWrite, WriteTables: tl("t")}},
	{sql: "INSERT INTO public.t SELECT * FROM u", want: Decision{Target: P, Reason: ReasonWrite, ReadTables: tl("u"), WriteTables: tl("public.t")}},
	{sql: "INSERT INTO t SELECT * FROM u", want: Decision{Target: P, Reason: ReasonWrite, ReadTables: tl("u"), WriteTables: tl("t")}},
	{sql: "INSERT INTO t SELECT * FROM t WHERE a > 0", want: Decision{Target: P, Reason: ReasonWrite, WriteTables: tl("t")}},
	{sql: "INSERT INTO t VALUES (1) ON CONFLICT (id) DO UPDATE SET a = excluded.a", want: Decision{Target: P, Reason: ReasonWrite, WriteTables: tl("t")}},
	{sql: "INSERT INTO t VALUES (nextval('s'))", want: Decision{Target: P, Reason: ReasonWrite, WriteTables: tl("t")}},
	{sql: "INSERT INTO t VALUES (pg_advisory_lock(1))", want: Decision{Target: P, Reason: ReasonWrite, WriteTables: tl("t"), Pins: pins(PinAdvisoryLock)}},
	{sql: "UPDATE t SET a = 1 WHERE id = 2", want: Decision{Target: P, Reason: ReasonWrite, WriteTables: tl("t")}},
	{sql: "UPDATE t SET a = u.a FROM u WHERE t.id = u.id", want: Decision{Target: P, Reason: ReasonWrite, ReadTables: tl("u"), WriteTables: tl("t")}},
	{sql: "UPDATE t SET a = (SELECT max(a) FROM u)", want: Decision{Target: P, Reason: ReasonWrite, ReadTables: tl("u"), WriteTables: tl("t")}},
	{sql: `UPDATE "My Table" SET a = 1`, want: Decision{Target: P, Reason: ReasonWrite, WriteTables: tl("My Table")}},
	{sql: "DELETE FROM t WHERE id = 1", want: Decision{Target: P, Reason: ReasonWrite, WriteTables: tl("t")}},
	{sql: "DELETE FROM t USING u WHERE t.id = u.id", want: Decision{Target: P, Reason: ReasonWrite, ReadTables: tl("u"), WriteTables: tl("t")}},
	{sql: "DELETE FROM s.t WHERE id IN (SELECT id FROM u) RETURNING *", want: Decision{Target: P, Reason: ReasonWrite, ReadTables: tl("u"), WriteTables: tl("s.t")}},
	{sql: "MERGE INTO t USING u ON t.id = u.id WHEN MATCHED THEN UPDATE SET a = u.a WHEN NOT MATCHED THEN INSERT VALUES (u.id, u.a)", want: Decision{Target: P, Reason: ReasonWrite, ReadTables: tl("u"), WriteTables: tl("t")}},
	{sql: "WITH x AS (SELECT * FROM u) UPDATE t SET a = x.a FROM x", want: Decision{Target: P, Reason: ReasonWrite, ReadTables: tl("u"), WriteTables: tl("t")}},
	{sql: "WITH x AS (SELECT 1) INSERT INTO x SELECT * FROM x", want: Decision{Target: P, Reason: ReasonWrite, WriteTables: tl("x")}},
	{sql: "TRUNCATE t", want: Decision{Target: P, Reason: ReasonWrite, WriteTables: tl("t")}},
	{sql: "TRUNCATE TABLE a, public.b RESTART IDENTITY", want: Decision{Target: P, Reason: ReasonWrite, WriteTables: tl("a", "public.b")}},
	{sql: "COPY t TO STDOUT", want: Decision{Target: P, Reason: ReasonUtility, ReadTables: tl("t")}},
	{sql: "COPY t (a, b) FROM STDIN", want: Decision{Target: P, Reason: ReasonWrite, WriteTables: tl("t")}},
	{sql: "COPY t FROM '/tmp/x.csv' WITH (FORMAT csv)", want: Decision{Target: P, Reason: ReasonWrite, WriteTables: tl("t")}},
	{sql: "COPY (SELECT * FROM t JOIN u USING (id)) TO STDOUT", want: Decision{Target: P, Reason: ReasonUtility, ReadTables: tl("t", "u")}},
	{sql: "COPY (DELETE FROM t RETURNING *) TO STDOUT", want: Decision{Target: P, Reason: ReasonWrite, WriteTables: tl("t")}},

	// DDL.
	{sql: "CREATE TABLE t (id int PRIMARY KEY)", want: Decision{Target: P, Reason: ReasonDDL, WriteTables: tl("t")}},
	{sql: "CREATE TABLE IF NOT EXISTS s.t (id int REFERENCES u (id))", want: Decision{Target: P, Reason: ReasonDDL, ReadTables: tl("u"), WriteTables: tl("s.t")}},
	{sql: "CREATE TABLE t (id int DEFAULT nextval('s'), b int DEFAULT pg_advisory_lock(1))", want: Decision{Target: P, Reason: ReasonDDL, WriteTables: tl("t")}},
	{sql: "CREATE TEMP TABLE tmp (a int)", want: Decision{Target: P, Reason: ReasonDDL, WriteTables: tl("tmp"), Pins: pins(PinTempTable)}},
	{sql: "CREATE TEMPORARY TABLE tmp (a int)", want: Decision{Target: P, Reason: ReasonDDL, WriteTables: tl("tmp"), Pins: pins(PinTempTable)}},
	{sql: "CREATE TEMP TABLE tmp (a int) ON COMMIT DROP", want: Decision{Target: P, Reason: ReasonDDL, WriteTables: tl("tmp")}},
	{sql: "CREATE TABLE pg_temp.tmp (a int)", want: Decision{Target: P, Reason: ReasonDDL, WriteTables: tl("pg_temp.tmp"), Pins: pins(PinTempTable)}},
	{sql: "CREATE TEMP VIEW tv AS SELECT * FROM t", want: Decision{Target: P, Reason: ReasonDDL, ReadTables: tl("t"), WriteTables: tl("tv"), Pins: pins(PinTempTable)}},
	{sql: "CREATE TEMP SEQUENCE ts", want: Decision{Target: P, Reason: ReasonDDL, WriteTables: tl("ts"), Pins: pins(PinTempTable)}},
	{sql: "CREATE UNLOGGED TABLE ul (a int)", want: Decision{Target: P, Reason: ReasonDDL, WriteTables: tl("ul")}},
	{sql: "CREATE TABLE t2 AS SELECT * FROM t", want: Decision{Target: P, Reason: ReasonDDL, ReadTables: tl("t"), WriteTables: tl("t2")}},
	{sql: "CREATE TEMP TABLE t2 AS SELECT * FROM t", want: Decision{Target: P, Reason: ReasonDDL, ReadTables: tl("t"), WriteTables: tl("t2"), Pins: pins(PinTempTable)}},
	{sql: "CREATE MATERIALIZED VIEW mv AS SELECT * FROM t", want: Decision{Target: P, Reason: ReasonDDL, ReadTables: tl("t"), WriteTables: tl("mv")}},
	{sql: "REFRESH MATERIALIZED VIEW CONCURRENTLY mv", want: Decision{Target: P, Reason: ReasonDDL, WriteTables: tl("mv")}},
	{sql: "CREATE VIEW v AS SELECT * FROM t", want: Decision{Target: P, Reason: ReasonDDL, ReadTables: tl("t"), WriteTables: tl("v")}},
	{sql: "CREATE VIEW v AS SELECT pg_advisory_lock(1), set_config('a', 'b', false)", want: Decision{Target: P, Reason: ReasonDDL, WriteTables: tl("v")}},
	{sql: "CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$", want: Decision{Target: P, Reason: ReasonDDL}},
	{sql: "CREATE FUNCTION f() RETURNS int LANGUAGE sql SET search_path = x AS 'select 1'", want: Decision{Target: P, Reason: ReasonDDL}},
	{sql: "CREATE FUNCTION pg_temp.f() RETURNS int AS 'select 1' LANGUAGE sql", want: Decision{Target: P, Reason: ReasonDDL, Pins: pins(PinTempTable)}},
	{sql: `CREATE TYPE pg_temp.r AS RANGE (subtype = text, collation = "C")`, want: Decision{Target: P, Reason: ReasonDDL, Pins: pins(PinTempTable)}},
	{sql: "CREATE TYPE pg_temp.e AS ENUM ('a')", want: Decision{Target: P, Reason: ReasonDDL, Pins: pins(PinTempTable)}},
	{sql: "CREATE TYPE pg_temp.c AS (a int)", want: Decision{Target: P, Reason: ReasonDDL, ReadTables: tl("pg_temp.c"), Pins: pins(PinTempTable)}},
	{sql: "CREATE DOMAIN pg_temp.d AS int", want: Decision{Target: P, Reason: ReasonDDL, Pins: pins(PinTempTable)}},
	{sql: "CREATE AGGREGATE pg_temp.a (int) (sfunc = int4pl, stype = int)", want: Decision{Target: P, Reason: ReasonDDL, Pins: pins(PinTempTable)}},
	{sql: "CREATE TYPE public.r2 AS RANGE (subtype = int4)", want: Decision{Target: P, Reason: ReasonDDL}},
	{sql: "ALTER TABLE t ADD COLUMN c int", want: Decision{Target: P, Reason: ReasonDDL, WriteTables: tl("t")}},
	{sql: "ALTER TABLE t ADD CONSTRAINT fk FOREIGN KEY (u_id) REFERENCES u (id)", want: Decision{Target: P, Reason: ReasonDDL, ReadTables: tl("u"), WriteTables: tl("t")}},
	{sql: "ALTER TABLE t RENAME TO t2", want: Decision{Target: P, Reason: ReasonDDL, WriteTables: tl("t")}},
	{sql: "ALTER TABLE t SET SCHEMA s", want: Decision{Target: P, Reason: ReasonDDL, WriteTables: tl("t")}},
	{sql: "DROP TABLE t", want: Decision{Target: P, Reason: ReasonDDL, WriteTables: tl("t")}},
	{sql: "DROP TABLE IF EXISTS a, s.b CASCADE", want: Decision{Target: P, Reason: ReasonDDL, WriteTables: tl("a", "s.b")}},
	{sql: "DROP VIEW v", want: Decision{Target: P, Reason: ReasonDDL, WriteTables: tl("v")}},
	{sql: "DROP INDEX i", want: Decision{Target: P, Reason: ReasonDDL}},
	{sql: "CREATE INDEX CONCURRENTLY i ON t (a)", want: Decision{Target: P, Reason: ReasonDDL, WriteTables: tl("t")}},
	{sql: "CREATE SEQUENCE s", want: Decision{Target: P, Reason: ReasonDDL, WriteTables: tl("s")}},
	{sql: "ALTER SEQUENCE s RESTART", want: Decision{Target: P, Reason: ReasonDDL, WriteTables: tl("s")}},
	{sql: "GRANT SELECT ON t TO bob", want: Decision{Target: P, Reason: ReasonDDL, WriteTables: tl("t")}},
	{sql: "REVOKE ALL ON TABLE a, b FROM PUBLIC", want: Decision{Target: P, Reason: ReasonDDL, WriteTables: tl("a", "b")}},
	{sql: "GRANT USAGE ON SCHEMA s TO bob", want: Decision{Target: P, Reason: ReasonDDL}},
	{sql: "GRANT ALL ON ALL TABLES IN SCHEMA public TO bob", want: Decision{Target: P, Reason: ReasonDDL}},
	{sql: "GRANT admin TO bob", want: Decision{Target: P, Reason: ReasonDDL}},
	{sql: "COMMENT ON TABLE t IS 'x'", want: Decision{Target: P, Reason: ReasonDDL}},
	{sql: "CREATE TRIGGER trg BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION f()", want: Decision{Target: P, Reason: ReasonDDL, WriteTables: tl("t")}},
	{sql: "CREATE POLICY p ON t USING (owner = current_user)", want: Decision{Target: P, Reason: ReasonDDL, WriteTables: tl("t")}},
	{sql: "CREATE SCHEMA s", want: Decision{Target: P, Reason: ReasonDDL}},
	{sql: "CREATE EXTENSION pgcrypto", want: Decision{Target: P, Reason: ReasonDDL}},
	{sql: "CREATE DATABASE d", want: Decision{Target: P, Reason: ReasonDDL}},
	{sql: "ALTER ROLE bob SET search_path = x", want: Decision{Target: P, Reason: ReasonDDL}},
	{sql: "ALTER DATABASE d SET work_mem = '1MB'", want: Decision{Target: P, Reason: ReasonDDL}},
	{sql: "ALTER SYSTEM SET work_mem = '1MB'", want: Decision{Target: P, Reason: ReasonDDL}},

	// Transaction control.
	{sql: "BEGIN", want: Decision{Target: P, Reason: ReasonTransactionControl, Tx: TxBegin}},
	{sql: "BEGIN READ ONLY", want: Decision{Target: R, Reason: ReasonTransactionControl, Tx: TxBegin, TxReadOnly: true}},
	{sql: "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY", want: Decision{Target: R, Reason: ReasonTransactionControl, Tx: TxBegin, TxReadOnly: true}},
	{sql: "START TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ ONLY", want: Decision{Target: P, Reason: ReasonSerializable, Tx: TxBegin, TxReadOnly: true}},
	{sql: "START TRANSACTION ISOLATION LEVEL SERIALIZABLE", want: Decision{Target: P, Reason: ReasonTransactionControl, Tx: TxBegin}},
	{sql: "START TRANSACTION READ WRITE", want: Decision{Target: P, Reason: ReasonTransactionControl, Tx: TxBegin, TxReadWrite: true}},
	{sql: "BEGIN", s: defRO, want: Decision{Target: R, Reason: ReasonTransactionControl, Tx: TxBegin}},
	{sql: "BEGIN READ WRITE", s: defRO, want: Decision{Target: P, Reason: ReasonTransactionControl, Tx: TxBegin, TxReadWrite: true}},
	{sql: "COMMIT", want: Decision{Target: P, Reason: ReasonTransactionControl, Tx: TxCommit}},
	{sql: "END", want: Decision{Target: P, Reason: ReasonTransactionControl, Tx: TxCommit}},
	{sql: "COMMIT AND CHAIN", want: Decision{Target: P, Reason: ReasonTransactionControl, Tx: TxCommit, TxChain: true}},
	{sql: "ROLLBACK", want: Decision{Target: P, Reason: ReasonTransactionControl, Tx: TxRollback}},
	{sql: "ABORT", want: Decision{Target: P, Reason: ReasonTransactionControl, Tx: TxRollback}},
	{sql: "ROLLBACK AND CHAIN", want: Decision{Target: P, Reason: ReasonTransactionControl, Tx: TxRollback, TxChain: true}},
	{sql: "SAVEPOINT sp", want: Decision{Target: P, Reason: ReasonTransactionControl, Tx: TxSavepoint}},
	{sql: "RELEASE SAVEPOINT sp", want: Decision{Target: P, Reason: ReasonTransactionControl, Tx: TxRelease}},
	{sql: "RELEASE sp", want: Decision{Target: P, Reason: ReasonTransactionControl, Tx: TxRelease}},
	{sql: "ROLLBACK TO SAVEPOINT sp", want: Decision{Target: P, Reason: ReasonTransactionControl, Tx: TxRollbackTo}},
	{sql: "ROLLBACK TO sp", want: Decision{Target: P, Reason: ReasonTransactionControl, Tx: TxRollbackTo}},
	{sql: "PREPARE TRANSACTION 'g1'", want: Decision{Target: P, Reason: ReasonTransactionControl, Tx: TxPrepareTransaction}},
	{sql: "PREPARE TRANSACTION 'g1'", s: roTx, want: Decision{Target: P, Reason: ReasonTransactionControl, Tx: TxPrepareTransaction}},
	{sql: "COMMIT PREPARED 'g1'", want: Decision{Target: P, Reason: ReasonTransactionControl, Tx: TxCommitPrepared}},
	{sql: "ROLLBACK PREPARED 'g1'", want: Decision{Target: P, Reason: ReasonTransactionControl, Tx: TxRollbackPrepared}},
	{sql: "SET TRANSACTION READ ONLY", want: Decision{Target: P, Reason: ReasonTransactionControl, Tx: TxSetTransaction, TxReadOnly: true}},
	{sql: "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", want: Decision{Target: P, Reason: ReasonTransactionControl, Tx: TxSetTransaction}},
	{sql: "SET TRANSACTION SNAPSHOT '00000003-0000001B-1'", want: Decision{Target: P, Reason: ReasonTransactionControl, Tx: TxSetTransaction}},
	{sql: "SET TRANSACTION READ WRITE", s: roTx, want: Decision{Target: P, Reason: ReasonTransactionControl, Tx: TxSetTransaction, TxReadWrite: true}},
	{sql: "COMMIT", s: roTx, want: Decision{Target: R, Reason: ReasonTransactionControl, Tx: TxCommit}},
	{sql: "ROLLBACK", s: roTx, want: Decision{Target: R, Reason: ReasonTransactionControl, Tx: TxRollback}},
	{sql: "SAVEPOINT sp", s: roTx, want: Decision{Target: R, Reason: ReasonTransactionControl, Tx: TxSavepoint}},
	{sql: "COMMIT", s: rwTx, want: Decision{Target: P, Reason: ReasonTransactionControl, Tx: TxCommit}},
	{sql: "COMMIT", s: defROTx, want: Decision{Target: R, Reason: ReasonTransactionControl, Tx: TxCommit}},
	{sql: "COMMIT", s: defROTxRW, want: Decision{Target: P, Reason: ReasonTransactionControl, Tx: TxCommit}},

	// Serializable: a standby refuses it ("cannot use serializable mode in
	// a hot standby"), so what would go to a replica goes to the primary at
	// that level, named by BEGIN, START TRANSACTION or SET TRANSACTION, or
	// by the session's default isolation. Other levels keep their replica.
	{sql: "BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY", want: Decision{Target: P, Reason: ReasonSerializable, Tx: TxBegin, TxReadOnly: true}},
	{sql: "begin transaction isolation level serializable, read only, deferrable", want: Decision{Target: P, Reason: ReasonSerializable, Tx: TxBegin, TxReadOnly: true}},
	{sql: "START TRANSACTION READ ONLY ISOLATION LEVEL SERIALIZABLE", want: Decision{Target: P, Reason: ReasonSerializable, Tx: TxBegin, TxReadOnly: true}},
	{sql: "BEGIN ISOLATION LEVEL SERIALIZABLE", s: defRO, want: Decision{Target: P, Reason: ReasonSerializable, Tx: TxBegin}},
	{sql: "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", s: roTx, want: Decision{Target: P, Reason: ReasonSerializable, Tx: TxSetTransaction}},
	{sql: "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", want: Decision{Target: R, Reason: ReasonTransactionControl, Tx: TxBegin, TxReadOnly: true}},
	{sql: "SET TRANSACTION ISOLATION LEVEL READ COMMITTED", s: roTx, want: Decision{Target: R, Reason: ReasonTransactionControl, Tx: TxSetTransaction}},
	{sql: "SELECT 1", s: defSer, want: Decision{Target: P, Reason: ReasonSerializable, Cacheable: true}},
	{sql: "BEGIN READ ONLY", s: defSer, want: Decision{Target: P, Reason: ReasonSerializable, Tx: TxBegin, TxReadOnly: true}},
	{sql: "SELECT 1", s: roSerTx, want: Decision{Target: P, Reason: ReasonSerializable, Cacheable: true}},
	{sql: "COMMIT", s: roSerTx, want: Decision{Target: P, Reason: ReasonSerializable, Tx: TxCommit}},
	{sql: "INSERT INTO t VALUES (1)", s: defSer, want: Decision{Target: P, Reason: ReasonWrite, WriteTables: tl("t")}},

	// Session state: explicit transactions.
	{sql: "SELECT * FROM t", s: rwTx, want: Decision{Target: P, Reason: ReasonTransaction, Cacheable: true, ReadTables: tl("t")}},
	{sql: "SELECT * FROM t", s: roTx, want: Decision{Target: R, Reason: ReasonRead, Cacheable: true, ReadTables: tl("t")}},
	{sql: "SELECT * FROM t", s: defROTx, want: Decision{Target: R, Reason: ReasonRead, Cacheable: true, ReadTables: tl("t")}},
	{sql: "SELECT * FROM t", s: defROTxRW, want: Decision{Target: P, Reason: ReasonTransaction, Cacheable: true, ReadTables: tl("t")}},
	{sql: "SELECT * FROM t", s: defRO, want: Decision{Target: R, Reason: ReasonRead, Cacheable: true, ReadTables: tl("t")}},
	{sql: "SELECT now()", s: roTx, want: Decision{Target: R, Reason: ReasonRead}},
	{sql: "SHOW work_mem", s: rwTx, want: Decision{Target: P, Reason: ReasonTransaction}},
	{sql: "INSERT INTO t VALUES (1)", s: roTx, want: Decision{Target: P, Reason: ReasonWrite, WriteTables: tl("t")}},
	{sql: "SELECT nextval('s')", s: roTx, want: Decision{Target: P, Reason: ReasonWriteFunction}},
	{sql: "SELECT random()", s: rwTx, want: Decision{Target: P, Reason: ReasonVolatileFunction}},

	// Settings.
	{sql: "SET search_path = a, b", want: Decision{Target: P, Reason: ReasonUtility, ChangesSettings: true}},
	{sql: "SET work_mem TO '64MB'", want: Decision{Target: P, Reason: ReasonUtility, ChangesSettings: true}},
	{sql: "SET SESSION statement_timeout = 0", want: Decision{Target: P, Reason: ReasonUtility, ChangesSettings: true}},
	{sql: "SET LOCAL work_mem = '1MB'", want: Decision{Target: P, Reason: ReasonUtility}},
	{sql: "SET TIME ZONE 'UTC'", want: Decision{Target: P, Reason: ReasonUtility, ChangesSettings: true}},
	{sql: "SET datestyle TO DEFAULT", want: Decision{Target: P, Reason: ReasonUtility, ChangesSettings: true}},
	{sql: "RESET work_mem", want: Decision{Target: P, Reason: ReasonUtility, ChangesSettings: true}},
	{sql: "RESET ALL", want: Decision{Target: P, Reason: ReasonUtility, ChangesSettings: true}},
	{sql: "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", want: Decision{Target: P, Reason: ReasonUtility, ChangesSettings: true}},
	{sql: "SET default_transaction_read_only = on", want: Decision{Target: P, Reason: ReasonUtility, ChangesSettings: true}},
	{sql: "SET application_name = 'x'", want: Decision{Target: P, Reason: ReasonUtility, ChangesSettings: true}},
	{sql: "SET ROLE bob", want: Decision{Target: P, Reason: ReasonUtility, ChangesSettings: true, Pins: pins(PinSessionAuthorization)}},
	{sql: "SET SESSION AUTHORIZATION bob", want: Decision{Target: P, Reason: ReasonUtility, ChangesSettings: true, Pins: pins(PinSessionAuthorization)}},
	{sql: "SET LOCAL ROLE bob", want: Decision{Target: P, Reason: ReasonUtility}},
	{sql: "RESET ROLE", want: Decision{Target: P, Reason: ReasonUtility, ChangesSettings: true}},
	{sql: "DISCARD ALL", want: Decision{Target: P, Reason: ReasonUtility, ChangesSettings: true, DiscardAll: true, DeallocateAll: true, Unlisten: true}},
	{sql: "DISCARD PLANS", want: Decision{Target: P, Reason: ReasonUtility}},
	{sql: "DISCARD TEMP", want: Decision{Target: P, Reason: ReasonUtility}},
	{sql: "DO $$BEGIN PERFORM 1; END$$", want: Decision{Target: P, Reason: ReasonUtility, ChangesSettings: true}},
	{sql: "CALL p()", want: Decision{Target: P, Reason: ReasonUtility, ChangesSettings: true}},
	{sql: "CALL s.p(1, 'x')", want: Decision{Target: P, Reason: ReasonUtility, ChangesSettings: true}},

	// Pins and other session utilities.
	{sql: "LISTEN chan", want: Decision{Target: P, Reason: ReasonUtility, Pins: pins(PinListen)}},
	{sql: "UNLISTEN chan", want: Decision{Target: P, Reason: ReasonUtility, Unlisten: true}},
	{sql: "UNLISTEN *", want: Decision{Target: P, Reason: ReasonUtility, Unlisten: true}},
	{sql: "NOTIFY chan, 'payload'", want: Decision{Target: P, Reason: ReasonUtility}},
	{sql: "PREPARE p AS SELECT * FROM t WHERE id = $1", want: Decision{Target: P, Reason: ReasonUtility, ReadTables: tl("t"), Pins: pins(PinPrepare)}},
	{sql: "PREPARE p (int) AS INSERT INTO t VALUES ($1)", want: Decision{Target: P, Reason: ReasonUtility, ReadTables: tl("t"), Pins: pins(PinPrepare)}},
	{sql: "EXECUTE p(1)", want: Decision{Target: P, Reason: ReasonUtility}},
	{sql: "DEALLOCATE p", want: Decision{Target: P, Reason: ReasonUtility}},
	{sql: "DEALLOCATE ALL", want: Decision{Target: P, Reason: ReasonUtility, DeallocateAll: true}},
	{sql: "DEALLOCATE PREPARE ALL", want: Decision{Target: P, Reason: ReasonUtility, DeallocateAll: true}},
	{sql: "DECLARE c CURSOR WITH HOLD FOR SELECT * FROM t", want: Decision{Target: P, Reason: ReasonUtility, ReadTables: tl("t"), Pins: pins(PinHoldCursor)}},
	{sql: "DECLARE c NO SCROLL CURSOR WITH HOLD FOR SELECT 1", want: Decision{Target: P, Reason: ReasonUtility, Pins: pins(PinHoldCursor)}},
	{sql: "DECLARE c CURSOR FOR SELECT * FROM t", want: Decision{Target: P, Reason: ReasonUtility, ReadTables: tl("t")}},
	{sql: "DECLARE c SCROLL CURSOR WITHOUT HOLD FOR SELECT 1", want: Decision{Target: P, Reason: ReasonUtility}},
	{sql: "FETCH 10 FROM c", want: Decision{Target: P, Reason: ReasonUtility}},
	{sql: "MOVE NEXT IN c", want: Decision{Target: P, Reason: ReasonUtility}},
	{sql: "CLOSE c", want: Decision{Target: P, Reason: ReasonUtility}},
	{sql: "LOAD 'auto_explain'", want: Decision{Target: P, Reason: ReasonUtility, Pins: pins(PinLoad)}},
	{sql: "LOCK TABLE t IN ACCESS EXCLUSIVE MODE", want: Decision{Target: P, Reason: ReasonUtility, ReadTables: tl("t")}},
	{sql: "VACUUM t", want: Decision{Target: P, Reason: ReasonUtility, ReadTables: tl("t")}},
	{sql: "VACUUM (ANALYZE) t", want: Decision{Target: P, Reason: ReasonUtility, ReadTables: tl("t")}},
	{sql: "ANALYZE t", want: Decision{Target: P, Reason: ReasonUtility, ReadTables: tl("t")}},
	{sql: "CHECKPOINT", want: Decision{Target: P, Reason: ReasonUtility}},
	{sql: "REINDEX TABLE t", want: Decision{Target: P, Reason: ReasonUtility, ReadTables: tl("t")}},
	{sql: "CLUSTER t USING i", want: Decision{Target: P, Reason: ReasonUtility, ReadTables: tl("t")}},

	// Multi-statement texts.
	{sql: "SELECT 1; SELECT 2", want: Decision{Target: P, Reason: ReasonMultiStatement, Statements: 2}},
	{sql: "SELECT * FROM t; SELECT * FROM u;", want: Decision{Target: P, Reason: ReasonMultiStatement, Statements: 2, ReadTables: tl("t", "u")}},
	{sql: "BEGIN; UPDATE t SET a = 1; COMMIT", want: Decision{Target: P, Reason: ReasonMultiStatement, Statements: 3, WriteTables: tl("t"), Tx: TxCommit}},
	{sql: "BEGIN READ ONLY; SELECT 1", want: Decision{Target: P, Reason: ReasonMultiStatement, Statements: 2, Tx: TxBegin, TxReadOnly: true}},
	{sql: "SET search_path = x; SELECT * FROM t", want: Decision{Target: P, Reason: ReasonMultiStatement, Statements: 2, ChangesSettings: true, ReadTables: tl("t")}},
	{sql: "SET LOCAL work_mem = '1MB'; SELECT 1", want: Decision{Target: P, Reason: ReasonMultiStatement, Statements: 2}},
	{sql: "SELECT 1; LISTEN c; SELECT pg_advisory_lock(2)", want: Decision{Target: P, Reason: ReasonMultiStatement, Statements: 3, Pins: pins(PinListen, PinAdvisoryLock)}},
	{sql: "WITH x AS (SELECT 1) SELECT * FROM x; SELECT * FROM x", want: Decision{Target: P, Reason: ReasonMultiStatement, Statements: 2, ReadTables: tl("x")}},
	{sql: "SELECT 1;;", want: Decision{Target: R, Reason: ReasonRead, Cacheable: true}},
	{sql: ";SELECT 1;", want: Decision{Target: R, Reason: ReasonRead, Cacheable: true}},

	// Comments, whitespace and literals that look like statements.
	{sql: "  SELECT 1  ", want: Decision{Target: R, Reason: ReasonRead, Cacheable: true}},
	{sql: "-- comment\nSELECT * FROM t", want: Decision{Target: R, Reason: ReasonRead, Cacheable: true, ReadTables: tl("t")}},
	{sql: "/* leading */ SELECT * FROM t /* trailing */", want: Decision{Target: R, Reason: ReasonRead, Cacheable: true, ReadTables: tl("t")}},
	{sql: "SELECT /* inside */ * FROM t -- end", want: Decision{Target: R, Reason: ReasonRead, Cacheable: true, ReadTables: tl("t")}},
	{sql: "SELECT 1 -- ; DELETE FROM t", want: Decision{Target: R, Reason: ReasonRead, Cacheable: true}},
	{sql: "SELECT ';DELETE FROM t'", want: Decision{Target: R, Reason: ReasonRead, Cacheable: true}},
	{sql: "SELECT $$;DROP TABLE t$$", want: Decision{Target: R, Reason: ReasonRead, Cacheable: true}},
	{sql: "SELECT E'\\';DELETE FROM t'", want: Decision{Target: R, Reason: ReasonRead, Cacheable: true}},

	// Empty texts and parse errors.
	{sql: "", want: Decision{Target: P, Reason: ReasonEmpty}},
	{sql: "   \n\t", want: Decision{Target: P, Reason: ReasonEmpty}},
	{sql: ";", want: Decision{Target: P, Reason: ReasonEmpty}},
	{sql: "-- just a comment", want: Decision{Target: P, Reason: ReasonEmpty}},
	{sql: "/* pgone:replica */", want: Decision{Target: P, Reason: ReasonEmpty}},
	{sql: "SELEC 1", want: Decision{Target: P, Reason: ReasonParseError}},
	{sql: "SELECT * FROM", want: Decision{Target: P, Reason: ReasonParseError}},
	{sql: "SELECT 'unterminated", want: Decision{Target: P, Reason: ReasonParseError}},
	{sql: "SELECT 1; SELEC 2", want: Decision{Target: P, Reason: ReasonParseError}},
	{sql: "DELETE t", want: Decision{Target: P, Reason: ReasonParseError}},
	{sql: "/* pgone:replica */ SELEC 1", want: Decision{Target: P, Reason: ReasonParseError}},
}

func TestRoute(t *testing.T) {
	if len(routeCases) < 170 {
		t.Fatalf("only %d cases", len(routeCases))
	}
	r := NewRouter(1000)
	for _, c := range routeCases {
		want := c.want
		if want.Statements == 0 && want.Reason != ReasonEmpty && want.Reason != ReasonParseError {
			want.Statements = 1
		}
		got := r.Route(c.sql, c.s)
		if diff := diffDecision(got, want); diff != "" {
			t.Errorf("Route(%q, %+v):%s", c.sql, c.s, diff)
		}
		switch {
		case want.Reason == ReasonParseError || want.Reason == ReasonEmpty:
			if got.Fingerprint != 0 {
				t.Errorf("Route(%q): fingerprint %x, want 0", c.sql, got.Fingerprint)
			}
		case got.Fingerprint == 0:
			t.Errorf("Route(%q): no fingerprint", c.sql)
		}
	}
}

// diffDecision lists the fields that differ, ignoring Fingerprint; nil and
// empty slices are equal.
func diffDecision(got, want Decision) string {
	var d string
	add := func(field string, g, w any) {
		d += "\n\t" + field + ": got " + fmt.Sprint(g) + ", want " + fmt.Sprint(w)
	}
	if got.Target != want.Target {
		add("Target", got.Target, want.Target)
	}
	if got.Reason != want.Reason {
		add("Reason", got.Reason, want.Reason)
	}
	if got.Statements != want.Statements {
		add("Statements", got.Statements, want.Statements)
	}
	if !slices.Equal(got.ReadTables, want.ReadTables) {
		add("ReadTables", got.ReadTables, want.ReadTables)
	}
	if !slices.Equal(got.WriteTables, want.WriteTables) {
		add("WriteTables", got.WriteTables, want.WriteTables)
	}
	if !slices.Equal(got.Pins, want.Pins) {
		add("Pins", got.Pins, want.Pins)
	}
	for _, b := range []struct {
		name      string
		got, want bool
	}{
		{"Cacheable", got.Cacheable, want.Cacheable},
		{"TxReadOnly", got.TxReadOnly, want.TxReadOnly},
		{"TxReadWrite", got.TxReadWrite, want.TxReadWrite},
		{"TxChain", got.TxChain, want.TxChain},
		{"ChangesSettings", got.ChangesSettings, want.ChangesSettings},
		{"DiscardAll", got.DiscardAll, want.DiscardAll},
		{"DeallocateAll", got.DeallocateAll, want.DeallocateAll},
		{"Unlisten", got.Unlisten, want.Unlisten},
	} {
		if b.got != b.want {
			add(b.name, b.got, b.want)
		}
	}
	if got.Tx != want.Tx {
		add("Tx", got.Tx, want.Tx)
	}
	return d
}

package proxy_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgone/pgone/cache"
)

// Never-cache rules through real clients against real PostgreSQL, beside
// TestCacheNeverCached (cache_test.go): each test fails if its rule is
// taken out of the code.

// servedFromCache reads sql on conn until a read is a hit.
func servedFromCache(t *testing.T, c *cache.Cache, read func() string) {
	t.Helper()
	read()
	waitUntil(t, "a hit", func() bool {
		h := c.Stats().Hits
		read()
		return c.Stats().Hits > h
	})
}

// TestCacheNeverPinnedSession: a client pinned to its server (here by
// LISTEN) is neither served from the cache nor fills it; pgone no longer
// snapshots a pinned client's settings, so the key could not tell its
// TimeZone from another's. It reads its own TimeZone's text, and the
// other clients keep theirs. (A temporary table that shadows a cached
// table's name is refused for every client by the catalog rule.)
func TestCacheNeverPinnedSession(t *testing.T) {
	t.Parallel()
	cacheTable(t, "cache_pin", 1)
	p, c := startCacheProxy(t, func(c *cache.Config) { c.Rules = []cache.Rule{{Table: "cache_pin"}} })
	reader, pinned := p.Connect(t), p.Connect(t)
	ctx := testCtx(t)
	for _, s := range []string{"SET TimeZone = 'UTC'", "LISTEN cache_pin", "SET TimeZone = 'Asia/Tokyo'"} {
		if _, err := pinned.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	if _, err := reader.Exec(ctx, "SET TimeZone = 'UTC'"); err != nil {
		t.Fatal(err)
	}
	const sql = "SELECT at FROM cache_pin WHERE id = 1"
	read := func(conn *pgx.Conn) string { return readV(t, conn, sql, pgx.QueryExecModeSimpleProtocol) }
	servedFromCache(t, c, func() string { return read(reader) })
	before := c.Stats()
	for range 2 {
		if v := read(pinned); v != "2026-01-02 12:04:05+09" {
			t.Fatalf("the pinned client read %q, want its TimeZone's 2026-01-02 12:04:05+09", v)
		}
	}
	if after := c.Stats(); after.Hits != before.Hits || after.Misses != before.Misses {
		t.Fatalf("the pinned client's reads: hits %d->%d misses %d->%d; want no lookup (so no fill)",
			before.Hits, after.Hits, before.Misses, after.Misses)
	}
	if v := read(reader); v != "2026-01-02 03:04:05+00" {
		t.Fatalf("the other client read %q after the pinned one, want 2026-01-02 03:04:05+00", v)
	}
}

// TestCacheNamedStatementKey: a Bind of a named statement Parsed in an
// earlier request (what pgx's statement cache sends) is keyed by the
// statement's text, not its name: two sessions with one name for two
// texts, and one session that closes and re-Parses the name, each get
// their own statement's rows; the repeat is a byte-identical hit.
func TestCacheNamedStatementKey(t *testing.T) {
	t.Parallel()
	cacheTable(t, "cache_named", 1)
	p, c := startCacheProxy(t, func(c *cache.Config) { c.Rules = []cache.Rule{{Table: "cache_named"}} })
	x, y := connectMsg(t, p.AppDSN()), connectMsg(t, p.AppDSN())
	prepare := func(mc *msgConn, text string) {
		t.Helper()
		mc.send(&pgproto3.Close{ObjectType: 'S', Name: "s1"}, &pgproto3.Parse{Name: "s1", Query: text}, &pgproto3.Sync{})
		mc.rawReply()
	}
	run := func(mc *msgConn) []byte {
		t.Helper()
		mc.send(&pgproto3.Bind{PreparedStatement: "s1", Parameters: [][]byte{[]byte("1")}},
			&pgproto3.Describe{ObjectType: 'P'}, &pgproto3.Execute{}, &pgproto3.Sync{})
		return mc.rawReply()
	}
	prepare(x, "SELECT v FROM cache_named WHERE id = $1")
	prepare(y, "SELECT v AS other FROM cache_named WHERE id = $1")
	fills := c.Stats().Fills
	miss := run(x)
	waitUntil(t, "x's fill", func() bool { return c.Stats().Fills > fills })
	hits := c.Stats().Hits
	if hit := run(x); !bytes.Equal(hit, miss) || c.Stats().Hits != hits+1 {
		t.Fatalf("x's repeat: hits %d->%d, bytes equal %v; want a byte-identical hit", hits, c.Stats().Hits, bytes.Equal(hit, miss))
	}
	// The other texts differ in their column's name only: the same
	// key would replay x's RowDescription.
	misses := c.Stats().Misses
	if got := run(y); !bytes.Contains(got, []byte("other\x00")) || c.Stats().Misses != misses+1 {
		t.Fatalf("y's s1 (another text) got %q, misses %d->%d; want a miss with column other", got, misses, c.Stats().Misses)
	}
	prepare(x, "SELECT v AS renamed FROM cache_named WHERE id = $1")
	if got := run(x); !bytes.Contains(got, []byte("renamed\x00")) || c.Stats().Misses != misses+2 {
		t.Fatalf("x's s1 after Close and Parse got %q, misses %d->%d; want a miss with column renamed", got, misses+1, c.Stats().Misses)
	}
}

// TestCacheFunctionCall: a FunctionCall ('F') is never answered from the
// cache, and since pgone cannot tell what it writes it invalidates the
// whole database: a function that updates a cached table is seen by the
// next read.
func TestCacheFunctionCall(t *testing.T) {
	t.Parallel()
	cacheTable(t, "cache_fc", 1)
	sqlSetup(t, "DROP FUNCTION IF EXISTS cache_fc_set(text)",
		"CREATE FUNCTION cache_fc_set(text) RETURNS text LANGUAGE sql AS $$UPDATE cache_fc SET v = $1 WHERE id = 1; SELECT $1$$")
	var oid uint32
	if err := connect(t, directDSN()).QueryRow(testCtx(t), "SELECT 'cache_fc_set(text)'::regprocedure::oid").Scan(&oid); err != nil {
		t.Fatal(err)
	}
	p, c := startCacheProxy(t, func(c *cache.Config) { c.Rules = []cache.Rule{{Table: "cache_fc"}} })
	reader, caller := p.Connect(t), connectMsg(t, p.AppDSN())
	const sql = "SELECT v FROM cache_fc WHERE id = 1"
	for i := range 2 {
		servedFromCache(t, c, func() string { return readV(t, reader, sql) })
		want := fmt.Sprintf("fc%d", i)
		before := c.Stats()
		caller.send(&pgproto3.FunctionCall{Function: oid, ArgFormatCodes: []uint16{0}, Arguments: [][]byte{[]byte(want)}})
		if got := caller.rawReply(); !bytes.Contains(got, []byte(want)) {
			t.Fatalf("FunctionCall %d replied %q, want its result %s", i, got, want)
		}
		if after := c.Stats(); after.Hits != before.Hits || after.Misses != before.Misses {
			t.Fatalf("FunctionCall %d looked the cache up: hits %d->%d misses %d->%d", i, before.Hits, after.Hits, before.Misses, after.Misses)
		}
		if v := readV(t, reader, sql); v != want {
			t.Fatalf("read after FunctionCall %d = %q, want %q", i, v, want)
		}
	}
}

// TestCacheNeverAfterOwnWrite: a client that pipelines a read behind its
// own write (pgconn's pipeline: two requests, each with its Sync, sent
// before any reply) reads its write, not the entry cached before it; a
// read inside the client's own open transaction after its write does too.
func TestCacheNeverAfterOwnWrite(t *testing.T) {
	t.Parallel()
	cacheTable(t, "cache_own", 1)
	p, c := startCacheProxy(t, func(c *cache.Config) { c.Rules = []cache.Rule{{Table: "cache_own"}} })
	reader, writer := p.Connect(t), p.Connect(t)
	ctx := testCtx(t)
	const sql = "SELECT v FROM cache_own WHERE id = 1"
	for i := range 3 {
		servedFromCache(t, c, func() string { return readV(t, reader, sql) })
		servedFromCache(t, c, func() string { return readV(t, writer, sql) })
		want := fmt.Sprintf("own%d", i)
		pl := writer.PgConn().StartPipeline(ctx)
		pl.SendQueryParams("UPDATE cache_own SET v = $1 WHERE id = 1", [][]byte{[]byte(want)}, nil, nil, nil)
		if err := pl.Sync(); err != nil {
			t.Fatal(err)
		}
		pl.SendQueryParams(sql, nil, nil, nil, nil)
		if err := pl.Sync(); err != nil {
			t.Fatal(err)
		}
		got := pipelineRows(t, pl)
		if err := pl.Close(); err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0] != want {
			t.Fatalf("pipelined read behind the client's own write %d = %v, want [%s]", i, got, want)
		}
	}
	servedFromCache(t, c, func() string { return readV(t, writer, sql) })
	tx, err := writer.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "UPDATE cache_own SET v = 'uncommitted' WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	var v string
	if err := tx.QueryRow(ctx, sql).Scan(&v); err != nil || v != "uncommitted" {
		t.Fatalf("read in the transaction after its write = %q, %v; want uncommitted", v, err)
	}
}

// pipelineRows reads a pipeline's results up to its last Sync and returns
// the first column of every row.
func pipelineRows(t *testing.T, pl *pgconn.Pipeline) []string {
	t.Helper()
	var rows []string
	syncs := 0
	for syncs < 2 {
		r, err := pl.GetResults()
		if err != nil {
			t.Fatal(err)
		}
		switch r := r.(type) {
		case *pgconn.ResultReader:
			res := r.Read()
			if res.Err != nil {
				t.Fatal(res.Err)
			}
			for _, row := range res.Rows {
				rows = append(rows, strings.Clone(string(row[0])))
			}
		case *pgconn.PipelineSync:
			syncs++
		}
	}
	return rows
}

// TestCacheCommitPreparedInvalidates: a prepared transaction's writes
// become visible at COMMIT PREPARED, not at PREPARE TRANSACTION; a read
// cached in between (the old row, rightly then) is not served after the
// COMMIT PREPARED returned.
func TestCacheCommitPreparedInvalidates(t *testing.T) {
	cacheTable(t, "c2pc", 1)
	p, c := startCacheProxy(t, func(cfg *cache.Config) { cfg.Rules = []cache.Rule{{Table: "c2pc"}} })
	t.Cleanup(func() {
		conn, err := pgx.Connect(context.Background(), directDSN())
		if err == nil {
			_, _ = conn.Exec(context.Background(), "ROLLBACK PREPARED 'pgone_c2pc'")
			conn.Close(context.Background())
		}
	})
	ctx := testCtx(t)
	w, r := p.Connect(t), p.Connect(t)
	for _, sql := range []string{"BEGIN", "UPDATE c2pc SET v = 'v1' WHERE id = 1", "PREPARE TRANSACTION 'pgone_c2pc'"} {
		if _, err := w.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	const sql = "SELECT v FROM c2pc WHERE id = 1"
	servedFromCache(t, c, func() string {
		if got := readV(t, r, sql); got != "v0" {
			t.Fatalf("read %q before COMMIT PREPARED, want v0", got)
		}
		return "v0"
	})
	if _, err := w.Exec(ctx, "COMMIT PREPARED 'pgone_c2pc'"); err != nil {
		t.Fatal(err)
	}
	if got := readV(t, r, sql); got != "v1" {
		t.Fatalf("read %q after COMMIT PREPARED returned, want v1 (a stale hit)", got)
	}
}

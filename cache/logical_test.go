package cache

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgone/pgone/internal/pgtest"
)

// logicalCluster starts a primary with wal_level=logical, a table t and a
// role repl (REPLICATION LOGIN) that the streams log in as.
func logicalCluster(t *testing.T) *pgtest.Cluster {
	t.Helper()
	cl := pgtest.New(t, pgtest.Options{Settings: map[string]string{"wal_level": "logical"}})
	if err := cl.Exec(testContext(t), "CREATE ROLE repl REPLICATION LOGIN PASSWORD 'repl-pw';"+
		"CREATE TABLE t (id int PRIMARY KEY, v text); CREATE TABLE other (id int PRIMARY KEY);"+
		"GRANT SELECT ON t, other TO repl; CREATE PUBLICATION named_pub FOR ALL TABLES"); err != nil {
		t.Fatal(err)
	}
	return cl
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func sourceFor(t *testing.T, cl *pgtest.Cluster, user, password, pub string, create bool) LogicalSource {
	t.Helper()
	cfg, err := pgconn.ParseConfig(cl.Primary.DSN(user, password, "postgres"))
	if err != nil {
		t.Fatal(err)
	}
	return LogicalSource{Database: "db", Conn: cfg, Publication: pub, Create: create, MaxLag: time.Second}
}

// query runs sql as the superuser and returns the first column of the first row.
func query(t *testing.T, cl *pgtest.Cluster, sql string) string {
	t.Helper()
	c, err := pgconn.Connect(testContext(t), cl.Primary.DSN(pgtest.SuperUser, pgtest.SuperPassword, "postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	res, err := c.Exec(testContext(t), sql).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	if len(res) == 0 || len(res[len(res)-1].Rows) == 0 {
		return ""
	}
	return string(res[len(res)-1].Rows[0][0])
}

func feedStatus(c *Cache) FeedStatus {
	fs := c.Feeds()
	if len(fs) != 1 {
		return FeedStatus{}
	}
	return fs[0]
}

// TestLogicalFeed: writes made directly on the primary (never through
// pgone) bump their table's version with their commit's end LSN, TRUNCATE
// too; until the stream has caught up the database is bypassed; the
// temporary slot is gone once the feed stops.
func TestLogicalFeed(t *testing.T) {
	cl := logicalCluster(t)
	query(t, cl, "CREATE TABLE nopk (id int)")
	c := newTestCache(t, nil)
	f := c.StartLogical(sourceFor(t, cl, pgtest.SuperUser, pgtest.SuperPassword, DefaultPublication, true))
	// A table without a replica identity: the publication would break its
	// UPDATEs, so pgone does not create it and the database stays uncached.
	waitFor(t, "the refusal", func() bool { return strings.Contains(f.Status().LastError, "nopk") })
	if !f.Status().Bypassed || query(t, cl, "SELECT count(*) FROM pg_publication WHERE pubname = 'pgone_cache'") != "0" {
		t.Fatalf("status %+v with a table without replica identity; want bypassed, no publication", f.Status())
	}
	query(t, cl, "ALTER TABLE nopk REPLICA IDENTITY FULL")
	// Held from the start: a fill is refused until the stream caught up.
	early := c.versions.Token("db", []string{"t"})
	if r := c.versions.Check(&early, false, 0); r != RefuseInFlight {
		t.Fatalf("fill before the stream caught up: %v, want in_flight", r)
	}
	waitFor(t, "the stream to catch up", func() bool { return !feedStatus(c).Bypassed })
	if query(t, cl, "SELECT count(*) FROM pg_publication WHERE pubname = 'pgone_cache'") != "1" {
		t.Fatal("publication pgone_cache was not created")
	}
	if got := query(t, cl, "SELECT string_agg(temporary::text, ',') FROM pg_replication_slots"); got != "true" {
		t.Fatalf("slots (temporary): %q, want one temporary slot", got)
	}

	c.versions.Token("db", nil) // pgone sees db: its past is unknown until the primary is read
	c.versions.ResolveUnknownLSN(c.versions.UnknownMark(), 0)
	for _, write := range []string{"INSERT INTO t VALUES (1, 'a')", "UPDATE t SET v = 'b'", "DELETE FROM t", "TRUNCATE t"} {
		tok := c.versions.Token("db", []string{"t"})
		untouched := c.versions.Token("db", []string{"other"})
		query(t, cl, write)
		waitFor(t, write+" to invalidate t", func() bool { return c.versions.Check(&tok, false, 0) == RefuseVersion })
		// Read after the invalidation was seen: the bar (the commit's
		// LSN, or a primary position that resolved an unknown one) is at
		// or before it.
		end := query(t, cl, "SELECT pg_current_wal_insert_lsn()")
		if r := c.versions.Check(&untouched, false, 0); r != RefuseNone {
			t.Fatalf("%s invalidated another table: %v", write, r)
		}
		// A replica fill of t must have replayed the write's commit.
		after := c.versions.Token("db", []string{"t"})
		lsn, _ := pglogrepl.ParseLSN(end)
		if after.minLSN == 0 || after.minLSN > LSN(lsn) {
			t.Fatalf("%s: invalidation LSN %v, want in (0, %v]", write, after.minLSN, LSN(lsn))
		}
		if r := c.versions.Check(&after, true, after.minLSN-1); r != RefuseReplicaLSN {
			t.Fatalf("%s: a replica behind the commit may fill: %v", write, r)
		}
	}
	st := f.Status()
	if !st.Connected || st.LagSeconds < 0 || st.LagSeconds > 1 {
		t.Fatalf("status %+v: want connected with a lag under max", st)
	}

	f.Stop()
	waitFor(t, "the temporary slot to go", func() bool {
		return query(t, cl, "SELECT count(*) FROM pg_replication_slots") == "0"
	})
}

// TestLogicalFeedCut: the stream cut (its walsender terminated) bypasses
// the database (no hit, no fill) until it is back; then the entries from
// before are flushed (changes in the gap are unknown) and hits resume.
func TestLogicalFeedCut(t *testing.T) {
	cl := logicalCluster(t)
	c := newTestCache(t, nil)
	// The named publication, not created by pgone, and a REPLICATION role.
	f := c.StartLogical(sourceFor(t, cl, "repl", "repl-pw", "named_pub", false))
	t.Cleanup(f.Stop)
	waitFor(t, "the stream to catch up", func() bool { return !feedStatus(c).Bypassed })

	k := Key{1}
	get := func() bool { _, ok := c.Get(k); return ok }
	_, fill := c.Lookup(testContext(t), k, "db", []string{"t"})
	if r := fill.Store([]byte("reply"), 0, Origin{}); r != RefuseNone {
		t.Fatalf("store: %v", r)
	}
	if !get() {
		t.Fatal("no hit before the cut")
	}

	// Keep it down: no login, then end its walsender.
	query(t, cl, "ALTER ROLE repl NOLOGIN")
	query(t, cl, "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots")
	waitFor(t, "the cut to be seen", func() bool { st := feedStatus(c); return !st.Connected && st.Bypassed })
	if get() {
		t.Fatal("a hit while the stream is down")
	}
	_, fill = c.Lookup(testContext(t), Key{2}, "db", []string{"other"})
	if r := fill.Store([]byte("reply"), 0, Origin{}); r != RefuseInFlight {
		t.Fatalf("a fill while the stream is down: %v, want in_flight", r)
	}
	if st := feedStatus(c); st.LastError == "" || st.LagSeconds != -1 {
		t.Fatalf("status while down: %+v", st)
	}

	query(t, cl, "ALTER ROLE repl LOGIN")
	waitFor(t, "the stream to recover", func() bool { return !feedStatus(c).Bypassed })
	if get() {
		t.Fatal("an entry from before the cut was served after it")
	}
	_, fill = c.Lookup(testContext(t), k, "db", []string{"t"})
	if r := fill.Store([]byte("reply2"), 0, Origin{}); r != RefuseNone {
		t.Fatalf("store after recovery: %v", r)
	}
	if !get() {
		t.Fatal("no hit after recovery")
	}
}

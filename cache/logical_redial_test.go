package cache

import (
	"sync/atomic"
	"testing"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgone/pgone/internal/pgtest"
)

// TestLogicalFeedRedial: a stream whose server is asked for at each
// connect (LogicalSource.Dial), redialed after its database's primary
// moved to another server (a failover): the database is bypassed at once,
// the stream reads the new server, whose writes invalidate, the entries
// from before are flushed, and the old server's positions (far ahead
// here) are not taken for the new stream's progress.
func TestLogicalFeedRedial(t *testing.T) {
	oldPrimary, newPrimary := logicalCluster(t), logicalCluster(t)
	for range 3 { // the old server's WAL far past the new one's
		query(t, oldPrimary, "CREATE TABLE IF NOT EXISTS wal_pad (x int); INSERT INTO wal_pad VALUES (1); SELECT pg_switch_wal()")
	}
	configOf := func(cl *pgtest.Cluster) *pgconn.Config {
		cfg, err := pgconn.ParseConfig(cl.Primary.DSN(pgtest.SuperUser, pgtest.SuperPassword, "postgres"))
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	var primary atomic.Pointer[pgconn.Config]
	primary.Store(configOf(oldPrimary))
	src := sourceFor(t, oldPrimary, pgtest.SuperUser, pgtest.SuperPassword, "named_pub", false)
	src.Conn, src.Dial = nil, func() (*pgconn.Config, error) { return primary.Load(), nil }
	c := newTestCache(t, nil)
	f := c.StartLogical(src)
	defer f.Stop()
	waitFor(t, "the stream of the old primary to catch up", func() bool { return !f.Status().Bypassed })
	oldEnd, err := pglogrepl.ParseLSN(query(t, oldPrimary, "SELECT pg_current_wal_insert_lsn()"))
	if err != nil {
		t.Fatal(err)
	}

	primary.Store(configOf(newPrimary))
	before := c.versions.Token("db", []string{"t"})
	c.RedialFeed("db")
	if !f.Status().Bypassed {
		t.Fatal("not bypassed right after the redial")
	}
	waitFor(t, "the stream of the new primary to catch up", func() bool { return !f.Status().Bypassed })
	if r := c.versions.Check(&before, false, 0); r == RefuseNone {
		t.Fatal("an entry from before the redial may still be stored: no flush")
	}
	if st := f.Status(); st.Applied >= LSN(oldEnd) {
		t.Fatalf("applied %v after the redial: the old server's position (%v) counted for the new stream", st.Applied, LSN(oldEnd))
	}
	if n := query(t, newPrimary, "SELECT count(*) FROM pg_replication_slots"); n != "1" {
		t.Fatalf("slots on the new primary: %s, want the stream's", n)
	}
	waitFor(t, "the old primary's slot to go", func() bool {
		return query(t, oldPrimary, "SELECT count(*) FROM pg_replication_slots") == "0"
	})
	tok := c.versions.Token("db", []string{"t"})
	query(t, newPrimary, "INSERT INTO t VALUES (1, 'new')")
	waitFor(t, "a write on the new primary to invalidate t", func() bool { return c.versions.Check(&tok, false, 0) == RefuseVersion })
}

package proxy_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgone/pgone/config"
	"github.com/pgone/pgone/internal/pgtest"
	"github.com/pgone/pgone/pool"
	"github.com/pgone/pgone/proxy"
)

// splitProxy is pgone in transaction mode in front of cl, with db's reads
// split to cl's replica (checked every 100ms), and mutate applied last.
// inet_server_port is in read_functions, so that portQuery, a read of
// per-server state that goes to the primary by default, shows where the
// split sends a read.
func splitProxy(t *testing.T, cl *pgtest.Cluster, db string, mutate func(*config.Config)) *observedProxy {
	t.Helper()
	return startObservedProxy(t, func(c *config.Config) {
		c.Pool.Mode = pool.ModeTransaction
		c.Pool.PoolSize = 10
		c.Pool.ReplicaCheckInterval = 100 * time.Millisecond
		c.Proxy.Databases[db] = proxy.Database{
			Host: cl.Primary.Host, Port: cl.Primary.Port, User: appUser, Password: appPassword,
			Replicas:    []proxy.Replica{{Host: cl.Replica.Host, Port: cl.Replica.Port}},
			Consistency: proxy.ReadYourWrites,
		}
		c.Proxy.Routing.ReadFunctions = []string{"inet_server_port"}
		if mutate != nil {
			mutate(c)
		}
	}, nil)
}

// serverPort asks the server that runs the statement for its port: a
// stable function, so the statement is a read the split may send to a
// replica.
func serverPort(t *testing.T, ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, sql string, args ...any) int {
	t.Helper()
	var port int
	if err := q.QueryRow(ctx, sql, args...).Scan(&port); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return port
}

const portQuery = "SELECT inet_server_port()"

// waitForReplicaReads waits until the split sends reads to cl's replica:
// the monitor has checked it.
func waitForReplicaReads(t *testing.T, conn *pgx.Conn, cl *pgtest.Cluster) {
	t.Helper()
	eventually(t, "reads on the replica", func() bool {
		return serverPort(t, testCtx(t), conn, portQuery) == cl.Replica.Port
	})
}

// readySplit is splitProxy on a new database db of the shared cluster, and
// a client on it whose reads already reach the replica.
func readySplit(t *testing.T, db string, mutate func(*config.Config)) (*observedProxy, *pgx.Conn) {
	t.Helper()
	replicaDatabase(t, cluster, db)
	p := splitProxy(t, cluster, db, mutate)
	conn := connect(t, p.DSN(appUser, appPassword, db))
	waitForReplicaReads(t, conn, cluster)
	return p, conn
}

// replicaDatabase creates db on the cluster (owned by app) and waits until
// the replica has it.
func replicaDatabase(t *testing.T, cl *pgtest.Cluster, db string) {
	t.Helper()
	ownDatabaseOn(t, cl, db)
	if err := cl.WaitReplicaCaughtUp(testCtx(t)); err != nil {
		t.Fatal(err)
	}
}

// TestSplitRoutesReadsAndWrites: through pgone with the split on, reads run
// on the replica and writes on the primary, over the simple and the
// extended protocol; an explicit transaction runs on the primary, a
// read-only one on the replica, and config read_functions move a volatile
// function's reads to the replica.
func TestSplitRoutesReadsAndWrites(t *testing.T) {
	t.Parallel()
	const db = "splitroute"
	replicaDatabase(t, cluster, db)
	p := splitProxy(t, cluster, db, func(c *config.Config) {
		c.Proxy.Routing.ReadFunctions = append(c.Proxy.Routing.ReadFunctions, "pg_is_in_recovery")
	})
	ctx := testCtx(t)
	// conn writes; its reads then wait for the replica to have its writes
	// (read_your_writes). reader never writes: its reads go to the replica
	// at once.
	conn := connect(t, p.DSN(appUser, appPassword, db))
	reader := connect(t, p.DSN(appUser, appPassword, db))
	waitForReplicaReads(t, reader, cluster)
	primary, replica := cluster.Primary.Port, cluster.Replica.Port

	if _, err := conn.Exec(ctx, "CREATE TABLE items (id int PRIMARY KEY, n int)"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "INSERT INTO items VALUES (1, 10)"); err != nil {
		t.Fatal(err) // a replica would refuse it: read-only transaction
	}
	if err := cluster.WaitReplicaCaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
	var inRecovery bool
	if err := reader.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery); err != nil || !inRecovery {
		t.Errorf("SELECT pg_is_in_recovery() (a read_functions entry) = %v, %v; want true: on the replica", inRecovery, err)
	}
	for _, tc := range []struct {
		name string
		sql  string
		args []any
		want int
	}{
		{"simple protocol read", portQuery, []any{pgx.QueryExecModeSimpleProtocol}, replica},
		{"prepared read (pgx statement cache)", portQuery + " WHERE $1::int = 1", []any{1}, replica},
		{"unnamed statement read", portQuery + " WHERE $1::int = 1", []any{pgx.QueryExecModeExec, 1}, replica},
		{"locking read", "SELECT inet_server_port() FROM items FOR UPDATE", nil, primary},
		{"volatile function", "SELECT inet_server_port() WHERE random() >= 0", nil, primary},
		{"hint", "/* pgone:primary */ SELECT inet_server_port()", nil, primary},
		{"data-modifying CTE", "WITH u AS (UPDATE items SET n = n + 1 RETURNING n) SELECT inet_server_port() FROM u", nil, primary},
	} {
		if got := serverPort(t, ctx, reader, tc.sql, tc.args...); got != tc.want {
			t.Errorf("%s: ran on port %d, want %d (primary %d, replica %d)", tc.name, got, tc.want, primary, replica)
		}
	}

	// BEGIN; SELECT; UPDATE; COMMIT: all on the primary.
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := serverPort(t, ctx, tx, portQuery); got != primary {
		t.Errorf("read in a read-write transaction ran on port %d, want the primary %d", got, primary)
	}
	if _, err := tx.Exec(ctx, "UPDATE items SET n = 20 WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	// The client's own write is visible to its next read, wherever it runs.
	var n int
	if err := conn.QueryRow(ctx, "SELECT n FROM items WHERE id = 1").Scan(&n); err != nil || n != 20 {
		t.Errorf("read after the client's commit: n = %d, %v; want 20", n, err)
	}

	// A read-only transaction stays on one replica from BEGIN to COMMIT (a
	// client of its own: reader's primary statements above fence its reads
	// until the replica has caught up with them).
	ro, err := connect(t, p.DSN(appUser, appPassword, db)).BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if got := serverPort(t, ctx, ro, portQuery); got != replica {
			t.Errorf("read-only transaction statement %d ran on port %d, want the replica %d", i, got, replica)
		}
	}
	if _, err := ro.Exec(ctx, "UPDATE items SET n = 30"); err == nil || !strings.Contains(err.Error(), "read-only transaction") {
		t.Errorf("UPDATE in a read-only transaction: %v; want PostgreSQL's read-only error", err)
	}
	_ = ro.Rollback(ctx)

	body := p.scrape(t)
	for _, want := range []string{
		`pgone_route_requests_total{database="splitroute",reason="read",route="replica"}`,
		`pgone_route_requests_total{database="splitroute",reason="write",route="primary"}`,
		`pgone_route_requests_total{database="splitroute",reason="locking_clause",route="primary"}`,
		`pgone_route_requests_total{database="splitroute",reason="hint_primary",route="primary"}`,
		`pgone_router_cache_hits_total`,
		`pgone_pool_servers{database="splitroute",role="replica",server="127.0.0.1:` + strconv.Itoa(replica) + `",state="idle",user="app"}`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q:\n%s", want, grepLines(body, "pgone_route"))
		}
	}
}

// TestSplitPgbenchReadsOnReplica: pgbench -S through pgone with the split
// on, in each protocol mode: the replica runs the transactions (counted by
// pg_stat_database on each server), the primary almost none.
func TestSplitPgbenchReadsOnReplica(t *testing.T) {
	t.Parallel()
	const db = "splitbench"
	replicaDatabase(t, cluster, db)
	p := splitProxy(t, cluster, db, nil)
	out := runPgbench(t, p.testProxy, db, "-i", "-s", "1", "-q")
	if !regexp.MustCompile(`(?m)^done in `).MatchString(out) {
		t.Fatalf("pgbench -i did not finish:\n%s", out)
	}
	if err := cluster.WaitReplicaCaughtUp(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	waitForReplicaReads(t, connect(t, p.DSN(appUser, appPassword, db)), cluster)

	commits := func(s *pgtest.Server) int64 {
		conn := connect(t, s.DSN("postgres", "postgres", "postgres"))
		defer conn.Close(context.Background())
		var n int64
		if err := conn.QueryRow(testCtx(t), "SELECT xact_commit FROM pg_stat_database WHERE datname = $1", db).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// Backends report their counts at most once a second while busy, so
	// each mode's count is read once they have had time to report.
	settle := func(s *pgtest.Server, min int64) int64 {
		var n int64
		deadline := time.Now().Add(15 * time.Second)
		for n = commits(s); n < min && time.Now().Before(deadline); n = commits(s) {
			time.Sleep(200 * time.Millisecond)
		}
		return n
	}
	for _, mode := range []string{"simple", "extended", "prepared"} {
		primaryBefore, replicaBefore := commits(cluster.Primary), commits(cluster.Replica)
		out := runPgbench(t, p.testProxy, db, "-S", "-n", "-c", "4", "-j", "2", "-T", "2", "-M", mode)
		m := pgbenchProcessed.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("-M %s: no transaction count:\n%s", mode, out)
		}
		processed, _ := strconv.ParseInt(m[1], 10, 64)
		if f := pgbenchFailed.FindStringSubmatch(out); f != nil && f[1] != "0" {
			t.Errorf("-M %s: %s failed transactions", mode, f[1])
		}
		// Idle pooled backends flush their statistics after 10s at most;
		// closing the pool's connections would be quicker but the pool
		// would not be pgbench's any more. Wait for 90% of the reads.
		replicaDelta := settle(cluster.Replica, replicaBefore+processed*9/10) - replicaBefore
		primaryDelta := commits(cluster.Primary) - primaryBefore
		t.Logf("-M %s: %d transactions; replica committed %d, primary %d", mode, processed, replicaDelta, primaryDelta)
		if processed < 100 {
			t.Errorf("-M %s: only %d transactions", mode, processed)
		}
		if replicaDelta < processed*9/10 {
			t.Errorf("-M %s: the replica committed %d of %d read transactions", mode, replicaDelta, processed)
		}
		if primaryDelta > processed/10 {
			t.Errorf("-M %s: the primary committed %d transactions during a read-only run of %d", mode, primaryDelta, processed)
		}
	}
}

// TestSplitWithOwnReplica runs the tests that delay, stop or pause a
// replica on a cluster of their own, whose replica applies WAL 500ms late.
func TestSplitWithOwnReplica(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cl, err := pgtest.StartCluster(ctx, pgtest.Options{Replica: true,
		ReplicaSettings: map[string]string{"recovery_min_apply_delay": "500ms"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := cl.Stop(); err != nil {
			t.Errorf("stopping the cluster: %v", err)
		}
	})
	for _, sql := range []string{
		fmt.Sprintf(`CREATE ROLE %s LOGIN PASSWORD '%s'`, appUser, appPassword),
		fmt.Sprintf(`CREATE DATABASE %s OWNER %s`, appDB, appUser),
	} {
		if err := cl.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	if err := cl.WaitReplicaCaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
	t.Run("ReadYourWrites", func(t *testing.T) { testReadYourWrites(t, cl) })
	t.Run("ReadUserWrites", func(t *testing.T) { testReadUserWrites(t, cl) })
	t.Run("ReplicaStoppedUnderLoad", func(t *testing.T) { testReplicaStoppedUnderLoad(t, cl) })
	t.Run("LaggingReplicaLeavesRotation", func(t *testing.T) { testLaggingReplica(t, cl) })
}

// testReadYourWrites: with the replica applying WAL 500ms late, 1,000
// write-then-read iterations by one client never miss their own write,
// while another client's reads keep using the replica. With consistency
// eventual the same loop misses (the control that shows the delay bites);
// read_your_writes lets another connection miss the write, read_all_writes
// does not.
func testReadYourWrites(t *testing.T, cl *pgtest.Cluster) {
	p := splitProxy(t, cl, appDB, nil)
	ctx := testCtx(t)
	writer := connect(t, p.DSN(appUser, appPassword, appDB))
	other := connect(t, p.DSN(appUser, appPassword, appDB))
	if _, err := writer.Exec(ctx, "CREATE TABLE ryw (v int PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	waitForReplicaReads(t, other, cl)
	eventually(t, "the replica has the table", func() bool {
		_, err := other.Exec(ctx, "SELECT 1 FROM ryw LIMIT 1")
		return err == nil
	})

	// The other client reads all along; it never writes, so its reads stay
	// on the replica.
	stop := make(chan struct{})
	var otherReads, otherOnReplica int
	otherDone := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				otherDone <- nil
				return
			default:
			}
			var port int
			if err := other.QueryRow(ctx, portQuery).Scan(&port); err != nil {
				otherDone <- err
				return
			}
			otherReads++
			if port == cl.Replica.Port {
				otherOnReplica++
			}
			time.Sleep(time.Millisecond)
		}
	}()

	const iterations = 1000
	misses := 0
	for i := 1; i <= iterations; i++ {
		if _, err := writer.Exec(ctx, "INSERT INTO ryw VALUES ($1)", i); err != nil {
			t.Fatal(err)
		}
		var got int
		err := writer.QueryRow(ctx, "SELECT v FROM ryw WHERE v = $1", i).Scan(&got)
		if errors.Is(err, pgx.ErrNoRows) {
			misses++
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	if err := <-otherDone; err != nil {
		t.Fatal(err)
	}
	if misses > 0 {
		t.Errorf("read-your-writes: %d of %d reads missed the client's own write", misses, iterations)
	}
	t.Logf("other client: %d reads, %d on the replica", otherReads, otherOnReplica)
	if otherReads == 0 || otherOnReplica != otherReads {
		t.Errorf("the other client's reads: %d of %d on the replica; want all", otherOnReplica, otherReads)
	}
	// Once the replica has applied its writes, the writer reads there again.
	eventually(t, "the writer's reads back on the replica", func() bool {
		return serverPort(t, ctx, writer, portQuery) == cl.Replica.Port
	})
	if body := p.scrape(t); !strings.Contains(body, `pgone_route_requests_total{database="appdb",reason="read_your_writes",route="primary"}`) {
		t.Errorf("metrics lack reads sent to the primary for read-your-writes:\n%s", grepLines(body, "pgone_route"))
	}

	consistency := func(c proxy.Consistency) {
		t.Helper()
		cfg := *p.Cfg
		cfg.Proxy.Databases = map[string]proxy.Database{}
		for name, db := range p.Cfg.Proxy.Databases {
			if name == appDB {
				db.Consistency = c
			}
			cfg.Proxy.Databases[name] = db
		}
		if err := p.Srv.Reload(cfg.Proxy, cfg.Pool); err != nil {
			t.Fatal(err)
		}
	}
	// missed writes a new value with writer and reads it back with reader
	// at once, n times, and counts the reads that did not find it.
	next := iterations
	missed := func(reader *pgx.Conn, n int) int {
		t.Helper()
		misses := 0
		for i := 0; i < n; i++ {
			next++
			if _, err := writer.Exec(ctx, "INSERT INTO ryw VALUES ($1)", next); err != nil {
				t.Fatal(err)
			}
			var got int
			if err := reader.QueryRow(ctx, "SELECT v FROM ryw WHERE v = $1", next).Scan(&got); errors.Is(err, pgx.ErrNoRows) {
				misses++
			} else if err != nil {
				t.Fatal(err)
			}
		}
		return misses
	}

	// Control: with eventual consistency the same loop reads too early.
	consistency(proxy.Eventual)
	if missed(writer, 20) == 0 {
		t.Errorf("eventual consistency: no read missed its write 500ms behind: the test cannot tell read-your-writes from luck")
	}
	// read_your_writes is per connection: a read on another one may miss
	// (an application writing and reading on different pooled
	// connections); read_all_writes covers it.
	consistency(proxy.ReadYourWrites)
	if missed(other, 20) == 0 {
		t.Errorf("read_your_writes: another connection's read never missed the write 500ms behind: the control cannot fail")
	}
	consistency(proxy.ReadAllWrites)
	if n := missed(other, 300); n > 0 {
		t.Errorf("read_all_writes: %d of 300 reads on another connection missed the write", n)
	}
}

// testReplicaStoppedUnderLoad: the replica stops under a running read
// load: no read fails once the stop is detected, reads move to the
// primary, and they come back to the replica when it is started again.
func testReplicaStoppedUnderLoad(t *testing.T, cl *pgtest.Cluster) {
	p := splitProxy(t, cl, appDB, nil)
	ctx := testCtx(t)
	waitForReplicaReads(t, connect(t, p.DSN(appUser, appPassword, appDB)), cl)

	type result struct {
		at   time.Time
		port int
		err  error
	}
	const readers = 4
	stop := make(chan struct{})
	results := make([][]result, readers)
	var wg sync.WaitGroup
	for r := 0; r < readers; r++ {
		conn := connect(t, p.DSN(appUser, appPassword, appDB))
		wg.Add(1)
		go func(r int) {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				var port int
				err := conn.QueryRow(ctx, portQuery).Scan(&port)
				results[r] = append(results[r], result{time.Now(), port, err})
				if err != nil && conn.IsClosed() {
					return
				}
				time.Sleep(2 * time.Millisecond)
			}
		}(r)
	}
	time.Sleep(300 * time.Millisecond)
	stopAt := time.Now()
	if err := cl.Replica.Stop(); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	time.Sleep(time.Second)
	if err := cl.Replica.Start(ctx); err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	// Reads return to the replica once it is checked healthy again.
	probe := connect(t, p.DSN(appUser, appPassword, appDB))
	back := false
	deadline := time.Now().Add(15 * time.Second)
	for !back && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		back = serverPort(t, ctx, probe, portQuery) == cl.Replica.Port
	}
	close(stop)
	wg.Wait()
	if !back {
		t.Errorf("reads did not return to the replica after it was started again")
	}

	// Detection: the monitor checks every 100ms; a read may fail only while
	// the replica is going down and within one check after.
	detected := stopped.Add(200 * time.Millisecond)
	failed, late, onPrimary := 0, 0, 0
	for _, rs := range results {
		for _, res := range rs {
			switch {
			case res.err != nil:
				failed++
				if res.at.After(detected) {
					late++
					t.Errorf("read failed %s after the replica stopped: %v", res.at.Sub(stopped).Round(time.Millisecond), res.err)
				}
			case res.port == cl.Primary.Port && res.at.After(stopAt) && res.at.Before(started):
				onPrimary++
			}
		}
	}
	t.Logf("replica stopped in %s; %d reads failed while it went down, %d ran on the primary meanwhile",
		stopped.Sub(stopAt).Round(time.Millisecond), failed, onPrimary)
	if onPrimary == 0 {
		t.Errorf("no read ran on the primary while the replica was down")
	}
}

// testLaggingReplica: a replica whose replay is paused falls behind past
// max_replica_lag while the primary is written: it leaves the rotation
// (reads go to the primary) and comes back once it replays again.
func testLaggingReplica(t *testing.T, cl *pgtest.Cluster) {
	p := splitProxy(t, cl, appDB, func(c *config.Config) {
		c.Pool.MaxReplicaLag = 1500 * time.Millisecond
	})
	ctx := testCtx(t)
	reader := connect(t, p.DSN(appUser, appPassword, appDB))
	writer := connect(t, cl.Primary.DSN(appUser, appPassword, appDB))
	waitForReplicaReads(t, reader, cl)
	super := connect(t, cl.Replica.DSN("postgres", "postgres", "postgres"))
	if _, err := super.Exec(ctx, "SELECT pg_wal_replay_pause()"); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			if _, err := super.Exec(ctx, "SELECT pg_wal_replay_resume()"); err != nil {
				t.Error(err)
			}
		}
	}
	defer resume()
	if _, err := writer.Exec(ctx, "CREATE TABLE IF NOT EXISTS lag_t (at timestamptz)"); err != nil {
		t.Fatal(err)
	}
	write := func() {
		if _, err := writer.Exec(ctx, "INSERT INTO lag_t VALUES (now())"); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "the lagging replica out of rotation", func() bool {
		write()
		return serverPort(t, ctx, reader, portQuery) == cl.Primary.Port
	})
	admin := p.console(t, adminUser, adminPassword)
	if row := show(t, admin, "SHOW REPLICAS").row("database", appDB); row["state"] != "lagging" {
		t.Errorf("SHOW REPLICAS while paused: %v; want state lagging", row)
	}
	resume()
	eventually(t, "the replica back in rotation", func() bool {
		return serverPort(t, ctx, reader, portQuery) == cl.Replica.Port
	})
}

// TestSplitPipelinedWriteAfterRead: a client pipelines a read, a write and
// a read without waiting. The first read runs on the replica; the write
// waits for its reply and then runs on the primary (a replica would refuse
// it); the last read, behind the client's own write, runs on the primary
// and sees it.
func TestSplitPipelinedWriteAfterRead(t *testing.T) {
	t.Parallel()
	const db = "splitpipe"
	replicaDatabase(t, cluster, db)
	p := splitProxy(t, cluster, db, nil)
	setup := connect(t, p.DSN(appUser, appPassword, db))
	if _, err := setup.Exec(testCtx(t), "CREATE TABLE pipe (v int)"); err != nil {
		t.Fatal(err)
	}
	if err := cluster.WaitReplicaCaughtUp(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	c := connectMsg(t, p.DSN(appUser, appPassword, db))
	// rows runs the queries pipelined and returns, per query, its first
	// row (or its error) as text.
	rows := func(queries ...string) [][]string {
		t.Helper()
		var msgs []pgproto3.FrontendMessage
		for _, q := range queries {
			msgs = append(msgs, &pgproto3.Query{String: q})
		}
		c.send(msgs...)
		out := make([][]string, len(queries))
		for i := 0; i < len(queries); {
			m, err := c.receive(ioTimeout)
			if err != nil {
				t.Fatalf("reply %d: %v", i, err)
			}
			switch m := m.(type) {
			case *pgproto3.DataRow:
				if out[i] == nil {
					for _, v := range m.Values {
						out[i] = append(out[i], string(v))
					}
				}
			case *pgproto3.CommandComplete:
				if out[i] == nil {
					out[i] = []string{string(m.CommandTag)}
				}
			case *pgproto3.ErrorResponse:
				out[i] = []string{"ERROR " + m.Message}
			case *pgproto3.ReadyForQuery:
				i++
			}
		}
		return out
	}
	replica, primary := strconv.Itoa(cluster.Replica.Port), strconv.Itoa(cluster.Primary.Port)
	eventually(t, "this client's reads on the replica", func() bool {
		return rows(portQuery)[0][0] == replica
	})
	got := rows(portQuery, "INSERT INTO pipe VALUES (1)", "SELECT inet_server_port(), count(*) FROM pipe")
	want := [][]string{{replica}, {"INSERT 0 1"}, {primary, "1"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("pipelined read, write, read: got %q, want %q (primary %s, replica %s)", got, want, primary, replica)
	}
}

// TestSplitFunctionVolatilityFromPgProc: a user function's volatility comes
// from the primary's pg_proc. Unknown, it sends reads to the primary; once
// loaded as IMMUTABLE (DDL through pgone has it read again), to the
// replica; redefined VOLATILE, to the primary from the very next read; and
// routing.write_functions overrides pg_proc.
func TestSplitFunctionVolatilityFromPgProc(t *testing.T) {
	t.Parallel()
	const db = "splitfunc"
	replicaDatabase(t, cluster, db)
	p := splitProxy(t, cluster, db, nil)
	ctx := testCtx(t)
	ddl := connect(t, p.DSN(appUser, appPassword, db))
	reader := connect(t, p.DSN(appUser, appPassword, db))
	waitForReplicaReads(t, reader, cluster)
	const calls = "SELECT inet_server_port() WHERE twice(1) = 2"
	define := func(volatility string) {
		t.Helper()
		if _, err := ddl.Exec(ctx, "CREATE OR REPLACE FUNCTION twice(int) RETURNS int LANGUAGE sql "+volatility+" AS 'SELECT $1 * 2'"); err != nil {
			t.Fatal(err)
		}
		if err := cluster.WaitReplicaCaughtUp(ctx); err != nil {
			t.Fatal(err)
		}
	}
	define("IMMUTABLE")
	eventually(t, "reads calling an IMMUTABLE function on the replica", func() bool {
		return serverPort(t, ctx, reader, calls, pgx.QueryExecModeSimpleProtocol) == cluster.Replica.Port
	})
	define("VOLATILE")
	if got := serverPort(t, ctx, reader, calls, pgx.QueryExecModeSimpleProtocol); got != cluster.Primary.Port {
		t.Errorf("read calling the function just redefined VOLATILE ran on port %d, want the primary %d", got, cluster.Primary.Port)
	}
	define("IMMUTABLE")
	eventually(t, "reads calling the function IMMUTABLE again on the replica", func() bool {
		return serverPort(t, ctx, reader, calls, pgx.QueryExecModeSimpleProtocol) == cluster.Replica.Port
	})

	// Config write_functions wins over pg_proc.
	cfg := *p.Cfg
	cfg.Proxy.Routing.WriteFunctions = []string{"twice"}
	if err := p.Srv.Reload(cfg.Proxy, cfg.Pool); err != nil {
		t.Fatal(err)
	}
	if got := serverPort(t, ctx, reader, calls, pgx.QueryExecModeSimpleProtocol); got != cluster.Primary.Port {
		t.Errorf("read calling a write_functions entry ran on port %d, want the primary %d", got, cluster.Primary.Port)
	}
}

package proxy_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgone/pgone/config"
	"github.com/pgone/pgone/internal/pgtest"
	"github.com/pgone/pgone/proxy"
)

// TestFaultOwnCluster runs the fault cases that crash, stop or fill a
// server on a primary and replica of their own, one case after another.
//
// Commits are flushed locally (synchronous_commit = local: an
// acknowledged commit survives kill -9) and never wait for a standby,
// except in a session that asks for synchronous_commit = on: it then waits
// for the standby "ghost", which never comes. That is how CommitLost holds
// a COMMIT after its commit record is durable and before its reply.
func TestFaultOwnCluster(t *testing.T) {
	t.Parallel()
	cl := pgtest.New(t, pgtest.Options{Replica: true, Settings: map[string]string{
		"synchronous_commit":        "local",
		"synchronous_standby_names": "ghost",
		"max_connections":           "40",
	}})
	ctx := testCtx(t)
	if err := cl.Exec(ctx, fmt.Sprintf(`CREATE ROLE %s LOGIN PASSWORD '%s'`, appUser, appPassword)); err != nil {
		t.Fatal(err)
	}
	t.Run("Kill9Primary", func(t *testing.T) { testFaultKill9Primary(t, cl) })
	t.Run("CommitLost", func(t *testing.T) { testFaultCommitLost(t, cl) })
	t.Run("MaxConnectionsFull", func(t *testing.T) { testFaultMaxConnectionsFull(t, cl) })
	t.Run("StopReplica", func(t *testing.T) { testFaultStopReplica(t, cl) })
	t.Run("ReplicaRefusesLogins", func(t *testing.T) { testFaultReplicaRefusesLogins(t, cl) })
	t.Run("SIGSTOPReplica", func(t *testing.T) { testFaultSIGSTOPReplica(t, cl) })
}

// ownFaultProxy starts a transaction-mode pgone whose database db is db
// on cl's primary (and its replica, with replicas), pool_size size.
func ownFaultProxy(t *testing.T, cl *pgtest.Cluster, db string, size int, replicas bool, mutate func(*config.Config)) *testProxy {
	return txProxy(t, size, func(c *config.Config) {
		d := proxy.Database{Host: cl.Primary.Host, Port: cl.Primary.Port, User: appUser, Password: appPassword}
		if replicas {
			d.Replicas = []proxy.Replica{{Host: cl.Replica.Host, Port: cl.Replica.Port}}
			d.Consistency = proxy.ReadYourWrites
			c.Pool.ReplicaCheckInterval = 100 * time.Millisecond
		}
		c.Proxy.Databases[db] = d
		c.Pool.QueryWaitTimeout = 30 * time.Second
		if mutate != nil {
			mutate(c)
		}
	})
}

// testFaultKill9Primary: kill -9 of every primary process under write
// load, then a restart (crash recovery). Writes in flight fail with 08006
// or 08007, or with 57P01 when a backend noticed the postmaster's death
// first and answered a statement it never ran with its FATAL (pgone passes
// that on as an ERROR; seen about once in four runs); pgone serves every
// writer once PostgreSQL is back; every acknowledged write survived; an
// id answered 08006 or 57P01 (not run) is not on the primary.
func testFaultKill9Primary(t *testing.T, cl *pgtest.Cluster) {
	const db = "fault_kill9"
	ownDatabaseOn(t, cl, db)
	direct := cl.Primary.DSN(appUser, appPassword, db)
	createLedger(t, direct)
	p := ownFaultProxy(t, cl, db, 4, false, nil)
	l := startLedger(t, p.DSN(appUser, appPassword, db), faultWriters)
	l.waitServed(t, "before kill -9")
	if err := cl.Primary.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := cl.Primary.Start(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	l.waitServed(t, "after the primary's crash recovery")
	v := l.verify(t, direct, codeServerLost, codeOutcomeUnknown, codeAdminShutdown)
	v.requireNoRollbackClaimForCommitted(t)
}

// testFaultCommitLost: the server is killed while a COMMIT (and, in a
// second client, an autocommit INSERT) is in flight after its commit
// record is durable. The rows are committed, so the client must hear
// 08007 (outcome unknown), never 08006 ("rolled back": a client that
// retries writes twice); pgone serves the same client afterwards.
func testFaultCommitLost(t *testing.T, cl *pgtest.Cluster) {
	const db, syncUser = "fault_commit", "fault_syncwriter"
	ownDatabaseOn(t, cl, db)
	direct := cl.Primary.DSN(appUser, appPassword, db)
	createLedger(t, direct)
	// Every commit of this role waits for the standby that never comes.
	for _, sql := range []string{
		fmt.Sprintf("DROP ROLE IF EXISTS %s", syncUser),
		fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s-pw'", syncUser, syncUser),
		fmt.Sprintf("ALTER ROLE %s SET synchronous_commit = on", syncUser),
	} {
		if err := cl.Exec(testCtx(t), sql); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := connect(t, direct).Exec(testCtx(t), fmt.Sprintf("GRANT ALL ON %s TO %s", ledgerTable, syncUser)); err != nil {
		t.Fatal(err)
	}
	p := ownFaultProxy(t, cl, db, 2, false, func(c *config.Config) {
		c.Proxy.Databases["fault_autocommit"] = proxy.Database{Host: cl.Primary.Host, Port: cl.Primary.Port,
			DBName: db, User: syncUser, Password: syncUser + "-pw"}
	})
	insert := "INSERT INTO " + ledgerTable + " (id, client) VALUES ($1, 0)"

	t.Run("COMMIT", func(t *testing.T) {
		c := connect(t, p.DSN(appUser, appPassword, db))
		ctx := testCtx(t)
		tx, err := c.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, "SET LOCAL synchronous_commit = on"); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, insert, 1); err != nil {
			t.Fatal(err)
		}
		err = killDuringCommit(t, cl, db, appUser, func() error { return tx.Commit(ctx) })
		checkCommitLost(t, c, direct, 1, err)
	})
	t.Run("AutocommitINSERT", func(t *testing.T) {
		c := connect(t, p.DSN(appUser, appPassword, "fault_autocommit"))
		ctx := testCtx(t)
		err := killDuringCommit(t, cl, db, syncUser, func() error { _, err := c.Exec(ctx, insert, 2); return err })
		checkCommitLost(t, c, direct, 2, err)
	})
}

// killDuringCommit runs commit, waits until its backend (user's, on db)
// waits for synchronous replication, that is after its commit record is
// flushed, and SIGKILLs that backend; PostgreSQL then restarts every
// backend through crash recovery. It returns commit's error.
func killDuringCommit(t *testing.T, cl *pgtest.Cluster, db, user string, commit func() error) error {
	t.Helper()
	// The crash restart ends every session, so each kill needs a new one.
	super := connect(t, cl.Primary.DSN("postgres", "postgres", "postgres"))
	done := make(chan error, 1)
	go func() { done <- commit() }()
	var pid int
	eventually(t, "the commit to wait for synchronous replication", func() bool {
		select {
		case err := <-done:
			t.Fatalf("the commit ended before it waited for the standby: %v", err)
		default:
		}
		return super.QueryRow(testCtx(t), "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND usename = $2 AND wait_event = 'SyncRep'", db, user).Scan(&pid) == nil
	})
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("the commit got no answer within 20s of its server's death")
		return nil
	}
}

// checkCommitLost checks the row is committed, the client heard 08007,
// and the client is served afterwards.
func checkCommitLost(t *testing.T, c *pgx.Conn, direct string, id int64, err error) {
	t.Helper()
	var n int
	eventually(t, "the primary to accept connections after crash recovery", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		conn, cerr := pgx.Connect(ctx, direct)
		if cerr != nil {
			return false
		}
		defer conn.Close(context.Background())
		return conn.QueryRow(ctx, "SELECT count(*) FROM "+ledgerTable+" WHERE id = $1", id).Scan(&n) == nil
	})
	if n != 1 {
		t.Fatalf("the row of the killed commit is on the primary %d times; this case needs it committed", n)
	}
	var one int
	if serr := c.QueryRow(testCtx(t), "SELECT 1").Scan(&one); serr != nil {
		t.Errorf("the client is not served after its commit was lost: %v", serr)
	}
	switch code := codeOf(err); code {
	case codeOutcomeUnknown:
	case codeServerLost:
		msg := fmt.Sprintf("committed row answered 08006 (%v); want 08007", err)
		t.Error(msg)
	default:
		t.Errorf("commit in flight when its server died: %v (%s), want 08007", err, code)
	}
}

// testFaultMaxConnectionsFull: PostgreSQL's max_connections is taken by
// other clients when pgone needs servers. Writers wait within
// query_wait_timeout and are all served once slots free, with no error;
// while still full, a client of another pool gets pgone's 53300 after the
// timeout, never PostgreSQL's "sorry, too many clients already".
func testFaultMaxConnectionsFull(t *testing.T, cl *pgtest.Cluster) {
	const db = "fault_maxconn"
	ownDatabaseOn(t, cl, db)
	direct := cl.Primary.DSN(appUser, appPassword, db)
	createLedger(t, direct)
	p := ownFaultProxy(t, cl, db, 4, false, func(c *config.Config) {
		c.Pool.QueryWaitTimeout = 3 * time.Second
		c.Proxy.Databases["fault_maxconn_other"] = proxy.Database{Host: cl.Primary.Host, Port: cl.Primary.Port,
			DBName: db, User: appUser, Password: appPassword, PoolSize: 1}
	})
	// Log the writers in (the first login opens one server to learn the
	// server's parameters), then take that server away: from here on,
	// every server pgone needs is a new connection.
	l := startLedgerStopped(t, p.DSN(appUser, appPassword, db), faultWriters)
	super := connect(t, cl.Primary.DSN("postgres", "postgres", "postgres"))
	terminateServers(t, super, db)

	fillers := fillServer(t, direct)
	l.start()
	eventually(t, "writers to queue for a server", func() bool { return poolsOf(p, db).Waiting > 0 })
	if n := l.ackTotal(); n != 0 {
		t.Fatalf("%d writes acknowledged while the server was full", n)
	}
	fillers.release(4)
	l.waitServed(t, "after 4 connection slots were freed")

	fillers.fill(t, direct)
	start := time.Now()
	pe := pgErrorOf(t, execVia(p.DSN(appUser, appPassword, "fault_maxconn_other"), "SELECT 1"))
	if pe.Code != codeTooMany || strings.Contains(pe.Message, "too many clients already") {
		t.Errorf("a new pool on a full server: %s %q, want pgone's 53300 after query_wait_timeout", pe.Code, pe.Message)
	}
	if took := time.Since(start); took < 2*time.Second {
		t.Errorf("refused after %s, want a wait of about query_wait_timeout (3s)", took)
	}
	fillers.release(-1)
	l.waitServed(t, "after the server had room again")
	l.verify(t, direct) // no writer saw any error
}

// fillers hold direct connections that take a server's free slots.
type fillers struct{ conns []*pgconn.PgConn }

// fillServer opens connections to dsn until the server refuses one with
// 53300 (max_connections).
func fillServer(t *testing.T, dsn string) *fillers {
	f := &fillers{}
	f.fill(t, dsn)
	t.Cleanup(func() { f.release(-1) })
	return f
}

func (f *fillers) fill(t *testing.T, dsn string) {
	t.Helper()
	for i := 0; i < 100; i++ {
		c, err := pgconn.Connect(testCtx(t), dsn)
		if err == nil {
			f.conns = append(f.conns, c)
			continue
		}
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == codeTooMany {
			return
		}
		t.Fatalf("filling the server: %v", err)
	}
	t.Fatal("the server took 100 more connections; max_connections is not in force")
}

// release closes n of the connections, or all with n < 0.
func (f *fillers) release(n int) {
	if n < 0 || n > len(f.conns) {
		n = len(f.conns)
	}
	for _, c := range f.conns[:n] {
		c.Close(context.Background())
	}
	f.conns = f.conns[n:]
}

// readers run reads through pgone that the split sends to the replica,
// and record which reads finished and with what SQLSTATE.
type readers struct {
	stop  chan struct{}
	wg    sync.WaitGroup
	reads []atomic.Int64 // per reader, reads that began after mark and ended
	mark  atomic.Int64   // unix nanos; reads that began before it are not counted

	mu    sync.Mutex
	codes map[string]int
	first map[string]string
}

func startReaders(t *testing.T, dsn string, n int) *readers {
	t.Helper()
	r := &readers{stop: make(chan struct{}), reads: make([]atomic.Int64, n), codes: map[string]int{}, first: map[string]string{}}
	for i := 0; i < n; i++ {
		conn := connect(t, dsn)
		r.wg.Add(1)
		go r.read(i, conn)
	}
	t.Cleanup(r.stopReaders)
	return r
}

func (r *readers) stopReaders() {
	select {
	case <-r.stop:
	default:
		close(r.stop)
	}
	r.wg.Wait()
}

func (r *readers) read(i int, conn *pgx.Conn) {
	defer r.wg.Done()
	for {
		select {
		case <-r.stop:
			return
		default:
		}
		began := time.Now().UnixNano()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		var n int64
		err := conn.QueryRow(ctx, "SELECT count(*) FROM "+ledgerTable).Scan(&n)
		cancel()
		if err != nil {
			r.mu.Lock()
			code := codeOf(err)
			r.codes[code]++
			if _, ok := r.first[code]; !ok {
				r.first[code] = err.Error()
			}
			r.mu.Unlock()
		}
		if began >= r.mark.Load() {
			r.reads[i].Add(1)
		}
		if conn.IsClosed() {
			return
		}
	}
}

// waitServed waits up to within for every reader to finish a read that
// began after the call.
func (r *readers) waitServed(t *testing.T, what string, within time.Duration) {
	t.Helper()
	base := make([]int64, len(r.reads))
	for i := range r.reads {
		base[i] = r.reads[i].Load()
	}
	r.mark.Store(time.Now().UnixNano())
	deadline := time.Now().Add(within)
	for {
		behind := 0
		for i := range r.reads {
			if r.reads[i].Load() <= base[i] {
				behind++
			}
		}
		if behind == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d of %d readers finished no read within %s (errors: %v)", what, behind, len(r.reads), within, r.codesSeen())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (r *readers) codesSeen() map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]string{}
	for c, n := range r.codes {
		out[c] = fmt.Sprintf("x%d: %s", n, r.first[c])
	}
	return out
}

// checkCodes fails for any reader error whose code is not allowed.
func (r *readers) checkCodes(t *testing.T, allowed ...string) {
	t.Helper()
	r.stopReaders()
	ok := map[string]bool{}
	for _, c := range allowed {
		ok[c] = true
	}
	for code, text := range r.codesSeen() {
		if !ok[code] {
			t.Errorf("readers saw %s %s; allowed here: %v", code, text, allowed)
		}
	}
}

// replicaCase starts a split pgone on db, ledger writers and readers, and
// waits until reads are served by the replica.
func replicaCase(t *testing.T, cl *pgtest.Cluster, db string, mutate func(*config.Config)) (*ledger, *readers, string) {
	ownDatabaseOn(t, cl, db)
	direct := cl.Primary.DSN(appUser, appPassword, db)
	createLedger(t, direct)
	eventually(t, "the replica to have the ledger table", func() bool {
		return execVia(cl.Replica.DSN(appUser, appPassword, db), "SELECT 1 FROM "+ledgerTable) == nil
	})
	p := ownFaultProxy(t, cl, db, 4, true, mutate)
	dsn := p.DSN(appUser, appPassword, db)
	probe := connect(t, dsn)
	eventually(t, "reads to reach the replica", func() bool {
		return serverPortOf(probe) == cl.Replica.Port
	})
	l := startLedger(t, dsn, 4)
	r := startReaders(t, dsn, 3)
	l.waitServed(t, "before the replica fault")
	r.waitServed(t, "before the replica fault", 10*time.Second)
	return l, r, direct
}

// execVia connects to dsn and runs sql.
func execVia(dsn, sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgconn.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	_, err = c.Exec(ctx, sql).ReadAll()
	return err
}

// serverPortOf asks which server answers a read, or 0.
func serverPortOf(c *pgx.Conn) int {
	var port int
	_ = c.QueryRow(context.Background(), "SELECT inet_server_port()").Scan(&port)
	return port
}

// testFaultStopReplica: the replica shuts down (fast) under read and write
// load, then starts again. Writers see no error; readers in flight hear
// PostgreSQL's 57P01 or pgone's 08006, and every reader is served (by the
// primary) while the replica is down and after it is back.
func testFaultStopReplica(t *testing.T, cl *pgtest.Cluster) {
	l, r, direct := replicaCase(t, cl, "fault_stopreplica", func(c *config.Config) {
		c.Proxy.Routing.ReadFunctions = []string{"inet_server_port"}
	})
	if err := cl.Replica.Stop(); err != nil {
		t.Fatal(err)
	}
	r.waitServed(t, "with the replica stopped", 10*time.Second)
	l.waitServed(t, "with the replica stopped")
	if err := cl.Replica.Start(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	r.waitServed(t, "after the replica started again", 10*time.Second)
	r.checkCodes(t, "57P01", codeServerLost)
	l.verify(t, direct)
}

// testFaultReplicaRefusesLogins: the replica begins a smart shutdown
// (SIGTERM): its sessions, the monitor's among them, go on, but new logins
// get 57P03. Reads that need a new replica connection go to the primary;
// before, they failed with pgone's 53300 ("the server accepts no more
// connections") although the primary was fine.
func testFaultReplicaRefusesLogins(t *testing.T, cl *pgtest.Cluster) {
	const burst = 6
	l, r, direct := replicaCase(t, cl, "fault_replicalogin", func(c *config.Config) {
		// The burst's reads overlap (pg_sleep) and stay reads.
		c.Proxy.Routing.ReadFunctions = []string{"inet_server_port", "pg_sleep"}
		c.Pool.PoolSize = 10 // the burst below must dial new replica servers
	})
	r.stopReaders() // at most 3 replica servers are open now
	dsn := l.dsn
	conns := make([]*pgx.Conn, burst)
	for i := range conns {
		conns[i] = connect(t, dsn)
	}
	if err := cl.Replica.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Fast shutdown ends what the smart one waits for; start it again
		// for the next case.
		if err := cl.Replica.Stop(); err != nil {
			t.Error(err)
		}
		if err := cl.Replica.Start(context.Background()); err != nil {
			t.Error(err)
		}
	})
	eventually(t, "the replica to refuse new logins", func() bool {
		err := execVia(cl.Replica.DSN(appUser, appPassword, "fault_replicalogin"), "SELECT 1")
		return codeOf(err) == "57P03"
	})
	t.Logf("the replica refuses logins")
	began := time.Now()
	errs := make(chan error, burst)
	for _, c := range conns {
		go func(c *pgx.Conn) {
			_, err := c.Exec(testCtx(t), "SELECT pg_sleep(0.2)")
			errs <- err
		}(c)
	}
	for range conns {
		if err := <-errs; err != nil {
			t.Errorf("a read while the replica refuses logins: %v; want it served (by the primary)", err)
		}
	}
	t.Logf("burst of %d reads took %s", burst, time.Since(began))
	l.verify(t, direct)
}

// testFaultSIGSTOPReplica: every replica process is stopped with SIGSTOP
// under read and write load. A read in flight on it ends at query_timeout:
// 57014 if the server takes the cancel, else 08006 once pgone gives the
// server up after the cancel's grace period (a read on a replica commits
// nothing). The replica leaves the rotation, and every reader is served
// within query_timeout, the grace period and a margin (8s: a reader may meet
// the stopped replica twice before the monitor takes it out, and the race
// detector under the full suite is slow) while the
// replica is still stopped; writers see no error.
func testFaultSIGSTOPReplica(t *testing.T, cl *pgtest.Cluster) {
	const queryTimeout = time.Second
	l, r, direct := replicaCase(t, cl, "fault_sigstop", func(c *config.Config) {
		c.Proxy.Routing.ReadFunctions = []string{"inet_server_port"}
		setQueryTimeout(t, c, queryTimeout)
	})
	if err := cl.Replica.Pause(); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			if err := cl.Replica.Resume(); err != nil {
				t.Error(err)
			}
		}
	}
	defer resume()
	const cancelGrace = time.Second // timeout.go's queryCancelGrace
	r.waitServed(t, "with the replica stopped by SIGSTOP", queryTimeout+cancelGrace+8*time.Second)
	l.waitServed(t, "with the replica stopped by SIGSTOP")
	resume()
	r.checkCodes(t, codeCanceled, codeServerLost)
	l.verify(t, direct)
}

// setQueryTimeout sets pgone's query_timeout.
func setQueryTimeout(t *testing.T, c *config.Config, d time.Duration) {
	t.Helper()
	c.Proxy.Limits.QueryTimeout = d
}

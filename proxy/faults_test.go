package proxy_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgone/pgone/proxy"
)

// Fault cases that leave PostgreSQL running share the package's cluster,
// each on a database of its own; the ones that crash, stop or fill a
// server are in faults_own_test.go.

// faultWriters is the number of ledger writers per case: more than the
// pool, so clients queue, and few enough for a 2-core machine.
const faultWriters = 6

// appDSNOn is app's DSN for db straight to the shared primary.
func appDSNOn(db string) string { return cluster.Primary.DSN(appUser, appPassword, db) }

// superConn is a superuser connection to the shared primary.
func superConn(t *testing.T) *pgx.Conn {
	return connect(t, cluster.Primary.DSN("postgres", "postgres", "postgres"))
}

// terminateServers ends every server session app has on db with
// pg_terminate_backend and waits until they are gone; it returns how many
// there were.
func terminateServers(t *testing.T, super *pgx.Conn, db string) int {
	t.Helper()
	ctx := testCtx(t)
	var pids []int32
	rows, err := super.Query(ctx, "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND usename = $2 AND backend_type = 'client backend'", db, appUser)
	if err != nil {
		t.Fatal(err)
	}
	pids, err = pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := super.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) pid", pids); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the terminated servers to exit", func() bool {
		var n int
		_ = super.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1)", pids).Scan(&n)
		return n == 0
	})
	return len(pids)
}

// TestFaultTerminateAllServerConnections: pg_terminate_backend of every
// server connection pgone holds, three times, under write load. Clients in
// flight hear PostgreSQL's own 57P01 (forwarded) or 08006 when their
// transaction was lost; no client connection is closed (transaction mode
// keeps clients across server loss), every acknowledged write is there, and
// pgone serves every writer afterwards.
func TestFaultTerminateAllServerConnections(t *testing.T) {
	t.Parallel()
	const db = "fault_terminate"
	ownDatabase(t, db)
	createLedger(t, appDSNOn(db))
	p := txProxy(t, 4, nil)
	l := startLedger(t, p.DSN(appUser, appPassword, db), faultWriters)
	super := superConn(t)
	l.waitServed(t, "before the fault")
	for round := 1; round <= 3; round++ {
		if n := terminateServers(t, super, db); n == 0 {
			t.Fatalf("round %d: pgone held no server connection to terminate", round)
		}
		if err := l.served("after pg_terminate_backend of every server"); err != nil {
			t.Fatal(err)
		}
	}
	v := l.verify(t, appDSNOn(db), "57P01", codeServerLost, codeOutcomeUnknown)
	v.requireNoRollbackClaimForCommitted(t)
}

// TestFaultReloadInvalidThenPoolSizeDownAndUp: under write load, a reload
// with an invalid md5 secret is refused whole (its smaller pool_size is
// not applied), then valid reloads take pool_size 8 -> 2 -> 8. No writer
// sees any error, every acknowledged write is there, and the server count
// follows each valid reload.
func TestFaultReloadInvalidThenPoolSizeDownAndUp(t *testing.T) {
	t.Parallel()
	const db = "fault_reload"
	ownDatabase(t, db)
	createLedger(t, appDSNOn(db))
	p := txProxy(t, 8, nil)
	l := startLedger(t, p.DSN(appUser, appPassword, db), 8)
	l.waitServed(t, "before the reloads")
	eventually(t, "more than 2 servers under 8 writers", func() bool { return poolsOf(p, db).Open > 2 })

	bad := *p.Cfg
	bad.Pool.PoolSize = 1
	bad.Proxy.Users = map[string]proxy.User{}
	for k, v := range p.Cfg.Proxy.Users {
		bad.Proxy.Users[k] = v
	}
	bad.Proxy.Users["broken"] = proxy.User{Password: "md5abc"} // an md5 hash of the wrong length
	if err := p.Srv.Reload(bad.Proxy, bad.Pool); err == nil {
		t.Fatal("a reload with an invalid md5 secret was accepted")
	}
	l.waitServed(t, "after the refused reload")
	eventually(t, "the refused reload's pool_size 1 not to apply", func() bool { return poolsOf(p, db).Open > 1 })

	reload := func(size int) {
		t.Helper()
		if err := reloadPoolSize(p, size); err != nil {
			t.Fatalf("reload pool_size %d: %v", size, err)
		}
	}
	reload(2)
	super := superConn(t)
	eventually(t, "at most 2 servers after pool_size 8 -> 2", func() bool {
		return poolsOf(p, db).Open <= 2 && backendsOn(t, super, db) <= 2
	})
	l.waitServed(t, "on the pool of 2")
	reload(8)
	eventually(t, "more than 2 servers after pool_size 2 -> 8", func() bool { return poolsOf(p, db).Open > 2 })
	l.waitServed(t, "on the pool of 8 again")
	l.verify(t, appDSNOn(db)) // no error of any kind is allowed
}

// backendsOn counts app's client backends on db.
func backendsOn(t *testing.T, super *pgx.Conn, db string) int {
	t.Helper()
	var n int
	if err := super.QueryRow(testCtx(t), "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND usename = $2 AND backend_type = 'client backend'", db, appUser).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestFaultSIGTERMDrain: Shutdown (what SIGTERM does) under write load.
// Transactions in flight finish within the grace period, so Shutdown
// returns nil; clients hear pgone's 57P01 or find the connection closed,
// never 08006/08007; every acknowledged write is there; and no server
// session is left in a transaction.
func TestFaultSIGTERMDrain(t *testing.T) {
	t.Parallel()
	const db = "fault_drain"
	ownDatabase(t, db)
	createLedger(t, appDSNOn(db))
	p := txProxy(t, 4, nil)
	l := startLedger(t, p.DSN(appUser, appPassword, db), faultWriters)
	l.waitServed(t, "before SIGTERM")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := p.Srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown under load: %v; every transaction in flight should have finished within the grace period", err)
	}
	if err := connectErr(t, p.DSN(appUser, appPassword, db)); err == nil {
		t.Fatal("a new client connected after Shutdown")
	}
	l.verify(t, appDSNOn(db), codeAdminShutdown, codeNoSQLSTATE)
	super := superConn(t)
	eventually(t, "no server session of pgone to remain in a transaction", func() bool {
		var n int
		err := super.QueryRow(testCtx(t), "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND state LIKE 'idle in transaction%'", db).Scan(&n)
		return err == nil && n == 0
	})
	// A transaction that had begun was let finish: the errors came only
	// where a new one (or an autocommit write, or a login) would begin.
	// TestShutdownServesTakenRequest holds the race this once lost.
	for _, code := range []string{codeAdminShutdown, codeNoSQLSTATE} {
		if bad := l.stepsOtherThan(code, stepConnect, stepBegin, stepAutocommit); bad != "" {
			t.Errorf("shutdown cut a transaction the client had begun: %s ended writes at %s", code, bad)
		}
	}
}

package proxy_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgone/pgone/cache"
	"github.com/pgone/pgone/config"
	"github.com/pgone/pgone/internal/pgtest"
	"github.com/pgone/pgone/pool"
	"github.com/pgone/pgone/proxy"
)

// failoverInterval is the replica check interval of the failover tests.
const failoverInterval = 200 * time.Millisecond

// failoverCluster is a primary and replica of the test's own (it promotes
// and stops them), with the app role and database db, in which the
// ledger table exists and has reached the replica.
func failoverCluster(t *testing.T, db string) *pgtest.Cluster {
	t.Helper()
	return failoverClusterWith(t, db, pgtest.Options{Replica: true})
}

// failoverClusterWith is failoverCluster started with opts.
func failoverClusterWith(t *testing.T, db string, opts pgtest.Options) *pgtest.Cluster {
	t.Helper()
	cl := pgtest.New(t, opts)
	// pg_monitor lets the monitor's login see a standby's timeline
	// (pg_stat_wal_receiver); without it the timeline reads unknown.
	for _, sql := range []string{
		fmt.Sprintf(`CREATE ROLE %s LOGIN PASSWORD '%s'`, appUser, appPassword),
		fmt.Sprintf(`GRANT pg_monitor TO %s`, appUser),
	} {
		if err := cl.Exec(testCtx(t), sql); err != nil {
			t.Fatal(err)
		}
	}
	ownDatabaseOn(t, cl, db)
	direct := cl.Primary.DSN(appUser, appPassword, db)
	createLedger(t, direct)
	if _, err := connect(t, direct).Exec(testCtx(t), "CREATE TABLE "+probeTable+" (at timestamptz)"); err != nil {
		t.Fatal(err)
	}
	if err := cl.WaitReplicaCaughtUp(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	return cl
}

// probeTable takes the failover probe's writes.
const probeTable = "failover_probe"

// failoverProxy is pgone in transaction mode with database db listing
// cl's two servers with role auto.
func failoverProxy(t *testing.T, cl *pgtest.Cluster, db string, wait time.Duration) *observedProxy {
	t.Helper()
	ccfg := cache.Config{Mode: cache.ModeRules}
	ccfg.Defaults()
	cc, err := cache.New(ccfg)
	if err != nil {
		t.Fatal(err)
	}
	return startObservedProxy(t, func(c *config.Config) {
		c.Pool.Mode = pool.ModeTransaction
		c.Pool.PoolSize = 4
		c.Pool.ReplicaCheckInterval = failoverInterval
		c.Pool.QueryWaitTimeout = wait
		c.Proxy.Databases[db] = proxy.Database{User: appUser, Password: appPassword, Servers: []proxy.DatabaseServer{
			{Host: cl.Primary.Host, Port: cl.Primary.Port, Role: proxy.RoleAuto},
			{Host: cl.Replica.Host, Port: cl.Replica.Port, Role: proxy.RoleAuto},
		}}
		c.Defaults() // the servers form becomes host and replicas, as a loaded file's does
	}, func(s *proxy.Server) { s.SetCache(cc, ccfg) })
}

// promote promotes s (pg_promote waits until it is out of recovery).
func promote(t *testing.T, s *pgtest.Server) {
	t.Helper()
	conn := connect(t, s.DSN(pgtest.SuperUser, pgtest.SuperPassword, "postgres"))
	var ok bool
	if err := conn.QueryRow(testCtx(t), "SELECT pg_promote(true, 60)").Scan(&ok); err != nil || !ok {
		t.Fatalf("pg_promote: %v, %v", ok, err)
	}
	conn.Close(context.Background())
}

// serverRows is the SHOW REPLICAS rows of db by host:port.
func serverRows(t *testing.T, c *pgconn.PgConn, db string) map[string]map[string]string {
	t.Helper()
	out := map[string]map[string]string{}
	for _, r := range show(t, c, "SHOW REPLICAS").rows {
		if r["database"] == db {
			out[net.JoinHostPort(r["host"], r["port"])] = r
		}
	}
	return out
}

func addrOf(s *pgtest.Server) string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// TestFailoverFollowsPromotion: writers run through pgone against a
// database whose servers have role auto; the primary is shut down (a
// clean shutdown ships its WAL to the standby, as a failover manager's
// fencing does) and the replica promoted. pgone follows within a few
// check intervals with no config change: a probe's first write after the
// promotion succeeds on the new primary, every writer is served again,
// and every acknowledged write is on the new primary; writes in flight at
// the switch heard a retryable error (08006, 57P01) or outcome unknown
// (08007), never "rolled back" for a write that committed.
func TestFailoverFollowsPromotion(t *testing.T) {
	t.Parallel()
	const db = "failover_follow"
	cl := failoverCluster(t, db)
	p := failoverProxy(t, cl, db, 30*time.Second)
	dsn := p.DSN(appUser, appPassword, db)
	probe := connect(t, dsn)
	if _, err := probe.Exec(testCtx(t), "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	l := startLedger(t, dsn, 4)
	l.waitServed(t, "before the failover")

	if err := cl.Primary.Stop(); err != nil {
		t.Fatal(err)
	}
	promote(t, cl.Replica)
	promoted := time.Now()
	// The probe's first write after the promotion: it waits in pgone
	// (query_wait_timeout) for the new primary rather than failing.
	var probeErrs []string
	for {
		if probe.IsClosed() {
			probe = connect(t, dsn)
		}
		_, err := probe.Exec(testCtx(t), "INSERT INTO "+probeTable+" VALUES (now())")
		if err == nil {
			break
		}
		probeErrs = append(probeErrs, err.Error())
		if len(probeErrs) > 20 {
			t.Fatalf("the probe's writes keep failing after the promotion: %v", probeErrs)
		}
	}
	took := time.Since(promoted)
	t.Logf("failover: first write through pgone %v after the promotion finished (check interval %v; probe errors before it: %v)",
		took, failoverInterval, probeErrs)
	if bound := 10 * failoverInterval; took > bound {
		t.Errorf("first write after the promotion took %v, over %v", took, bound)
	}
	if len(probeErrs) > 0 {
		t.Errorf("the probe, idle outside a transaction, got errors instead of waiting for the new primary: %v", probeErrs)
	}
	l.waitServed(t, "after the failover")
	newPrimary := cl.Replica.DSN(appUser, appPassword, db)
	v := l.verify(t, newPrimary, codeServerLost, codeOutcomeUnknown, codeAdminShutdown)
	v.requireNoRollbackClaimForCommitted(t)

	admin := p.console(t, adminUser, adminPassword)
	rows := serverRows(t, admin, db)
	if r := rows[addrOf(cl.Replica)]; r["state"] != "primary" || r["primary_state"] != "ok" || r["timeline"] != "2" {
		t.Errorf("SHOW REPLICAS row of the new primary: %v; want state primary, primary_state ok, timeline 2", r)
	}
	if r := rows[addrOf(cl.Primary)]; r["state"] != "down" {
		t.Errorf("SHOW REPLICAS row of the stopped old primary: %v; want state down", r)
	}
	if n := flushes(t, admin); n < 1 {
		t.Errorf("the promotion flushed the result cache %d times, want 1", n)
	}
	checkFailoverMetrics(t, p, db, "ok", 1, 0)

	// The old primary comes back as a standby of the new one (its clean
	// shutdown left nothing the new timeline lacks): it rejoins as a
	// replica on the new timeline, and writes stay on the new primary.
	rejoinAsStandby(t, cl.Primary, cl.Replica)
	var last map[string]string
	defer func() {
		if t.Failed() {
			t.Logf("old primary's last SHOW REPLICAS row: %v; its log:\n%s", last, tail(cl.Primary.LogFile))
		}
	}()
	eventually(t, "the old primary back as a replica", func() bool {
		last = serverRows(t, admin, db)[addrOf(cl.Primary)]
		return last["state"] == "healthy" && last["timeline"] == "2"
	})
	if r := serverRows(t, admin, db)[addrOf(cl.Replica)]; r["state"] != "primary" || r["primary_state"] != "ok" {
		t.Errorf("SHOW REPLICAS row of the new primary after the rejoin: %v", r)
	}
	if _, err := probe.Exec(testCtx(t), "INSERT INTO "+probeTable+" VALUES (now())"); err != nil {
		t.Fatalf("write after the old primary rejoined: %v", err)
	}
}

// rejoinAsStandby restarts the stopped server s as a streaming standby of
// primary.
func rejoinAsStandby(t *testing.T, s, primary *pgtest.Server) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(s.DataDir, "standby.signal"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(s.DataDir, "postgresql.auto.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = fmt.Fprintf(f, "primary_conninfo = 'host=%s port=%d user=%s password=%s'\nprimary_slot_name = ''\n",
		primary.Host, primary.Port, pgtest.SuperUser, pgtest.SuperPassword)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(testCtx(t)); err != nil {
		t.Fatal(err)
	}
}

// flushes is SHOW CACHE's invalidations_flush.
func flushes(t *testing.T, admin *pgconn.PgConn) int64 {
	t.Helper()
	return num(t, show(t, admin, "SHOW CACHE").rows[0], "invalidations_flush")
}

// TestFailoverSplitBrain: the replica is promoted while the old primary
// keeps running. pgone refuses writes with 08004 naming the split and the
// console command (never sending them to either server), SHOW REPLICAS
// shows split_brain; PRIMARY <db> <host:port> picks the new primary and
// writes go there, and only there; once the old primary stops, the state
// is ok without the pick.
func TestFailoverSplitBrain(t *testing.T) {
	t.Parallel()
	const db = "failover_split"
	cl := failoverCluster(t, db)
	p := failoverProxy(t, cl, db, 500*time.Millisecond)
	conn := connect(t, p.DSN(appUser, appPassword, db))
	insert := "INSERT INTO " + ledgerTable + " (id, client) VALUES ($1, 0)"
	if _, err := conn.Exec(testCtx(t), insert, 1); err != nil {
		t.Fatal(err)
	}
	admin := p.console(t, adminUser, adminPassword)
	if r := serverRows(t, admin, db)[addrOf(cl.Primary)]; r["state"] != "primary" || r["primary_state"] != "ok" {
		t.Fatalf("SHOW REPLICAS row of the primary before the split: %v", r)
	}
	checkFailoverMetrics(t, p, db, "ok", 0, 0)

	promote(t, cl.Replica)
	// Until pgone's next check writes go to the old primary; one in
	// flight when the split is seen loses its server (08006, or 08007:
	// it may have committed there). Then every write is refused.
	var refused *pgconn.PgError
	for id := int64(100); refused == nil; id++ {
		_, err := conn.Exec(testCtx(t), insert, id)
		var pe *pgconn.PgError
		switch {
		case err == nil:
			continue // pgone has not checked since the promotion
		case !errors.As(err, &pe):
			t.Fatalf("write during the split: %v, want an error from pgone", err)
		case pe.Code == codeServerLost || pe.Code == codeOutcomeUnknown:
			t.Logf("write in flight at the split: %s %s", pe.Code, pe.Message)
		default:
			refused = pe
		}
	}
	if refused.Code != "08004" || !strings.Contains(refused.Message, "split brain") ||
		!strings.Contains(refused.Hint, "PRIMARY "+db+" ") {
		t.Fatalf("write during the split: %s %q (hint %q); want 08004 naming the split and the console command",
			refused.Code, refused.Message, refused.Hint)
	}
	rows := serverRows(t, admin, db)
	for _, s := range []*pgtest.Server{cl.Primary, cl.Replica} {
		if r := rows[addrOf(s)]; r["state"] != "promoted" || r["primary_state"] != "split_brain" {
			t.Errorf("SHOW REPLICAS row of %s during the split: %v; want promoted, split_brain", addrOf(s), r)
		}
	}
	// Refused writes reached neither server.
	count := func(s *pgtest.Server) int {
		c := connect(t, s.DSN(appUser, appPassword, db))
		defer c.Close(context.Background())
		var n int
		if err := c.QueryRow(testCtx(t), "SELECT count(*) FROM "+ledgerTable+" WHERE id >= 100").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	oldBefore, newBefore := count(cl.Primary), count(cl.Replica)
	for i := 0; i < 3; i++ {
		if _, err := conn.Exec(testCtx(t), insert, 1000+i); err == nil {
			t.Fatal("a write went through during the split")
		}
	}
	if o, n := count(cl.Primary), count(cl.Replica); o != oldBefore || n != newBefore {
		t.Fatalf("refused writes reached a server: old primary %d -> %d rows, new %d -> %d", oldBefore, o, newBefore, n)
	}
	checkFailoverMetrics(t, p, db, "split_brain", 0, 4) // the first refusal and the three above

	if pe := consoleErr(t, admin, "PRIMARY "+db+" 127.0.0.1:1"); pe.Code != "55000" {
		t.Errorf("PRIMARY of a server not in the database: %s %s, want 55000", pe.Code, pe.Message)
	}
	before := flushes(t, admin)
	show(t, admin, "PRIMARY "+db+" "+addrOf(cl.Replica))
	if n := flushes(t, admin) - before; n != 1 {
		t.Errorf("picking the promoted server flushed the result cache %d times, want 1", n)
	}
	rows = serverRows(t, admin, db)
	if r := rows[addrOf(cl.Replica)]; r["state"] != "primary" || r["primary_state"] != "operator_pick" {
		t.Errorf("SHOW REPLICAS row of the picked primary: %v; want primary, operator_pick", r)
	}
	checkFailoverMetrics(t, p, db, "operator_pick", 1, 4) // the pick moved the primary: a promotion
	if _, err := conn.Exec(testCtx(t), insert, 2000); err != nil {
		t.Fatalf("write after the operator's pick: %v", err)
	}
	var port int
	if err := conn.QueryRow(testCtx(t), "SELECT inet_server_port()").Scan(&port); err != nil {
		t.Fatal(err)
	}
	if port != cl.Replica.Port {
		t.Errorf("after PRIMARY, the primary's requests run on port %d, want the picked server %d", port, cl.Replica.Port)
	}
	if o := count(cl.Primary); o != oldBefore {
		t.Errorf("the old primary got writes after the pick: %d -> %d rows", oldBefore, o)
	}

	// The old primary goes away: one primary is left, the pick has done
	// its work and the state is ok again.
	if err := cl.Primary.Stop(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "one primary left after the old one stopped", func() bool {
		r := serverRows(t, admin, db)[addrOf(cl.Replica)]
		return r["state"] == "primary" && r["primary_state"] == "ok"
	})
	if _, err := conn.Exec(testCtx(t), insert, 3000); err != nil {
		t.Fatalf("write once the old primary is gone: %v", err)
	}
}

// checkFailoverMetrics checks db's failover series in a scrape of p: the
// primary state gauge is 1 for state and 0 for the others, and the
// promotion and refusal counters have the values given.
func checkFailoverMetrics(t *testing.T, p *observedProxy, db, state string, promotions, refused float64) {
	t.Helper()
	body := p.scrape(t)
	for _, st := range []string{"ok", "operator_pick", "split_brain", "no_primary", "unknown"} {
		series := `pgone_failover_primary_state{database="` + db + `",state="` + st + `"}`
		want := 0.0
		if st == state {
			want = 1
		}
		if !strings.Contains(body, series+" ") {
			t.Errorf("metrics lack %s", series)
		} else if v := metricValue(t, body, series); v != want {
			t.Errorf("%s = %v, want %v", series, v, want)
		}
	}
	for series, want := range map[string]float64{
		`pgone_failover_promotions_total{database="` + db + `"}`:     promotions,
		`pgone_failover_writes_refused_total{database="` + db + `"}`: refused,
	} {
		if !strings.Contains(body, series+" ") {
			t.Errorf("metrics lack %s", series)
		} else if v := metricValue(t, body, series); v != want {
			t.Errorf("%s = %v, want %v", series, v, want)
		}
	}
}

// tail is the end of a log file, for a failure message.
func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}

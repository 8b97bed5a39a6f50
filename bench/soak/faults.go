package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgone/pgone/bench/proc"
	"github.com/pgone/pgone/internal/pgtest"
)

// recoveryBound is how long after a fault pgone may take to acknowledge a
// write again before the fault counts as not recovered.
const recoveryBound = 60 * time.Second

// fault is one kind of trouble; do returns a one-line description of what
// it did.
type fault struct {
	key, name string
	do        func(ctx context.Context, e *Env) (string, error)
}

// allFaults are the faults -faults may name, in rotation order.
var allFaults = []fault{
	{"terminate", "terminate server connections", terminateAll},
	{"restart", "restart primary", restartPrimary},
	{"freeze", "freeze replica (SIGSTOP)", freezeReplica},
	{"reload", "reload with another pool_size", reloadPoolSize},
	// A backend that vanishes without a FATAL (the faults above all send
	// 57P01 first) is where pgone must tell an in-doubt COMMIT from a
	// rollback (08006): without it the rollback check has nothing to see.
	{"kill", "kill -9 pgone's primary backends", killBackends},
}

// defaultFaults is the rotation make soak runs.
const defaultFaults = "terminate,restart,freeze,reload,kill"

// selectFaults returns the faults named in list (comma-separated keys).
func selectFaults(list string) ([]fault, error) {
	var out []fault
	for _, k := range strings.Split(list, ",") {
		k = strings.TrimSpace(k)
		found := false
		for _, f := range allFaults {
			if f.key == k {
				out = append(out, f)
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("unknown fault %q (want terminate, restart, freeze, reload, kill)", k)
		}
	}
	return out, nil
}

// faultRecord is one fault as the report shows it.
type faultRecord struct {
	At       time.Duration // since the load began
	Name     string
	Did      string
	Took     time.Duration
	Err      error
	Recovery time.Duration // fault end to the next acknowledged write; -1: none within recoveryBound
}

// runFaults injects one fault every o.faultEvery, in rotation, from the
// end of warm-up until the quiet stretch before the end of the load.
func runFaults(ctx context.Context, e *Env, c *counters, loadStart time.Time) []faultRecord {
	var out []faultRecord
	last := loadStart.Add(e.o.duration - e.o.quiet)
	next := loadStart.Add(e.o.warmup)
	for i := 0; ctx.Err() == nil; i++ {
		pause(ctx, time.Until(next))
		if ctx.Err() != nil || time.Now().After(last) {
			break
		}
		f := e.o.faults[i%len(e.o.faults)]
		rec := faultRecord{At: time.Since(loadStart), Name: f.name}
		e.logf("fault %d: %s", i+1, f.name)
		began := time.Now()
		rec.Did, rec.Err = f.do(ctx, e)
		rec.Took = time.Since(began)
		rec.Recovery = awaitAck(ctx, c)
		if rec.Err != nil {
			e.logf("fault %d: %s failed: %v", i+1, f.name, rec.Err)
		} else {
			e.logf("fault %d: %s; next acknowledged write after %s", i+1, rec.Did, rec.Recovery.Round(time.Millisecond))
		}
		out = append(out, rec)
		next = next.Add(e.o.faultEvery)
	}
	return out
}

// awaitAck waits for the next acknowledged write and returns how long it
// took, or -1 after recoveryBound.
func awaitAck(ctx context.Context, c *counters) time.Duration {
	start, from := time.Now(), c.acks.Load()
	for time.Since(start) < recoveryBound && ctx.Err() == nil {
		if c.acks.Load() > from {
			return time.Since(start)
		}
		pause(ctx, 10*time.Millisecond)
	}
	return -1
}

// terminateAll ends every backend of pgone's logins (pools and replica
// monitor) on both servers, as an operator or a failover tool might.
func terminateAll(ctx context.Context, e *Env) (string, error) {
	var n [2]string
	for i, s := range []*pgtest.Server{e.cluster.Primary, e.cluster.Replica} {
		v, err := queryValue(ctx, directDSN(s, "postgres"), fmt.Sprintf(
			"SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename IN ('%s', '%s')", clientUser, monitorUser))
		if err != nil {
			return "", err
		}
		n[i] = v
	}
	return fmt.Sprintf("terminated %s backends on the primary, %s on the replica", n[0], n[1]), nil
}

// killBackends SIGKILLs every backend of pgone's pool login on the
// primary, mid-request or idle: the postmaster then ends every other
// backend and runs crash recovery, as after kill -9 of the server. Only
// children of the primary's postmaster are signalled.
func killBackends(ctx context.Context, e *Env) (string, error) {
	pm := e.cluster.Primary.Pid()
	rows, err := query(ctx, directDSN(e.cluster.Primary, "postgres"), fmt.Sprintf(
		"SELECT pid, state FROM pg_stat_activity WHERE usename = '%s'", clientUser))
	if err != nil {
		return "", err
	}
	ours := map[int]bool{}
	for _, p := range proc.TreePids(pm, false) {
		ours[p] = true
	}
	killed, active := 0, 0
	for _, r := range rows {
		pid, _ := strconv.Atoi(r[0])
		if pm == 0 || !ours[pid] {
			continue
		}
		if syscall.Kill(pid, syscall.SIGKILL) == nil {
			killed++
			if r[1] == "active" {
				active++
			}
		}
	}
	// Wait for crash recovery: the primary takes logins again.
	deadline := time.Now().Add(60 * time.Second)
	for proc.Ping(ctx, directDSN(e.cluster.Primary, "postgres")) != nil {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return "", fmt.Errorf("primary not accepting logins 60s after the kill")
		}
		pause(ctx, 50*time.Millisecond)
	}
	return fmt.Sprintf("killed %d backends (%d active); primary recovered", killed, active), nil
}

// restartPrimary stops the primary (fast shutdown: clients are cut off),
// leaves it down for o.outage and starts it again on the same port.
func restartPrimary(ctx context.Context, e *Env) (string, error) {
	if err := e.cluster.Primary.Stop(); err != nil {
		return "", err
	}
	pause(ctx, e.o.outage)
	// Started even if ctx is done: the cleanup expects a server to stop.
	sctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := e.cluster.Primary.Start(sctx); err != nil {
		return "", err
	}
	return fmt.Sprintf("primary down %s, back as pid %d", e.o.outage, e.cluster.Primary.Pid()), nil
}

// freezeReplica stops every process of the replica with SIGSTOP for
// o.outage, then resumes them, also when ctx ends early.
func freezeReplica(ctx context.Context, e *Env) (string, error) {
	if err := e.cluster.Replica.Pause(); err != nil {
		return "", err
	}
	defer func() { _ = e.cluster.Replica.Resume() }()
	pause(ctx, e.o.outage)
	return fmt.Sprintf("replica's processes stopped for %s", e.o.outage), nil
}

// reloadPoolSize rewrites pgone's config with the other pool size, sends
// SIGHUP, and waits until the admin console shows the new size.
func reloadPoolSize(ctx context.Context, e *Env) (string, error) {
	from, to := e.poolSize, e.o.poolSize
	if from == e.o.poolSize {
		to = max(1, e.o.poolSize/3)
	}
	if err := e.writeConfig(to); err != nil {
		return "", err
	}
	if err := e.pgone.Signal(syscall.SIGHUP); err != nil {
		return "", err
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := e.adminPoolSize(ctx)
		if err == nil && got == to {
			return fmt.Sprintf("pool_size %d -> %d (SHOW DATABASES agrees)", from, to), nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return "", fmt.Errorf("after SIGHUP, SHOW DATABASES pool_size is %d, want %d (err %v)", got, to, err)
		}
		pause(ctx, 50*time.Millisecond)
	}
}

// adminPoolSize reads the soak database's pool_size from SHOW DATABASES.
func (e *Env) adminPoolSize(ctx context.Context) (int, error) {
	rows, err := e.admin(ctx, "SHOW DATABASES")
	if err != nil {
		return 0, err
	}
	for _, r := range rows {
		if r["name"] == database {
			return strconv.Atoi(r["pool_size"])
		}
	}
	return 0, fmt.Errorf("SHOW DATABASES has no row for %s", database)
}

// queryValue runs sql on dsn (simple protocol) and returns the first
// column of the first row.
func queryValue(ctx context.Context, dsn, sql string) (string, error) {
	rows, err := query(ctx, dsn, sql)
	if err != nil {
		return "", err
	}
	if len(rows) == 0 || len(rows[0]) == 0 {
		return "", fmt.Errorf("%q returned no rows", sql)
	}
	return rows[0][0], nil
}

// query runs sql on a fresh connection to dsn and returns its rows as text.
func query(ctx context.Context, dsn, sql string) ([][]string, error) {
	res, err := lastResult(ctx, dsn, sql)
	if err != nil {
		return nil, err
	}
	out := make([][]string, len(res.Rows))
	for i, r := range res.Rows {
		out[i] = make([]string, len(r))
		for j, v := range r {
			out[i][j] = string(v)
		}
	}
	return out, nil
}

// lastResult runs sql (simple protocol) on a fresh connection to dsn and
// returns the result of its last statement.
func lastResult(ctx context.Context, dsn, sql string) (*pgconn.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	conn, err := pgconn.Connect(ctx, dsn)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	results, err := conn.Exec(ctx, sql).ReadAll()
	if err != nil {
		return nil, err
	}
	if len(results) == 0 {
		return nil, fmt.Errorf("%q returned no result", sql)
	}
	return results[len(results)-1], nil
}

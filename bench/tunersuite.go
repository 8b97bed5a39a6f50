package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgone/pgone/bench/proc"
	"github.com/pgone/pgone/internal/pgtest"
)

// The tuner suite (issue 15, make bench-tuner): a mixed workload of OLTP
// point reads and updates and reporting aggregates over the seed's events
// table, against
//
//   - pgone-static-small: a deliberately wrong static config (a pool of
//     2, cache.mode auto with no rules, the tuner off);
//   - pgone-tuned: the same config with the tuner's pool_size and
//     cache_admission loops on;
//   - pgone-static-N: a sweep of static configs (pools of 5, 10, 20, 40)
//     with hand-written cache rules for the reporting queries' table, the
//     best of which is the yardstick.
//
// Unlike the other suites a cell here is one long run per target, each
// on a fresh pgone (the tuner must start from the wrong config, and its
// time to converge is what is measured), counted per window. The targets
// run one after another, not interleaved; each is stopped before the
// next starts, so no idle pool holds server connections meanwhile.

// SuiteTuner is the tuner suite's -suite name.
const SuiteTuner = "tuner"

// tunerSpec is one pgone config of the suite.
type tunerSpec struct {
	Name     string
	PoolSize int
	// Rules: cache.mode rules with a rule for the reporting table;
	// otherwise cache.mode auto with no rules.
	Rules bool
	// Tuned turns the tuner's pool_size and cache_admission loops on.
	Tuned bool
}

// tunerPlan is the suite's shape: full or -tiny.
type tunerPlan struct {
	Clients  int
	Duration time.Duration
	Window   time.Duration
	Sweep    []int
	// The tuner's knobs for pgone-tuned: it must act several times within
	// the first minute, so its interval and cooldown are shorter than the
	// defaults (5s, 15s) and a step is 4 connections.
	Interval, Cooldown time.Duration
	Step, MaxPool      int
}

// smallPool is pgone-static-small's (and pgone-tuned's starting) pool.
const smallPool = 2

// newTunerPlan: 90 s runs in 10 s windows, or a -tiny smoke run of 12 s
// in 2 s windows with two sweep points.
// A duration other than 0 replaces the run length (-duration given
// explicitly); it is rounded up to whole windows.
func newTunerPlan(tiny bool, clients int, duration time.Duration) tunerPlan {
	p := tunerPlan{Clients: 32, Duration: 90 * time.Second, Window: 10 * time.Second,
		Sweep: []int{5, 10, 20, 40}, Interval: 2 * time.Second, Cooldown: 5 * time.Second, Step: 4, MaxPool: 40}
	if tiny {
		p = tunerPlan{Clients: 8, Duration: 12 * time.Second, Window: 2 * time.Second,
			Sweep: []int{5, 20}, Interval: 500 * time.Millisecond, Cooldown: time.Second, Step: 4, MaxPool: 40}
	}
	if clients > 0 {
		p.Clients = clients
	}
	if duration > 0 {
		p.Duration = (duration + p.Window - 1) / p.Window * p.Window
	}
	return p
}

// tunerPlanOf is the plan the flags ask for.
func tunerPlanOf(o options, clients int) tunerPlan {
	dur := time.Duration(0)
	if o.durationSet {
		dur = o.duration
	}
	return newTunerPlan(o.tiny, clients, dur)
}

// specs are the targets in run order: the wrong config, the tuned one,
// then the sweep.
func (p tunerPlan) specs() []tunerSpec {
	s := []tunerSpec{{Name: "pgone-static-small", PoolSize: smallPool}, {Name: "pgone-tuned", PoolSize: smallPool, Tuned: true}}
	for _, n := range p.Sweep {
		s = append(s, tunerSpec{Name: fmt.Sprintf("pgone-static-%d", n), PoolSize: n, Rules: true})
	}
	return s
}

// reportTable is the table the reporting queries read and the sweep's
// cache rule names.
const reportTable = "events"

// tunerWorkload is the suite's workload: its mix, and the events dataset
// (datasets.go) for the reporting queries. 90% OLTP (pgbench_accounts
// point reads and balance updates, as pgbench's TPC-B touches it), 10%
// reporting (three of seed-analytics' dashboard aggregates over the last
// 1, 6 or 24 hours). No writer touches events: the reports' table is
// read-mostly, which is what cache admission looks for.
func tunerWorkload(scale int) *Workload {
	accounts := max(scale, 1) * 100000
	aid := func(r *rand.Rand) []string { return []string{fmt.Sprint(1 + r.IntN(accounts))} }
	return &Workload{
		Name: "tuner-mixed", Title: "OLTP point reads and updates with reporting aggregates",
		Suite: SuiteTuner, Mode: Transaction, Data: []string{"events"}, Unit: "stmt/s",
		Mix: &Mix{Ops: []Op{
			{Name: "oltp-read", Weight: 45, Args: aid, SQL: `SELECT abalance FROM pgbench_accounts WHERE aid = $1`},
			{Name: "oltp-update", Weight: 45, SQL: `UPDATE pgbench_accounts SET abalance = abalance + $2 WHERE aid = $1`,
				Args: func(r *rand.Rand) []string { return append(aid(r), fmt.Sprint(r.IntN(10001)-5000)) }},
			{Name: "report-top-kinds", Weight: 4, Args: dashboardWindow,
				SQL: `SELECT kind, count(*) AS n FROM events WHERE ts >= $1 AND ts < $2 GROUP BY kind ORDER BY n DESC, kind LIMIT 10`},
			{Name: "report-top-users", Weight: 3, Args: dashboardWindow,
				SQL: `SELECT user_id, count(*) AS n, sum(value) FROM events WHERE ts >= $1 AND ts < $2 GROUP BY user_id ORDER BY n DESC, user_id LIMIT 10`},
			{Name: "report-percentiles", Weight: 3, Args: dashboardWindow,
				SQL: `SELECT kind, percentile_cont(ARRAY[0.5, 0.9, 0.99]) WITHIN GROUP (ORDER BY value) FROM events WHERE ts >= $1 AND ts < $2 GROUP BY kind ORDER BY kind`},
		}},
	}
}

// mixNote describes the mix for the report header.
const mixNote = "45% `SELECT abalance FROM pgbench_accounts WHERE aid = $1`, 45% `UPDATE pgbench_accounts SET abalance = abalance + $2 WHERE aid = $1` " +
	"(random accounts), 10% reporting aggregates over `events` (top kinds, top users, percentiles over the last 1, 6 or 24 hours); extended protocol, autocommit."

// tunerConfig is a spec's generated pgone config: one database (bench,
// transaction mode, no split), the spec's pool and cache, and the tuner
// section. The bench user is an admin user, to read SHOW TUNER.
func tunerConfig(env *Env, p tunerPlan, s tunerSpec, port, httpPort int) string {
	// Cache admission (mode auto) needs logical invalidation
	// (proxy/cacheadmission.go); the publication is made by the setup.
	cache := "cache:\n  mode: auto\n  invalidation: logical\n  publication: pgone_bench\n"
	if s.Rules {
		cache = fmt.Sprintf("cache:\n  mode: rules\n  rules:\n    - table: %s\n", reportTable)
	}
	tun := ""
	if s.Tuned {
		tun = fmt.Sprintf(`tuner:
  interval: %s
  pool_size: "on"
  cache_admission: "on"
  max_pool_size: %d
  step: %d
  cooldown: %s
`, p.Interval, p.MaxPool, p.Step, p.Cooldown)
	}
	return fmt.Sprintf(`# generated by pgone bench -suite tuner (%s)
listen: "127.0.0.1:%d"
auth_method: scram-sha-256
limits:
  max_client_conn: %d
  shutdown_timeout: 2s
databases:
  %s:
    host: 127.0.0.1
    port: %d
    dbname: %s
    user: %s
    password: %q
    pool_size: %d
    pool_mode: transaction
    consistency: primary_only
%s%s%s`, s.Name, port, max(env.maxClients, 100), env.db, env.cluster.Primary.Port, env.db, env.user, env.password, s.PoolSize,
		pgoneConfigTail(env, "transaction", s.PoolSize, max(p.MaxPool, s.PoolSize)+10, httpPort), cache, tun)
}

// tunerSetup is a spec's line in the report's Targets section.
func tunerSetup(p tunerPlan, s tunerSpec) string {
	c := "cache.mode auto with no rules"
	if s.Rules {
		c = "cache.mode rules with a rule for " + reportTable
	}
	t := "tuner off"
	if s.Tuned {
		t = fmt.Sprintf("tuner pool_size on, cache_admission on (interval %s, step %d, cooldown %s, max_pool_size %d)",
			p.Interval, p.Step, p.Cooldown, p.MaxPool)
	}
	return fmt.Sprintf("pool_size=%d, transaction mode, %s, %s", s.PoolSize, c, t)
}

// runTunerSuite is the whole suite: servers, data, each target in turn,
// the report. It returns the process exit status.
func runTunerSuite(ctx context.Context, env *Env, o options, clients int) (*TunerReport, error) {
	p := tunerPlanOf(o, clients)
	if err := startServers(ctx, env, o); err != nil {
		return nil, err
	}
	w := tunerWorkload(o.scale)
	if err := prepareData(ctx, env, []Cell{{W: w, Clients: p.Clients}}, o.seedRows); err != nil {
		return nil, err
	}
	if err := env.cluster.WaitReplicaCaughtUp(ctx); err != nil {
		return nil, err
	}
	mode := "tuner"
	if o.tiny {
		mode = "tuner-tiny"
	}
	rep := &TunerReport{
		Meta: TunerMeta{Date: time.Now().UTC(), Mode: mode, Command: strings.TrimSpace("go run ./bench " + strings.Join(os.Args[1:], " ")),
			Machine: describeMachine(), Versions: env.versions, Clients: p.Clients, Duration: p.Duration, Window: p.Window,
			Scale: o.scale, SeedRows: o.seedRows, Mix: mixNote},
		Reach: 0.9, ReachBy: 60, Tail: max(1, int(p.Duration/p.Window)/3),
	}
	warmPrimary(ctx, env, p, w)
	for _, s := range p.specs() {
		env.logf("%s: %s, %d clients for %s", s.Name, tunerSetup(p, s), p.Clients, p.Duration)
		r := runTunerTarget(ctx, env, p, s, w)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		env.logf("%s: %d statements, p99 %.1f ms %s", s.Name, r.Stmts, r.P99Ms, r.Err)
		switch {
		case s.Name == "pgone-static-small":
			rep.Small = r
		case s.Tuned:
			rep.Tuned = r
		default:
			rep.Sweep = append(rep.Sweep, r)
		}
	}
	return rep, nil
}

// warmPrimary runs the mix on the primary itself for one window, not
// counted: the first target would otherwise pay for PostgreSQL's cold
// buffers and plans, which later targets do not.
func warmPrimary(ctx context.Context, env *Env, p tunerPlan, w *Workload) {
	t := &Target{Name: "direct", Port: env.cluster.Primary.Port}
	warm := p
	warm.Duration = p.Window
	var r TunerRun
	runWindows(ctx, env, t, w.Mix, warm, &r)
	env.logf("warm-up on the primary: %d statements in %s %s", r.Stmts, warm.Duration, r.Err)
}

// startServers starts the primary and replica and initializes pgbench's
// tables; the same steps as benchmark's, without redis and the poolers.
func startServers(ctx context.Context, env *Env, o options) error {
	if _, err := os.Stat(env.pgoneBin); err != nil {
		return fmt.Errorf("pgone binary: %w (run make build)", err)
	}
	if abs, err := filepath.Abs(env.pgoneBin); err == nil {
		env.pgoneBin = abs
	}
	bindir, err := pgtest.BinDir()
	if err != nil {
		return err
	}
	if env.pgbench, err = findProgram("pgbench", bindir); err != nil {
		return err
	}
	if env.acct, err = lookupAccount(); err != nil {
		return err
	}
	env.versions = collectVersions(ctx, bindir, env.pgoneBin)
	dir, err := os.MkdirTemp("", "pgone-bench-")
	if err != nil {
		return err
	}
	env.dir = dir
	env.onCleanup("remove "+dir, func() error {
		if o.keep {
			env.logf("kept %s", dir)
			return nil
		}
		return os.RemoveAll(dir)
	})
	if err := env.acct.chown(dir); err != nil {
		return err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	env.logf("starting PostgreSQL primary and streaming replica")
	cluster, err := pgtest.StartCluster(ctx, pgtest.Options{Replica: true, Settings: env.pgSettings})
	if err != nil {
		return err
	}
	env.cluster = cluster
	env.onCleanup("stop PostgreSQL", cluster.Stop)
	// REPLICATION: the cache's logical stream (cache.invalidation:
	// logical, which the tuner's cache admission needs) logs in as bench.
	setup := fmt.Sprintf("CREATE ROLE %s LOGIN REPLICATION PASSWORD '%s'; CREATE DATABASE %s OWNER %s", env.user, env.password, env.db, env.user)
	for _, sql := range strings.Split(setup, "; ") {
		if err := cluster.Exec(ctx, sql); err != nil {
			return err
		}
	}
	env.logf("pgbench -i -s %d", o.scale)
	if err := pgbenchInit(ctx, env, o.scale); err != nil {
		return err
	}
	// FOR ALL TABLES needs a superuser; the stream reads it (tunerConfig).
	su, err := pgconn.Connect(ctx, cluster.Primary.DSN(pgtest.SuperUser, pgtest.SuperPassword, env.db))
	if err != nil {
		return err
	}
	defer su.Close(context.Background())
	_, err = su.Exec(ctx, "CREATE PUBLICATION pgone_bench FOR ALL TABLES").ReadAll()
	return err
}

// runTunerTarget starts a fresh pgone for s, runs the mix, reads SHOW
// TUNER if tuned, and stops it.
func runTunerTarget(ctx context.Context, env *Env, p tunerPlan, s tunerSpec, w *Workload) TunerRun {
	r := TunerRun{Target: s.Name, Setup: tunerSetup(p, s), PoolSize: s.PoolSize, Window: p.Window}
	t, err := startTunerPgone(ctx, env, p, s)
	if err != nil {
		r.Err = "start: " + err.Error()
		return r
	}
	defer func() {
		if err := t.stop(); err != nil {
			env.logf("stop %s: %v", s.Name, err)
		}
	}()
	runWindows(ctx, env, t, w.Mix, p, &r)
	if err := t.alive(); err != nil && r.Err == "" {
		r.Err = err.Error()
	}
	if s.Tuned {
		d, err := readConsole(ctx, env, t, "SHOW TUNER")
		if err != nil {
			env.logf("%s: SHOW TUNER: %v", s.Name, err)
		} else {
			r.ShowTuner = d
		}
	}
	return r
}

// startTunerPgone runs bin/pgone with s's generated config.
func startTunerPgone(ctx context.Context, env *Env, p tunerPlan, s tunerSpec) (*Target, error) {
	dir := filepath.Join(env.dir, s.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	t := &Target{Name: s.Name, Setup: tunerSetup(p, s), db: func(PoolMode) (string, string) { return env.db, string(Transaction) }}
	err := startOnFreePort(ctx, env, t, func(port int) (*proc.Child, error) {
		httpPort, err := pgtest.FreePort()
		if err != nil {
			return nil, err
		}
		path := filepath.Join(dir, "pgone.yaml")
		if err := os.WriteFile(path, []byte(tunerConfig(env, p, s, port, httpPort)), 0o600); err != nil {
			return nil, err
		}
		cmd := env.acct.command(dir, env.pgoneBin, "serve", "--config", path)
		cmd.SysProcAttr.Credential = nil // pgone may run as root
		return proc.Start(s.Name, cmd, filepath.Join(dir, "pgone.log"), syscall.SIGTERM)
	}, env.db)
	if err != nil {
		return nil, err
	}
	t.stop = func() error { return t.proc.Stop(syscall.SIGTERM, 15*time.Second) }
	return t, nil
}

// windowClient is one client's record: latencies (µs) by window and by
// statement, failures by window and statement. Only its goroutine writes.
type windowClient struct {
	lat      [][]float64
	failed   []int64
	byOp     map[string][]float64
	opFailed map[string]int64
}

// runWindows runs m with p.Clients clients against t for p.Duration and
// fills r's windows, p99 and per-statement numbers. A statement counts in
// the window its reply ended in; the one running at the deadline is not
// counted (see mixLoop).
func runWindows(ctx context.Context, env *Env, t *Target, m *Mix, p tunerPlan, r *TunerRun) {
	h := holdClients(ctx, env, env.dsn(t.Port, env.db), p.Clients, false)
	defer closeAll(h.conns)
	if len(h.conns) < p.Clients {
		r.Err = fmt.Sprintf("%d of %d clients could not log in: %s", p.Clients-len(h.conns), p.Clients, h.errs.summary())
		return
	}
	n := int((p.Duration + p.Window - 1) / p.Window)
	var errs errorTally
	recs := make([]windowClient, len(h.conns))
	start := time.Now()
	deadline := start.Add(p.Duration)
	var wg sync.WaitGroup
	for i, conn := range h.conns {
		wg.Go(func() { recs[i] = windowLoop(ctx, start, deadline, p.Window, n, conn, m, uint64(i), &errs) })
	}
	wg.Wait()
	summarizeWindows(r, recs, n)
	if r.Failed > 0 && r.Err == "" {
		r.Err = errs.summary()
	}
}

// windowLoop is one client: statements until deadline, each recorded in
// its window.
func windowLoop(ctx context.Context, start, deadline time.Time, window time.Duration, n int, conn *pgconn.PgConn, m *Mix, seed uint64, errs *errorTally) windowClient {
	rnd := rand.New(rand.NewPCG(seed, 0x7e5e))
	c := windowClient{lat: make([][]float64, n), failed: make([]int64, n), byOp: map[string][]float64{}, opFailed: map[string]int64{}}
	for ctx.Err() == nil {
		op := m.pick(rnd)
		var args []string
		if op.Args != nil {
			args = op.Args(rnd)
		}
		began := time.Now()
		res := conn.ExecParams(ctx, op.SQL, textParams(args), nil, nil, nil).Read()
		end := time.Now()
		if ctx.Err() != nil || end.After(deadline) {
			break
		}
		i := min(int(end.Sub(start)/window), n-1)
		if res.Err != nil {
			c.failed[i]++
			c.opFailed[op.Name]++
			errs.add(res.Err)
			if conn.IsClosed() {
				break
			}
			continue
		}
		us := float64(end.Sub(began).Microseconds())
		c.lat[i] = append(c.lat[i], us)
		c.byOp[op.Name] = append(c.byOp[op.Name], us)
	}
	return c
}

// summarizeWindows merges the clients' records into r.
func summarizeWindows(r *TunerRun, recs []windowClient, n int) {
	r.Windows = make([]TunerWindow, n)
	var all []float64
	for i := range n {
		var l []float64
		for _, c := range recs {
			l = append(l, c.lat[i]...)
			r.Windows[i].Failed += c.failed[i]
		}
		r.Windows[i].Stmts = int64(len(l))
		r.Windows[i].P99Ms = percentile(l, 0.99) / 1000
		r.Failed += r.Windows[i].Failed
		all = append(all, l...)
	}
	r.Stmts = int64(len(all))
	r.P99Ms = percentile(all, 0.99) / 1000
	mc := make([]mixClient, len(recs))
	for i, c := range recs {
		mc[i] = mixClient{lat: c.byOp, failed: c.opFailed}
	}
	var tmp Result
	summarizeMix(&tmp, mc, time.Second)
	r.Stmt = tmp.Stmts
}

// readConsole runs one SHOW on t's admin console and returns it as text.
func readConsole(ctx context.Context, env *Env, t *Target, sql string) (*ConsoleDump, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgconn.Connect(ctx, env.dsn(t.Port, "pgone"))
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	results, err := conn.Exec(ctx, sql).ReadAll()
	if err != nil {
		return nil, err
	}
	if len(results) != 1 {
		return nil, fmt.Errorf("%s: %d results", sql, len(results))
	}
	d := &ConsoleDump{}
	for _, f := range results[0].FieldDescriptions {
		d.Columns = append(d.Columns, f.Name)
	}
	for _, row := range results[0].Rows {
		cells := make([]string, len(row))
		for i, v := range row {
			cells[i] = string(v)
		}
		d.Rows = append(d.Rows, cells)
	}
	return d, nil
}

// runTuner is run's path for -suite tuner: its own environment, no
// redis or other poolers, its own report in -out (default
// bench/results/tuner via make bench-tuner). -clients (one number) sets
// the client count of a full run; -tiny keeps its own 8. -duration, when
// given, is each target's run length.
func runTuner(o options, stdout io.Writer) int {
	clients := 0
	if !o.tiny && o.clients != "" {
		n, err := strconv.Atoi(o.clients)
		if err != nil || n < 1 {
			fmt.Fprintln(os.Stderr, "bench: -suite tuner takes one client count in -clients")
			return 2
		}
		clients = n
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	env := &Env{
		began: time.Now(), out: stdout, user: "bench", password: "bench", db: "bench",
		pgoneBin: o.pgoneBin, pgSettings: map[string]string{"max_connections": "500", "wal_level": "logical"},
		maxClients: 1000, connMsPerClient: map[string]float64{},
		// holdClients gives up on logins when none finished for this long.
		idleStall: 5 * time.Second,
	}
	defer env.cleanup()
	rep, err := runTunerSuite(ctx, env, o, clients)
	if err != nil {
		if ctx.Err() != nil {
			env.logf("interrupted: stopping everything; no results written")
			return 130
		}
		env.logf("failed: %v", err)
		return 1
	}
	env.cleanup()
	rep.Meta.RunTime = time.Since(env.began)
	paths, err := writeTunerResults(rep, o.out, o.record)
	if err != nil {
		env.logf("writing results: %v", err)
		return 1
	}
	for _, g := range rep.goals() {
		env.logf("goal %s: %s: met=%v", g.Goal, g.Value, g.Met)
	}
	env.logf("done in %s; wrote %s", fmtDuration(rep.Meta.RunTime), strings.Join(paths, ", "))
	return 0
}

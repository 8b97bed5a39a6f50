package main

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgone/pgone/bench/proc"
	"github.com/pgone/pgone/internal/pgtest"
)

// This file keeps the direct-PostgreSQL reference honest: direct runs with
// no other target's server connection open (isolateDirect), a lone pgbench
// run before any pooler starts is the yardstick (runLoneBaselines), and the
// check compares the two (directCheck). It also holds the rotation of the
// target order per round and the CPU per transaction arithmetic.

// roundOrder is the target order of round n (counted over the whole run):
// the targets rotated by n, so over consecutive rounds every target runs in
// every position (first after a drained machine, last after three others)
// and slow drifts or after-effects of a neighbour do not always hit the
// same target.
func roundOrder[T any](targets []T, n int) []T {
	if len(targets) == 0 {
		return nil
	}
	k := n % len(targets)
	out := make([]T, 0, len(targets))
	out = append(out, targets[k:]...)
	return append(out, targets[:k]...)
}

// cpuPerTx is CPU seconds spent over transactions done, in microseconds;
// 0 when either is unknown (direct has no proxy; a failed run did no
// transaction).
func cpuPerTx(cpuSeconds float64, tx int64) float64 {
	if cpuSeconds <= 0 || tx <= 0 {
		return 0
	}
	return cpuSeconds * 1e6 / float64(tx)
}

// checkTolerance is how far direct at 10 clients may be from the lone run.
const checkTolerance = 0.10

// checkClients is the client count of the cells the check covers.
const checkClients = 10

// DirectCheck is the verdict on one select-only cell at 10 clients: direct
// in the interleaved run against a lone pgbench run of the same workload on
// the same server with nothing else connected.
type DirectCheck struct {
	Workload  string    `json:"workload"`
	Clients   int       `json:"clients"`
	LoneTPS   float64   `json:"lone_tps"`   // median of the lone runs
	LoneRuns  []float64 `json:"lone_runs"`  // every lone run's TPS
	DirectTPS float64   `json:"direct_tps"` // median of direct's runs in the plan
	Ratio     float64   `json:"ratio"`      // DirectTPS / LoneTPS
	Pass      bool      `json:"pass"`
	Why       string    `json:"why"`
}

// judge decides a check: direct must be within checkTolerance of the lone
// run, either way (faster is as suspicious as slower: the two measure the
// same thing). A missing side fails: a check that cannot be made is not a
// pass.
func judge(workload string, lone []float64, direct Summary) DirectCheck {
	c := DirectCheck{Workload: workload, Clients: checkClients, LoneRuns: lone, DirectTPS: direct.TPS}
	c.LoneTPS = median(slices.Clone(lone))
	switch {
	case len(lone) == 0 || c.LoneTPS <= 0:
		c.Why = "no lone run produced a number"
		return c
	case !direct.OK || direct.TPS <= 0:
		c.Why = "direct produced no number"
		return c
	}
	c.Ratio = c.DirectTPS / c.LoneTPS
	c.Pass = math.Abs(c.Ratio-1) <= checkTolerance
	verdict := "within"
	if !c.Pass {
		verdict = "NOT within"
	}
	c.Why = fmt.Sprintf("direct %.0f TPS is %.2fx the lone run's %.0f: %s %.0f%%", c.DirectTPS, c.Ratio, c.LoneTPS, verdict, checkTolerance*100)
	if lo, hi := slices.Min(lone), slices.Max(lone); !c.Pass && hi > lo*(1+checkTolerance) {
		// Say so when the yardstick itself moved: the machine, not
		// direct's setup, may be what failed the check.
		c.Why += fmt.Sprintf(" (the lone runs themselves spread %.0f%%: the machine was noisy; rerun)", (hi/lo-1)*100)
	}
	return c
}

// checkWorkloads are the plan's select-only workloads that run on the
// primary alone and have a cell at checkClients: the cells the check covers.
func checkWorkloads(plan []Cell) []*Workload {
	var out []*Workload
	for _, c := range plan {
		if c.Clients == checkClients && c.W.Mode != Split && slices.Contains(c.W.Pgbench, "-S") && !slices.Contains(out, c.W) {
			out = append(out, c.W)
		}
	}
	return out
}

// checksFailed returns the failed checks' one-line reasons.
func checksFailed(checks []DirectCheck) []string {
	var out []string
	for _, c := range checks {
		if !c.Pass {
			out = append(out, fmt.Sprintf("%s at %d clients: %s", c.Workload, c.Clients, c.Why))
		}
	}
	return out
}

// runLoneBaselines runs each checked workload at checkClients straight
// against the primary, reps times, while nothing else is connected: before
// any pooler has started, and again at the end after they stopped (when),
// so a drift of the shared machine during the run moves the yardstick too.
// It appends the TPS of every run to out by workload name.
func runLoneBaselines(ctx context.Context, env *Env, plan []Cell, when string, out map[string][]float64) {
	lone := &Target{Name: "lone", Port: env.cluster.Primary.Port}
	checked := checkWorkloads(plan)
	if len(checked) > 0 && when == "start" {
		// One run not kept: it warms PostgreSQL's caches, as the warm-up
		// does for the targets.
		runPgbench(ctx, env, lone, env.db, checked[0], checkClients)
	}
	for _, w := range checked {
		for r := 0; r < env.reps; r++ {
			res := runPgbench(ctx, env, lone, env.db, w, checkClients)
			if ctx.Err() != nil {
				return
			}
			env.logf("lone (%s) %s c=%d rep %d/%d: %s", when, w.Name, checkClients, r+1, env.reps, res.short(w))
			if !res.failed() {
				out[w.Name] = append(out[w.Name], res.TPS)
			}
		}
	}
}

// superConn connects to s as the superuser, to the database postgres.
func superConn(ctx context.Context, s *pgtest.Server) (*pgconn.PgConn, error) {
	return pgconn.Connect(ctx, s.DSN(pgtest.SuperUser, pgtest.SuperPassword, "postgres"))
}

// otherBackendsSQL counts client backends of the bench user other than the
// asking one: the server connections some target holds, or direct's run.
const otherBackendsSQL = `SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() AND usename = $1`

// terminateSQL ends every client backend of the bench user but the asking one.
const terminateSQL = `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() AND usename = $1`

// isolateDirect closes every server connection the poolers hold, on the
// primary and the replica, and waits until pg_stat_activity shows none of
// the bench user's backends left. Each pooler notices on its own
// (PgBouncer watches its idle server sockets; pgone checks a connection
// before it hands it out; pgpool's child reconnects); runPlan's refill
// reopens them before the pooler's next cell. It returns how many it closed.
func isolateDirect(ctx context.Context, env *Env) (int, error) {
	closed := 0
	for _, s := range []*pgtest.Server{env.cluster.Primary, env.cluster.Replica} {
		n, err := terminateAndWait(ctx, s, env.user, 15*time.Second)
		closed += n
		if err != nil {
			return closed, err
		}
	}
	return closed, waitReaped(ctx, env, 15*time.Second)
}

// serverProcs counts the processes of the primary's and the replica's trees.
func serverProcs(env *Env) int {
	n := 0
	for _, pid := range env.serverPids() {
		n += len(proc.TreePids(pid, false))
	}
	return n
}

// reapSlack is how many processes above the quiet count still count as
// quiet: autovacuum workers come and go.
const reapSlack = 3

// waitReaped waits until the servers' process trees are back to their
// quiet size (env.quietProcs): pg_stat_activity forgets a terminated
// backend before the process has exited and been reaped, and hundreds of
// exits cost CPU that must not land in direct's run (nor in its PG CPU,
// which counts reaped children).
func waitReaped(ctx context.Context, env *Env, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		n := serverProcs(env)
		if n <= env.quietProcs+reapSlack {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d server processes left after %s, %d when quiet", n, limit, env.quietProcs)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// stopPoolers stops every pooler before the closing lone runs; the
// cleanup's later stop of each is a no-op.
func stopPoolers(ctx context.Context, env *Env) error {
	for _, t := range env.targets {
		if t.stop == nil {
			continue
		}
		if err := t.stop(); err != nil {
			env.logf("stop %s: %v", t.Name, err)
		}
	}
	if _, err := isolateDirect(ctx, env); err != nil {
		return err
	}
	return nil
}

func terminateAndWait(ctx context.Context, s *pgtest.Server, user string, limit time.Duration) (int, error) {
	c, err := superConn(ctx, s)
	if err != nil {
		return 0, err
	}
	defer c.Close(context.Background())
	n, err := queryInt(ctx, c, terminateSQL, user)
	if err != nil {
		return 0, err
	}
	deadline := time.Now().Add(limit)
	for {
		left, err := queryInt(ctx, c, otherBackendsSQL, user)
		if err != nil || left == 0 {
			return n, err
		}
		if time.Now().After(deadline) {
			return n, fmt.Errorf("port %d: %d backends of %s still open %s after pg_terminate_backend", s.Port, left, user, limit)
		}
		// Terminating sends a signal; the backend exits on its own time.
		// Terminate again, since a pooler may have reconnected meanwhile.
		if m, err := queryInt(ctx, c, terminateSQL, user); err == nil {
			n += m
		}
		select {
		case <-ctx.Done():
			return n, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func queryInt(ctx context.Context, c *pgconn.PgConn, sql string, args ...string) (int, error) {
	params := make([][]byte, len(args))
	for i, a := range args {
		params[i] = []byte(a)
	}
	res := c.ExecParams(ctx, sql, params, nil, nil, nil).Read()
	if res.Err != nil {
		return 0, res.Err
	}
	if len(res.Rows) != 1 || len(res.Rows[0]) != 1 {
		return 0, fmt.Errorf("%s: want one value", truncate(sql, 40))
	}
	var v int
	_, err := fmt.Sscan(string(res.Rows[0][0]), &v)
	return v, err
}

// backendWatch samples, while a direct cell runs, how many of the bench
// user's backends exist on the primary besides the run's own clients: the
// evidence that direct ran alone (its peak is recorded with the result).
type backendWatch struct {
	stop chan struct{}
	done chan struct{}
	peak int
}

func watchBackends(ctx context.Context, env *Env, ownClients int) *backendWatch {
	w := &backendWatch{stop: make(chan struct{}), done: make(chan struct{}), peak: -1}
	go func() {
		defer close(w.done)
		c, err := superConn(ctx, env.cluster.Primary)
		if err != nil {
			return
		}
		defer c.Close(context.Background())
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			if n, err := queryInt(ctx, c, otherBackendsSQL, env.user); err == nil {
				w.peak = max(w.peak, n-ownClients)
			}
			select {
			case <-w.stop:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return w
}

// finish stops sampling and returns the largest count of foreign backends
// seen (the run's clients subtracted; -1 if none was read).
func (w *backendWatch) finish() int {
	close(w.stop)
	<-w.done
	return max(w.peak, -1)
}

// isolation is what the run saw of other targets' backends around its
// direct cells.
type isolation struct {
	cells       int // direct pgbench runs sampled
	closedMax   int // most server connections closed before one direct run
	foreignPeak int // most foreign backends beside any direct run (-1: none sampled)
}

// directIsolation summarizes every direct run's isolation evidence.
func (r *Report) directIsolation() isolation {
	iso := isolation{foreignPeak: -1}
	for _, c := range r.Cells {
		if c.w == nil || c.w.Pgbench == nil {
			continue
		}
		for _, res := range c.Runs["direct"] {
			iso.cells++
			iso.closedMax = max(iso.closedMax, res.ClosedBefore)
			iso.foreignPeak = max(iso.foreignPeak, res.OtherBackends)
		}
	}
	return iso
}

// checkSection renders the check for the report.
func checkSection(b *strings.Builder, checks []DirectCheck, isolated bool, iso isolation) {
	fmt.Fprintf(b, "## Check: direct against a lone pgbench run\n\n")
	how := "Before every direct cell every server connection the poolers held was closed (pg_terminate_backend on the primary and the replica, then waited until pg_stat_activity showed none)."
	if !isolated {
		how = "**-isolate-direct=false**: direct ran beside the poolers' open server connections."
	}
	fmt.Fprintf(b, "%s The lone runs went first, before any pooler started, and again at the end after the poolers stopped. Direct at %d clients must be within %.0f%% of them, or the run fails.\n\n",
		how, checkClients, checkTolerance*100)
	if iso.cells > 0 {
		foreign := "not sampled"
		if iso.foreignPeak >= 0 {
			foreign = fmt.Sprint(iso.foreignPeak)
		}
		fmt.Fprintf(b, "Direct pgbench runs: %d; at most %d server connections closed before one; most backends of other targets seen on the primary during any of them (sampled every 0.5s from pg_stat_activity): %s.\n\n",
			iso.cells, iso.closedMax, foreign)
	}
	if len(checks) == 0 {
		fmt.Fprintf(b, "Not made: the plan has no select-only cell at %d clients with direct.\n\n", checkClients)
		return
	}
	writeRow(b, "workload", "clients", "lone TPS (runs)", "direct TPS", "direct / lone", "verdict")
	writeSep(b, 6)
	for _, c := range checks {
		runs := make([]string, len(c.LoneRuns))
		for i, v := range c.LoneRuns {
			runs[i] = fmt.Sprintf("%.0f", v)
		}
		verdict := "pass"
		if !c.Pass {
			verdict = "**FAIL**: " + c.Why
		}
		writeRow(b, c.Workload, fmt.Sprint(c.Clients), fmt.Sprintf("%.0f (%s)", c.LoneTPS, strings.Join(runs, ", ")),
			fmt.Sprintf("%.0f", c.DirectTPS), fmt.Sprintf("%.2f", c.Ratio), verdict)
	}
	b.WriteString("\n")
}

package main

import (
	"context"
	"fmt"
	"time"
)

// warmUpRounds bounds the warm-up runs per target and database; so does
// a time budget of eight run lengths (at least 20s).
const warmUpRounds = 30

// warmUp fills every pooler's pool and PostgreSQL's caches, and measures
// how long logins take on each target. Pools fill lazily and slowly:
// PgBouncer opens one server connection at a time, at a client's first
// query, and a PostgreSQL login costs a fork. So it repeats a short
// select-only run at the plan's largest pgbench client count until the
// proxy holds a server connection per client, or its server connections
// and TPS stopped growing; its numbers are not kept.
func warmUp(ctx context.Context, env *Env, plan []Cell) {
	clients, fill := 10, 10
	for _, c := range plan {
		if c.W.Pgbench != nil {
			clients = max(clients, min(c.Clients, env.poolSize))
		}
		fill = max(fill, min(c.Clients, env.poolSize))
	}
	pgPorts := []int{env.cluster.Primary.Port, env.cluster.Replica.Port}
	// -T keeps every client busy at once, so lazily filled pools (PgBouncer
	// opens server connections at a client's first query) reach the size
	// the cells will need.
	w := &Workload{Name: "warm-up", Pgbench: []string{"-S"}, Duration: 2 * time.Second}
	for _, t := range env.targets {
		seen := map[string]bool{}
		for _, mode := range []PoolMode{Transaction, Session, Split} {
			db, _ := t.db(mode)
			if seen[db] {
				continue
			}
			seen[db] = true
			pid := t.proxyPid()
			// Server connections of this database are those added to what
			// the proxy held before (PgBouncer serves two databases).
			base := 0
			if pid != 0 {
				base = serverConns(pid, pgPorts)
				held, errText := fillPool(ctx, env, t, db, fill)
				env.logf("warm-up %s (%s): held %d clients at once, %d server connections %s",
					t.Name, db, held, serverConns(pid, pgPorts)-base, errText)
			}
			prevTPS, prevConns := 0.0, -1
			began := time.Now()
			for round := 1; round <= warmUpRounds; round++ {
				res := runPgbench(ctx, env, t, db, w, clients)
				if ctx.Err() != nil {
					return
				}
				conns := -1
				if pid != 0 {
					conns = serverConns(pid, pgPorts) - base
				}
				// direct has no pool: one round warms PostgreSQL's caches.
				full := conns >= clients || pid == 0
				flat := res.TPS < prevTPS*1.1 && conns <= prevConns
				spent := time.Since(began) > max(20*time.Second, 8*env.duration)
				if (res.Err != "" && round >= 3) || full || flat || spent || round == warmUpRounds {
					env.logf("warm-up %s (%s, %d clients): %.0f tps, %d server connections after %d rounds %s",
						t.Name, db, clients, res.TPS, conns, round, res.Err)
					break
				}
				prevTPS, prevConns = max(prevTPS, res.TPS), conns
			}
		}
	}
}

// runPlan runs every cell, interleaving the targets (A B C D, B C D A, ...:
// the order rotates every round, see roundOrder) so slow drifts of a shared
// machine hit every target alike. Before each direct cell the poolers'
// server connections are closed (isolateDirect): PostgreSQL serves direct
// alone, as it would without a pooler.
func runPlan(ctx context.Context, env *Env, plan []Cell, rep *Report) error {
	total := len(plan) * env.reps * len(env.targets)
	done := 0
	var eta etaEstimate
	round := 0
	var pools refillTracker
	for ci, cell := range plan {
		for r := 0; r < env.reps; r++ {
			order := roundOrder(env.targets, round)
			round++
			rep.addOrder(ci, order)
			for _, t := range order {
				if err := ctx.Err(); err != nil {
					return err
				}
				if err := t.alive(); err != nil {
					return err
				}
				closed := 0
				if t.Name == "direct" && env.isolateDirect {
					var err error
					if closed, err = isolateDirect(ctx, env); err != nil {
						return fmt.Errorf("closing the poolers' server connections before direct: %w", err)
					}
					pools.drained()
				}
				if db, _ := t.db(cell.W.Mode); t.proxyPid() != 0 && pools.needsRefill(t.Name+"/"+db) {
					refill(ctx, env, t, cell)
				}
				began := time.Now()
				res := runCell(ctx, env, t, cell)
				res.ClosedBefore = closed
				if ctx.Err() != nil {
					return ctx.Err()
				}
				rep.add(ci, t.Name, res)
				done++
				eta.record(cell.W.Name, time.Since(began))
				env.logf("[%d/%d] %s rep %d/%d %-10s %s | ~%s left",
					done, total, cell, r+1, env.reps, t.Name, res.short(cell.W), fmtDuration(eta.left(plan, ci, r, env)))
				// Let closed connections drain before the next target.
				select {
				case <-time.After(100 * time.Millisecond):
				case <-ctx.Done():
				}
			}
		}
	}
	return nil
}

// refillTracker knows which pooler databases ("target/db") must reopen
// their server connections before their next cell.
type refillTracker struct {
	// refilled holds the databases reopened since isolateDirect last closed
	// every server connection; nil until it first does (the warm-up filled
	// them).
	refilled map[string]bool
}

// drained records that every pooler's server connections were closed.
func (p *refillTracker) drained() { p.refilled = map[string]bool{} }

// needsRefill reports whether key must be refilled now, and counts it as
// refilled from then on.
func (p *refillTracker) needsRefill(key string) bool {
	if p.refilled == nil || p.refilled[key] {
		return false
	}
	p.refilled[key] = true
	return true
}

// refill reopens the server connections isolateDirect closed, before a
// pooler's cell and outside its measurement, so a pooler is not charged
// for logins direct made it redo: one short select-only run at the cell's
// client count (capped at the pool size) on the database the cell uses.
func refill(ctx context.Context, env *Env, t *Target, cell Cell) {
	db, _ := t.db(cell.W.Mode)
	w := &Workload{Name: "refill", Pgbench: []string{"-S"}, Duration: time.Second}
	if res := runPgbench(ctx, env, t, db, w, max(1, min(cell.Clients, env.poolSize))); res.failed() {
		env.logf("refill %s (%s): %s", t.Name, db, res.Err)
	}
}

// etaEstimate predicts the time left from the runs so far, per workload:
// a storm run and a pgbench run take very different times.
type etaEstimate struct {
	sum   map[string]time.Duration
	n     map[string]int
	total time.Duration
	runs  int
}

func (e *etaEstimate) record(workload string, d time.Duration) {
	if e.sum == nil {
		e.sum, e.n = map[string]time.Duration{}, map[string]int{}
	}
	e.sum[workload] += d
	e.n[workload]++
	e.total += d
	e.runs++
}

// left estimates the runs after those of cell index ci, repetition rep
// (the current repetition counts as done).
func (e *etaEstimate) left(plan []Cell, ci, rep int, env *Env) time.Duration {
	var left time.Duration
	for i := ci; i < len(plan); i++ {
		runs := env.reps * len(env.targets)
		if i == ci {
			runs = (env.reps - rep - 1) * len(env.targets)
		}
		avg := e.total / time.Duration(max(1, e.runs))
		if n := e.n[plan[i].W.Name]; n > 0 {
			avg = e.sum[plan[i].W.Name] / time.Duration(n)
		} else if plan[i].W.Pgbench != nil {
			avg = env.duration + 2*time.Second
		}
		left += time.Duration(runs) * avg
	}
	return left
}

// runCell runs one cell against one target and measures the proxy and the
// servers around it.
func runCell(ctx context.Context, env *Env, t *Target, cell Cell) Result {
	db, _ := t.db(cell.W.Mode)
	proxy := rootsOf(t.proxyPid())
	servers := env.serverPids()
	var cacheErr error
	if t.cache {
		cacheErr = flushCache(ctx, env, t) // before the CPU is counted
	}
	proxyBefore, serverBefore := treeUsage(proxy...), treeUsage(servers...)
	s := startSampler(proxy, time.Second)
	var watch *backendWatch
	if t.Name == "direct" && cell.W.Pgbench != nil {
		watch = watchBackends(ctx, env, cell.Clients)
	}
	var before cacheCounters
	if t.cache && cacheErr == nil {
		before, cacheErr = readCacheCounters(ctx, env, t)
	}
	var res Result
	switch {
	case cell.W.Run != nil:
		res = cell.W.Run(ctx, env, t, db, cell.Clients)
	case cell.W.Mix != nil:
		res = runMix(ctx, env, t, db, cell.W, cell.Clients)
	default:
		res = runPgbench(ctx, env, t, db, cell.W, cell.Clients)
	}
	if t.cache && cacheErr == nil {
		var after cacheCounters
		if after, cacheErr = readCacheCounters(ctx, env, t); cacheErr == nil {
			res.CacheHits, res.CacheMisses, res.CacheMeasured = after.hits-before.hits, after.misses-before.misses, true
		}
	}
	if cacheErr != nil && ctx.Err() == nil {
		env.logf("%s: SHOW CACHE: %v", t.Name, cacheErr)
	}
	peak := s.finish()
	res.OtherBackends = -1
	if watch != nil {
		res.OtherBackends = watch.finish()
	}
	if res.ProxyRSSKB == 0 {
		res.ProxyRSSKB = peak
	}
	if len(proxy) > 0 {
		res.ProxyCPU = treeUsage(proxy...).cpu - proxyBefore.cpu
	}
	res.ServerCPU = treeUsage(servers...).cpu - serverBefore.cpu
	if err := t.alive(); err != nil && res.Err == "" {
		res.Err = err.Error()
	}
	return res
}

// short is the one-line progress summary of a result.
func (r Result) short(w *Workload) string {
	unit := w.Unit
	if unit == "" {
		unit = "tps"
	}
	s := fmt.Sprintf("%.0f %s, avg %.3f ms, p99 %.3f ms", r.TPS, unit, r.AvgMs, r.P99Ms)
	if w.Metric == MetricHeld {
		s = fmt.Sprintf("held %d, %.0f KiB/client, %.0f conn/s", r.Held, r.MemPerClientK, r.TPS)
	}
	if r.CacheMeasured {
		if hr := hitRatio(r.CacheHits, r.CacheMisses); hr >= 0 {
			s += fmt.Sprintf(", cache hits %.1f%%", hr*100)
		} else {
			s += ", no cache lookups"
		}
	}
	if r.VersionReads > 0 {
		s += fmt.Sprintf(", %d stale of %d reads", r.StaleReads, r.VersionReads)
	}
	if r.Attempts > 1 {
		s += " (rerun: the first run spent its time connecting)"
	}
	if r.Err != "" {
		s += " | failed: " + truncate(r.Err, 140)
	}
	return s
}

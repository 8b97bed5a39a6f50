package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pgone/pgone/config"
	"github.com/pgone/pgone/pool"
	"github.com/pgone/pgone/proxy"
	"github.com/pgone/pgone/router"
	"github.com/pgone/pgone/tuner"
)

// wireTuner builds the tuner: SHOW QUERIES and SHOW TUNER in the console
// and its metrics always; the proxy's samples (hooks beside the cache's)
// only when tuner.query_stats or a loop that needs them is on; the cache
// admission when a database is in cache mode auto. The returned func starts its loops (if
// any is on) until ctx ends.
func wireTuner(cfg *config.Config, srv *proxy.Server, pools *pool.Manager, reg prometheus.Registerer, log *slog.Logger) (*tuner.Tuner, error) {
	knobs := &poolKnobs{pools: pools, srv: srv}
	bounds := tuner.PoolBounds{MinPoolSize: cfg.Pool.MinPoolSize, MaxPoolSize: cfg.Tuner.MaxPoolSize,
		MaxServerConnections: cfg.Pool.MaxServerConnections}
	tu := tuner.New(cfg.Tuner, bounds, knobs, router.Normalize, log.With("part", "tuner"))
	if err := tu.RegisterMetrics(reg); err != nil {
		return nil, err
	}
	srv.SetShow("queries", func(order string) (proxy.ConsoleTable, error) {
		tb, err := tu.QueriesTable(order)
		return proxy.ConsoleTable(tb), err
	})
	srv.SetShow("tuner", func(arg string) (proxy.ConsoleTable, error) {
		if arg != "" {
			return proxy.ConsoleTable{}, fmt.Errorf("SHOW TUNER takes no argument")
		}
		return proxy.ConsoleTable(tu.TunerTable()), nil
	})
	if cfg.Tuner.WantsSamples() {
		srv.AddHooks(tunerHooks{tu})
	}
	if cfg.CacheAuto() && cfg.Tuner.CacheAdmission != tuner.ModeOff { // admits only for databases in auto
		srv.SetCacheAdmission(tu)
	}
	if cfg.Tuner.PGSettings != tuner.ModeOff {
		tu.SetSettingsSource(&pgSettings{cfg: cfg, pools: pools, log: log.With("part", "tuner")})
	}
	if cfg.Tuner.Runs() {
		log.Info("tuner on", "pool_size", cfg.Tuner.PoolSize, "cache_admission", cfg.Tuner.CacheAdmission,
			"pg_settings", cfg.Tuner.PGSettings, "apply_pg_settings", cfg.Tuner.ApplyPGSettings, "interval", cfg.Tuner.Interval)
	}
	return tu, nil
}

// runTuner runs the tuner's loops until ctx ends, if any loop is on.
func runTuner(ctx context.Context, tu *tuner.Tuner) (stop func()) {
	if tu == nil || !tu.Config().Runs() {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		tu.Run(ctx)
	}()
	return func() { cancel(); <-done }
}

// tunerHooks feed the tuner one sample per request (its first statement
// names it).
type tunerHooks struct{ t *tuner.Tuner }

func (h tunerHooks) BeforeSend(context.Context, *proxy.PlanView) ([]byte, bool) { return nil, false }

func (h tunerHooks) AfterReply(_ context.Context, p *proxy.PlanView, r proxy.ReplySample) {
	route := tuner.RoutePrimary
	if r.Replica {
		route = tuner.RouteReplica
	}
	h.record(p, r, route)
}

// Answered counts a request the cache answered.
func (h tunerHooks) Answered(_ context.Context, p *proxy.PlanView, r proxy.ReplySample) {
	h.record(p, r, tuner.RouteCache)
}

func (h tunerHooks) record(p *proxy.PlanView, r proxy.ReplySample, route tuner.Route) {
	if p.Len() == 0 {
		return
	}
	st := p.Statement(0)
	h.t.Record(tuner.Sample{Fingerprint: st.Fingerprint, Database: p.Database(), Text: st.Text,
		ReadTables: st.ReadTables, Writes: !st.Cacheable || len(st.WriteTables) > 0, Route: route,
		Error: r.Outcome != proxy.OutcomeOK, Rows: r.Rows, Bytes: r.Bytes,
		ServerTime: r.ServerTime, WaitTime: r.WaitTime, CacheFill: p.CacheFill()})
}

func (h tunerHooks) AfterCommit(_ context.Context, c proxy.CommitInfo) {
	h.t.RecordWrite(c.Database, c.WriteTables)
}

// poolKnobs are the pools as the tuner sees them, by name, and the
// replicas' weights.
type poolKnobs struct {
	pools *pool.Manager
	srv   *proxy.Server
	mu    sync.Mutex
	keys  map[string]pool.Key // from the last Pools call
}

func poolName(k pool.Key) string {
	name := k.Database + "/" + k.User
	if k.Replica != "" {
		name += "@" + k.Replica
	}
	return name
}

func (k *poolKnobs) Pools() []tuner.PoolState {
	sts := k.pools.Status()
	out := make([]tuner.PoolState, 0, len(sts))
	keys := make(map[string]pool.Key, len(sts))
	for _, st := range sts {
		name := poolName(st.Key)
		keys[name] = st.Key
		tot := st.Counters.Totals()
		out = append(out, tuner.PoolState{Name: name, Size: st.Size, Active: st.Active, Idle: st.Idle, Waiting: st.Waiting,
			Queries: tot.Queries, QueryTime: tot.QueryTime, Waits: tot.Waits, WaitTime: tot.WaitTime})
	}
	k.mu.Lock()
	k.keys = keys
	k.mu.Unlock()
	return out
}

func (k *poolKnobs) SetPoolSize(name string, n int) bool {
	k.mu.Lock()
	key, ok := k.keys[name]
	k.mu.Unlock()
	return ok && k.pools.SetSize(key, n)
}

// Replicas lists the split databases' replicas with their pools' counters
// summed (every user's pool of the replica).
func (k *poolKnobs) Replicas() []tuner.ReplicaState {
	ws := k.srv.ReplicaWeights()
	if len(ws) == 0 {
		return nil
	}
	type key struct{ db, addr string }
	sums := map[key]pool.Totals{}
	for _, st := range k.pools.Status() {
		if st.Key.Replica != "" {
			kk := key{st.Key.Database, st.Key.Replica}
			sums[kk] = sums[kk].Add(st.Counters.Totals())
		}
	}
	out := make([]tuner.ReplicaState, 0, len(ws))
	for _, w := range ws {
		tot := sums[key{w.Database, w.Addr}]
		out = append(out, tuner.ReplicaState{Database: w.Database, Addr: w.Addr, Usable: w.Usable, Lag: w.Lag,
			Weight: w.Weight, Queries: tot.Queries, QueryTime: tot.QueryTime})
	}
	return out
}

func (k *poolKnobs) SetReplicaWeight(database, addr string, w int64) bool {
	return k.srv.SetReplicaWeight(database, addr, w)
}

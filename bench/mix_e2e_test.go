package main

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/pgone/pgone/internal/pgtest"
)

// TestMixesEndToEnd makes every dataset at a tiny size on a real
// PostgreSQL and runs each Go-client workload of the cache and seed suites
// for a second at two clients straight against it: every statement must
// run (the SQL is valid for the data the bench makes), the writers must
// commit, and the cache workload's reads, checked against its writer's
// versions, must find no stale read on PostgreSQL itself (a checker that
// flagged the database would flag every cache).
func TestMixesEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL (about 10s)")
	}
	cluster := pgtest.New(t, pgtest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	env := &Env{
		cluster: cluster, user: "bench", password: "bench", db: "bench",
		duration: time.Second, idleStall: 2 * time.Second, began: time.Now(), out: io.Discard,
	}
	for _, sql := range []string{"CREATE ROLE bench LOGIN PASSWORD 'bench'", "CREATE DATABASE bench OWNER bench"} {
		if err := cluster.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	bindir, err := pgtest.BinDir()
	if err != nil {
		t.Fatal(err)
	}
	if env.pgbench, err = findProgram("pgbench", bindir); err != nil {
		t.Fatal(err)
	}
	if err := pgbenchInit(ctx, env, 1); err != nil {
		t.Fatal(err)
	}
	var plan []Cell
	for i := range workloads {
		if workloads[i].Mix != nil {
			plan = append(plan, Cell{W: &workloads[i], Clients: 2})
		}
	}
	if err := prepareData(ctx, env, plan, 2000); err != nil {
		t.Fatal(err)
	}
	direct := &Target{Name: "direct", Port: cluster.Primary.Port}
	for _, c := range plan {
		res := runMix(ctx, env, direct, env.db, c.W, c.Clients)
		if res.Err != "" || res.Failed > 0 || res.TPS <= 0 {
			t.Errorf("%s: %+v", c, res)
			continue
		}
		if len(res.Stmts) != len(c.W.Mix.Ops) && c.W.Name != "cache-aggregates" {
			// cache-aggregates' 1% write may not come up in a second.
			t.Errorf("%s ran %d of its %d statements: %+v", c, len(res.Stmts), len(c.W.Mix.Ops), res.Stmts)
		}
		if c.W.Mix.Writer != nil && res.Writes == 0 {
			t.Errorf("%s: the writer committed nothing", c)
		}
		if c.W.Name == "cache-aggregates" {
			if res.VersionReads == 0 || res.StaleReads != 0 {
				t.Errorf("%s: %d stale of %d checked reads on PostgreSQL itself", c, res.StaleReads, res.VersionReads)
			}
		}
		t.Logf("%s: %.0f stmt/s, p99 %.1f ms, %d writes, %d/%d stale", c, res.TPS, res.P99Ms, res.Writes, res.StaleReads, res.VersionReads)
	}

	// The tuner suite's mix, counted per window (tunersuite.go): every
	// statement runs, and each of two one-second windows counts some.
	tw := tunerWorkload(1)
	tp := tunerPlan{Clients: 2, Duration: 2 * time.Second, Window: time.Second}
	var tr TunerRun
	runWindows(ctx, env, direct, tw.Mix, tp, &tr)
	if tr.Err != "" || tr.Failed > 0 || len(tr.Windows) != 2 || tr.Windows[0].Stmts == 0 || tr.Windows[1].Stmts == 0 {
		t.Errorf("tuner mix: %+v", tr)
	} else if len(tr.Stmt) != len(tw.Mix.Ops) || tr.Stmts != tr.Windows[0].Stmts+tr.Windows[1].Stmts {
		t.Errorf("tuner mix ran %d of its %d statements, %d in all: %+v", len(tr.Stmt), len(tw.Mix.Ops), tr.Stmts, tr.Stmt)
	}
	t.Logf("tuner mix: windows %+v, p99 %.1f ms", tr.Windows, tr.P99Ms)

	// The check must be able to fail: readers that report a version five
	// behind the one they saw are stale from the first read on (the writer
	// records the version it found before the clients start, and writes
	// once a second: a read cannot have begun five writes before the
	// version it saw was committed, in a one-second run).
	agg := workloadNamed(t, "cache-aggregates")
	planted := *agg
	planted.Mix = &Mix{
		Ops:    []Op{{Name: "old-version", Weight: 1, Version: true, SQL: `SELECT abalance - 5 FROM pgbench_accounts WHERE aid = 0`}},
		Writer: agg.Mix.Writer,
	}
	res := runMix(ctx, env, direct, env.db, &planted, 2)
	if res.VersionReads == 0 || res.StaleReads != res.VersionReads || res.StaleLag < 4 {
		t.Errorf("planted stale reads: %d stale of %d (worst lag %d), want all", res.StaleReads, res.VersionReads, res.StaleLag)
	}
}

func workloadNamed(t *testing.T, name string) *Workload {
	for i := range workloads {
		if workloads[i].Name == name {
			return &workloads[i]
		}
	}
	t.Fatalf("no workload %s", name)
	return nil
}

package main

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// TestRoundOrder: every round runs the targets in a different order and,
// over as many rounds as targets, every target runs once in every position.
func TestRoundOrder(t *testing.T) {
	targets := []string{"direct", "pgbouncer", "pgpool", "pgone"}
	seen := map[string]bool{}
	position := map[string]map[int]bool{}
	for round := range len(targets) {
		order := roundOrder(targets, round)
		if len(order) != len(targets) {
			t.Fatalf("round %d: %v drops targets", round, order)
		}
		key := strings.Join(order, ",")
		if seen[key] {
			t.Errorf("round %d repeats order %s", round, key)
		}
		seen[key] = true
		for i, name := range order {
			if position[name] == nil {
				position[name] = map[int]bool{}
			}
			position[name][i] = true
		}
	}
	for name, pos := range position {
		if len(pos) != len(targets) {
			t.Errorf("%s ran in positions %v, want all %d", name, pos, len(targets))
		}
	}
	if got := roundOrder(targets, 1); strings.Join(got, ",") != "pgbouncer,pgpool,pgone,direct" {
		t.Errorf("round 1 = %v", got)
	}
	if !slices.Equal(targets, []string{"direct", "pgbouncer", "pgpool", "pgone"}) {
		t.Error("roundOrder changed its input")
	}
}

func TestCPUPerTx(t *testing.T) {
	for _, tc := range []struct {
		cpu  float64
		tx   int64
		want float64
	}{
		{1.5, 50_000, 30}, // 1.5 s over 50,000 transactions: 30 µs each
		{0.8, 20_000, 40},
		{0, 1000, 0},   // direct: no proxy CPU
		{1.2, 0, 0},    // nothing completed
		{-0.1, 100, 0}, // a clock glitch is not a number
	} {
		if got := cpuPerTx(tc.cpu, tc.tx); got != tc.want {
			t.Errorf("cpuPerTx(%v, %d) = %v, want %v", tc.cpu, tc.tx, got, tc.want)
		}
	}
	a := Summary{OK: true, ProxyCPUPerTx: 60}
	pb := Summary{OK: true, ProxyCPUPerTx: 37.5}
	if got := cpuRatio(a, pb); got != "1.60" {
		t.Errorf("cpuRatio = %s, want 1.60", got)
	}
	if got := cpuRatio(a, Summary{OK: true}); got != "—" {
		t.Errorf("cpuRatio without PgBouncer's number = %s, want —", got)
	}
	runs := []Result{
		{TPS: 1, ProxyCPU: 1, Tx: 10_000, ServerCPU: 2},
		{TPS: 1, ProxyCPU: 3, Tx: 10_000, ServerCPU: 2},
		{TPS: 1, ProxyCPU: 2, Tx: 10_000, ServerCPU: 2},
	}
	if s := summarize(runs); s.ProxyCPUPerTx != 200 || s.ServerCPUPerTx != 200 {
		t.Errorf("median CPU/tx = %v proxy, %v server; want 200, 200", s.ProxyCPUPerTx, s.ServerCPUPerTx)
	}
}

// TestJudge: direct passes only within 10% of the lone run, either way,
// and a check with a side missing fails rather than passing silently.
func TestJudge(t *testing.T) {
	ok := func(tps float64) Summary { return Summary{OK: true, TPS: tps} }
	for _, tc := range []struct {
		name   string
		lone   []float64
		direct Summary
		pass   bool
	}{
		{"equal", []float64{10_000, 12_000, 11_000}, ok(11_000), true},
		{"9% slower", []float64{10_000}, ok(9_100), true},
		{"10% slower exactly", []float64{10_000}, ok(9_000), true},
		{"11% slower", []float64{10_000}, ok(8_900), false},
		{"the full run's handicap", []float64{7_650}, ok(2_755), false},
		{"11% faster", []float64{10_000}, ok(11_100), false},
		{"no lone run", nil, ok(10_000), false},
		{"direct failed", []float64{10_000}, Summary{}, false},
	} {
		c := judge("select-simple", tc.lone, tc.direct)
		if c.Pass != tc.pass {
			t.Errorf("%s: pass = %v (%s), want %v", tc.name, c.Pass, c.Why, tc.pass)
		}
		if c.Why == "" {
			t.Errorf("%s: no reason given", tc.name)
		}
	}
	c := judge("select-simple", []float64{12_000, 10_000, 11_000}, ok(5_500))
	if c.LoneTPS != 11_000 || c.Ratio != 0.5 {
		t.Errorf("lone median %v, ratio %v; want 11000, 0.5", c.LoneTPS, c.Ratio)
	}
	if c := judge("select-simple", []float64{8_000, 12_000}, ok(7_000)); c.Pass || !strings.Contains(c.Why, "lone runs themselves spread 50%") {
		t.Errorf("a failure over a noisy yardstick must say so: %s", c.Why)
	}
	if c := judge("select-simple", []float64{10_000, 10_500}, ok(7_000)); strings.Contains(c.Why, "spread") {
		t.Errorf("a steady yardstick is not blamed: %s", c.Why)
	}
	failed := checksFailed([]DirectCheck{judge("a", []float64{100}, ok(100)), c})
	if len(failed) != 1 || !strings.Contains(failed[0], "select-simple at 10 clients") || !strings.Contains(failed[0], "0.50x") {
		t.Errorf("failed checks = %q", failed)
	}
}

// TestCheckWorkloads: the check covers select-only cells at 10 clients on
// the primary, not the split (reads go to the replica) nor TPC-B.
func TestCheckWorkloads(t *testing.T) {
	plan, err := buildPlan(false, SuiteMain, nil)
	if err != nil {
		t.Fatal(err)
	}
	plan, err = withClients(plan, []string{"1", "10"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, w := range checkWorkloads(plan) {
		names = append(names, w.Name)
	}
	want := []string{"select-simple", "select-extended", "select-prepared"}
	if !slices.Equal(names, want) {
		t.Errorf("checked %v, want %v", names, want)
	}
	one, _ := withClients(plan, []string{"1"})
	if got := checkWorkloads(one); len(got) != 0 {
		t.Errorf("a plan without 10-client cells checks %d workloads", len(got))
	}
}

func TestParsePgbenchTransactions(t *testing.T) {
	if r := parsePgbench(pgbenchOut, ""); r.Tx != 67751 {
		t.Errorf("Tx = %d, want 67751", r.Tx)
	}
	r := parsePgbench("number of transactions actually processed: 1000/1000\ntps = 500.0 (without initial connection time)\n", "")
	if r.Tx != 1000 || r.noTx {
		t.Errorf("fixed-length run: Tx = %d, noTx %v; want 1000, false", r.Tx, r.noTx)
	}
}

// TestReportFairness renders a run whose direct check fails and checks the
// report shows the verdict, the isolation evidence, the CPU per
// transaction with its ratio to PgBouncer's and the rotated orders.
func TestReportFairness(t *testing.T) {
	plan, err := buildPlan(false, SuiteMain, []string{"select-simple"})
	if err != nil {
		t.Fatal(err)
	}
	plan, _ = withClients(plan, []string{"10"})
	r := &Report{Meta: Meta{Date: time.Date(2026, 12, 3, 13, 0, 0, 0, time.UTC), Mode: "full", Reps: 2, PoolSize: 20,
		PGSettings: map[string]string{"max_connections": "2000"}, IsolateDirect: true}}
	targets := []*Target{{Name: "direct"}, {Name: "pgbouncer"}, {Name: "pgone"}}
	for _, tg := range targets {
		r.Targets = append(r.Targets, TargetInfo{Name: tg.Name, Setup: tg.Name})
	}
	for _, c := range plan {
		r.Cells = append(r.Cells, CellResult{Workload: c.W.Name, Clients: c.Clients, Runs: map[string][]Result{}, w: c.W})
	}
	for rep := range 2 {
		r.addOrder(0, roundOrder(targets, rep))
		r.add(0, "direct", Result{TPS: 2755, Tx: 11_000, ServerCPU: 9.2, ClosedBefore: 600, OtherBackends: 0})
		r.add(0, "pgbouncer", Result{TPS: 5000, Tx: 20_000, ProxyCPU: 0.5, ServerCPU: 4, OtherBackends: -1})
		r.add(0, "pgone", Result{TPS: 4000, Tx: 16_000, ProxyCPU: 0.8, ServerCPU: 4, OtherBackends: -1})
	}
	r.judge(plan, map[string][]float64{"select-simple": {7600, 7700}})
	if len(r.Checks) != 1 || r.Checks[0].Pass {
		t.Fatalf("checks = %+v, want one failure", r.Checks)
	}
	md := r.markdown("x.svg")
	for _, want := range []string{
		"## Check: direct against a lone pgbench run",
		"| select-simple | 10 | 7650 (7600, 7700) | 2755 | 0.36 | **FAIL**: direct 2755 TPS is 0.36x the lone run's 7650: NOT within 10% |",
		"at most 600 server connections closed before one; most backends of other targets seen on the primary during any of them (sampled every 0.5s from pg_stat_activity): 0.",
		"## Proxy CPU per transaction",
		"| select-simple | 10 | 836 | 25 | 50 (2.00) |",
		"| 10 | pgone | 4000 | 0.000 | 0.000 | 0.000 | 1.45 | 0.80 | 0 | 0.8 | 50 | 2.00 |",
		"select-simple c=10 #1: direct pgbouncer pgone; select-simple c=10 #2: pgbouncer pgone direct",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}

// TestRefillTracker: nothing is refilled before direct first closed the
// pools (the warm-up filled them); after each closing, every pooler
// database is refilled once, before its next cell, not again.
func TestRefillTracker(t *testing.T) {
	var p refillTracker
	if p.needsRefill("pgbouncer/bench_tx") {
		t.Error("refill before any direct cell")
	}
	p.drained()
	for _, key := range []string{"pgbouncer/bench_tx", "pgone/bench", "pgbouncer/bench_session"} {
		if !p.needsRefill(key) {
			t.Errorf("%s not refilled after direct closed it", key)
		}
		if p.needsRefill(key) {
			t.Errorf("%s refilled twice", key)
		}
	}
	p.drained()
	if !p.needsRefill("pgone/bench") {
		t.Error("a second closing must refill again")
	}
}

// TestQuickPlanIsChecked: the quick run has a cell the direct check covers.
func TestQuickPlanIsChecked(t *testing.T) {
	plan, err := buildPlan(true, SuiteMain, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(checkWorkloads(plan)) == 0 {
		t.Error("the quick plan has no select-only cell at 10 clients: its direct cells go unchecked")
	}
}

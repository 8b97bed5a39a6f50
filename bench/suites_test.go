package main

import (
	"encoding/xml"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestSuitePlans: a run without -workloads runs one suite only (make
// bench does not grow by the cache and seed workloads); -workloads names
// workloads of any suite.
func TestSuitePlans(t *testing.T) {
	for _, suite := range []string{SuiteMain, SuiteCache, SuiteSeed} {
		plan, err := buildPlan(false, suite, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(plan) == 0 {
			t.Errorf("suite %q has no cells", suite)
		}
		for _, c := range plan {
			if c.W.Suite != suite {
				t.Errorf("suite %q plan has %s of suite %q", suite, c, c.W.Suite)
			}
		}
	}
	plan, err := buildPlan(false, SuiteMain, []string{"seed-fts", "cache-hot-simple"})
	if err != nil {
		t.Fatal(err)
	}
	if len(plan) != 3 {
		t.Errorf("named plan %v, want seed-fts c=20 and cache-hot-simple at 10 and 100", plan)
	}
	seed, _ := buildPlan(false, SuiteSeed, nil)
	for _, c := range seed {
		if c.W.Name == "seed-tpcb" || c.W.Name == "seed-select" {
			if c.Clients != 300 {
				t.Errorf("%s: the seed's OLTP runs at 300 clients", c)
			}
		}
		if len(c.W.Seed) == 0 {
			t.Errorf("%s has no seed target to be judged against", c)
		}
	}
}

// TestParseFlagsSuites: -tiny makes a smoke run in one flag, explicit
// flags win over it, and a suite changes the default targets to the cache
// off/on comparison.
func TestParseFlagsSuites(t *testing.T) {
	o, err := parseFlags([]string{"-suite", "seed", "-tiny", "-reps", "2"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.scale != 1 || o.seedRows != 20000 || o.duration != time.Second || o.reps != 2 || o.clients != "2" {
		t.Errorf("-tiny -reps 2 gave scale %d, seed rows %d, duration %s, reps %d, clients %q", o.scale, o.seedRows, o.duration, o.reps, o.clients)
	}
	if o.targets != "direct,pgbouncer,pgone,pgone-cache" {
		t.Errorf("seed suite targets %q", o.targets)
	}
	o, err = parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.targets != "direct,pgbouncer,pgpool,pgone" || o.seedRows != 2_000_000 || o.reps != 3 {
		t.Errorf("defaults changed: targets %q, seed rows %d, reps %d", o.targets, o.seedRows, o.reps)
	}
	if _, err := parseFlags([]string{"-suite", "nope"}, io.Discard); err == nil {
		t.Error("an unknown suite was accepted")
	}
}

// TestHotScript: the hot point reads touch exactly accounts 1..1000.
func TestHotScript(t *testing.T) {
	want := "\\set aid random(1, 1000)\nSELECT abalance FROM pgbench_accounts WHERE aid = :aid;\n"
	if hotScript != want {
		t.Errorf("hot script\n%s\nwant\n%s", hotScript, want)
	}
}

// TestDatasetSQL checks the generated schema: a partition per day covering
// the whole span without gaps, the GIN indexes the seed asks for, and row
// counts that follow -seed-rows.
func TestDatasetSQL(t *testing.T) {
	ev := strings.Join(eventsSQL(7000), ";\n")
	if n := strings.Count(ev, "PARTITION OF events"); n != seedDays {
		t.Errorf("%d partitions, want %d", n, seedDays)
	}
	for d := range seedDays {
		from := seedStart.AddDate(0, 0, d)
		want := "FROM ('" + pgTimestamp(from) + "') TO ('" + pgTimestamp(from.AddDate(0, 0, 1)) + "')"
		if !strings.Contains(ev, want) {
			t.Errorf("events lack the partition %s", want)
		}
	}
	if !strings.Contains(ev, "PARTITION BY RANGE (ts)") || !strings.Contains(ev, "generate_series(1, 7000)") || !strings.Contains(ev, "secs => (g - 1) * 86.4)") {
		t.Errorf("events SQL:\n%s", ev)
	}
	docs := strings.Join(documentsSQL(20000), ";\n")
	for _, want := range []string{"USING gin (tsv)", "to_tsvector('english'", "generate_series(1, 1000) g", "+ 0 * i", "CREATE TABLE search_terms"} {
		if !strings.Contains(docs, want) {
			t.Errorf("documents SQL lacks %q:\n%s", want, docs)
		}
	}
	js := strings.Join(jsondocsSQL(20000), ";\n")
	if !strings.Contains(js, "USING gin (body jsonb_path_ops)") || !strings.Contains(js, "generate_series(1, 2000) g") {
		t.Errorf("jsondocs SQL:\n%s", js)
	}
	if got := sqlTextArray([]string{"a", "it's"}); got != "ARRAY['a','it''s']" {
		t.Errorf("sqlTextArray = %s", got)
	}
	// The writer's events land in the last hour, inside the last partition
	// and inside every dashboard window.
	if !strings.Contains(eventsInsertSQL(), "timestamp '"+pgTimestamp(seedEnd)+"' - random() * interval '1 hour'") {
		t.Errorf("events insert: %s", eventsInsertSQL())
	}
}

// TestParseShowCache reads hits and misses by column name.
func TestParseShowCache(t *testing.T) {
	res := &pgconn.Result{
		FieldDescriptions: []pgconn.FieldDescription{{Name: "mode"}, {Name: "entries"}, {Name: "hits"}, {Name: "misses"}, {Name: "hit_ratio"}},
		Rows:              [][][]byte{{[]byte("on"), []byte("3"), []byte("980"), []byte("20"), []byte("0.9800")}},
	}
	c, err := parseShowCache(res)
	if err != nil || c.hits != 980 || c.misses != 20 {
		t.Fatalf("got %+v, %v", c, err)
	}
	// Today's SHOW CACHE: a totals row (database "*"), then one per database.
	perDB := &pgconn.Result{
		FieldDescriptions: []pgconn.FieldDescription{{Name: "mode"}, {Name: "database"}, {Name: "hits"}, {Name: "misses"}},
		Rows: [][][]byte{
			{[]byte("on"), []byte("*"), []byte("990"), []byte("10")},
			{[]byte("on"), []byte("127.0.0.1:5432/bench"), []byte("900"), []byte("9")},
		},
	}
	if c, err := parseShowCache(perDB); err != nil || c.hits != 990 || c.misses != 10 {
		t.Fatalf("per-database SHOW CACHE: got %+v, %v; want the totals row", c, err)
	}
	if _, err := parseShowCache(&pgconn.Result{FieldDescriptions: res.FieldDescriptions}); err == nil {
		t.Error("no row (cache off) must be an error")
	}
	if hitRatio(0, 0) != -1 || hitRatio(98, 2) != 0.98 {
		t.Error("hitRatio")
	}
}

// TestJudgeGoal: each goal kind against a target that meets it and one
// that does not; cache-only goals say nothing of targets without a cache.
func TestJudgeGoal(t *testing.T) {
	direct := Summary{OK: true, TPS: 100, HitRatio: -1}
	cached := Summary{OK: true, TPS: 2500, P99Ms: 4, HitRatio: 0.99, VersionReads: 500,
		Stmts: []StmtStat{{Name: "a", P99Ms: 2}, {Name: "b", P99Ms: 40}}}
	for _, tc := range []struct {
		goal     SeedTarget
		s        Summary
		clients  int
		applies  bool
		met      bool
		contains string
	}{
		{SeedTarget{Kind: SeedP99, Limit: 50}, cached, 10, true, true, "40.0 ms"}, // the worst statement
		{SeedTarget{Kind: SeedP99, Limit: 30}, cached, 10, true, false, "40.0 ms"},
		{SeedTarget{Kind: SeedP99, Limit: 5}, Summary{OK: true, P99Ms: 4.5}, 10, true, true, "4.5 ms"}, // pgbench: the transaction's
		{SeedTarget{Kind: SeedTPS, Limit: 15000}, cached, 10, true, false, "2500"},
		{SeedTarget{Kind: SeedConns, Limit: 300}, Summary{OK: true}, 300, true, true, "300 clients, 0 failed"},
		{SeedTarget{Kind: SeedConns, Limit: 300}, Summary{OK: true, Failed: 3}, 300, true, false, "3 failed"},
		{SeedTarget{Kind: SeedConns, Limit: 300}, Summary{OK: true}, 100, true, false, "100 clients"},
		{SeedTarget{Kind: SeedHitRatio, Limit: 0.98}, cached, 10, true, true, "99.0%"},
		{SeedTarget{Kind: SeedHitRatio, Limit: 0.98}, direct, 10, false, false, ""},
		{SeedTarget{Kind: SeedXDirect, Limit: 20}, cached, 10, true, true, "25.00×"},
		{SeedTarget{Kind: SeedXDirect, Limit: 20}, direct, 10, false, false, ""},
		{SeedTarget{Kind: SeedNoStale}, cached, 10, true, true, "0 stale of 500"},
		{SeedTarget{Kind: SeedNoStale}, Summary{OK: true, VersionReads: 9, StaleReads: 1}, 10, true, false, "1 stale of 9"},
		{SeedTarget{Kind: SeedNoStale}, Summary{OK: true}, 10, false, false, ""},
		{SeedTarget{Kind: SeedTPS, Limit: 1}, Summary{}, 10, true, false, "failed"},
	} {
		v := judgeGoal(tc.goal, tc.s, direct, tc.clients)
		if v.applies != tc.applies || v.met != tc.met || !strings.Contains(v.value, tc.contains) {
			t.Errorf("goal %+v on %+v: got %+v (%s)", tc.goal, tc.s, v, v)
		}
	}
}

// TestSummarizeMix: per-statement numbers from the clients' records, the
// run's throughput over all statements, failures counted per statement.
func TestSummarizeMix(t *testing.T) {
	recs := []mixClient{
		{lat: map[string][]float64{"a": {1000, 3000}, "b": {10000}}, failed: map[string]int64{}},
		{lat: map[string][]float64{"a": {2000}}, failed: map[string]int64{"c": 2}},
	}
	var res Result
	summarizeMix(&res, recs, 2*time.Second)
	if res.TPS != 2 || res.Tx != 4 || res.Failed != 2 || res.AvgMs != 4 {
		t.Errorf("got TPS %v, tx %d, failed %d, avg %v", res.TPS, res.Tx, res.Failed, res.AvgMs)
	}
	var names []string
	for _, st := range res.Stmts {
		names = append(names, st.Name)
	}
	if !slices.Equal(names, []string{"a", "b", "c"}) {
		t.Fatalf("statements %v", names)
	}
	if a := res.Stmts[0]; a.N != 3 || a.P50Ms != 2 || a.P99Ms != 3 || a.AvgMs != 2 {
		t.Errorf("a: %+v", a)
	}
	if c := res.Stmts[2]; c.N != 0 || c.Failed != 2 {
		t.Errorf("c: %+v", c)
	}
}

// TestMixPick follows the weights.
func TestMixPick(t *testing.T) {
	m := &Mix{Ops: []Op{{Name: "read", Weight: 99}, {Name: "write", Weight: 1}}}
	r := newTestRand()
	writes := 0
	for range 100000 {
		if m.pick(r).Name == "write" {
			writes++
		}
	}
	if writes < 800 || writes > 1200 {
		t.Errorf("%d writes in 100000 picks at weight 1%%", writes)
	}
}

// TestSeedReport renders a synthetic cache and seed run: the goals table
// with verdicts, the cache off/on table and the per-statement table.
func TestSeedReport(t *testing.T) {
	plan, err := buildPlan(false, SuiteMain, []string{"cache-aggregates", "seed-tpcb", "seed-analytics"})
	if err != nil {
		t.Fatal(err)
	}
	r := &Report{Meta: Meta{Date: time.Date(2026, 12, 3, 15, 0, 0, 0, time.UTC), Mode: "seed-full", Reps: 3, PoolSize: 20, SeedRows: 2_000_000,
		PGSettings: map[string]string{"max_connections": "2000"}}}
	for _, n := range []string{"direct", "pgbouncer", "pgone", "pgone-cache"} {
		r.Targets = append(r.Targets, TargetInfo{Name: n, Setup: n + " setup"})
	}
	for _, c := range plan {
		r.Cells = append(r.Cells, CellResult{Workload: c.W.Name, Clients: c.Clients, Runs: map[string][]Result{}, w: c.W})
	}
	stmts := func(p99 float64) []StmtStat {
		return []StmtStat{{Name: "events-per-hour", N: 100, P50Ms: p99 / 4, P99Ms: p99}, {Name: "events-top-kinds", N: 90, P50Ms: p99 / 8, P99Ms: p99 / 2}}
	}
	for i := range r.Cells {
		for range 3 {
			r.add(i, "direct", Result{TPS: 20, P50Ms: 300, P99Ms: 2500, Stmts: stmts(2500), VersionReads: 80})
			r.add(i, "pgbouncer", Result{TPS: 19, P50Ms: 310, P99Ms: 2600, Stmts: stmts(2600), VersionReads: 76})
			r.add(i, "pgone", Result{TPS: 18, P50Ms: 320, P99Ms: 3200, Stmts: stmts(3200), VersionReads: 72})
			r.add(i, "pgone-cache", Result{TPS: 900, P50Ms: 0.1, P99Ms: 40, Stmts: stmts(40), VersionReads: 3600, StaleReads: 0,
				CacheMeasured: true, CacheHits: 990, CacheMisses: 10})
		}
	}
	md := r.markdown("latest.svg")
	for _, want := range []string{
		"## Goals",
		"| cache-aggregates | 10 | cache on ≥ 20× direct | — | — | — | 45.00× **met** |",
		"| cache-aggregates | 10 | 0 stale reads | 0 stale of 240 **met** | 0 stale of 228 **met** | 0 stale of 216 **met** | 0 stale of 10800 **met** |",
		"| seed-tpcb | 300 | OLTP p99 < 50 ms | 2500.0 ms not met |",
		"| seed-tpcb | 300 | 300 connections | 300 clients, 0 failed **met** |",
		"| seed-analytics | 20 | analytics < 3 s (p99 of each query) | 2500.0 ms **met** | 2600.0 ms **met** | 3200.0 ms not met | 40.0 ms **met** |",
		"| seed-analytics | 20 | cache hit ratio > 98% | — | — | — | 99.0% **met** |",
		"## Cache off and on",
		"| seed-analytics | 20 | 18 → 900 | 50.00 | 320.00 → 0.10 | 3200.00 → 40.00 | 3200.0 → 40.0 | 99.0% | 0 of 10800 | 45.00 |",
		"## Per-statement latency",
		"| seed-analytics | 20 | events-per-hour | 625.00 / 2500.00 (100) |",
		"| 300 | pgone-cache | 900 | 0.000 | 0.100 | 40.000 | 45.00 |", // the workload table has the median
		"- **seed data**: 2000000 events (partitioned by day over 7 days), 100000 documents, 200000 JSON documents",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log(md)
	}
	d := xml.NewDecoder(strings.NewReader(renderChart(r)))
	for {
		if _, err := d.Token(); err != nil {
			if err != io.EOF {
				t.Fatalf("SVG is not well-formed: %v", err)
			}
			break
		}
	}
}

func newTestRand() *rand.Rand { return rand.New(rand.NewPCG(1, 2)) }

package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Metric is what a workload's ratios compare.
type Metric int

// Metrics.
const (
	// MetricTPS: transactions (or completed clients) per second; higher is better.
	MetricTPS Metric = iota
	// MetricHeld: clients connected at once; higher is better.
	MetricHeld
)

// Workload is one row family of the results. Adding one is a struct literal
// in workloads below: pgbench arguments, or a Go function for what pgbench
// cannot do.
type Workload struct {
	Name  string // short id, used in -workloads and file names
	Title string // table heading
	// Mode is the pool mode a pooler with modes (pgbouncer) runs this in.
	Mode PoolMode
	// Clients and QuickClients are the client counts of the full and the
	// quick run; a workload with no QuickClients is left out of -quick.
	Clients, QuickClients []int
	// Pgbench holds the workload-specific pgbench arguments (the bench adds
	// connection, -n, -c, -j, -T and logging).
	Pgbench []string
	// Duration is a pgbench run's length when it is not -duration's: the
	// warm-up's and the refill's short runs.
	Duration time.Duration
	// Run, when set instead of Pgbench, runs the workload from Go.
	Run    func(ctx context.Context, env *Env, t *Target, db string, clients int) Result
	Metric Metric
	// Unit names the throughput column ("TPS", "conn/s").
	Unit string
	// Note is one line under the table heading.
	Note string
	// Suite groups workloads into runs: "" is the main comparison (make
	// bench), SuiteCache issue 13's cache measurements (make bench-cache),
	// SuiteSeed issue 17's seed workloads (make bench-seed). A run without
	// -workloads runs one suite; -workloads names workloads of any suite.
	Suite string
	// Script is a pgbench custom script (-f), written to a file per run.
	Script string
	// Data names the datasets the workload reads (datasets.go); each is
	// made once on the primary before any target starts.
	Data []string
	// Mix, when set instead of Pgbench, runs Go clients (mix.go) with
	// per-statement latency, an optional background writer and the
	// stale-read check.
	Mix *Mix
	// Seed are the seed's targets this workload is judged against
	// (seedreport.go); nil: none.
	Seed []SeedTarget
}

// Suites.
const (
	SuiteMain  = ""
	SuiteCache = "cache"
	SuiteSeed  = "seed"
)

// workloads is every workload, in run and report order.
var workloads = slices.Concat(mainWorkloads, cacheWorkloads, seedWorkloads)

// mainWorkloads are the pooler comparison of make bench.
var mainWorkloads = []Workload{
	{
		Name: "select-simple", Title: "select-only, simple protocol (pgbench -S -M simple)",
		Mode: Transaction, Clients: []int{1, 10, 100, 300},
		Pgbench: []string{"-S", "-M", "simple"},
	},
	{
		Name: "select-extended", Title: "select-only, extended protocol (pgbench -S -M extended)",
		// Quick: 10 clients too, the cell the direct check needs.
		Mode: Transaction, Clients: []int{1, 10, 100, 300}, QuickClients: []int{1, 10},
		Pgbench: []string{"-S", "-M", "extended"},
	},
	{
		Name: "select-prepared", Title: "select-only, prepared statements (pgbench -S -M prepared)",
		// PgBouncer before 1.21 cannot keep protocol-level prepared
		// statements across transactions, so this is a session-mode workload.
		Mode: Session, Clients: []int{1, 10, 100, 300}, QuickClients: []int{20},
		Pgbench: []string{"-S", "-M", "prepared"},
		Note:    "Prepared statements are session state: PgBouncer runs this in session mode.",
	},
	{
		Name: "split-select-extended", Title: "read/write split: select-only, extended protocol (pgbench -S -M extended)",
		Mode: Split, Clients: []int{100}, QuickClients: []int{10},
		Pgbench: []string{"-S", "-M", "extended"},
		Note: "pgone: its split database, reads to the replica (compare with select-extended at the same client count: split off); " +
			"pgpool: load balancing over primary and replica; PgBouncer and direct cannot split: primary only.",
	},
	{
		Name: "tpcb", Title: "TPC-B-like read/write (pgbench default script, -M simple)",
		Mode: Transaction, Clients: []int{10, 100}, QuickClients: []int{10},
		Pgbench: []string{"-M", "simple"},
	},
	{
		Name: "storm", Title: "connection storm (every client connects, runs SELECT 1 and disconnects, all at once)",
		Mode: Transaction, Clients: []int{1000}, QuickClients: []int{100},
		Run: runStorm, Unit: "conn/s",
		Note: "conn/s = clients finished / wall time; latency = one client's connect + query + close; SCRAM-SHA-256 logins; " +
			"a run ends after 25s, clients not done by then count as failed.",
	},
	{
		Name: "idle", Title: "idle clients held (connect, then hold without a query)",
		Mode: Transaction, Clients: []int{5000}, QuickClients: []int{120},
		Run: runIdle, Metric: MetricHeld, Unit: "conn/s",
		Note: "Ratios compare the clients held at once. proxy RSS is measured while they are held; KiB/client is that RSS / held " +
			"(direct: PostgreSQL's growth / held). When no login finishes for a few seconds (5s; quick: 2s) the clients still waiting " +
			"are cut off and count as failed: a session-mode pooler holds no more clients than its pool has server connections. " +
			"Logins end after 30s in any case.",
	},
}

// Cell is one (workload, client count) point of the plan.
type Cell struct {
	W       *Workload
	Clients int
}

func (c Cell) String() string { return fmt.Sprintf("%s c=%d", c.W.Name, c.Clients) }

// buildPlan returns the cells to run: quick or full client lists of the
// suite's workloads, or of the workloads named in only (any suite).
func buildPlan(quick bool, suite string, only []string) ([]Cell, error) {
	want := map[string]bool{}
	for _, n := range only {
		want[n] = true
	}
	var plan []Cell
	for i := range workloads {
		w := &workloads[i]
		if len(only) > 0 && !want[w.Name] || len(only) == 0 && w.Suite != suite {
			continue
		}
		delete(want, w.Name)
		clients := w.Clients
		if quick {
			clients = w.QuickClients
		}
		for _, c := range clients {
			plan = append(plan, Cell{W: w, Clients: c})
		}
	}
	if len(want) > 0 {
		var names []string
		for i := range workloads {
			names = append(names, workloads[i].Name)
		}
		var unknown []string
		for n := range want {
			unknown = append(unknown, n)
		}
		return nil, fmt.Errorf("unknown workload(s) %s; known: %s", strings.Join(unknown, ", "), strings.Join(names, ", "))
	}
	return plan, nil
}

// withClients replaces the client counts of the plan's workloads by counts,
// for a run aimed at particular cells (e.g. 10,000 idle clients).
func withClients(plan []Cell, counts []string) ([]Cell, error) {
	var ns []int
	for _, c := range counts {
		n, err := strconv.Atoi(c)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-clients: %q is not a client count", c)
		}
		ns = append(ns, n)
	}
	var out []Cell
	seen := map[*Workload]bool{}
	for _, cell := range plan {
		if seen[cell.W] {
			continue
		}
		seen[cell.W] = true
		for _, n := range ns {
			out = append(out, Cell{W: cell.W, Clients: n})
		}
	}
	return out, nil
}

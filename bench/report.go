package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Report is everything a run measured, in plan order.
type Report struct {
	Meta    Meta         `json:"meta"`
	Targets []TargetInfo `json:"targets"`
	Cells   []CellResult `json:"cells"`
	// Checks are the verdicts on direct against a lone run (see judge).
	Checks []DirectCheck `json:"checks"`
}

// Meta is the results header.
type Meta struct {
	Date       time.Time         `json:"date"`
	Mode       string            `json:"mode"` // quick or full
	Machine    machine           `json:"machine"`
	Versions   versions          `json:"versions"`
	Command    string            `json:"command"`
	PoolSize   int               `json:"pool_size"`
	Duration   string            `json:"duration"`
	Reps       int               `json:"reps"`
	Scale      int               `json:"scale"`
	SeedRows   int               `json:"seed_rows,omitempty"`
	PGSettings map[string]string `json:"pg_settings"`
	RunTime    time.Duration     `json:"run_time_ns"`
	// IsolateDirect: the poolers' server connections were closed before
	// each direct cell.
	IsolateDirect bool `json:"isolate_direct"`
}

// TargetInfo names a target and how it was set up.
type TargetInfo struct {
	Name  string `json:"name"`
	Setup string `json:"setup"`
}

// CellResult holds every run of one cell, by target name.
type CellResult struct {
	Workload string              `json:"workload"`
	Clients  int                 `json:"clients"`
	Runs     map[string][]Result `json:"runs"`
	// Orders is the target order of each repetition, in run order.
	Orders [][]string `json:"orders"`
	w      *Workload
}

func newReport(env *Env, o options, plan []Cell) *Report {
	mode := "full"
	if o.quick {
		mode = "quick"
	}
	if o.suite != SuiteMain {
		mode = o.suite + "-" + mode
	}
	if o.tiny {
		mode = "tiny"
	}
	r := &Report{Meta: Meta{
		Date:       time.Now().UTC(),
		Mode:       mode,
		Machine:    describeMachine(),
		Versions:   env.versions,
		Command:    strings.TrimSpace("go run ./bench " + strings.Join(os.Args[1:], " ")),
		PoolSize:   env.poolSize,
		Duration:   env.duration.String(),
		Reps:       env.reps,
		Scale:      o.scale,
		SeedRows:   o.seedRows,
		PGSettings: env.pgSettings,

		IsolateDirect: env.isolateDirect,
	}}
	for _, t := range env.targets {
		r.Targets = append(r.Targets, TargetInfo{Name: t.Name, Setup: t.Setup})
	}
	for _, c := range plan {
		r.Cells = append(r.Cells, CellResult{Workload: c.W.Name, Clients: c.Clients, Runs: map[string][]Result{}, w: c.W})
	}
	return r
}

func (r *Report) add(cell int, target string, res Result) {
	r.Cells[cell].Runs[target] = append(r.Cells[cell].Runs[target], res)
}

// addOrder records the order the targets ran in for one repetition of a cell.
func (r *Report) addOrder(cell int, order []*Target) {
	names := make([]string, len(order))
	for i, t := range order {
		names[i] = t.Name
	}
	r.Cells[cell].Orders = append(r.Cells[cell].Orders, names)
}

// judge makes the direct check for every checked workload of the plan,
// from the lone runs' TPS by workload name.
func (r *Report) judge(plan []Cell, lone map[string][]float64) {
	if !slices.ContainsFunc(r.Targets, func(t TargetInfo) bool { return t.Name == "direct" }) {
		return
	}
	for _, w := range checkWorkloads(plan) {
		for i := range r.Cells {
			c := &r.Cells[i]
			if c.w == w && c.Clients == checkClients {
				r.Checks = append(r.Checks, judge(w.Name, lone[w.Name], c.summary("direct")))
			}
		}
	}
}

// Summary is the median of a cell's runs against one target.
type Summary struct {
	Runs, FailedRuns int
	OK               bool // at least one run produced numbers
	TPS, AvgMs       float64
	P50Ms, P99Ms     float64
	ProxyCPU         float64
	ServerCPU        float64
	// ProxyCPUPerTx and ServerCPUPerTx are the medians of each run's CPU
	// per transaction in µs (0: unknown, e.g. direct has no proxy).
	ProxyCPUPerTx, ServerCPUPerTx float64
	RSSKB                         float64
	MemPerClientK                 float64
	Held                          float64
	Failed                        int64 // summed over all runs
	Errs                          []string
	// HitRatio is the median of the runs' cache hit ratios; -1: not a
	// cache target, or no lookup.
	HitRatio float64
	// VersionReads, StaleReads and Writes are summed over the runs.
	VersionReads, StaleReads, Writes int64
	// Stmts are the per-statement medians (Go-client workloads).
	Stmts []StmtStat
}

func summarize(runs []Result) Summary {
	s := Summary{Runs: len(runs), HitRatio: -1}
	var good []Result
	for _, r := range runs {
		s.Failed += r.Failed
		if r.Err != "" && !slices.Contains(s.Errs, r.Err) {
			s.Errs = append(s.Errs, r.Err)
		}
		if r.failed() {
			s.FailedRuns++
			continue
		}
		good = append(good, r)
	}
	if len(good) == 0 {
		return s
	}
	s.OK = true
	med := func(f func(Result) float64) float64 {
		v := make([]float64, len(good))
		for i, r := range good {
			v[i] = f(r)
		}
		return median(v)
	}
	s.TPS = med(func(r Result) float64 { return r.TPS })
	s.AvgMs = med(func(r Result) float64 { return r.AvgMs })
	s.P50Ms = med(func(r Result) float64 { return r.P50Ms })
	s.P99Ms = med(func(r Result) float64 { return r.P99Ms })
	s.ProxyCPU = med(func(r Result) float64 { return r.ProxyCPU })
	s.ServerCPU = med(func(r Result) float64 { return r.ServerCPU })
	s.ProxyCPUPerTx = med(func(r Result) float64 { return cpuPerTx(r.ProxyCPU, r.Tx) })
	s.ServerCPUPerTx = med(func(r Result) float64 { return cpuPerTx(r.ServerCPU, r.Tx) })
	s.RSSKB = med(func(r Result) float64 { return float64(r.ProxyRSSKB) })
	s.MemPerClientK = med(func(r Result) float64 { return r.MemPerClientK })
	s.Held = med(func(r Result) float64 { return float64(r.Held) })
	summarizeExtras(&s, good)
	return s
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

// value is the number a workload's ratios compare.
func (s Summary) value(m Metric) float64 {
	if m == MetricHeld {
		return s.Held
	}
	return s.TPS
}

// ratio formats a/b of the workload's metric, or "—" if either is missing.
func ratio(a, b Summary, m Metric) string {
	if !a.OK || !b.OK || b.value(m) == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f", a.value(m)/b.value(m))
}

func (c *CellResult) summary(target string) Summary { return summarize(c.Runs[target]) }

// pgoneTargets are the targets whose ratios the summary quotes.
func (r *Report) pgoneTargets() []string {
	var out []string
	for _, t := range r.Targets {
		if t.Name == "pgone" || strings.HasPrefix(t.Name, "pgone-") {
			out = append(out, t.Name)
		}
	}
	return out
}

// workloadOrder lists the workloads present, in plan order.
func (r *Report) workloadOrder() []*Workload {
	var out []*Workload
	for _, c := range r.Cells {
		if !slices.Contains(out, c.w) {
			out = append(out, c.w)
		}
	}
	return out
}

// markdown renders the report; chart is the SVG's file name next to it.
func (r *Report) markdown(chart string) string {
	var b strings.Builder
	m := r.Meta
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("# pgone benchmark: %s run, %s\n\n", m.Mode, m.Date.Format("2006-01-02 15:04 MST"))
	p("- **date**: %s (run time %s)\n", m.Date.Format(time.RFC3339), fmtDuration(m.RunTime))
	p("- **machine**: %d cores (%s), %.1f GiB memory, %s; shared and noisy: quote the ratios, not the absolute numbers\n",
		m.Machine.Cores, m.Machine.CPU, m.Machine.MemGiB, m.Machine.Kernel)
	p("- **pgone**: %s\n", m.Versions.Pgone)
	p("- **versions**: %s; %s; %s; %s; %s; %s\n", m.Versions.Postgres, m.Versions.Pgbouncer, m.Versions.Pgpool, m.Versions.Pgbench, m.Versions.Redis, m.Versions.Go)
	p("- **command**: `%s`\n", m.Command)
	p("- **pool size**: %d server connections per pool for every pooler (PgBouncer default_pool_size, pgpool num_init_children with max_pool=1, pgone pool_size); PostgreSQL max_connections=%s\n",
		m.PoolSize, m.PGSettings["max_connections"])
	p("- **method**: after a warm-up that fills every pool, targets interleaved with the order rotated every round (%s, then %s, ...), each cell %d times, medians reported; pgbench runs %s each plus the time its clients need to connect (`-n`, `-j` up to the core count), scale %d, initialized once on the primary; all targets use the same database\n",
		strings.Join(r.targetNames(), ", "), strings.Join(roundOrder(r.targetNames(), 1), ", "), m.Reps, m.Duration, m.Scale)
	if r.hasData() {
		p("- **seed data**: %d events (partitioned by day over %d days), %d documents, %d JSON documents (`-seed-rows`; made once on the primary with generate_series)\n",
			m.SeedRows, seedDays, max(m.SeedRows/20, 100), max(m.SeedRows/10, 100))
	}
	if m.IsolateDirect {
		p("- **direct alone**: before every direct cell the poolers' server connections were closed (pg_terminate_backend on both servers, waited for until pg_stat_activity showed none); each pooler reopened them before its next cell, outside the measurement (a 1s select-only run)\n")
	}
	if o := r.ordersLine(); o != "" {
		p("- **orders**: %s\n", o)
	}
	p("\n")
	for _, t := range r.Targets {
		p("- `%s`: %s\n", t.Name, t.Setup)
	}
	p("\n![TPS by target and client count](%s)\n\n", chart)
	checkSection(&b, r.Checks, m.IsolateDirect, r.directIsolation())
	r.summaryTable(&b)
	r.goalsTable(&b)
	r.cacheTable(&b)
	r.stmtTable(&b)
	r.cpuTable(&b)
	r.latencyTable(&b)
	for _, w := range r.workloadOrder() {
		r.workloadTable(&b, w)
	}
	p("## Columns\n\n")
	p("- TPS: pgbench's tps without initial connection time; avg ms: pgbench's latency average; median ms, p99 ms: 50th and 99th percentiles of pgbench's per-transaction log (`-l`).\n")
	p("- ×direct, ×pgbouncer: this target's median divided by that target's median in the same cell (of TPS; storm: of clients per second; idle: of clients held).\n")
	p("- failed: failed transactions (pgbench) or failed clients, summed over all runs; errors are in the last column with how many runs hit them.\n")
	p("- proxy CPU s: user+system CPU seconds of the proxy's processes during the run (pgpool: all its processes); PG CPU s: the same for the primary and the replica (exited backends included).\n")
	p("- proxy CPU µs/tx, PG CPU µs/tx: those CPU times over the transactions pgbench completed, per run, medians; CPU/tx ×pgbouncer: proxy CPU µs/tx over PgBouncer's in the same cell.\n")
	p("- proxy RSS MiB: peak resident memory of the proxy during the run, sampled each second (multi-process targets: private memory of each process plus the parent's shared pages once).\n")
	return b.String()
}

// hasData reports whether a workload of the report reads seed data.
func (r *Report) hasData() bool {
	for _, w := range r.workloadOrder() {
		if slices.ContainsFunc(w.Data, func(d string) bool { return d != "version" }) {
			return true
		}
	}
	return false
}

func (r *Report) targetNames() []string {
	var out []string
	for _, t := range r.Targets {
		out = append(out, t.Name)
	}
	return out
}

func (r *Report) summaryTable(b *strings.Builder) {
	pgones := r.pgoneTargets()
	fmt.Fprintf(b, "## Summary\n\n")
	fmt.Fprintf(b, "Medians of TPS (storm: clients per second; idle: clients held at once). ")
	fmt.Fprintf(b, "pgone's ratios are the numbers to quote.\n\n")
	hdr := []string{"workload", "clients"}
	hdr = append(hdr, r.targetNames()...)
	for _, p := range pgones {
		hdr = append(hdr, p+" ×direct", p+" ×pgbouncer")
	}
	writeRow(b, hdr...)
	writeSep(b, len(hdr))
	for i := range r.Cells {
		c := &r.Cells[i]
		row := []string{c.w.Name, fmt.Sprint(c.Clients)}
		for _, t := range r.Targets {
			s := c.summary(t.Name)
			switch {
			case !s.OK:
				row = append(row, "failed")
			case c.w.Metric == MetricHeld:
				row = append(row, fmt.Sprintf("%.0f held", s.Held))
			default:
				row = append(row, fmt.Sprintf("%.0f", s.TPS))
			}
		}
		for _, p := range pgones {
			s := c.summary(p)
			row = append(row, ratio(s, c.summary("direct"), c.w.Metric), ratio(s, c.summary("pgbouncer"), c.w.Metric))
		}
		writeRow(b, row...)
	}
	b.WriteString("\n")
}

// latencyTable shows what a proxy adds to one client's query: the
// select-only cells at 1 client, against direct.
func (r *Report) latencyTable(b *strings.Builder) {
	var cells []*CellResult
	for i := range r.Cells {
		c := &r.Cells[i]
		if c.Clients == 1 && c.w.Run == nil {
			cells = append(cells, c)
		}
	}
	if len(cells) == 0 {
		return
	}
	fmt.Fprintf(b, "## Latency at 1 client\n\n")
	fmt.Fprintf(b, "What each target adds to one client's query, from the 1-client cells below.\n\n")
	writeRow(b, "workload", "target", "avg ms", "median ms", "p99 ms", "added avg µs", "added median µs", "added p99 µs")
	writeSep(b, 8)
	for _, c := range cells {
		d := c.summary("direct")
		for _, t := range r.Targets {
			s := c.summary(t.Name)
			if !s.OK {
				writeRow(b, c.w.Name, t.Name, "failed", "", "", "", "", "")
				continue
			}
			added, addedP50, addedP99 := "—", "—", "—"
			if d.OK {
				added = fmt.Sprintf("%+.0f", (s.AvgMs-d.AvgMs)*1000)
				addedP50 = fmt.Sprintf("%+.0f", (s.P50Ms-d.P50Ms)*1000)
				addedP99 = fmt.Sprintf("%+.0f", (s.P99Ms-d.P99Ms)*1000)
			}
			writeRow(b, c.w.Name, t.Name, fmt.Sprintf("%.3f", s.AvgMs), fmt.Sprintf("%.3f", s.P50Ms), fmt.Sprintf("%.3f", s.P99Ms),
				added, addedP50, addedP99)
		}
	}
	b.WriteString("\n")
}

func (r *Report) workloadTable(b *strings.Builder, w *Workload) {
	fmt.Fprintf(b, "## %s\n\n", w.Title)
	bouncer := fmt.Sprintf("PgBouncer in %s mode", w.Mode)
	if w.Mode == Split {
		bouncer = "PgBouncer in transaction mode"
	}
	if w.Pgbench != nil {
		fmt.Fprintf(b, "`pgbench %s`, %s. ", strings.Join(w.Pgbench, " "), bouncer)
	} else {
		fmt.Fprintf(b, "Go clients (pgx/pgconn) in the bench process, %s. ", bouncer)
	}
	if w.Note != "" {
		b.WriteString(w.Note)
	}
	b.WriteString("\n\n")
	unit := w.Unit
	if unit == "" {
		unit = "TPS"
	}
	idle := w.Metric == MetricHeld
	hdr := []string{"clients", "target", unit, "avg ms", "median ms", "p99 ms", "×direct", "×pgbouncer", "failed", "proxy CPU s", "proxy CPU µs/tx", "CPU/tx ×pgbouncer", "proxy RSS MiB", "PG CPU s", "PG CPU µs/tx", "errors"}
	if idle {
		hdr = []string{"clients", "target", "held", "KiB/client", "×direct", "×pgbouncer", "failed", unit, "proxy CPU s", "proxy RSS MiB", "PG CPU s", "errors"}
	}
	writeRow(b, hdr...)
	writeSep(b, len(hdr))
	for i := range r.Cells {
		c := &r.Cells[i]
		if c.w != w {
			continue
		}
		d, pb := c.summary("direct"), c.summary("pgbouncer")
		for _, t := range r.Targets {
			s := c.summary(t.Name)
			errs := ""
			if len(s.Errs) > 0 {
				errs = fmt.Sprintf("failed (%d/%d runs): %s", countErrRuns(c.Runs[t.Name]), s.Runs, escapeCell(truncate(strings.Join(s.Errs, " | "), 300)))
			}
			proxyCPU, rss := "—", "—"
			if t.Name != "direct" && s.OK {
				proxyCPU = fmt.Sprintf("%.1f", s.ProxyCPU)
				rss = fmt.Sprintf("%.1f", s.RSSKB/1024)
			}
			if !s.OK {
				row := []string{fmt.Sprint(c.Clients), t.Name, "failed"}
				for len(row) < len(hdr)-1 {
					row = append(row, "")
				}
				writeRow(b, append(row, errs)...)
				continue
			}
			if idle {
				writeRow(b, fmt.Sprint(c.Clients), t.Name, fmt.Sprintf("%.0f", s.Held), fmt.Sprintf("%.1f", s.MemPerClientK),
					ratio(s, d, w.Metric), ratio(s, pb, w.Metric), fmt.Sprint(s.Failed), fmt.Sprintf("%.0f", s.TPS),
					proxyCPU, rss, fmt.Sprintf("%.1f", s.ServerCPU), errs)
				continue
			}
			writeRow(b, fmt.Sprint(c.Clients), t.Name, fmt.Sprintf("%.0f", s.TPS), fmt.Sprintf("%.3f", s.AvgMs), fmt.Sprintf("%.3f", s.P50Ms), fmt.Sprintf("%.3f", s.P99Ms),
				ratio(s, d, w.Metric), ratio(s, pb, w.Metric), fmt.Sprint(s.Failed),
				proxyCPU, perTx(s.ProxyCPUPerTx), cpuRatio(s, pb), rss, fmt.Sprintf("%.1f", s.ServerCPU), perTx(s.ServerCPUPerTx), errs)
		}
	}
	b.WriteString("\n")
}

// perTx formats CPU µs per transaction, "—" when unknown.
func perTx(us float64) string {
	if us <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.0f", us)
}

// cpuRatio is a's proxy CPU per transaction over b's (PgBouncer's): below
// 1 means a proxy cheaper than b. "—" when either is unknown.
func cpuRatio(a, b Summary) string {
	if !a.OK || !b.OK || a.ProxyCPUPerTx <= 0 || b.ProxyCPUPerTx <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f", a.ProxyCPUPerTx/b.ProxyCPUPerTx)
}

// cpuTable puts every proxy's CPU per transaction side by side, cell by
// cell, with its ratio to PgBouncer's: on a machine where the proxy and
// PostgreSQL share the cores, a proxy's CPU is taken from PostgreSQL.
func (r *Report) cpuTable(b *strings.Builder) {
	var proxies []string
	for _, t := range r.Targets {
		if t.Name != "direct" {
			proxies = append(proxies, t.Name)
		}
	}
	if len(proxies) == 0 {
		return
	}
	fmt.Fprintf(b, "## Proxy CPU per transaction\n\n")
	fmt.Fprintf(b, "µs of CPU (user+system, all the proxy's processes) per completed pgbench transaction, median of the runs; in brackets the ratio to PgBouncer's (below 1: cheaper than PgBouncer). Connecting pgbench's clients is included. Direct: PostgreSQL's CPU per transaction, for scale.\n\n")
	hdr := []string{"workload", "clients", "direct (PG µs/tx)"}
	hdr = append(hdr, proxies...)
	writeRow(b, hdr...)
	writeSep(b, len(hdr))
	for i := range r.Cells {
		c := &r.Cells[i]
		if c.w.Pgbench == nil {
			continue
		}
		pb := c.summary("pgbouncer")
		d := c.summary("direct")
		row := []string{c.w.Name, fmt.Sprint(c.Clients), perTx(d.ServerCPUPerTx)}
		for _, p := range proxies {
			s := c.summary(p)
			cell := perTx(s.ProxyCPUPerTx)
			if rt := cpuRatio(s, pb); rt != "—" && p != "pgbouncer" {
				cell += " (" + rt + ")"
			}
			row = append(row, cell)
		}
		writeRow(b, row...)
	}
	b.WriteString("\n")
}

// ordersLine lists the target order of every round, as run.
func (r *Report) ordersLine() string {
	var rounds []string
	for _, c := range r.Cells {
		for i, o := range c.Orders {
			rounds = append(rounds, fmt.Sprintf("%s c=%d #%d: %s", c.Workload, c.Clients, i+1, strings.Join(o, " ")))
		}
	}
	return strings.Join(rounds, "; ")
}

func countErrRuns(runs []Result) int {
	n := 0
	for _, r := range runs {
		if r.Err != "" {
			n++
		}
	}
	return n
}

func escapeCell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

func writeRow(b *strings.Builder, cells ...string) {
	b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
}

func writeSep(b *strings.Builder, n int) {
	b.WriteString("|" + strings.Repeat("---|", n) + "\n")
}

// loadReport reads a report saved as JSON by writeResults. Cells of
// workloads that no longer exist are dropped.
func loadReport(path string) (*Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	r := new(Report)
	if err := json.Unmarshal(b, r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	cells := r.Cells[:0]
	for _, c := range r.Cells {
		for i := range workloads {
			if workloads[i].Name == c.Workload {
				c.w = &workloads[i]
				cells = append(cells, c)
			}
		}
	}
	r.Cells = cells
	return r, nil
}

// writeResults writes latest.{md,svg,json} in o.out and, with -record, a
// dated copy of the markdown and the chart.
func writeResults(r *Report, o options) ([]string, error) {
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return nil, err
	}
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, err
	}
	svg := renderChart(r)
	files := map[string]string{
		"latest.md":   r.markdown("latest.svg"),
		"latest.svg":  svg,
		"latest.json": string(js) + "\n",
	}
	if o.record {
		stem := r.Meta.Date.Format("2006-01-02-1504") + "-" + r.Meta.Mode
		files[stem+".md"] = r.markdown(stem + ".svg")
		files[stem+".svg"] = svg
	}
	var paths []string
	for name, content := range files {
		path := filepath.Join(o.out, name)
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			return nil, err
		}
		paths = append(paths, path)
	}
	slices.Sort(paths)
	return paths, nil
}

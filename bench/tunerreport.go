package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The tuner suite's report (issue 15, "Performance"): throughput per
// window of each run, the best static config of the sweep, and the three
// goals judged from the window series. Everything here is pure, so the
// judgement is tested on synthetic series (tunerreport_test.go).

// TunerWindow is one window of a run: statements completed in it (by the
// time their reply ended) and their p99.
type TunerWindow struct {
	Stmts  int64   `json:"stmts"`
	Failed int64   `json:"failed,omitempty"`
	P99Ms  float64 `json:"p99_ms"`
}

// TunerRun is one target's run: a fresh pgone, the mix for the whole
// duration, counted per window.
type TunerRun struct {
	Target   string        `json:"target"`
	Setup    string        `json:"setup"`
	PoolSize int           `json:"pool_size"`
	Window   time.Duration `json:"window_ns"`
	Windows  []TunerWindow `json:"windows"`
	// P99Ms is over every statement of the run.
	P99Ms  float64 `json:"p99_ms"`
	Stmts  int64   `json:"stmts"`
	Failed int64   `json:"failed,omitempty"`
	Err    string  `json:"error,omitempty"`
	// Stmt is the per-statement latency over the run.
	Stmt []StmtStat `json:"statements,omitempty"`
	// ShowTuner is SHOW TUNER at the end of the run (tuned only).
	ShowTuner *ConsoleDump `json:"show_tuner,omitempty"`
}

// ConsoleDump is an admin console result set as text.
type ConsoleDump struct {
	Columns []string   `json:"columns"`
	Rows    [][]string `json:"rows"`
}

// TunerReport is the tuner suite's results.
type TunerReport struct {
	Meta    TunerMeta  `json:"meta"`
	Small   TunerRun   `json:"static_small"`
	Tuned   TunerRun   `json:"tuned"`
	Sweep   []TunerRun `json:"sweep"`
	Reach   float64    `json:"reach"`        // fraction of the best static the tuned run must reach (0.9)
	ReachBy float64    `json:"reach_by_s"`   // within this many seconds of the start (60)
	Tail    int        `json:"tail_windows"` // windows the steady throughput is averaged over
}

// TunerMeta is the report's header.
type TunerMeta struct {
	Date     time.Time     `json:"date"`
	Mode     string        `json:"mode"` // tuner or tuner-tiny
	Command  string        `json:"command"`
	Machine  machine       `json:"machine"`
	Versions versions      `json:"versions"`
	Clients  int           `json:"clients"`
	Duration time.Duration `json:"duration_ns"`
	Window   time.Duration `json:"window_ns"`
	Scale    int           `json:"scale"`
	SeedRows int           `json:"seed_rows"`
	Mix      string        `json:"mix"`
	RunTime  time.Duration `json:"run_time_ns"`
}

// tps is window i's statements per second.
func (r TunerRun) tps(i int) float64 {
	if r.Window <= 0 {
		return 0
	}
	return float64(r.Windows[i].Stmts) / r.Window.Seconds()
}

// steady is the mean throughput of the last tail windows: where a run
// ends up, after the tuner (or the caches) had time to act.
func (r TunerRun) steady(tail int) float64 {
	n := len(r.Windows)
	if n == 0 || tail < 1 {
		return 0
	}
	from := max(0, n-tail)
	var s float64
	for i := from; i < n; i++ {
		s += r.tps(i)
	}
	return s / float64(n-from)
}

// reachedAt is the end of the first window whose throughput is at least
// limit, or -1 if none is.
func (r TunerRun) reachedAt(limit float64) time.Duration {
	for i := range r.Windows {
		if r.tps(i) >= limit {
			return time.Duration(i+1) * r.Window
		}
	}
	return -1
}

// best is the sweep's run with the highest steady throughput, or nil.
func (rep *TunerReport) best() *TunerRun {
	var b *TunerRun
	for i := range rep.Sweep {
		r := &rep.Sweep[i]
		if r.Err != "" {
			continue
		}
		if b == nil || r.steady(rep.Tail) > b.steady(rep.Tail) {
			b = r
		}
	}
	return b
}

// TunerGoal is one goal's verdict.
type TunerGoal struct {
	Goal   string
	Value  string
	Met    bool
	Judged bool // false: a number was missing (a failed run)
}

// goals judges the three goals: the tuned run's steady throughput
// against the best static, the time it first reached Reach of it, and its
// p99 against the wrong static config it started from. "The static
// config" of the issue is read as that one (the same config, tuner off);
// p99 against the best static is shown beside it, not judged.
func (rep *TunerReport) goals() []TunerGoal {
	b := rep.best()
	t := rep.Tuned
	ok := b != nil && t.Err == "" && len(t.Windows) > 0
	pct := fmt.Sprintf("%.0f%%", rep.Reach*100)
	g := []TunerGoal{
		{Goal: fmt.Sprintf("tuned ≥ %s of the best static (mean of the last %d windows)", pct, rep.Tail), Judged: ok},
		{Goal: fmt.Sprintf("tuned reaches %s of the best static within %.0f s", pct, rep.ReachBy), Judged: ok},
		{Goal: "tuned p99 no worse than pgone-static-small's", Judged: t.Err == "" && rep.Small.Err == "" && t.Stmts > 0 && rep.Small.Stmts > 0},
	}
	if ok {
		bs := b.steady(rep.Tail)
		frac := t.steady(rep.Tail) / bs
		g[0].Value = fmt.Sprintf("%.0f of %.0f stmt/s (%s): %.2f", t.steady(rep.Tail), bs, b.Target, frac)
		g[0].Met = frac >= rep.Reach
		at := t.reachedAt(rep.Reach * bs)
		if at < 0 {
			g[1].Value = "never"
		} else {
			g[1].Value = fmt.Sprintf("at %s", at)
			g[1].Met = at.Seconds() <= rep.ReachBy
		}
	}
	if g[2].Judged {
		g[2].Value = fmt.Sprintf("%.1f ms against %.1f ms", t.P99Ms, rep.Small.P99Ms)
		g[2].Met = t.P99Ms <= rep.Small.P99Ms
	}
	return g
}

// markdown renders the report.
func (rep *TunerReport) markdown() string {
	var b strings.Builder
	m := rep.Meta
	fmt.Fprintf(&b, "# pgone tuner bench (issue 15), %s\n\n", m.Date.Format("2006-01-02 15:04 UTC"))
	if m.Mode != "tuner" {
		b.WriteString("**A smoke run (-tiny): short windows and small data; the numbers mean nothing.**\n\n")
	}
	fmt.Fprintf(&b, "`%s`; %s; %s, %s\n\n", m.Command, m.Machine.CPU, m.Versions.Postgres, m.Versions.Pgone)
	fmt.Fprintf(&b, "Each target is a fresh pgone running the mix for %s with %d Go clients (logged in before the clock starts), "+
		"one after another; throughput is statements per second per %s window. Scale %d, %d seed rows. Mix: %s\n\n",
		m.Duration, m.Clients, m.Window, m.Scale, m.SeedRows, m.Mix)

	b.WriteString("## Goals\n\n| goal | tuned | verdict |\n|---|---|---|\n")
	for _, g := range rep.goals() {
		v := "not met"
		switch {
		case !g.Judged:
			v, g.Value = "not judged (a run failed)", "-"
		case g.Met:
			v = "met"
		}
		fmt.Fprintf(&b, "| %s | %s | %s |\n", g.Goal, g.Value, v)
	}
	if bst := rep.best(); bst != nil && rep.Tuned.Err == "" {
		fmt.Fprintf(&b, "\nTuned p99 against the best static (%s): %.1f ms against %.1f ms (shown, not judged).\n",
			bst.Target, rep.Tuned.P99Ms, bst.P99Ms)
	}

	runs := append([]TunerRun{rep.Small, rep.Tuned}, rep.Sweep...)
	b.WriteString("\n## Throughput per window (stmt/s)\n\n| target | ")
	n := 0
	for _, r := range runs {
		n = max(n, len(r.Windows))
	}
	w := rep.Meta.Window
	for i := range n {
		fmt.Fprintf(&b, "%s | ", time.Duration(i+1)*w)
	}
	fmt.Fprintf(&b, "steady | p99 ms | failed |\n|---|%s---|---|---|\n", strings.Repeat("---|", n))
	for _, r := range runs {
		fmt.Fprintf(&b, "| %s | ", r.Target)
		for i := range n {
			if i < len(r.Windows) {
				fmt.Fprintf(&b, "%.0f | ", r.tps(i))
			} else {
				b.WriteString("- | ")
			}
		}
		if r.Err != "" {
			fmt.Fprintf(&b, "error: %s | | |\n", truncate(r.Err, 120))
			continue
		}
		fmt.Fprintf(&b, "%.0f | %.1f | %d |\n", r.steady(rep.Tail), r.P99Ms, r.Failed)
	}

	b.WriteString("\n## p99 per window (ms)\n\n| target | ")
	for i := range n {
		fmt.Fprintf(&b, "%s | ", time.Duration(i+1)*w)
	}
	fmt.Fprintf(&b, "\n|---|%s\n", strings.Repeat("---|", n))
	for _, r := range runs {
		fmt.Fprintf(&b, "| %s | ", r.Target)
		for i := range n {
			if i < len(r.Windows) {
				fmt.Fprintf(&b, "%.1f | ", r.Windows[i].P99Ms)
			} else {
				b.WriteString("- | ")
			}
		}
		b.WriteString("\n")
	}

	b.WriteString("\n## Per-statement latency (ms, whole run)\n\n| target | statement | n | avg | p50 | p99 | failed |\n|---|---|---|---|---|---|---|\n")
	for _, r := range runs {
		for _, s := range r.Stmt {
			fmt.Fprintf(&b, "| %s | %s | %d | %.2f | %.2f | %.2f | %d |\n", r.Target, s.Name, s.N, s.AvgMs, s.P50Ms, s.P99Ms, s.Failed)
		}
	}

	b.WriteString("\n## Targets\n\n")
	for _, r := range runs {
		fmt.Fprintf(&b, "- `%s`: %s\n", r.Target, r.Setup)
	}
	b.WriteString("\n## SHOW TUNER at the end of the tuned run\n\n")
	if d := rep.Tuned.ShowTuner; d == nil {
		b.WriteString("(not captured)\n")
	} else {
		b.WriteString("| " + strings.Join(d.Columns, " | ") + " |\n|" + strings.Repeat("---|", len(d.Columns)) + "\n")
		for _, row := range d.Rows {
			cells := make([]string, len(row))
			for i, c := range row {
				cells[i] = strings.ReplaceAll(c, "|", `\|`)
			}
			b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
		}
	}
	if m.RunTime > 0 {
		fmt.Fprintf(&b, "\nRun time %s.\n", fmtDuration(m.RunTime))
	}
	return b.String()
}

// writeTunerResults writes latest.md and latest.json in dir, and with
// record a dated copy of the markdown.
func writeTunerResults(rep *TunerReport, dir string, record bool) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	js, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return nil, err
	}
	md := rep.markdown()
	files := [][2]string{{"latest.md", md}, {"latest.json", string(js) + "\n"}}
	if record {
		files = append(files, [2]string{rep.Meta.Date.Format("2006-01-02-1504") + "-" + rep.Meta.Mode + ".md", md})
	}
	var paths []string
	for _, f := range files {
		p := filepath.Join(dir, f[0])
		if err := os.WriteFile(p, []byte(f[1]), 0o644); err != nil {
			return nil, err
		}
		paths = append(paths, p)
	}
	return paths, nil
}

package main

import (
	"encoding/xml"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const pgbenchOut = `pgbench (15.18 (Debian 15.18-0+deb12u1))
transaction type: <builtin: select only>
scaling factor: 10
query mode: prepared
number of clients: 10
number of threads: 2
maximum number of tries: 1
duration: 5 s
number of transactions actually processed: 67751
number of failed transactions: 3 (0.004%)
latency average = 0.737 ms
initial connection time = 22.870 ms
tps = 13565.193425 (without initial connection time)
`

func TestParsePgbench(t *testing.T) {
	r := parsePgbench(pgbenchOut, "")
	if r.TPS != 13565.193425 || r.AvgMs != 0.737 || r.Failed != 3 || r.ConnMs != 22.870 || r.Err != "" || r.noTx {
		t.Fatalf("got %+v", r)
	}
}

func TestParsePgbenchErrors(t *testing.T) {
	stderr := `pgbench: error: client 3 aborted in command 1 (SQL) of script 0; ERROR:  prepared statement "P0_1" does not exist
pgbench: error: client 4 aborted in command 1 (SQL) of script 0; ERROR:  prepared statement "P0_1" does not exist
pgbench: error: Run was aborted; the above results are incomplete.
`
	r := parsePgbench("number of transactions actually processed: 0\n", stderr)
	if !r.noTx || !strings.Contains(r.Err, `prepared statement "P0_1" does not exist`) || !strings.HasPrefix(r.Err, "2 clients aborted") {
		t.Fatalf("got %+v", r)
	}
	if !r.failed() {
		t.Error("a run with an error and no tps must count as failed")
	}
}

func TestReadTxLatencies(t *testing.T) {
	dir := t.TempDir()
	log := "0 1 250 0 1700000000 1\n0 2 failed 0 1700000000 2\n1 1 750 0 1700000000 3\n"
	if err := os.WriteFile(filepath.Join(dir, "tx.123"), []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tx.123.1"), []byte("1 2 500 0 1700000000 4\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	lat, err := readTxLatencies(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(lat) != 3 {
		t.Fatalf("got %v, want 3 successful transactions", lat)
	}
	if p := percentile(lat, 0.99); p != 750 {
		t.Errorf("p99 = %v, want 750", p)
	}
	if _, err := readTxLatencies(t.TempDir()); err == nil {
		t.Error("an empty log dir must be an error")
	}
}

func TestPercentileAndMedian(t *testing.T) {
	v := make([]float64, 100)
	for i := range v {
		v[i] = float64(100 - i)
	}
	for _, tc := range []struct{ p, want float64 }{{0.99, 99}, {0.5, 50}, {1, 100}, {0, 1}} {
		if got := percentile(v, tc.p); got != tc.want {
			t.Errorf("percentile(%v) = %v, want %v", tc.p, got, tc.want)
		}
	}
	if m := median([]float64{3, 1, 2}); m != 2 {
		t.Errorf("median = %v", m)
	}
	if m := median([]float64{4, 1, 2, 3}); m != 2.5 {
		t.Errorf("median = %v", m)
	}
}

func TestNiceScale(t *testing.T) {
	for _, tc := range []struct{ max, top, step float64 }{
		{13565, 15000, 5000}, {0, 1, 0.25}, {4, 4, 1}, {950, 1000, 250},
	} {
		top, step := niceScale(tc.max)
		if top != tc.top || step != tc.step {
			t.Errorf("niceScale(%v) = %v, %v; want %v, %v", tc.max, top, step, tc.top, tc.step)
		}
		if top < tc.max {
			t.Errorf("niceScale(%v): top %v below the maximum", tc.max, top)
		}
	}
	for v, want := range map[float64]string{0: "0", 13565: "13.6k", 950: "950", 1.5: "1.5", 2_500_000: "2.5M"} {
		if got := shortNum(v); got != want {
			t.Errorf("shortNum(%v) = %q, want %q", v, got, want)
		}
	}
}

func TestBuildPlan(t *testing.T) {
	full, err := buildPlan(false, SuiteMain, nil)
	if err != nil {
		t.Fatal(err)
	}
	quick, err := buildPlan(true, SuiteMain, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(quick) == 0 || len(quick) >= len(full) {
		t.Errorf("quick plan has %d cells, full %d", len(quick), len(full))
	}
	only, err := buildPlan(false, SuiteMain, []string{"tpcb", "idle"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range only {
		if c.W.Name != "tpcb" && c.W.Name != "idle" {
			t.Errorf("filtered plan has %s", c)
		}
	}
	if len(only) != 3 {
		t.Errorf("filtered plan has %d cells, want 3", len(only))
	}
	if _, err := buildPlan(false, SuiteMain, []string{"nope"}); err == nil {
		t.Error("an unknown workload must be an error")
	}
	names := map[string]bool{}
	for _, w := range workloads {
		if names[w.Name] {
			t.Errorf("workload name %s used twice", w.Name)
		}
		names[w.Name] = true
		kinds := 0
		for _, set := range []bool{w.Pgbench != nil, w.Run != nil, w.Mix != nil} {
			if set {
				kinds++
			}
		}
		if kinds != 1 {
			t.Errorf("workload %s needs exactly one of Pgbench, Run and Mix", w.Name)
		}
	}
}

// TestReport renders a synthetic run with a failed target and checks that
// the failure and its error are shown, ratios are computed and the SVG is
// well-formed.
func TestReport(t *testing.T) {
	plan, err := buildPlan(true, SuiteMain, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := &Report{Meta: Meta{Date: time.Date(2025, 1, 2, 3, 4, 0, 0, time.UTC), Mode: "quick", Reps: 3, PoolSize: 300,
		PGSettings: map[string]string{"max_connections": "2000"}}}
	for _, n := range []string{"direct", "pgbouncer", "pgpool", "pgone"} {
		r.Targets = append(r.Targets, TargetInfo{Name: n, Setup: n + " setup"})
	}
	for _, c := range plan {
		r.Cells = append(r.Cells, CellResult{Workload: c.W.Name, Clients: c.Clients, Runs: map[string][]Result{}, w: c.W})
	}
	for i := range r.Cells {
		for rep := range 3 {
			r.add(i, "direct", Result{TPS: 1000 + float64(rep), AvgMs: 1, P50Ms: 0.9, P99Ms: 2, Held: 100})
			r.add(i, "pgbouncer", Result{TPS: 800, AvgMs: 1.2, P50Ms: 1, P99Ms: 3, ProxyCPU: 1, ProxyRSSKB: 9000, Held: 100})
			r.add(i, "pgpool", Result{Err: "pgpool said no | twice"})
			r.add(i, "pgone", Result{TPS: 900, AvgMs: 1.1, P50Ms: 0.95, P99Ms: 2.5, ProxyCPU: 2, ProxyRSSKB: 20000, Held: 100})
		}
	}
	md := r.markdown("latest.svg")
	for _, want := range []string{
		"| select-extended | 1 | 1001 | 800 | failed | 900 | 0.90 | 1.12 |",
		`failed (3/3 runs): pgpool said no \| twice`,
		"## Latency at 1 client",
		"| select-extended | pgone | 1.100 | 0.950 | 2.500 | +100 | +50 | +500 |",
		"![TPS by target and client count](latest.svg)",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	svg := renderChart(r)
	d := xml.NewDecoder(strings.NewReader(svg))
	for {
		if _, err := d.Token(); err != nil {
			if err.Error() != "EOF" {
				t.Fatalf("SVG is not well-formed: %v", err)
			}
			break
		}
	}
	if !strings.Contains(svg, "✕") {
		t.Error("the chart does not mark the failed target")
	}
}

func TestWithClientsReplacesCounts(t *testing.T) {
	plan, err := buildPlan(false, SuiteMain, []string{"select-extended", "idle"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := withClients(plan, []string{"100", "1"})
	if err != nil {
		t.Fatal(err)
	}
	var cells []string
	for _, c := range got {
		cells = append(cells, c.String())
	}
	want := []string{"select-extended c=100", "select-extended c=1", "idle c=100", "idle c=1"}
	if strings.Join(cells, ",") != strings.Join(want, ",") {
		t.Fatalf("cells %v, want %v", cells, want)
	}
	if _, err := withClients(plan, []string{"x"}); err == nil {
		t.Fatal("a bad client count was accepted")
	}
}

// TestParseFlagsPgoneBase: -pgone-base without the target pgone-base
// would build nothing to compare; the target without the flag has no
// binary to run. Both are refused before anything starts.
func TestParseFlagsPgoneBase(t *testing.T) {
	for _, tc := range []struct {
		args []string
		ok   bool
	}{
		{[]string{"-targets", "pgbouncer,pgone-base,pgone", "-pgone-base", "/tmp/pgone-old"}, true},
		{[]string{"-targets", "pgbouncer,pgone"}, true},
		{[]string{"-targets", "pgbouncer,pgone", "-pgone-base", "/tmp/pgone-old"}, false},
		{[]string{"-targets", "pgone-base,pgone"}, false},
	} {
		_, err := parseFlags(tc.args, io.Discard)
		if (err == nil) != tc.ok {
			t.Errorf("parseFlags(%q) = %v, want ok %v", tc.args, err, tc.ok)
		}
	}
}

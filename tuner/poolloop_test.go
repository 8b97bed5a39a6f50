package tuner

import (
	"bytes"
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// simPool is a closed-loop model of one pool in front of PostgreSQL:
// clients issue queries back to back; PostgreSQL runs up to cores of
// them at full speed (service time each) and shares its cores beyond
// that, so latency rises with concurrency past cores. The pool lets size
// of the clients run; the rest wait.
type simPool struct {
	name    string
	clients int
	cores   float64
	service time.Duration
	state   PoolState
}

// advance runs the model for dt at the pool's current size.
func (p *simPool) advance(dt time.Duration) {
	c := float64(min(p.clients, p.state.Size))
	latency := float64(p.service) * math.Max(1, c/p.cores)
	rate := c / latency * float64(time.Second) // queries per second
	n := int64(rate * dt.Seconds())
	p.state.Queries += n
	p.state.QueryTime += time.Duration(c * float64(dt))
	p.state.Waits += n
	waiting := p.clients - int(c)
	p.state.WaitTime += time.Duration(float64(waiting) * float64(dt))
	p.state.Waiting = waiting
	p.state.Active = int(c)
	p.state.Idle = p.state.Size - int(c)
}

func (p *simPool) throughput() float64 {
	c := float64(min(p.clients, p.state.Size))
	return c / (float64(p.service) * math.Max(1, c/p.cores)) * float64(time.Second)
}

// simKnobs drives simulated pools through the tuner.
type simKnobs struct{ pools []*simPool }

func (k *simKnobs) Pools() []PoolState {
	out := make([]PoolState, len(k.pools))
	for i, p := range k.pools {
		out[i] = p.state
		out[i].Name = p.name
	}
	return out
}

func (k *simKnobs) SetPoolSize(name string, n int) bool {
	for _, p := range k.pools {
		if p.name == name {
			p.state.Size = n
			return true
		}
	}
	return false
}

func testTuner(knobs Knobs, bounds PoolBounds) *Tuner {
	cfg := Config{PoolSize: ModeOn, CacheAdmission: ModeOff}
	cfg.Defaults()
	return New(cfg, bounds, knobs, nil, nil)
}

// run steps the model and the tuner for n intervals on a fake clock and
// returns every decision and the sizes seen after each step.
func run(tu *Tuner, k *simKnobs, start time.Time, n int) (decisions []Decision, sizes [][]int, end time.Time) {
	now := start
	for i := 0; i < n; i++ {
		for _, p := range k.pools {
			p.advance(tu.cfg.Interval)
		}
		now = now.Add(tu.cfg.Interval)
		decisions = append(decisions, tu.Step(now)...)
		var s []int
		for _, p := range k.pools {
			s = append(s, p.state.Size)
		}
		sizes = append(sizes, s)
	}
	return decisions, sizes, now
}

func turns(sizes [][]int, pool int) int {
	n, dir := 0, 0
	for i := 1; i < len(sizes); i++ {
		d := sizes[i][pool] - sizes[i-1][pool]
		if d == 0 {
			continue
		}
		if d > 0 {
			d = 1
		} else {
			d = -1
		}
		if dir != 0 && d != dir {
			n++
		}
		dir = d
	}
	return n
}

// TestPoolLoopGrowsASmallPool: clients wait while PostgreSQL has room
// (latency flat up to 32 concurrent): the pool grows in bounded steps
// until no client waits, then stays put.
func TestPoolLoopGrowsASmallPool(t *testing.T) {
	p := &simPool{name: "app/app", clients: 20, cores: 32, service: 2 * time.Millisecond, state: PoolState{Size: 2}}
	k := &simKnobs{pools: []*simPool{p}}
	tu := testTuner(k, PoolBounds{MinPoolSize: 1, MaxPoolSize: 100, MaxServerConnections: 300})
	decisions, sizes, _ := run(tu, k, time.Unix(0, 0), 200)
	if got := p.state.Size; got < 20 || got > 20+tu.cfg.Step {
		t.Fatalf("final size %d; want 20..%d (every client served, no more than a step over)", got, 20+tu.cfg.Step)
	}
	for i := 1; i < len(sizes); i++ {
		if d := sizes[i][0] - sizes[i-1][0]; d > tu.cfg.Step || d < -tu.cfg.Step {
			t.Fatalf("step %d changed the size by %d; want at most %d", i, d, tu.cfg.Step)
		}
	}
	if n := turns(sizes, 0); n > 0 {
		t.Errorf("%d direction changes on a steady input; want none", n)
	}
	last := sizes[len(sizes)-1][0]
	for _, s := range sizes[len(sizes)-50:] {
		if s[0] != last {
			t.Fatalf("the size still moves in the last 50 intervals: %v", sizes[len(sizes)-50:])
		}
	}
	for _, d := range decisions {
		if d.Action != "grow" || d.Reason == "" || d.Inputs == "" {
			t.Errorf("decision %v; want only grows, each with its reason and inputs", d)
		}
	}
}

// TestPoolLoopBacksOffWhenSaturated: PostgreSQL has 8 cores and 100
// clients want in. Growing past 8 only raises latency: each grow there
// is judged worse and undone, growing then waits for a backoff that
// doubles, so the size stays near the knee with few direction changes
// and throughput stays at the maximum.
func TestPoolLoopBacksOffWhenSaturated(t *testing.T) {
	p := &simPool{name: "app/app", clients: 100, cores: 8, service: 2 * time.Millisecond, state: PoolState{Size: 2}}
	k := &simKnobs{pools: []*simPool{p}}
	tu := testTuner(k, PoolBounds{MinPoolSize: 1, MaxPoolSize: 100, MaxServerConnections: 300})
	decisions, sizes, _ := run(tu, k, time.Unix(0, 0), 400)
	reverts := 0
	var lastRevert time.Time
	for _, d := range decisions {
		switch d.Action {
		case "revert":
			reverts++
			lastRevert = d.At
		case "grow":
			if !lastRevert.IsZero() && d.At.Sub(lastRevert) < tu.cfg.Cooldown {
				t.Errorf("grow at %s only %s after a revert; want a backoff of at least the cooldown", d.At, d.At.Sub(lastRevert))
			}
		}
	}
	if reverts == 0 {
		t.Fatalf("no revert: decisions %v", decisions)
	}
	for i, s := range sizes {
		if s[0] > 8+2*tu.cfg.Step {
			t.Fatalf("interval %d: size %d; want never far past the 8 cores", i, s[0])
		}
	}
	if n := turns(sizes[200:], 0); n > 8 {
		t.Errorf("%d direction changes in 200 steady intervals; want at most 8 (the backoff doubles)", n)
	}
	if got, best := p.throughput(), 8/(2*time.Millisecond).Seconds(); got < 0.99*best {
		t.Errorf("throughput %.0f/s; want the saturated maximum %.0f/s", got, best)
	}
}

// TestPoolLoopShrinksIdle: a pool far larger than its load shrinks in
// steps down to min_pool_size, never below it.
func TestPoolLoopShrinksIdle(t *testing.T) {
	p := &simPool{name: "app/app", clients: 1, cores: 32, service: 2 * time.Millisecond, state: PoolState{Size: 40}}
	k := &simKnobs{pools: []*simPool{p}}
	tu := testTuner(k, PoolBounds{MinPoolSize: 5, MaxPoolSize: 100, MaxServerConnections: 300})
	_, sizes, _ := run(tu, k, time.Unix(0, 0), 200)
	if got := p.state.Size; got != 5 {
		t.Fatalf("final size %d; want min_pool_size 5 (1 client busy)", got)
	}
	for _, s := range sizes {
		if s[0] < 5 {
			t.Fatalf("size %d below min_pool_size", s[0])
		}
	}
}

// TestPoolLoopRespectsTheGlobalCap: two starved pools both grow, but the
// sizes together never pass max_server_connections, nor one pool its
// max_pool_size.
func TestPoolLoopRespectsTheGlobalCap(t *testing.T) {
	a := &simPool{name: "a/u", clients: 50, cores: 64, service: time.Millisecond, state: PoolState{Size: 2}}
	b := &simPool{name: "b/u", clients: 50, cores: 64, service: time.Millisecond, state: PoolState{Size: 2}}
	k := &simKnobs{pools: []*simPool{a, b}}
	tu := testTuner(k, PoolBounds{MinPoolSize: 1, MaxPoolSize: 30, MaxServerConnections: 40})
	_, sizes, _ := run(tu, k, time.Unix(0, 0), 300)
	for i, s := range sizes {
		if s[0]+s[1] > 40 || s[0] > 30 || s[1] > 30 {
			t.Fatalf("interval %d: sizes %v; want a total of at most 40, each at most 30", i, s)
		}
	}
	if a.state.Size+b.state.Size != 40 {
		t.Errorf("sizes %d + %d; want the whole cap of 40 used by starved pools", a.state.Size, b.state.Size)
	}
}

// TestPoolLoopDryRun: dry-run decides and records, but changes nothing.
func TestPoolLoopDryRun(t *testing.T) {
	p := &simPool{name: "app/app", clients: 20, cores: 32, service: 2 * time.Millisecond, state: PoolState{Size: 2}}
	k := &simKnobs{pools: []*simPool{p}}
	tu := testTuner(k, PoolBounds{MinPoolSize: 1, MaxPoolSize: 100, MaxServerConnections: 300})
	tu.cfg.PoolSize = ModeDryRun
	decisions, _, _ := run(tu, k, time.Unix(0, 0), 20)
	if len(decisions) == 0 || decisions[0].Mode != ModeDryRun || decisions[0].Action != "grow" {
		t.Fatalf("decisions %v; want dry-run grows", decisions)
	}
	if p.state.Size != 2 {
		t.Errorf("size %d; dry-run must not change it", p.state.Size)
	}
}

// TestPoolLoopLeavesAConfiguredSizeOverItsMax: a pool configured larger
// than max_pool_size is not cut down for it: only a signal (here idle
// servers) shrinks it, in steps; a starved one is not grown further.
func TestPoolLoopLeavesAConfiguredSizeOverItsMax(t *testing.T) {
	p := &simPool{name: "app/app", clients: 200, cores: 400, service: 2 * time.Millisecond, state: PoolState{Size: 150}}
	k := &simKnobs{pools: []*simPool{p}}
	tu := testTuner(k, PoolBounds{MinPoolSize: 1, MaxPoolSize: 100, MaxServerConnections: 300})
	decisions, _, _ := run(tu, k, time.Unix(0, 0), 50)
	if len(decisions) != 0 || p.state.Size != 150 {
		t.Errorf("decisions %v, size %d; want the configured 150 left alone while busy", decisions, p.state.Size)
	}
}

// TestDecisionsLoggedOnceAndCounted: every decision is logged once with
// its inputs and counted in pgone_tuner_decisions_total{loop,action}.
func TestDecisionsLoggedOnceAndCounted(t *testing.T) {
	var buf bytes.Buffer
	p := &simPool{name: "app/app", clients: 20, cores: 32, service: 2 * time.Millisecond, state: PoolState{Size: 2}}
	k := &simKnobs{pools: []*simPool{p}}
	cfg := Config{PoolSize: ModeOn}
	cfg.Defaults()
	tu := New(cfg, PoolBounds{MinPoolSize: 1, MaxPoolSize: 100, MaxServerConnections: 300}, k, nil,
		slog.New(slog.NewTextHandler(&buf, nil)))
	reg := prometheus.NewRegistry()
	if err := tu.RegisterMetrics(reg); err != nil {
		t.Fatal(err)
	}
	decisions, _, _ := run(tu, k, time.Unix(0, 0), 100)
	lines := strings.Count(buf.String(), "msg=\"tuner decision\"")
	withInputs := strings.Count(buf.String(), "inputs=\"rate=")
	counted := testutil.ToFloat64(tu.metrics.decisions.WithLabelValues("pool", "grow"))
	if len(decisions) == 0 || lines != len(decisions) || withInputs != lines || int(counted) != len(decisions) {
		t.Errorf("%d decisions, %d log lines (%d with inputs), counted %v; want each logged once with inputs and counted",
			len(decisions), lines, withInputs, counted)
	}
}

// TestGrewWorse: a grow is undone only when the servers it added were busy
// and throughput barely moved. The first case is the bench's (issue 15,
// bench/results/tuner): 2 -> 6 servers, busy 1.7 -> 5.5, 6,605 -> 8,462
// queries/s; it was undone before this rule, and the tuned run stayed at
// 69% of the best static pool.
func TestGrewWorse(t *testing.T) {
	for _, tc := range []struct {
		name                  string
		busyBefore, busyAfter float64
		rateBefore, rateAfter float64
		want                  bool
	}{
		{"busier and 28% more throughput: kept", 1.7, 5.5, 6605, 8462, false},
		{"busier and 12% more throughput: kept", 1.7, 5.5, 6276, 7028, false},
		{"busier and 3% more throughput: saturated, undone", 1.7, 5.5, 6276, 6464, true},
		{"busier and less throughput: undone", 2, 6, 1000, 900, true},
		{"throughput in proportion to the servers: kept", 2, 4, 1000, 1900, false},
	} {
		worse, ok := grewWorse(poolWindow{busy: tc.busyBefore, rate: tc.rateBefore}, poolWindow{busy: tc.busyAfter, rate: tc.rateAfter})
		if !ok || worse != tc.want {
			t.Errorf("%s: worse %v (comparable %v), want %v", tc.name, worse, ok, tc.want)
		}
	}
}

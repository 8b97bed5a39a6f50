package main

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/pgone/pgone/config"
	"github.com/pgone/pgone/internal/pgtest"
)

// series builds a run whose windows complete tps[i]*window statements,
// with p99 as given.
func series(name string, window time.Duration, p99 float64, tps ...float64) TunerRun {
	r := TunerRun{Target: name, Window: window, P99Ms: p99}
	for _, v := range tps {
		n := int64(v * window.Seconds())
		r.Windows = append(r.Windows, TunerWindow{Stmts: n, P99Ms: p99})
		r.Stmts += n
	}
	return r
}

func tunerFixture(tuned TunerRun) *TunerReport {
	w := 10 * time.Second
	return &TunerReport{
		Meta:  TunerMeta{Mode: "tuner", Window: w, Duration: 90 * time.Second, Clients: 32},
		Small: series("pgone-static-small", w, 80, 100, 100, 100, 100, 100, 100, 100, 100, 100),
		Tuned: tuned,
		Sweep: []TunerRun{
			series("pgone-static-5", w, 30, 500, 500, 500, 500, 500, 500, 500, 500, 500),
			// The best: its steady (last 3 windows) is 1000 though its
			// first windows are slower (the cache filling).
			series("pgone-static-20", w, 20, 400, 900, 1000, 1000, 1000, 1000, 1000, 1000, 1000),
			series("pgone-static-40", w, 25, 950, 950, 950, 950, 950, 950, 950, 950, 900),
		},
		Reach: 0.9, ReachBy: 60, Tail: 3,
	}
}

func TestTunerGoalsMetOnConvergingSeries(t *testing.T) {
	w := 10 * time.Second
	rep := tunerFixture(series("pgone-tuned", w, 60, 100, 300, 600, 850, 920, 950, 960, 950, 970))
	if b := rep.best(); b == nil || b.Target != "pgone-static-20" {
		t.Fatalf("best static = %+v, want pgone-static-20", b)
	}
	g := rep.goals()
	for i, want := range []bool{true, true, true} {
		if !g[i].Judged || g[i].Met != want {
			t.Errorf("goal %q: judged=%v met=%v (%s), want met=%v", g[i].Goal, g[i].Judged, g[i].Met, g[i].Value, want)
		}
	}
	// 920 ≥ 900 first in window 5, which ends at 50 s.
	if !strings.Contains(g[1].Value, "50s") {
		t.Errorf("reach value = %q, want at 50s", g[1].Value)
	}
}

func TestTunerGoalsNotMetWhenSlowOrWorse(t *testing.T) {
	w := 10 * time.Second
	// Reaches 90% only at 70 s, settles at 0.85 of the best, and its p99
	// is worse than the wrong static config's.
	rep := tunerFixture(series("pgone-tuned", w, 90, 100, 200, 300, 400, 500, 600, 910, 850, 850))
	g := rep.goals()
	for i := range g {
		if !g[i].Judged || g[i].Met {
			t.Errorf("goal %q: judged=%v met=%v (%s), want judged and not met", g[i].Goal, g[i].Judged, g[i].Met, g[i].Value)
		}
	}
	if !strings.Contains(g[1].Value, "1m10s") {
		t.Errorf("reach value = %q, want at 1m10s", g[1].Value)
	}
	never := tunerFixture(series("pgone-tuned", w, 50, 100, 100, 100))
	if g := never.goals(); g[1].Value != "never" || g[1].Met {
		t.Errorf("never reaching: %+v", g[1])
	}
}

func TestTunerGoalsNotJudgedAfterFailedRun(t *testing.T) {
	rep := tunerFixture(TunerRun{Target: "pgone-tuned", Err: "start: boom"})
	for _, g := range rep.goals() {
		if g.Judged || g.Met {
			t.Errorf("goal %q judged=%v met=%v after a failed tuned run", g.Goal, g.Judged, g.Met)
		}
	}
	md := rep.markdown()
	if !strings.Contains(md, "not judged") || !strings.Contains(md, "error: start: boom") {
		t.Errorf("markdown does not show the failed run:\n%s", md)
	}
}

func TestTunerMarkdownShowsWindowsGoalsAndShowTuner(t *testing.T) {
	w := 10 * time.Second
	tuned := series("pgone-tuned", w, 60, 100, 300, 600, 850, 920, 950, 960, 950, 970)
	tuned.ShowTuner = &ConsoleDump{Columns: []string{"loop", "action", "reason"},
		Rows: [][]string{{"pool", "grow", "clients wait | latency flat"}}}
	md := tunerFixture(tuned).markdown()
	for _, want := range []string{
		"| pgone-tuned | 100 | 300 | 600 | 850 | 920 | 950 | 960 | 950 | 970 | 960 | 60.0 |",
		"| 10s | 20s |",
		"1m30s |",
		"| tuned ≥ 90% of the best static (mean of the last 3 windows) | 960 of 1000 stmt/s (pgone-static-20): 0.96 | met |",
		"| tuned reaches 90% of the best static within 60 s | at 50s | met |",
		"| tuned p99 no worse than pgone-static-small's | 60.0 ms against 80.0 ms | met |",
		"against the best static (pgone-static-20): 60.0 ms against 20.0 ms",
		`| pool | grow | clients wait \| latency flat |`,
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}

// TestTunerConfigsLoad: every generated config of the suite (full and
// tiny) passes pgone's own loader, and says what the spec asks.
func TestTunerConfigsLoad(t *testing.T) {
	env := &Env{user: "bench", password: "bench", db: "bench", maxClients: 1000,
		cluster: &pgtest.Cluster{Primary: &pgtest.Server{Port: 5432}}}
	for _, tiny := range []bool{false, true} {
		p := newTunerPlan(tiny, 0, 0)
		specs := p.specs()
		if len(specs) != 2+len(p.Sweep) || specs[0].Name != "pgone-static-small" || specs[1].Name != "pgone-tuned" {
			t.Fatalf("specs = %+v", specs)
		}
		for _, s := range specs {
			text := tunerConfig(env, p, s, 6432, 9930)
			cfg, err := config.Parse([]byte(text))
			if err != nil {
				t.Fatalf("%s (tiny=%v): %v\n%s", s.Name, tiny, err, text)
			}
			db := cfg.Proxy.Databases[env.db]
			if db.PoolSize != s.PoolSize {
				t.Errorf("%s: pool_size %d, want %d", s.Name, db.PoolSize, s.PoolSize)
			}
			wantMode, wantRules := "auto", 0
			if s.Rules {
				wantMode, wantRules = "rules", 1
			}
			if string(cfg.Cache.Mode) != wantMode || len(cfg.Cache.Rules) != wantRules {
				t.Errorf("%s: cache mode %q with %d rules, want %q with %d", s.Name, cfg.Cache.Mode, len(cfg.Cache.Rules), wantMode, wantRules)
			}
			loops := string(cfg.Tuner.PoolSize) + "," + string(cfg.Tuner.CacheAdmission)
			want := "off,off"
			if s.Tuned {
				want = "on,on"
			}
			if loops != want {
				t.Errorf("%s: tuner pool_size,cache_admission = %s, want %s", s.Name, loops, want)
			}
			if s.Tuned && (cfg.Tuner.MaxPoolSize < p.Sweep[len(p.Sweep)-1] || cfg.Pool.MaxServerConnections < cfg.Tuner.MaxPoolSize) {
				t.Errorf("%s: the tuner cannot reach the sweep's largest pool: max_pool_size %d, max_server_connections %d",
					s.Name, cfg.Tuner.MaxPoolSize, cfg.Pool.MaxServerConnections)
			}
		}
	}
}

// TestTunerPlanFlags: -tiny shortens the runs and the windows; -duration
// given explicitly sets the run length, in whole windows, and the
// default -duration (4s, meant for pgbench cells) does not.
func TestTunerPlanFlags(t *testing.T) {
	for _, c := range []struct {
		args     []string
		dur, win time.Duration
		clients  int
	}{
		{[]string{"-suite", "tuner"}, 90 * time.Second, 10 * time.Second, 32},
		{[]string{"-suite", "tuner", "-tiny"}, 12 * time.Second, 2 * time.Second, 8},
		{[]string{"-suite", "tuner", "-duration", "55s"}, 60 * time.Second, 10 * time.Second, 32},
	} {
		o, err := parseFlags(c.args, io.Discard)
		if err != nil {
			t.Fatalf("%v: %v", c.args, err)
		}
		p := tunerPlanOf(o, 0)
		if p.Duration != c.dur || p.Window != c.win || p.Clients != c.clients {
			t.Errorf("%v: duration %s, window %s, %d clients; want %s, %s, %d", c.args, p.Duration, p.Window, p.Clients, c.dur, c.win, c.clients)
		}
	}
}

// TestPgoneConfigsLoad: the comparison suites' generated pgone configs
// (plain, cache, cache with Redis) pass pgone's own loader and say what
// the target is.
func TestPgoneConfigsLoad(t *testing.T) {
	env := &Env{user: "bench", password: "bench", db: "bench", maxClients: 1000, poolSize: 20,
		cluster: &pgtest.Cluster{Primary: &pgtest.Server{Port: 5432}, Replica: &pgtest.Server{Port: 5433}}}
	for _, tc := range []struct {
		cache bool
		redis string
	}{{false, ""}, {true, ""}, {true, "127.0.0.1:6379"}} {
		text := pgoneConfig(env, Transaction, 6432, 9930, tc.cache, tc.redis)
		cfg, err := config.Parse([]byte(text))
		if err != nil {
			t.Fatalf("cache %v redis %q: %v\n%s", tc.cache, tc.redis, err, text)
		}
		if db := cfg.Proxy.Databases[env.db]; db.PoolSize != 20 || cfg.Pool.MaxServerConnections != 60 {
			t.Errorf("pool_size %d, max_server_connections %d; want 20 and 60", db.PoolSize, cfg.Pool.MaxServerConnections)
		}
		if on := cfg.Cache.Mode == "rules"; on != tc.cache || cfg.Cache.Redis.Address != tc.redis {
			t.Errorf("cache mode %q redis %q; want cache %v redis %q", cfg.Cache.Mode, cfg.Cache.Redis.Address, tc.cache, tc.redis)
		}
	}
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The soak's verdict logic, without servers: make soak (and -plant) runs
// it against a real pgone.

func TestJudgeLedger(t *testing.T) {
	l := &ledger{
		acked:      []int64{1, 2, 3},
		rolledBack: []int64{4, 5},
		unknown:    []int64{6, 7},
		why:        map[int64]string{6: "lost connection", 7: "08007"},
	}
	// 1 fine, 2 lost, 3 twice, 4 rolled back yet present, 5 absent,
	// 6 unknown and committed, 7 unknown and absent, 99 never attempted.
	stored := map[int64]int{1: 1, 3: 2, 4: 1, 6: 1, 99: 1}
	v := judgeLedger(stored, []*ledger{l})
	if v.Acked != 3 || v.RolledBack != 2 || v.Unknown != 2 || v.Rows != 6 {
		t.Errorf("counts: acked %d rolled back %d unknown %d rows %d", v.Acked, v.RolledBack, v.Unknown, v.Rows)
	}
	if !slices.Equal(v.Lost, []int64{2}) || !slices.Equal(v.Twice, []int64{3}) || !slices.Equal(v.RolledBackPresent, []int64{4}) {
		t.Errorf("lost %v twice %v rolled back present %v", v.Lost, v.Twice, v.RolledBackPresent)
	}
	if v.UnknownPresent != 1 || v.Unrecorded != 1 {
		t.Errorf("unknown present %d, unrecorded %d", v.UnknownPresent, v.Unrecorded)
	}
	if len(v.UnknownWhy) != 2 || !strings.Contains(v.UnknownWhy[0], "id 6 committed; lost connection") {
		t.Errorf("unknown why %q", v.UnknownWhy)
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		name       string
		err        error
		committing bool
		want       outcome
	}{
		{"success", nil, true, acked},
		{"failed before COMMIT", errors.New("conn reset"), false, rolledBack},
		{"server rolled back the COMMIT", pgx.ErrTxCommitRollback, true, rolledBack},
		{"pgone says rolled back", &pgconn.PgError{Code: "08006"}, true, rolledBack},
		{"pgone says in doubt", &pgconn.PgError{Code: "08007"}, true, unknown},
		{"connection lost at COMMIT", errors.New("unexpected EOF"), true, unknown},
		{"timeout at COMMIT", fmt.Errorf("commit: %w", context.DeadlineExceeded), true, unknown},
	} {
		if got := classify(tc.err, tc.committing); got != tc.want {
			t.Errorf("%s: classify = %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestLeakCounts(t *testing.T) {
	st := leakState{Servers: []serverSide{
		{Name: "primary", PgPids: []int{10, 11, 12}, Listed: []int{10, 11, 13}, PoolConn: 3},
		{Name: "replica", PgPids: []int{20}, Listed: []int{20}, PoolConn: 1},
	}}
	leaked, phantom, pooled := st.counts()
	if leaked != 1 || phantom != 1 || pooled != 4 {
		t.Errorf("counts = %d leaked, %d phantom, %d pooled; want 1, 1, 4", leaked, phantom, pooled)
	}
}

// TestJudgeFailsEachInvariant: a clean run passes every invariant, and
// each planted fault fails exactly the invariant that watches for it.
func TestJudgeFailsEachInvariant(t *testing.T) {
	o, err := parseFlags([]string{"-duration", "2m"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	clean := func() *report {
		c := &counters{}
		c.acks.Store(10)
		c.reads.Store(10)
		side := func(name string) serverSide { return serverSide{Name: name, PgPids: []int{1}, Listed: []int{1}} }
		return &report{
			o: o, Counters: c, Alive: true,
			Faults:             []faultRecord{{Name: "restart primary", Recovery: time.Second}},
			Samples:            []sample{{At: o.warmup, RSS: 30 << 20}},
			EndOfLoad:          &sample{RSS: 31 << 20},
			Settled:            leakState{Servers: []serverSide{side("primary"), side("replica")}},
			Emptied:            leakState{Servers: []serverSide{{Name: "primary"}, {Name: "replica"}}},
			Verdict:            verdict{Acked: 10},
			BaselineGoroutines: 14, FinalGoroutines: 14,
		}
	}
	r := clean()
	r.judge()
	if f := r.failed(); len(f) != 0 {
		t.Fatalf("clean run failed: %q", f)
	}
	for _, tc := range []struct {
		plant func(*report)
		fails string
	}{
		{func(r *report) { r.Verdict.Lost = []int64{1} }, "acknowledged writes lost"},
		{func(r *report) { r.Verdict.Twice = []int64{1} }, "writes applied twice"},
		{func(r *report) { r.Verdict.RolledBackPresent = []int64{1} }, "writes called rolled back"},
		{func(r *report) { r.Verdict.Unrecorded = 1 }, "rows no writer attempted"},
		{func(r *report) { r.Counters.nMiss = 1 }, "own acknowledged write not visible"},
		{func(r *report) { r.Counters.reads.Store(0) }, "load ran"},
		{func(r *report) { r.Faults[0].Recovery = -1 }, "faults injected"},
		{func(r *report) { r.Alive = false }, "pgone alive"},
		{func(r *report) { r.Settled.Servers[0].PgPids = []int{1, 2} }, "server connections leaked"},
		{func(r *report) { r.Emptied.Servers[1].PoolConn = 1 }, "server connections left"},
		{func(r *report) { r.EndOfLoad.RSS = 30<<20 + r.o.maxRSSGrowth + 1 }, "RSS growth"},
		{func(r *report) { r.FinalGoroutines = 14 + r.o.goroutineSlack + 1 }, "goroutines back"},
	} {
		r := clean()
		tc.plant(r)
		r.judge()
		f := r.failed()
		if len(f) != 1 || !strings.HasPrefix(f[0], tc.fails) {
			t.Errorf("planted %q: failed %q", tc.fails, f)
		}
	}
}

func TestParseFlags(t *testing.T) {
	o, err := parseFlags([]string{"-duration", "4m", "-faults", "kill, reload"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.warmup != 30*time.Second || o.quiet != o.warmup {
		t.Errorf("warmup %s quiet %s, want 30s each (duration/8)", o.warmup, o.quiet)
	}
	if len(o.faults) != 2 || o.faults[0].key != "kill" || o.faults[1].key != "reload" {
		t.Errorf("faults %v", o.faults)
	}
	for _, bad := range [][]string{
		{"-duration", "30s"},
		{"-duration", "1m", "-warmup", "30s"},
		{"-outage", "14s"},
		{"-writers", "0"},
		{"-faults", "terminate,reboot"},
		{"extra"},
	} {
		if _, err := parseFlags(bad, io.Discard); err == nil {
			t.Errorf("parseFlags(%q) accepted", bad)
		}
	}
}

// TestAvailability: the report's availability line, as the seed defines
// it (successful requests over requests during scheduled faults).
func TestAvailability(t *testing.T) {
	for _, tc := range []struct {
		ok, failed int64
		want       string
	}{
		{89034, 12, "99.987% (89034 of 89046)"},
		{100, 0, "100.000% (100 of 100)"},
		{0, 0, "no requests"},
	} {
		if got := availability(tc.ok, tc.failed); got != tc.want {
			t.Errorf("availability(%d, %d) = %q, want %q", tc.ok, tc.failed, got, tc.want)
		}
	}
}

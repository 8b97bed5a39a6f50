package tuner

import (
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// TestSketchQuantiles: the sketch's quantiles are within 5% of the exact
// ones, on a spread of durations from microseconds to seconds.
func TestSketchQuantiles(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var s Sketch
	var all []time.Duration
	for i := 0; i < 20000; i++ {
		d := time.Duration(float64(time.Microsecond) * mathExp(r.Float64()*14)) // 1µs .. ~1.2s
		s.Add(d)
		all = append(all, d)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	for _, q := range []float64{0.5, 0.95, 0.99} {
		exact := all[int(q*float64(len(all)))-1]
		got := s.Quantile(q)
		if err := float64(got-exact) / float64(exact); err > 0.05 || err < -0.05 {
			t.Errorf("p%v = %s; exact %s (error %.3f, want within 5%%)", q*100, got, exact, err)
		}
	}
	if s.Count() != 20000 {
		t.Errorf("count %d", s.Count())
	}
}

// TestQueryTableBounded: the table keeps at most its capacity of
// fingerprints, and the ones with the most total time stay.
func TestQueryTableBounded(t *testing.T) {
	tb := newQueryTable(4)
	for fp := uint64(1); fp <= 100; fp++ {
		tb.record(&Sample{Fingerprint: fp, Text: "SELECT 1", ServerTime: time.Duration(fp) * time.Millisecond})
	}
	if n := len(tb.shards[0].byFP); len(tb.shards) != 1 || n != 4 {
		t.Fatalf("%d fingerprints kept; want 4", n)
	}
	rows, err := tb.rows("total", 10)
	if err != nil {
		t.Fatal(err)
	}
	var fps []uint64
	for _, r := range rows {
		fps = append(fps, r.Fingerprint)
	}
	if !slices.Equal(fps, []uint64{100, 99, 98, 97}) {
		t.Errorf("kept %v; want the top 4 by total time, in order", fps)
	}
}

// TestQueryTableShardsBounded: a large table is sharded and holds about
// its capacity, keeping the statements with the most total time.
func TestQueryTableShardsBounded(t *testing.T) {
	tb := newQueryTable(100)
	const mix = 0x9e3779b97f4a7c15 // spreads the fingerprints over the shards
	var top uint64
	for fp := uint64(1); fp <= 10000; fp++ {
		top = fp * mix
		tb.record(&Sample{Fingerprint: top, ServerTime: time.Duration(fp) * time.Microsecond})
	}
	rows, _ := tb.rows("total", 1000)
	if len(tb.shards) != queryShards || len(rows) > 112 || len(rows) < 100 {
		t.Fatalf("%d shards, %d fingerprints kept; want %d shards and about 100", len(tb.shards), len(rows), queryShards)
	}
	if rows[0].Fingerprint != top {
		t.Errorf("the top statement was evicted: %x", rows[0].Fingerprint)
	}
}

// TestQueriesSortAndNormalise: SHOW QUERIES sorts by each key, rejects an
// unknown one, and shows the normalised text (the raw text, which may
// hold constants, is dropped once normalised).
func TestQueriesSortAndNormalise(t *testing.T) {
	cfg := Config{}
	cfg.Defaults()
	tu := New(cfg, PoolBounds{}, nil, func(s string) (string, bool) {
		return strings.ReplaceAll(s, "42", "$1"), true
	}, nil)
	for i := 0; i < 10; i++ {
		tu.Record(Sample{Fingerprint: 1, Text: "SELECT * FROM a WHERE id = 42", ServerTime: time.Millisecond, WaitTime: 10 * time.Millisecond})
	}
	tu.Record(Sample{Fingerprint: 2, Text: "SELECT slow()", ServerTime: time.Second, Error: true})
	order := func(key string) []uint64 {
		rows, err := tu.Queries(key)
		if err != nil {
			t.Fatal(err)
		}
		var out []uint64
		for _, r := range rows {
			out = append(out, r.Fingerprint)
		}
		return out
	}
	for key, want := range map[string][]uint64{"total": {2, 1}, "calls": {1, 2}, "p99": {2, 1}, "wait": {1, 2}, "errors": {2, 1}} {
		if got := order(key); !slices.Equal(got, want) {
			t.Errorf("order by %s: %v; want %v", key, got, want)
		}
	}
	if _, err := tu.Queries("bogus"); err == nil {
		t.Error("an unknown order was accepted")
	}
	tb, err := tu.QueriesTable("calls")
	if err != nil {
		t.Fatal(err)
	}
	if q := tb.Rows[0][len(tb.Columns)-1]; q != "SELECT * FROM a WHERE id = $1" {
		t.Errorf("query text %q; want it normalised", q)
	}
}

func mathExp(x float64) float64 { return math.Exp(x) }

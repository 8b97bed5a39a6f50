package cache

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func newTestCache(t *testing.T, set func(*Config)) *Cache {
	t.Helper()
	cfg := Config{Mode: ModeRules}
	cfg.Defaults()
	if set != nil {
		set(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// fill runs one miss: Lookup must miss, and the fill stores reply.
func fill(t *testing.T, c *Cache, k Key, reply []byte, from Origin) Refusal {
	t.Helper()
	r, f := c.Lookup(context.Background(), k, "app", []string{"accounts"})
	if r != nil || f == nil {
		t.Fatalf("Lookup hit, want a miss")
	}
	return f.Store(reply, 0, from)
}

func TestLookupHitIsTheStoredBytes(t *testing.T) {
	c := newTestCache(t, nil)
	k := testKey(1)
	reply := []byte("T...D...C...")
	if r := fill(t, c, k, bytes.Clone(reply), Origin{}); r != RefuseNone {
		t.Fatalf("fill refused: %s", r)
	}
	got, f := c.Lookup(context.Background(), k, "app", []string{"accounts"})
	if f != nil || !bytes.Equal(got, reply) {
		t.Fatalf("Lookup = %q, fill %v; want a hit with %q", got, f != nil, reply)
	}
	if n := testing.AllocsPerRun(1000, func() {
		if r, _ := c.Lookup(context.Background(), k, "app", nil); r == nil {
			t.Fatal("miss")
		}
	}); n != 0 {
		t.Fatalf("a hit allocates %v times", n)
	}
}

func TestLookupAfterWrites(t *testing.T) {
	for _, tc := range []struct {
		name  string
		write func(c *Cache, tx *Tx)
		hit   bool
	}{
		{"no write", func(*Cache, *Tx) {}, true},
		{"write to another table", func(c *Cache, tx *Tx) { tx.Mark(c.Versions(), "app", []string{"branches"}); tx.Commit(1, nil) }, true},
		{"writer in flight", func(c *Cache, tx *Tx) { tx.Mark(c.Versions(), "app", []string{"accounts"}) }, false},
		{"writer rolled back", func(c *Cache, tx *Tx) { tx.Mark(c.Versions(), "app", []string{"accounts"}); tx.End() }, true},
		{"writer committed", func(c *Cache, tx *Tx) { tx.Mark(c.Versions(), "app", []string{"accounts"}); tx.Commit(1, nil) }, false},
		{"DDL committed", func(c *Cache, tx *Tx) { tx.MarkAll(c.Versions(), "app"); tx.Commit(1, nil) }, false},
		{"flush of the database", func(c *Cache, _ *Tx) { c.Flush("app") }, false},
		{"flush of another database", func(c *Cache, _ *Tx) { c.Flush("other") }, true},
		{"flush of all", func(c *Cache, _ *Tx) { c.Flush("") }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestCache(t, nil)
			fill(t, c, testKey(1), []byte("reply"), Origin{})
			var tx Tx
			tc.write(c, &tx)
			if _, hit := c.Get(testKey(1)); hit != tc.hit {
				t.Fatalf("hit = %v, want %v", hit, tc.hit)
			}
			if tx.Active() { // a writer still in flight shadows the entry, it does not drop it
				tx.End()
				if _, hit := c.Get(testKey(1)); !hit {
					t.Fatal("entry gone after the writer in flight rolled back")
				}
			}
		})
	}
}

func TestStoreRefusals(t *testing.T) {
	c := newTestCache(t, func(cfg *Config) { cfg.MaxEntryBytes = 1000 })
	if r := fill(t, c, testKey(1), make([]byte, 1000), Origin{}); r != RefuseTooLarge {
		t.Fatalf("oversized reply: %s, want too_large", r)
	}
	// pgone has seen the primary since it first saw app: the startup's
	// unknown position is resolved (versions.go db).
	c.Versions().ResolveUnknownLSN(c.Versions().UnknownMark(), 0)
	r, f := c.Lookup(context.Background(), testKey(2), "app", []string{"accounts"})
	if r != nil {
		t.Fatal("hit")
	}
	c.Versions().Bump("app", []string{"accounts"}, 50)
	if got := f.Store([]byte("x"), 0, Origin{}); got != RefuseVersion {
		t.Fatalf("fill after a bump: %s, want version", got)
	}
	if got := fill(t, c, testKey(3), []byte("x"), Origin{Replica: true, ReplayLSN: 49}); got != RefuseReplicaLSN {
		t.Fatalf("fill from a lagging replica: %s, want replica_lsn", got)
	}
	if got := fill(t, c, testKey(3), []byte("x"), Origin{Replica: true, ReplayLSN: 50}); got != RefuseNone {
		t.Fatalf("fill from a caught-up replica: %s", got)
	}
	s := c.Stats()
	if s.Refused[RefuseTooLarge] != 1 || s.Refused[RefuseVersion] != 1 || s.Refused[RefuseReplicaLSN] != 1 || s.Fills != 1 {
		t.Fatalf("stats %+v", s)
	}
	if s.Invalidations[CauseWrite] != 1 || s.Misses != 4 || s.Entries != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// waitFor polls cond, bounded: the condition, not a guessed sleep.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// lookups runs n concurrent Lookups of k and returns their replies and
// fills once all are done.
func lookups(c *Cache, k Key, n int) (replies [][]byte, fills []*Fill, wait func()) {
	replies, fills = make([][]byte, n), make([]*Fill, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { replies[i], fills[i] = c.Lookup(context.Background(), k, "app", []string{"accounts"}) })
	}
	return replies, fills, wg.Wait
}

func TestSingleFlightFollowersShareTheLeadersResult(t *testing.T) {
	c := newTestCache(t, func(cfg *Config) { cfg.SingleFlightWait = time.Minute })
	k := testKey(1)
	_, leader := c.Lookup(context.Background(), k, "app", []string{"accounts"})
	const n = 8
	replies, fills, wait := lookups(c, k, n)
	waitFor(t, "followers waiting", func() bool { return c.flights.waiting.Load() == n })
	if r := leader.Store([]byte("rows"), 0, Origin{}); r != RefuseNone {
		t.Fatalf("leader's fill refused: %s", r)
	}
	wait()
	for i := range n {
		if fills[i] != nil || string(replies[i]) != "rows" {
			t.Fatalf("follower %d: reply %q fill %v, want the leader's rows", i, replies[i], fills[i] != nil)
		}
	}
	if s := c.Stats(); s.Misses != 1 || s.Shared != n || s.Hits != n {
		t.Fatalf("stats %+v, want 1 miss and %d shared hits", s, n)
	}
}

func TestSingleFlightFollowersGoThemselvesWhenLeaderStoresNothing(t *testing.T) {
	c := newTestCache(t, func(cfg *Config) { cfg.SingleFlightWait = time.Minute })
	k := testKey(1)
	_, leader := c.Lookup(context.Background(), k, "app", []string{"accounts"})
	const n = 4
	replies, fills, wait := lookups(c, k, n)
	waitFor(t, "followers waiting", func() bool { return c.flights.waiting.Load() == n })
	c.Versions().Bump("app", []string{"accounts"}, 1) // the leader's read may be stale now
	if r := leader.Store([]byte("old rows"), 0, Origin{}); r != RefuseVersion {
		t.Fatalf("leader's fill: %s, want version", r)
	}
	wait()
	for i := range n {
		if replies[i] != nil || fills[i] == nil {
			t.Fatalf("follower %d got %q, want a fill of its own", i, replies[i])
		}
		if r := fills[i].Store([]byte("new rows"), 0, Origin{}); r != RefuseNone {
			t.Fatalf("follower %d's own fill refused: %s", i, r)
		}
	}
}

func TestSingleFlightBound(t *testing.T) {
	const bound = 30 * time.Millisecond
	c := newTestCache(t, func(cfg *Config) { cfg.SingleFlightWait = bound })
	k := testKey(1)
	_, lost := c.Lookup(context.Background(), k, "app", []string{"accounts"}) // never finishes
	start := time.Now()
	r, f := c.Lookup(context.Background(), k, "app", []string{"accounts"})
	if r != nil || f == nil {
		t.Fatal("follower of a lost leader did not get a fill")
	}
	if waited := time.Since(start); waited < bound {
		t.Fatalf("follower went alone after %s, before the %s bound", waited, bound)
	}
	if c.Stats().FollowersAlone != 1 {
		t.Fatalf("stats %+v", c.Stats())
	}
	// The lost leader's flight is older than the bound: the next miss leads.
	if _, f := c.Lookup(context.Background(), k, "app", []string{"accounts"}); f == nil || f.flight == nil {
		t.Fatal("a miss after the bound did not lead a new flight")
	}
	lost.Abandon()
}

func TestSingleFlightContextEndsWait(t *testing.T) {
	c := newTestCache(t, func(cfg *Config) { cfg.SingleFlightWait = time.Hour })
	k := testKey(1)
	_, leader := c.Lookup(context.Background(), k, "app", nil)
	defer leader.Abandon()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan *Fill)
	go func() { _, f := c.Lookup(ctx, k, "app", nil); done <- f }()
	waitFor(t, "follower waiting", func() bool { return c.flights.waiting.Load() == 1 })
	cancel()
	if f := <-done; f == nil {
		t.Fatal("follower whose context ended got no fill")
	}
}

func TestMetricsRegistered(t *testing.T) {
	c := newTestCache(t, nil)
	reg := prometheus.NewRegistry()
	if err := c.RegisterMetrics(reg); err != nil {
		t.Fatal(err)
	}
	fill(t, c, testKey(1), []byte("reply"), Origin{})
	c.Get(testKey(1))
	c.Versions().Bump("app", []string{"accounts", "branches"}, 1)
	fill(t, c, testKey(2), make([]byte, 2<<20), Origin{})
	// otter counts an entry's weight after its write is applied, a moment
	// after Set returns.
	waitFor(t, "the store to weigh its entry", func() bool { return c.Stats().Bytes > 0 })
	got := map[string]float64{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			for _, l := range m.GetLabel() {
				name += "{" + l.GetValue() + "}"
			}
			got[name] = m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	for name, want := range map[string]float64{
		"pgone_cache_hits_total":                     1,
		"pgone_cache_misses_total":                   2,
		"pgone_cache_fills_total":                    1,
		"pgone_cache_fills_refused_total{too_large}": 1,
		"pgone_cache_fills_refused_total{version}":   0,
		"pgone_cache_invalidations_total{write}":     2,
		"pgone_cache_entries":                        1,
	} {
		if v, ok := got[name]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", name, v, ok, want)
		}
	}
	if got["pgone_cache_bytes"] <= 0 {
		t.Errorf("pgone_cache_bytes = %v, want the entry's size", got["pgone_cache_bytes"])
	}
}

// BenchmarkLookupHit is the whole hit path: key, store, version check,
// counter (run with -benchmem: 0 allocs).
func BenchmarkLookupHit(b *testing.B) {
	cfg := Config{Mode: ModeRules}
	cfg.Defaults()
	c, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	in := KeyInput{Database: "app", Role: "alice", Text: "select abalance from pgbench_accounts where aid = $1", Params: [][]byte{[]byte("42")}}
	var kb KeyBuilder
	_, f := c.Lookup(context.Background(), kb.Key(&in), "app", []string{"pgbench_accounts"})
	f.Store(make([]byte, 200), 0, Origin{})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if r, _ := c.Lookup(ctx, kb.Key(&in), "app", nil); r == nil {
			b.Fatal("miss")
		}
	}
}

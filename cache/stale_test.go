package cache

import (
	"context"
	"encoding/binary"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestCacheNeverStale runs the whole Lookup/Store/Tx path concurrently:
// writers commit (publishing each value once PostgreSQL has it, before
// the bump), readers look up, fill and share single flights. Every reply
// must be at least as new as every value published before the read began.
func TestCacheNeverStale(t *testing.T) {
	const (
		keys    = 3
		writers = 2
		readers = 6
		rounds  = 2000
	)
	c := newTestCache(t, func(cfg *Config) { cfg.SingleFlightWait = 20 * time.Millisecond })
	names := []string{"t0", "t1", "t2"}
	var truth, published [keys]atomic.Int64
	var st staleRead
	var wg sync.WaitGroup
	// Writers run until every reader is done, so reads always overlap
	// writes however the scheduler runs the goroutines.
	var readersDone atomic.Bool
	var rwg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			var tx Tx
			for i := 0; !readersDone.Load(); i++ {
				k := (w + i) % keys
				tx.Mark(c.Versions(), "app", names[k:k+1])
				n := truth[k].Add(1)
				for p := published[k].Load(); p < n && !published[k].CompareAndSwap(p, n); p = published[k].Load() {
				}
				tx.Commit(LSN(i+1), nil)
			}
		})
	}
	for r := range readers {
		rwg.Go(func() {
			for i := 0; i < rounds || (!(st.fills.Load() > 0 && st.hits.Load() > 0) && i < 100*rounds); i++ {
				k := (r + i) % keys
				st.read(t, c, k, names[k:k+1], published[k].Load(), &truth[k])
			}
		})
	}
	rwg.Wait()
	readersDone.Store(true)
	wg.Wait()
	if st.fills.Load() == 0 || st.hits.Load() == 0 {
		t.Fatalf("the run exercised too little: %d fills, %d hits", st.fills.Load(), st.hits.Load())
	}
	t.Logf("%d fills, %d hits, stats %+v", st.fills.Load(), st.hits.Load(), c.Stats())
}

// staleRead is the reader of the staleness tests: it counts hits and
// fills, and fails the test (once) on a hit older than what had committed
// before the read began.
type staleRead struct {
	hits, fills atomic.Int64
	failed      atomic.Bool
}

// read looks key k up: a hit must be at least floor (the version
// committed and acknowledged before the lookup), a miss is filled from
// truth, read after Lookup took its token, as a query would.
func (s *staleRead) read(t *testing.T, c *Cache, k int, names []string, floor int64, truth *atomic.Int64) {
	reply, f := c.Lookup(context.Background(), testKey(k), "app", names)
	if reply != nil {
		s.hits.Add(1)
		if got := int64(binary.BigEndian.Uint64(reply)); got < floor && s.failed.CompareAndSwap(false, true) {
			t.Errorf("key %d: hit returned %d, but %d had committed before the read began", k, got, floor)
		}
		return
	}
	if f.Store(binary.BigEndian.AppendUint64(nil, uint64(truth.Load())), 0, Origin{}) == RefuseNone {
		s.fills.Add(1)
	}
}

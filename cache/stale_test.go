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
	var hits, fills atomic.Int64
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
	var failed atomic.Bool
	for r := range readers {
		rwg.Go(func() {
			for i := 0; i < rounds || (!(fills.Load() > 0 && hits.Load() > 0) && i < 100*rounds); i++ {
				k := (r + i) % keys
				floor := published[k].Load()
				reply, f := c.Lookup(context.Background(), testKey(k), "app", names[k:k+1])
				if reply != nil {
					hits.Add(1)
					if got := int64(binary.BigEndian.Uint64(reply)); got < floor && failed.CompareAndSwap(false, true) {
						t.Errorf("key %d: hit returned %d, but %d was committed before the read began", k, got, floor)
					}
					continue
				}
				x := truth[k].Load() // the read runs after Lookup took the token
				if f.Store(binary.BigEndian.AppendUint64(nil, uint64(x)), 0, Origin{}) == RefuseNone {
					fills.Add(1)
				}
			}
		})
	}
	rwg.Wait()
	readersDone.Store(true)
	wg.Wait()
	if fills.Load() == 0 || hits.Load() == 0 {
		t.Fatalf("the run exercised too little: %d fills, %d hits", fills.Load(), hits.Load())
	}
	t.Logf("%d fills, %d hits, stats %+v", fills.Load(), hits.Load(), c.Stats())
}

package cache

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgone/pgone/internal/pgtest"
)

// TestL2NeverStaleWhileRedisFlaps is TestCacheNeverStale with the shared
// part on a real Redis whose path is cut and mended every few tens of
// milliseconds: bus losses, failed and held bumps, resyncs and lapsed
// leases under concurrent commits and reads. Every hit must be at least
// as new as every value whose commit returned before the read began.
func TestL2NeverStaleWhileRedisFlaps(t *testing.T) {
	const keys, writers, readers = 3, 2, 6
	r := pgtest.NewRedis(t)
	cut := pgtest.NewCuttable(t, r.Addr)
	c := leasedCache(t, cut.Addr(), 200*time.Millisecond, time.Minute)
	names := []string{"t0", "t1", "t2"}
	var truth, acked [keys]atomic.Int64
	var st staleRead
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() { // the flapping path
		for i := 0; ctx.Err() == nil; i++ {
			// A schedule, not synchronisation: up 150-350ms, cut 10-50ms.
			time.Sleep(time.Duration(150+i%5*50) * time.Millisecond)
			cut.Cut()
			time.Sleep(time.Duration(10+i%5*10) * time.Millisecond)
			cut.Mend()
		}
		cut.Mend()
	})
	for w := range writers {
		wg.Go(func() {
			var tx Tx
			for i := 0; ctx.Err() == nil; i++ {
				k := (w + i) % keys
				tx.Mark(c.Versions(), "app", names[k:k+1])
				n := truth[k].Add(1)
				tx.Commit(UnknownLSN, nil)
				for p := acked[k].Load(); p < n && !acked[k].CompareAndSwap(p, n); p = acked[k].Load() {
				}
				time.Sleep(time.Millisecond) // readers get to hit between commits
			}
		})
	}
	for rd := range readers {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				k := (rd + i) % keys
				st.read(t, c, k, names[k:k+1], acked[k].Load(), &truth[k])
			}
		})
	}
	wg.Wait()
	s, _ := c.L2Stats()
	t.Logf("%d fills, %d hits; L2 %+v", st.fills.Load(), st.hits.Load(), s)
	if st.hits.Load() == 0 {
		t.Fatal("no hit: the run did not exercise the cache")
	}
}

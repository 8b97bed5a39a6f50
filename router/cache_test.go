package router

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unsafe"
)

func TestCacheParsesOnce(t *testing.T) {
	r := NewRouter(10)
	const q = "SELECT * FROM t"
	if d := r.Route(q, Session{}); d.Target != TargetReplica {
		t.Fatalf("first call: %v", d.Target)
	}
	// Same text, other session states: no new parse, session part recomputed.
	if d := r.Route(q, rwTx); d.Target != TargetPrimary || d.Reason != ReasonTransaction {
		t.Fatalf("in read-write transaction: %v %v", d.Target, d.Reason)
	}
	if d := r.Route(q, roTx); d.Target != TargetReplica {
		t.Fatalf("in read-only transaction: %v", d.Target)
	}
	for i := 0; i < 7; i++ {
		r.Route(q, Session{})
	}
	if hits, misses := r.Stats(); hits != 9 || misses != 1 {
		t.Fatalf("Stats() = %d hits, %d misses; want 9, 1", hits, misses)
	}
	// The cache is by exact text: different spacing is a new entry.
	r.Route("SELECT *  FROM t", Session{})
	if _, misses := r.Stats(); misses != 2 {
		t.Fatalf("misses = %d, want 2", misses)
	}
}

// The texts of the exact-text cache tests differ in identifiers, not
// literals, so that the normalised level cannot answer them.

func TestCacheEvictsLeastRecentlyUsed(t *testing.T) {
	r := NewRouter(2)
	r.Route("SELECT c1", Session{}) // miss
	r.Route("SELECT c2", Session{}) // miss
	r.Route("SELECT c1", Session{}) // hit: 1 is now the most recent
	r.Route("SELECT c3", Session{}) // miss: evicts 2
	if n := r.Len(); n != 2 {
		t.Fatalf("Len() = %d, want 2", n)
	}
	r.Route("SELECT c1", Session{}) // hit
	r.Route("SELECT c3", Session{}) // hit
	r.Route("SELECT c2", Session{}) // miss: was evicted
	if hits, misses := r.Stats(); hits != 3 || misses != 4 {
		t.Fatalf("Stats() = %d hits, %d misses; want 3, 4", hits, misses)
	}
}

func TestCacheBoundedWithShards(t *testing.T) {
	const size = 1000
	r := NewRouter(size)
	if len(r.cache.shards) < 2 {
		t.Fatalf("%d shards; want several for size %d", len(r.cache.shards), size)
	}
	for i := 0; i < 5*size; i++ {
		r.Route(fmt.Sprintf("SELECT c%d", i), Session{})
	}
	if n := r.Len(); n > size || n < size*9/10 {
		t.Fatalf("Len() = %d, want close to and at most %d", n, size)
	}
}

func TestCacheOff(t *testing.T) {
	r := NewRouter(0)
	for i := 0; i < 3; i++ {
		if d := r.Route("SELECT 1", Session{}); d.Reason != ReasonRead {
			t.Fatalf("reason %v", d.Reason)
		}
	}
	if hits, misses := r.Stats(); hits != 0 || misses != 3 {
		t.Fatalf("Stats() = %d, %d; want 0, 3", hits, misses)
	}
}

func TestCacheSkipsHugeTexts(t *testing.T) {
	r := NewRouter(10)
	q := "SELECT 1 /*" + strings.Repeat("x", maxCachedTextLen) + "*/"
	if d := r.Route(q, Session{}); d.Reason != ReasonRead {
		t.Fatalf("reason %v", d.Reason)
	}
	if n := r.Len(); n != 0 {
		t.Fatalf("Len() = %d, want 0", n)
	}
}

// TestRouteConcurrent runs the table from many goroutines on a small cache,
// so hits, misses and evictions interleave (run it with -race).
func TestRouteConcurrent(t *testing.T) {
	r := NewRouter(64)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 3; i++ {
				for j := range routeCases {
					c := routeCases[(j+g*37)%len(routeCases)]
					got := r.Route(c.sql, c.s)
					if got.Target != c.want.Target || got.Reason != c.want.Reason {
						t.Errorf("Route(%q) = %v/%v, want %v/%v", c.sql, got.Target, got.Reason, c.want.Target, c.want.Reason)
						return
					}
				}
			}
		}(g)
	}
	wg.Wait()
	if n := r.Len(); n > 64 {
		t.Fatalf("Len() = %d > 64", n)
	}
}

// TestCacheBoundsTextBytes: long texts under maxCachedTextLen are cached,
// but their total length stays under maxCacheTextBytes however many
// entries the cache may hold (10,000 texts of 60 KiB would be 600 MB).
func TestCacheBoundsTextBytes(t *testing.T) {
	r := NewRouter(10000)
	pad := strings.Repeat("x", 60<<10)
	for i := 0; i < 1000; i++ {
		q := "SELECT c" + strconv.Itoa(i) + " /*" + pad + "*/"
		if d := r.Route(q, Session{}); d.Reason != ReasonRead {
			t.Fatalf("reason %v", d.Reason)
		}
	}
	total := 0
	for i := range r.cache.shards {
		sh := &r.cache.shards[i]
		n := 0
		for k := range sh.items {
			n += len(k)
		}
		if n != sh.bytes {
			t.Fatalf("shard %d counts %d bytes, holds %d", i, sh.bytes, n)
		}
		total += n
	}
	if total > maxCacheTextBytes {
		t.Fatalf("cache holds %d bytes of text, bound %d", total, maxCacheTextBytes)
	}
	if n := r.Len(); n < 100 {
		t.Fatalf("only %d long texts cached", n)
	}
}

// TestCacheShardSize: shards are whole cache lines, so that two shards'
// mutexes and counters never share one (the padding's purpose).
func TestCacheShardSize(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("the padding is sized for 64-bit platforms")
	}
	if n := unsafe.Sizeof(cacheShard{}); n%64 != 0 {
		t.Fatalf("cacheShard is %d bytes, not a multiple of 64", n)
	}
}

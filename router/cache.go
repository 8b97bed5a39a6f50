package router

import (
	"hash/maphash"
	"sync"
)

// textCache maps query texts to their analysis. It is split into shards,
// each an LRU list under its own mutex, so concurrent sessions rarely wait
// on each other.
type textCache struct {
	seed   maphash.Seed
	mask   uint64
	shards []cacheShard
}

type cacheShard struct {
	mu       sync.Mutex
	items    map[string]*cacheEntry
	head     cacheEntry // sentinel: head.next is the most recently used
	capacity int
	// bytes is the length of the keys held; maxBytes bounds it, so that
	// long texts cannot make the cache hold capacity times 64 KiB.
	bytes, maxBytes int
	hits            uint64
	misses          uint64
	_               [32]byte // a shard is two whole cache lines (TestCacheShardSize)
}

type cacheEntry struct {
	key        string
	val        *analysis
	prev, next *cacheEntry
}

// maxShards bounds the shard count; small caches get one shard so their
// bound and eviction order are exact.
const (
	maxShards          = 64
	minEntriesPerShard = 64
)

// maxCacheTextBytes bounds the total length of the texts a cache keeps
// (split evenly between its shards); with maxCachedTextLen, a shard
// always has room for a few of the longest texts.
const maxCacheTextBytes = 32 << 20

func newTextCache(size int) *textCache {
	n := 1
	for n*2 <= maxShards && n*2*minEntriesPerShard <= size {
		n *= 2
	}
	c := &textCache{seed: maphash.MakeSeed(), mask: uint64(n - 1), shards: make([]cacheShard, n)}
	for i := range c.shards {
		sh := &c.shards[i]
		sh.capacity = size / n
		sh.maxBytes = maxCacheTextBytes / n
		if i < size%n {
			sh.capacity++
		}
		sh.items = make(map[string]*cacheEntry, sh.capacity)
		sh.head.next, sh.head.prev = &sh.head, &sh.head
	}
	return c
}

func (c *textCache) shard(key string) *cacheShard {
	return &c.shards[maphash.String(c.seed, key)&c.mask]
}

func (c *textCache) shardBytes(key []byte) *cacheShard {
	return &c.shards[maphash.Bytes(c.seed, key)&c.mask]
}

// get returns the cached analysis and counts the hit or miss.
func (sh *cacheShard) get(key string) (*analysis, bool) {
	sh.mu.Lock()
	e, ok := sh.items[key]
	return sh.found(e, ok)
}

// getBytes is get for a key in a buffer (the map lookup does not copy it).
func (sh *cacheShard) getBytes(key []byte) (*analysis, bool) {
	sh.mu.Lock()
	e, ok := sh.items[string(key)]
	return sh.found(e, ok)
}

// found counts the lookup get made under sh.mu, moves a hit to the front
// and unlocks.
func (sh *cacheShard) found(e *cacheEntry, ok bool) (*analysis, bool) {
	if !ok {
		sh.misses++
		sh.mu.Unlock()
		return nil, false
	}
	sh.hits++
	if sh.head.next != e {
		e.unlink()
		sh.pushFront(e)
	}
	a := e.val
	sh.mu.Unlock()
	return a, true
}

// put stores an analysis, evicting the least recently used entry when full.
// A concurrent put of the same key keeps the first one.
func (sh *cacheShard) put(key string, a *analysis) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if _, ok := sh.items[key]; ok {
		return
	}
	for len(sh.items) > 0 && (len(sh.items) >= sh.capacity || sh.bytes+len(key) > sh.maxBytes) {
		old := sh.head.prev
		old.unlink()
		delete(sh.items, old.key)
		sh.bytes -= len(old.key)
	}
	e := &cacheEntry{key: key, val: a}
	sh.items[key] = e
	sh.bytes += len(key)
	sh.pushFront(e)
}

func (sh *cacheShard) pushFront(e *cacheEntry) {
	e.prev, e.next = &sh.head, sh.head.next
	sh.head.next.prev = e
	sh.head.next = e
}

func (e *cacheEntry) unlink() {
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
}

func (c *textCache) stats() (hits, misses uint64, entries int) {
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		hits += sh.hits
		misses += sh.misses
		entries += len(sh.items)
		sh.mu.Unlock()
	}
	return hits, misses, entries
}

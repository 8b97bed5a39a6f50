package proxy

import (
	"sync"
	"time"

	"github.com/pgone/pgone/cache"
	"github.com/pgone/pgone/pool"
	"github.com/pgone/pgone/router"
)

// Cache misses on replicas. A miss may run on a replica only if the
// replica's replay LSN, as the monitor sampled it before the pick (so
// before the read is sent), is at or past the last invalidation of the
// tables read (the fill token's bar): the split picks among those
// replicas only, or the primary (router.ReasonCacheFill). The fill is
// stored with that replay LSN as its Origin, and the cache checks the bar
// again.
//
// Commits through pgone record an unknown LSN, which bars every replica
// until resolved: a miss that finds one takes a mark, and a later miss,
// once the monitor has sampled the primary after the mark, resolves the
// database's unknown LSNs with that sample (cache.ResolveUnknownLSNIn).

// unknownLSNs are the pending resolutions, by cache database.
type unknownLSNs struct {
	mu      sync.Mutex
	pending map[string]unknownMark
}

type unknownMark struct {
	mark uint64
	at   time.Time // taken after mark: a primary sample after it covers it
}

// routeFill routes the session's pending miss: to a replica that proves
// fresh enough, or to the primary.
func (h *cacheHooks) routeFill(ss *session, sc *sessionCache) {
	bar, ok := sc.cs.ReplayBar()
	set := ss.plan.set
	if !ok || set == nil || bar == cache.UnknownLSN {
		if ok && set != nil {
			h.markUnknown(set, sc.db)
		}
		ss.plan.splitDone, ss.plan.read, ss.plan.reason = true, false, router.ReasonCacheFill
		return
	}
	ss.plan.cacheFence, ss.plan.cacheFenced = pool.LSN(bar), true
}

// markUnknown asks for db's unknown invalidation LSNs to be resolved.
func (h *cacheHooks) markUnknown(set *replicaSet, db string) {
	h.unknown.mu.Lock()
	defer h.unknown.mu.Unlock()
	if _, ok := h.unknown.pending[db]; ok {
		return
	}
	if h.unknown.pending == nil {
		h.unknown.pending = map[string]unknownMark{}
	}
	mark := h.c.Versions().UnknownMark()
	h.unknown.pending[db] = unknownMark{mark: mark, at: time.Now()}
	set.nudge()
}

// resolveUnknownLSN resolves db's pending mark if the monitor has sampled
// the primary since it was taken.
func (h *cacheHooks) resolveUnknownLSN(set *replicaSet, db string) {
	if set == nil || set.mon == nil {
		return
	}
	h.unknown.mu.Lock()
	defer h.unknown.mu.Unlock()
	m, ok := h.unknown.pending[db]
	if !ok {
		return
	}
	lsn, ok := set.mon.View().FenceAfter(m.at)
	if !ok {
		return
	}
	h.c.Versions().ResolveUnknownLSNIn(db, m.mark, cache.LSN(lsn))
	delete(h.unknown.pending, db)
}

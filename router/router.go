package router

import (
	"strings"
	"sync/atomic"
)

// maxCachedTextLen bounds the texts the cache keeps: longer ones (bulk
// INSERTs with inlined values) are rarely repeated and would crowd out the
// rest. They are still routed, just parsed on every call.
const maxCachedTextLen = 64 << 10

// Router routes query texts. It is safe for concurrent use: it holds only
// the text cache, and all session state comes in through Route's argument.
type Router struct {
	cache    *textCache // nil when caching is off
	uncached atomic.Uint64
	// tooLong and tooComplex count texts routed unparsed (bound.go).
	tooLong, tooComplex atomic.Uint64
}

// NewRouter returns a Router that keeps the analysis of up to cacheSize
// distinct texts (least recently used evicted). cacheSize <= 0 turns the
// cache off: every call parses.
func NewRouter(cacheSize int) *Router {
	r := &Router{}
	if cacheSize > 0 {
		r.cache = newTextCache(cacheSize)
	}
	return r
}

// Route decides where text runs and what it does to the session. text is
// one simple Query string or one Parse message's query. The returned
// slices are shared: do not modify them.
func (r *Router) Route(text string, s Session) Decision {
	return decide(r.analysisFor(text), &s)
}

// analysisFor returns the cached analysis of text, parsing it on a miss.
// Two sessions missing on the same text at once both parse; the first put
// wins. A text over the parse bounds is never parsed nor cached (a cached
// text was within them when it was parsed, so a hit needs no check).
func (r *Router) analysisFor(text string) *analysis {
	if r.cache == nil {
		r.uncached.Add(1)
		return r.analyzeBounded(text)
	}
	sh := r.cache.shard(text)
	if a, ok := sh.get(text); ok {
		return a
	}
	a := r.analyzeBounded(text)
	if a.unparsed() {
		return a
	}
	if len(text) <= maxCachedTextLen {
		// Clone: the caller's string may alias a reused read buffer.
		sh.put(strings.Clone(text), a)
	}
	return a
}

// analyzeBounded parses text if it is within the parse bounds, else
// returns the unparsed analysis and counts it.
func (r *Router) analyzeBounded(text string) *analysis {
	reason, over := overBound(text, parseDepthLimit)
	if !over {
		return analyze(text)
	}
	if reason == ReasonTooLong {
		r.tooLong.Add(1)
	} else {
		r.tooComplex.Add(1)
	}
	return unparsedAnalysis(text, reason)
}

// Unparsed returns how many texts were routed without parsing since
// NewRouter, for the reason ReasonTooLong or ReasonTooComplex (0 for any
// other reason).
func (r *Router) Unparsed(reason Reason) uint64 {
	switch reason {
	case ReasonTooLong:
		return r.tooLong.Load()
	case ReasonTooComplex:
		return r.tooComplex.Load()
	}
	return 0
}

// Stats returns the cache hits and misses since NewRouter; a miss is a parse.
func (r *Router) Stats() (hits, misses uint64) {
	if r.cache == nil {
		return 0, r.uncached.Load()
	}
	hits, misses, _ = r.cache.stats()
	return hits, misses
}

// Len returns the number of texts in the cache.
func (r *Router) Len() int {
	if r.cache == nil {
		return 0
	}
	_, _, n := r.cache.stats()
	return n
}

package router

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// maxCachedTextLen bounds the texts the cache keeps: longer ones (bulk
// INSERTs with inlined values) are rarely repeated and would crowd out the
// rest. They are still routed, just parsed on every call.
const maxCachedTextLen = 64 << 10

// Router routes query texts. It is safe for concurrent use: it holds only
// the text cache, and all session state comes in through Route's argument.
type Router struct {
	cache *textCache // nil when caching is off
	// norm is the second level, by normalised text (normkey.go): nil
	// when caching is off.
	norm     *textCache
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
		r.norm = newTextCache(cacheSize)
	}
	return r
}

// Route decides where text runs and what it does to the session. text is
// one simple Query string or one Parse message's query. The returned
// slices are shared: do not modify them.
func (r *Router) Route(text string, s Session) Decision {
	return decide(r.analysisFor(text), &s)
}

// analysisFor returns the cached analysis of text: by exact text, else by
// normalised text, else it parses text and stores the analysis under
// both (the normalised key only when normalizable allows).
// Two sessions missing on the same text at once both parse; the first put
// wins. A text over the parse bounds is never parsed nor cached (a cached
// text was within them when it was parsed, so a hit needs no check; a
// text sharing a normalised key with it has the same tree depth and
// depth estimate, and is no longer than maxCachedTextLen).
func (r *Router) analysisFor(text string) *analysis {
	if r.cache == nil {
		r.uncached.Add(1)
		return r.analyzeBounded(text, nil)
	}
	sh := r.cache.shard(text)
	if a, ok := sh.get(text); ok {
		return a
	}
	if len(text) > maxCachedTextLen {
		return r.analyzeBounded(text, nil)
	}
	if r.norm == nil {
		return r.parseAndStore(text, sh, nil)
	}
	buf := keyBuffers.Get().(*[]byte)
	defer keyBuffers.Put(buf)
	key, literals, ok := normalizedKey(*buf, text, nil)
	*buf = key[:0] // keep what it grew to
	if !ok || literals == 0 {
		// No key, or the key is the text: the exact level has it.
		return r.parseAndStore(text, sh, nil)
	}
	nsh := r.norm.shardBytes(key)
	if a, ok := nsh.getBytes(key); ok {
		return a
	}
	return r.parseAndStore(text, sh, nsh)
}

// keyBuffers hold normalised keys while they are looked up.
var keyBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// parseAndStore parses text and caches its analysis by text and, when nsh
// is not nil and normalizable allows, by normalised text in nsh.
func (r *Router) parseAndStore(text string, sh, nsh *cacheShard) *analysis {
	var consts []int32
	if nsh == nil {
		a := r.analyzeBounded(text, nil)
		if !a.unparsed() {
			sh.put(strings.Clone(text), a) // the caller's string may alias a read buffer
		}
		return a
	}
	a := r.analyzeBounded(text, &consts)
	if a.unparsed() {
		return a
	}
	sh.put(strings.Clone(text), a)
	var lits []litSpan
	if key, _, ok := normalizedKey(nil, text, &lits); ok && normalizable(a, text, lits, consts) {
		nsh.put(string(key), a)
	}
	return a
}

// normalizable reports whether a, the analysis of text, holds for every
// text with text's normalised key, whose literals lie at lits. It must
// not depend on a literal's value: one statement of the kinds whose
// literals are expression constants, no session effect, no transaction
// control, no constant value read (analysis.literalValue), and every
// literal normalizedKey replaced is a constant in the tree (an A_Const at its
// location, or at the '-' the grammar folds into a negative number): a
// literal the grammar takes elsewhere (float(53), int[5], FETCH 5, option
// values) can change the tree or the fingerprint, which ignores A_Const
// values only (pg_query's fingerprint skips A_Const nodes).
func normalizable(a *analysis, text string, lits []litSpan, consts []int32) bool {
	if a.statements != 1 || a.parseError || !a.exprStatement || a.literalValue ||
		a.tx != TxNone || a.changesSettings || a.discardAll || a.deallocateAll ||
		a.unlisten || len(a.pins) > 0 {
		return false
	}
	slices.Sort(consts)
	isConst := func(at int) bool {
		_, found := slices.BinarySearch(consts, int32(at))
		return found
	}
	for _, l := range lits {
		ok := isConst(int(l.start))
		for k := int(l.start) - 1; !ok && k >= 0 && (text[k] == '-' || isBlank(text[k])); k-- {
			ok = text[k] == '-' && isConst(k)
		}
		if !ok {
			return false
		}
	}
	return true
}

// analyzeBounded parses text if it is within the parse bounds, else
// returns the unparsed analysis and counts it. consts is as in
// analyzeConsts.
func (r *Router) analyzeBounded(text string, consts *[]int32) *analysis {
	reason, over := overBound(text, parseDepthLimit)
	if !over {
		return analyzeConsts(text, consts)
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

// Stats returns the cache hits and misses since NewRouter, both levels
// together: a hit by exact or normalised text, a miss is a parse (or a
// text routed unparsed).
func (r *Router) Stats() (hits, misses uint64) {
	if r.cache == nil {
		return 0, r.uncached.Load()
	}
	// Every normalised lookup follows an exact miss: read the second
	// level first so that its hits never outnumber the misses read after.
	normHits, _ := r.NormalizedStats()
	hits, misses, _ = r.cache.stats()
	return hits + normHits, misses - normHits
}

// NormalizedStats returns the hits and misses of the second level, by
// normalised text, since NewRouter. It is looked up after an exact miss,
// for texts that have a normalised key (normkey.go): a hit is a parse
// saved, a miss a parse.
func (r *Router) NormalizedStats() (hits, misses uint64) {
	if r.norm == nil {
		return 0, 0
	}
	hits, misses, _ = r.norm.stats()
	return hits, misses
}

// NormalizedLen returns the number of normalised texts in the cache.
func (r *Router) NormalizedLen() int {
	if r.norm == nil {
		return 0
	}
	_, _, n := r.norm.stats()
	return n
}

// Len returns the number of texts in the cache.
func (r *Router) Len() int {
	if r.cache == nil {
		return 0
	}
	_, _, n := r.cache.stats()
	return n
}

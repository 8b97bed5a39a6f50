package tuner

import (
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Loop 2: which fingerprints the result cache admits when cache.mode is
// auto. Per interval, from the statistics' deltas:
//
//   - admit a read (not a write, reading named tables) whose server time
//     in the interval is at least admitShare of all statements' (it is
//     frequent × slow), with at least admitMinCalls calls taking on
//     average admitMinMean and at least the mean of all statements' calls
//     (a fast query costs PostgreSQL little: a hit saves a round trip,
//     not the database's work), and whose
//     tables were written at most admitMaxWriteRatio times per call, on
//     admitAfter intervals in a row (a start-up hiccup admits nothing);
//   - evict an admitted one when, on evictAfter intervals in a row with
//     at least admitMinCalls lookups, its hit ratio stays under
//     evictHitRatio or its tables' writes (each an invalidation)
//     outnumber its hits.
//
// At most maxAdmitted fingerprints are admitted at once. The admitted
// set is read lock-free by every cacheable request (Admitted).

const (
	admitShare         = 0.10
	admitMinCalls      = 10
	admitMinMean       = 2 * time.Millisecond
	admitMaxWriteRatio = 0.10
	evictHitRatio      = 0.5
	evictAfter         = 3
	admitAfter         = 2
	maxAdmitted        = 64
)

// tableWrites counts committed writes per table, bounded: past
// maxTrackedTables distinct names new ones are counted under "*", which
// every fingerprint's tables are charged with.
type tableWrites struct {
	mu     sync.Mutex
	counts map[string]uint64
}

const maxTrackedTables = 4096

func newTableWrites() *tableWrites { return &tableWrites{counts: map[string]uint64{}} }

func (w *tableWrites) add(tables []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, t := range tables {
		t = relation(t)
		if _, ok := w.counts[t]; !ok && len(w.counts) >= maxTrackedTables {
			t = "*"
		}
		w.counts[t]++
	}
}

func (w *tableWrites) snapshot() map[string]uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string]uint64, len(w.counts))
	for k, v := range w.counts {
		out[k] = v
	}
	return out
}

// relation is a table's name without schema, lower case, as the cache
// keeps its versions.
func relation(t string) string {
	if i := strings.LastIndexByte(t, '.'); i >= 0 {
		t = t[i+1:]
	}
	return strings.ToLower(t)
}

// admission is loop 2's state.
type admission struct {
	set atomic.Pointer[map[uint64]bool]
	// shadow is the set dry-run would have, so that it decides each
	// admission once, as mode on would.
	shadow     map[uint64]bool
	prev       map[uint64]QueryRow // last interval's readings
	prevWrites map[string]uint64
	bad        map[uint64]int // intervals in a row an admitted one did badly
	good       map[uint64]int // intervals in a row a candidate qualified
}

func newAdmission() *admission {
	a := &admission{prev: map[uint64]QueryRow{}, bad: map[uint64]int{}, good: map[uint64]int{}, shadow: map[uint64]bool{}}
	a.set.Store(&map[uint64]bool{})
	return a
}

// Admitted reports whether the cache admits fingerprint fp (loop 2, mode
// on). Safe for concurrent use, lock-free.
func (t *Tuner) Admitted(fp uint64) bool {
	return (*t.admission.set.Load())[fp]
}

// interval is one fingerprint's numbers over the last interval.
type interval struct {
	row                        QueryRow
	calls, hits, fills, writes uint64
	server                     time.Duration
}

func (t *Tuner) stepAdmission(now time.Time) []Decision {
	a := t.admission
	rows, _ := t.queries.rows("total", math.MaxInt) // every fingerprint kept
	writes := t.writes.snapshot()
	var all time.Duration
	var calls uint64
	cur := make([]interval, 0, len(rows))
	for _, r := range rows {
		p := a.prev[r.Fingerprint]
		iv := interval{row: r, calls: r.Calls - p.Calls, hits: r.CacheHits - p.CacheHits,
			fills: r.CacheFills - p.CacheFills, server: r.Total - p.Total}
		for _, tb := range r.ReadTables {
			tb = relation(tb)
			iv.writes += writes[tb] - a.prevWrites[tb]
		}
		iv.writes += writes["*"] - a.prevWrites["*"]
		all += iv.server
		calls += iv.calls
		cur = append(cur, iv)
	}
	a.prev = make(map[uint64]QueryRow, len(rows))
	for _, r := range rows {
		a.prev[r.Fingerprint] = r
	}
	a.prevWrites = writes
	set := *a.set.Load()
	if t.cfg.CacheAdmission == ModeDryRun {
		set = a.shadow
	}
	next := make(map[uint64]bool, len(set))
	for fp := range set {
		next[fp] = true
	}
	var out []Decision
	mean := time.Duration(0)
	if calls > 0 {
		mean = all / time.Duration(calls)
	}
	for _, iv := range cur {
		if d, ok := a.judge(now, iv, all, max(mean, admitMinMean), next); ok {
			d.Mode = t.cfg.CacheAdmission
			t.decided(d)
			out = append(out, d)
		}
	}
	if t.cfg.CacheAdmission == ModeOn {
		a.set.Store(&next)
	} else {
		a.shadow = next
	}
	return out
}

// judge decides on one fingerprint, changing next (the set to be).
func (a *admission) judge(now time.Time, iv interval, all, minMean time.Duration, next map[uint64]bool) (Decision, bool) {
	r := iv.row
	d := Decision{At: now, Loop: "cache", Target: r.FingerprintHex()}
	if next[r.Fingerprint] {
		lookups := iv.hits + iv.fills
		if lookups < admitMinCalls {
			return d, false
		}
		ratio := float64(iv.hits) / float64(lookups)
		if ratio >= evictHitRatio && iv.writes <= iv.hits {
			delete(a.bad, r.Fingerprint)
			return d, false
		}
		if a.bad[r.Fingerprint]++; a.bad[r.Fingerprint] < evictAfter {
			return d, false
		}
		delete(a.bad, r.Fingerprint)
		delete(next, r.Fingerprint)
		d.Action, d.From, d.To = "evict", 1, 0
		d.Reason = "hit ratio stays low or invalidations outnumber hits"
		d.Inputs = fmt.Sprintf("hits=%d fills=%d hit_ratio=%.2f table_writes=%d", iv.hits, iv.fills, ratio, iv.writes)
		return d, true
	}
	if r.Writes || len(r.ReadTables) == 0 || iv.calls < admitMinCalls || all <= 0 || len(next) >= maxAdmitted {
		delete(a.good, r.Fingerprint)
		return d, false
	}
	share := float64(iv.server) / float64(all)
	writeRatio := float64(iv.writes) / float64(iv.calls)
	if share < admitShare || writeRatio > admitMaxWriteRatio || iv.server/time.Duration(iv.calls) < minMean {
		delete(a.good, r.Fingerprint)
		return d, false
	}
	if a.good[r.Fingerprint]++; a.good[r.Fingerprint] < admitAfter {
		return d, false
	}
	delete(a.good, r.Fingerprint)
	next[r.Fingerprint] = true
	d.Action, d.From, d.To = "admit", 0, 1
	d.Reason = "frequent and slow, its tables rarely written"
	d.Inputs = fmt.Sprintf("calls=%d server_time=%s mean=%s (at least %s) share=%.2f table_writes=%d tables=%s",
		iv.calls, iv.server, iv.server/time.Duration(iv.calls), minMean, share, iv.writes, strings.Join(r.ReadTables, ","))
	return d, true
}

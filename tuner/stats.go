package tuner

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// Route is where a request was answered.
type Route uint8

const (
	RoutePrimary Route = iota
	RouteReplica
	RouteCache
	routes
)

func (r Route) String() string {
	switch r {
	case RouteReplica:
		return "replica"
	case RouteCache:
		return "cache"
	}
	return "primary"
}

// Sample is one request as the proxy saw it: one statement's fingerprint
// (requests of several statements are reported by their first).
type Sample struct {
	Fingerprint uint64
	Database    string
	// Text is the statement as sent; only its first maxSampleText bytes
	// are kept, and only for a fingerprint not seen before.
	Text       string
	ReadTables []string
	// Writes: the statement writes (not a candidate for the cache).
	Writes     bool
	Route      Route
	Error      bool
	Rows       int
	Bytes      int
	ServerTime time.Duration
	WaitTime   time.Duration
	// CacheFill: the cache missed and this reply fills it.
	CacheFill bool
}

const (
	maxSampleText = 4096 // raw text kept for normalisation
	maxShownText  = 1024 // normalised text kept for display
	maxTables     = 8    // read tables kept per fingerprint
)

// queryStats are one fingerprint's numbers.
type queryStats struct {
	fp         uint64
	database   string
	raw        string // the first text seen, cleared once normalised
	text       string // normalised
	readTables []string
	writes     bool
	calls      uint64
	errors     uint64
	rows       uint64
	bytes      uint64
	server     Sketch
	wait       Sketch
	routes     [routes]uint64
	fills      uint64
}

// total is the time the fingerprint cost: server time, and the cache's.
func (q *queryStats) total() time.Duration { return q.server.Sum() }

// queryTable holds the statistics of about capacity fingerprints, in
// shards by fingerprint so that sessions recording different statements
// do not contend for one lock. Each shard keeps its own top by total
// time (capacity/shards of them): the table's top is approximate at the
// margin, exact for the statements that matter.
type queryTable struct {
	capacity int
	shards   []*queryShard
}

type queryShard struct {
	mu       sync.Mutex
	capacity int
	byFP     map[uint64]*queryStats
}

// shardThreshold: tables smaller than this are one shard (exact top).
const shardThreshold, queryShards = 64, 16

func newQueryTable(capacity int) *queryTable {
	n := 1
	if capacity >= shardThreshold {
		n = queryShards
	}
	t := &queryTable{capacity: capacity}
	for i := 0; i < n; i++ {
		per := (capacity + n - 1) / n
		t.shards = append(t.shards, &queryShard{capacity: per, byFP: make(map[uint64]*queryStats, per)})
	}
	return t
}

func (t *queryTable) shard(fp uint64) *queryShard {
	return t.shards[(fp^fp>>32)%uint64(len(t.shards))]
}

// record adds s to its fingerprint's numbers. A new fingerprint on a full
// shard replaces the one with the least total time: the top by total time
// stays, a one-off query passes through.
func (t *queryTable) record(s *Sample) {
	if s.Fingerprint == 0 {
		return // not parsed (over the router's bounds): nothing to group by
	}
	sh := t.shard(s.Fingerprint)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	q := sh.byFP[s.Fingerprint]
	if q == nil {
		q = sh.admitLocked(s)
	}
	q.calls++
	if s.Error {
		q.errors++
	}
	q.rows += uint64(max(s.Rows, 0))
	q.bytes += uint64(max(s.Bytes, 0))
	q.server.Add(s.ServerTime)
	if s.Route != RouteCache {
		q.wait.Add(s.WaitTime)
	}
	if s.Route < routes {
		q.routes[s.Route]++
	}
	if s.CacheFill {
		q.fills++
	}
}

func (t *queryShard) admitLocked(s *Sample) *queryStats {
	if len(t.byFP) >= t.capacity {
		var least *queryStats
		for _, q := range t.byFP {
			if least == nil || q.total() < least.total() {
				least = q
			}
		}
		delete(t.byFP, least.fp)
	}
	raw := s.Text
	if len(raw) > maxSampleText {
		raw = raw[:maxSampleText]
	}
	tables := slices.Clone(s.ReadTables[:min(len(s.ReadTables), maxTables)])
	q := &queryStats{fp: s.Fingerprint, database: s.Database, raw: strings.Clone(raw), readTables: tables, writes: s.Writes}
	t.byFP[s.Fingerprint] = q
	return q
}

// QueryRow is one fingerprint's statistics as SHOW QUERIES shows them.
type QueryRow struct {
	Fingerprint uint64
	Database    string
	Text        string
	ReadTables  []string
	Writes      bool
	Calls       uint64
	Errors      uint64
	Rows        uint64
	Bytes       uint64
	Total       time.Duration // server time, all calls
	P50         time.Duration
	P95         time.Duration
	P99         time.Duration
	WaitTotal   time.Duration
	WaitP95     time.Duration
	WaitP99     time.Duration
	Routes      [routes]uint64
	CacheHits   uint64
	CacheFills  uint64
}

// FingerprintHex is the fingerprint as the console and metrics show it.
func (r QueryRow) FingerprintHex() string { return fmt.Sprintf("%016x", r.Fingerprint) }

// SortKeys are the orders SHOW QUERIES accepts.
var SortKeys = []string{"total", "calls", "p99", "wait", "errors", "rows"}

func lessBy(key string) (func(a, b QueryRow) int, bool) {
	desc := func(f func(QueryRow) int64) func(a, b QueryRow) int {
		return func(a, b QueryRow) int {
			if x, y := f(a), f(b); x != y {
				if x > y {
					return -1
				}
				return 1
			}
			if a.Fingerprint < b.Fingerprint {
				return -1
			}
			return 1
		}
	}
	switch key {
	case "", "total":
		return desc(func(r QueryRow) int64 { return int64(r.Total) }), true
	case "calls":
		return desc(func(r QueryRow) int64 { return int64(r.Calls) }), true
	case "p99":
		return desc(func(r QueryRow) int64 { return int64(r.P99) }), true
	case "wait":
		return desc(func(r QueryRow) int64 { return int64(r.WaitTotal) }), true
	case "errors":
		return desc(func(r QueryRow) int64 { return int64(r.Errors) }), true
	case "rows":
		return desc(func(r QueryRow) int64 { return int64(r.Rows) }), true
	}
	return nil, false
}

// rows returns a snapshot of every fingerprint, sorted by key, at most n.
func (t *queryTable) rows(key string, n int) ([]QueryRow, error) {
	less, ok := lessBy(key)
	if !ok {
		return nil, fmt.Errorf("unknown order %q: one of %s", key, strings.Join(SortKeys, ", "))
	}
	var out []QueryRow
	for _, sh := range t.shards {
		sh.mu.Lock()
		for _, q := range sh.byFP {
			out = append(out, q.row())
		}
		sh.mu.Unlock()
	}
	slices.SortFunc(out, less)
	if len(out) > n {
		out = out[:n]
	}
	return out, nil
}

func (q *queryStats) row() QueryRow {
	text := q.text
	if text == "" {
		text = q.raw
	}
	return QueryRow{Fingerprint: q.fp, Database: q.database, Text: text, ReadTables: q.readTables, Writes: q.writes,
		Calls: q.calls, Errors: q.errors, Rows: q.rows, Bytes: q.bytes,
		Total: q.server.Sum(), P50: q.server.Quantile(0.5), P95: q.server.Quantile(0.95), P99: q.server.Quantile(0.99),
		WaitTotal: q.wait.Sum(), WaitP95: q.wait.Quantile(0.95), WaitP99: q.wait.Quantile(0.99),
		Routes: q.routes, CacheHits: q.routes[RouteCache], CacheFills: q.fills}
}

// pendingTexts returns the raw texts of the top fingerprints not yet
// normalised, so the caller normalises them outside the lock.
func (t *queryTable) pendingTexts(fps []uint64) map[uint64]string {
	out := map[uint64]string{}
	for _, fp := range fps {
		sh := t.shard(fp)
		sh.mu.Lock()
		if q := sh.byFP[fp]; q != nil && q.text == "" && q.raw != "" {
			out[fp] = q.raw
		}
		sh.mu.Unlock()
	}
	return out
}

// setText stores a fingerprint's normalised text and drops its raw one
// (which may hold constants).
func (t *queryTable) setText(fp uint64, text string) {
	if len(text) > maxShownText {
		text = text[:maxShownText] + "…"
	}
	sh := t.shard(fp)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if q := sh.byFP[fp]; q != nil {
		q.text, q.raw = text, ""
	}
}

package cache

import (
	"sort"
	"sync"
	"time"
)

// A database fed by a logical replication stream is cached only while the
// stream is up and close behind the primary. Bypassing is a hold on the
// database's versions that works like a writer in flight on all of it: no
// entry is served and no fill stored while it lasts, and a fill whose read
// began before is refused. Releasing a hold after the stream was down also
// bumps the epoch: what changed during the gap is unknown.

// hold takes db out of the cache until release.
func (v *Versions) hold(db string) {
	d := v.db(db, true)
	d.mu.Lock()
	d.inflight++
	d.mu.Unlock()
}

// release ends a hold; flush also invalidates every entry of db in the
// same step, so nothing older than the flush is served after it.
func (v *Versions) release(db string, flush bool) {
	d := v.db(db, true)
	d.mu.Lock()
	if flush {
		d.epoch++
	}
	d.inflight--
	d.mu.Unlock()
	if flush {
		v.told(CauseFlush, 1)
	}
}

// feedState is a stream's standing, guarded by Feed.mu. applied is the
// WAL position up to which every committed change has bumped its tables
// (the end of the last commit, or a keepalive's position outside a
// transaction); probes are primary flush LSNs sampled at a time, waiting
// for applied to reach them; caughtUp is the time of the latest probe
// reached: every write committed before it is applied.
type feedState struct {
	connected bool
	held      bool // the database is bypassed (Versions.hold)
	needFlush bool // the stream was down since the last release
	applied   LSN
	primary   LSN // the latest probe
	probes    []probe
	caughtUp  time.Time
	lastMsg   time.Time
	lastErr   string
}

type probe struct {
	lsn LSN
	at  time.Time
}

// FeedStatus is a logical replication stream's standing, for SHOW CACHE
// and the metrics.
type FeedStatus struct {
	Database  string
	Connected bool
	// Bypassed: the database's cache is off (stream down or behind).
	Bypassed bool
	// LagBytes is the primary's last sampled flush LSN minus the applied
	// position; LagSeconds the time since the stream was last known to have
	// applied everything the primary had flushed (-1: never).
	LagBytes   int64
	LagSeconds float64
	// SinceMessage is the time since the stream's last message or
	// keepalive (-1: none yet).
	SinceMessage float64
	Applied      LSN
	LastError    string
}

// probed records a primary flush LSN sampled at now.
func (f *Feed) probed(lsn LSN, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.st.primary = max(f.st.primary, lsn)
	f.st.probes = append(f.st.probes, probe{lsn, now})
	f.reachedLocked()
}

// advance records that every change committed up to lsn has been applied.
func (f *Feed) advance(lsn LSN, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.st.lastMsg = now
	if lsn > f.st.applied {
		f.st.applied = lsn
	}
	f.reachedLocked()
}

func (f *Feed) reachedLocked() {
	n := 0
	for _, p := range f.st.probes {
		if !reached(f.st.applied, p.lsn) {
			break
		}
		f.st.caughtUp = p.at
		n++
	}
	f.st.probes = append(f.st.probes[:0], f.st.probes[n:]...)
	if len(f.st.probes) > 64 { // far behind: keep the newest
		f.st.probes = append(f.st.probes[:0], f.st.probes[len(f.st.probes)-64:]...)
	}
}

// reached says a stream applied up to applied has seen everything flushed
// up to primary. A flush position just past a WAL page header (the record
// before it ended on the page boundary) counts as reached at the boundary.
func reached(applied, primary LSN) bool {
	const page, longHeader = 8192, 40
	if applied >= primary {
		return true
	}
	off := primary % page
	return off <= longHeader && applied >= primary-off
}

// setConnected says the stream is (or is no longer) streaming; losing it
// holds the database at once and requires a flush before its release.
func (f *Feed) setConnected(up bool, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.st.connected = up
	if err != nil {
		f.st.lastErr = err.Error()
	}
	if !up {
		// The next stream starts from nothing: the positions of this one
		// may be of another server or timeline (failover), where they say
		// nothing about what the next has applied. The database stays held
		// until that stream catches up with a probe of its own.
		f.st.needFlush = true
		f.st.applied, f.st.primary = 0, 0
		f.st.probes = f.st.probes[:0]
		f.st.caughtUp = time.Time{}
		f.holdLocked()
	}
}

// evaluate holds or releases the database by the stream's standing at now.
func (f *Feed) evaluate(now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ok := f.st.connected && !f.st.caughtUp.IsZero() && now.Sub(f.st.caughtUp) <= f.maxLag
	switch {
	case ok && f.st.held:
		if f.st.needFlush {
			f.c.perDB.of(f.db).flushes.Add(1)
		}
		f.c.versions.release(f.db, f.st.needFlush)
		f.st.held, f.st.needFlush = false, false
	case !ok:
		f.holdLocked()
	}
}

func (f *Feed) holdLocked() {
	if !f.st.held {
		f.c.versions.hold(f.db)
		f.st.held = true
	}
}

// Status returns the stream's standing now.
func (f *Feed) Status() FeedStatus {
	now := time.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	s := FeedStatus{Database: f.db, Connected: f.st.connected, Bypassed: f.st.held,
		Applied: f.st.applied, LastError: f.st.lastErr, LagSeconds: -1, SinceMessage: -1}
	if f.st.primary > f.st.applied {
		s.LagBytes = int64(f.st.primary - f.st.applied)
	}
	if !f.st.caughtUp.IsZero() {
		s.LagSeconds = now.Sub(f.st.caughtUp).Seconds()
	}
	if !f.st.lastMsg.IsZero() {
		s.SinceMessage = now.Sub(f.st.lastMsg).Seconds()
	}
	return s
}

// feeds are a cache's logical replication streams, by database.
type feeds struct {
	mu sync.Mutex
	m  map[string]*Feed
}

// Feeds returns the status of every logical replication stream, sorted by
// database.
func (c *Cache) Feeds() []FeedStatus {
	c.feeds.mu.Lock()
	out := make([]FeedStatus, 0, len(c.feeds.m))
	for _, f := range c.feeds.m {
		out = append(out, f.Status())
	}
	c.feeds.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Database < out[j].Database })
	return out
}

// StopFeeds stops every logical replication stream and waits for them:
// their temporary slots go with their connections.
func (c *Cache) StopFeeds() {
	c.feeds.mu.Lock()
	all := make([]*Feed, 0, len(c.feeds.m))
	for _, f := range c.feeds.m {
		all = append(all, f)
	}
	c.feeds.m = nil
	c.feeds.mu.Unlock()
	for _, f := range all {
		f.Stop()
	}
}

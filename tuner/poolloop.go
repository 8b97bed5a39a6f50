package tuner

import (
	"fmt"
	"time"
)

// Loop 1: the size of each pool. The inputs are the pool's cumulative
// counters, read once per interval; the deltas give, by Little's law, the
// servers busy on average (query time / wall time), the mean server
// latency and the clients' mean wait.
//
//   - Grow when clients wait and the latency has not risen with the
//     concurrency (it stays within growTolerance of the lowest latency
//     seen lately: PostgreSQL has room, the pool is the bottleneck).
//   - Shrink when the servers sit idle (busy well under the size, no
//     waits), or when the latency has risen with the concurrency
//     (over saturateRatio × the lowest: the database is saturated and
//     more connections only queue inside PostgreSQL).
//   - A signal must repeat on `hysteresis` intervals in a row; a change
//     moves at most Step; no two changes within Cooldown.
//   - After a grow the next interval is compared with the one before it:
//     if the added concurrency did not turn into throughput (growGain:
//     latency rose instead), the grow is undone and growing waits for a
//     backoff that doubles each time (up to 16 × Cooldown).
//   - Bounds: never shrinks below min_pool_size (at least 1), never grows
//     past max_pool_size, and never grows the sizes of all pools past
//     max_server_connections. A configured size outside them is left as
//     it is until a signal moves it back inside.

// PoolState is one pool at one moment, as the Knobs report it. The
// counters are cumulative since the pool was made.
type PoolState struct {
	// Name identifies the pool (database/user, and the replica if any).
	Name                  string
	Size                  int
	Active, Idle, Waiting int
	Queries               int64
	QueryTime             time.Duration
	Waits                 int64 // Acquire calls that got a connection
	WaitTime              time.Duration
}

// PoolBounds are the hard limits of loop 1.
type PoolBounds struct {
	MinPoolSize          int
	MaxPoolSize          int
	MaxServerConnections int
}

const (
	hysteresis      = 2
	growTolerance   = 1.5 // latency within 1.5 × the lowest: not rising
	saturateRatio   = 2.5 // latency over 2.5 × the lowest: saturated
	idleBusyRatio   = 0.5 // busy under half the size: idle servers
	minIntervalReqs = 20  // fewer queries in an interval: no latency signal
	baseWindow      = 30  // intervals the lowest latency is remembered
	minGrowGain     = 0.3 // a grow that turned under 30% of its added concurrency into throughput...
	minGrowRate     = 0.1 // ...and bought under 10% more throughput made things worse
	maxBackoffShift = 4
	meaningfulWait  = time.Millisecond
)

// poolWindow is one interval of a pool, from two readings.
type poolWindow struct {
	rate    float64       // queries per second
	latency time.Duration // mean server time per query
	wait    time.Duration // mean wait per Acquire
	busy    float64       // servers busy on average
	waiting int           // clients queued at the end
	queries int64
}

func window(prev, cur PoolState, dt time.Duration) poolWindow {
	w := poolWindow{waiting: cur.Waiting, queries: cur.Queries - prev.Queries}
	if dt <= 0 || w.queries < 0 {
		return poolWindow{waiting: cur.Waiting}
	}
	w.rate = float64(w.queries) / dt.Seconds()
	qt := cur.QueryTime - prev.QueryTime
	w.busy = float64(qt) / float64(dt)
	if w.queries > 0 {
		w.latency = qt / time.Duration(w.queries)
	}
	if waits := cur.Waits - prev.Waits; waits > 0 {
		w.wait = (cur.WaitTime - prev.WaitTime) / time.Duration(waits)
	}
	return w
}

// poolLoop is loop 1's state for one pool.
type poolLoop struct {
	prev     PoolState
	prevAt   time.Time
	havePrev bool
	// base is the lowest mean latency of the last baseWindow intervals.
	base      time.Duration
	baseAge   int
	streak    int // +n: grow signals in a row, -n: shrink signals
	changedAt time.Time
	// lastGrow is the window before the last grow, to judge it by; nil
	// once judged.
	lastGrow     *poolWindow
	grownBy      int
	backoffUntil time.Time
	backoffShift int
	// lastWindow is kept for SHOW TUNER.
	lastWindow poolWindow
	lastDir    int
	turns      int // direction changes, for SHOW TUNER and tests
}

// Decision is one act (or would-be act, in dry-run) of a loop.
type Decision struct {
	At     time.Time
	Loop   string
	Target string
	Action string // grow, shrink, revert, admit, evict
	From   int
	To     int
	Reason string
	Inputs string
	Mode   Mode
}

func (d Decision) String() string {
	return fmt.Sprintf("%s %s %s %d->%d: %s (%s)", d.Loop, d.Target, d.Action, d.From, d.To, d.Reason, d.Inputs)
}

// observe takes a reading and returns the size change it calls for (To
// == From: none). room is how many connections the global cap still
// allows this pool to grow by.
func (l *poolLoop) observe(now time.Time, cur PoolState, b PoolBounds, room int, cooldown time.Duration, step int) (Decision, bool) {
	d := Decision{At: now, Loop: "pool", Target: cur.Name, From: cur.Size, To: cur.Size}
	if !l.havePrev || cur.Queries < l.prev.Queries {
		l.prev, l.prevAt, l.havePrev = cur, now, true
		return d, false
	}
	w := window(l.prev, cur, now.Sub(l.prevAt))
	l.prev, l.prevAt, l.lastWindow = cur, now, w
	lo, hi := max(b.MinPoolSize, 1), max(min(b.MaxPoolSize, b.MaxServerConnections), 1)
	l.trackBase(w)
	d.Inputs = fmt.Sprintf("rate=%.1f/s latency=%s base=%s wait=%s busy=%.1f waiting=%d size=%d",
		w.rate, w.latency, l.base, w.wait, w.busy, w.waiting, cur.Size)
	if l.lastGrow != nil && now.Sub(l.changedAt) >= cooldown/2 && w.queries >= minIntervalReqs {
		before := *l.lastGrow
		l.lastGrow = nil
		if worse, ok := grewWorse(before, w); ok && worse {
			l.backoffUntil = now.Add(cooldown << l.backoffShift)
			l.backoffShift = min(l.backoffShift+1, maxBackoffShift)
			d.To = max(cur.Size-l.grownBy, lo)
			d.Action = "revert"
			d.Reason = fmt.Sprintf("the last grow made it worse: busy servers %.1f -> %.1f but rate %.1f/s -> %.1f/s, latency %s -> %s; no growing until %s",
				before.busy, w.busy, before.rate, w.rate, before.latency, w.latency, l.backoffUntil.UTC().Format(time.RFC3339))
			if d.To != d.From {
				return l.changed(d, now), true
			}
		} else if ok {
			l.backoffShift = 0 // a grow that paid: the next failure backs off briefly again
		}
	}
	signal, reason := l.signal(w, cur)
	switch {
	case signal == 0:
		l.streak = 0
	case (signal > 0) == (l.streak > 0):
		l.streak += signal
	default:
		l.streak = signal
	}
	if signal == 0 || abs(l.streak) < hysteresis || now.Sub(l.changedAt) < cooldown {
		return d, false
	}
	if signal > 0 {
		if now.Before(l.backoffUntil) {
			return d, false
		}
		d.To = min(cur.Size+step, hi, cur.Size+max(room, 0))
		if d.To <= d.From {
			return d, false // at a bound (a configured size over max_pool_size is left alone)
		}
		l.lastGrow, l.grownBy = &w, d.To-d.From
	} else {
		d.To = max(cur.Size-step, lo)
		if reason == "idle" {
			// Keep room for what is busy: never below the busy servers.
			d.To = max(d.To, int(w.busy+0.999), lo)
		}
		if d.To >= d.From {
			return d, false // at min_pool_size
		}
		l.lastGrow = nil
	}
	d.Action, d.Reason = actionOf(d.From, d.To), reasonText(reason)
	return l.changed(d, now), true
}

func (l *poolLoop) changed(d Decision, now time.Time) Decision {
	l.changedAt, l.streak = now, 0
	dir := 1
	if d.To < d.From {
		dir = -1
	}
	if l.lastDir != 0 && dir != l.lastDir {
		l.turns++
	}
	l.lastDir = dir
	if d.Action != "grow" {
		l.lastGrow = nil
	}
	return d
}

// growGain is the share of the concurrency a grow added (busy servers)
// that became throughput: about 1 while PostgreSQL has room, about 0 (or
// below) once it is saturated and more connections only raise latency.
// false when the concurrency did not rise enough to tell.
// grewWorse says whether a grow made things worse, comparing the window
// before it with one after (ok false: not comparable). Worse: the added
// servers were busy but throughput barely moved (PostgreSQL saturated:
// they only queue inside it). A grow that raised throughput is kept even
// if its efficiency was low: the clients waiting for a server wait less.
func grewWorse(before, after poolWindow) (worse, ok bool) {
	gain, ok := growGain(before, after)
	return ok && gain < minGrowGain && after.rate < before.rate*(1+minGrowRate), ok
}

func growGain(before, after poolWindow) (float64, bool) {
	if before.busy <= 0 || before.rate <= 0 || after.busy < before.busy*1.02 {
		return 0, false
	}
	return (after.rate/before.rate - 1) / (after.busy/before.busy - 1), true
}

// trackBase keeps the lowest latency of the recent windows that had
// enough queries to mean something; it forgets after baseWindow intervals
// so a lasting change of the workload becomes the new base.
func (l *poolLoop) trackBase(w poolWindow) {
	if w.queries < minIntervalReqs || w.latency <= 0 {
		return
	}
	l.baseAge++
	if l.base == 0 || w.latency < l.base || l.baseAge > baseWindow {
		l.base, l.baseAge = w.latency, 0
	}
}

// signal is +1 (grow), -1 (shrink) or 0, with the reason.
func (l *poolLoop) signal(w poolWindow, cur PoolState) (int, string) {
	waiting := w.waiting > 0 || w.wait >= meaningfulWait
	if w.queries < minIntervalReqs || l.base == 0 {
		if !waiting && w.busy < 0.5 && cur.Idle > 0 && cur.Size > 1 {
			return -1, "idle"
		}
		return 0, ""
	}
	ratio := float64(w.latency) / float64(l.base)
	switch {
	case ratio > saturateRatio && w.busy >= float64(cur.Size)*0.8:
		return -1, "saturated"
	case waiting && ratio <= growTolerance:
		return +1, "waiting"
	case !waiting && w.busy < float64(cur.Size)*idleBusyRatio && cur.Size > 1:
		return -1, "idle"
	}
	return 0, ""
}

func reasonText(r string) string {
	switch r {
	case "waiting":
		return "clients wait for a server and latency does not rise with concurrency"
	case "saturated":
		return "latency rose with concurrency: the database is saturated"
	case "idle":
		return "servers sit idle and no client waits"
	}
	return r
}

func actionOf(from, to int) string {
	if to > from {
		return "grow"
	}
	return "shrink"
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

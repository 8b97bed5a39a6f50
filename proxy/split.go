package proxy

import (
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pgone/pgone/internal/pgmsg"
	"github.com/pgone/pgone/pool"
	"github.com/pgone/pgone/router"
)

// The read/write split (transaction mode). When a session needs a server
// for a request, the request is routed: reads (as the router decides from
// the statement texts) go to a usable replica, everything else to the
// primary. A transaction stays where its first request went. With
// read_your_writes, a client that has committed on the primary reads only
// from replicas that have applied that commit, or from the primary.

// replicaSet is the split of one database: its replicas, what the monitor
// last found of them, and the reads each has in flight.
type replicaSet struct {
	database    string
	consistency Consistency
	mon         *pool.Monitor
	cat         *catalog // what the router needs of the primary's catalog (catalog.go)
	// auto: mon finds the primary, and every server is a slot (failover.go).
	auto    bool
	slots   []*replicaSlot // configuration order, as mon's status
	weights []int64        // of slots, at least 1
	next    atomic.Uint32  // where ties between replicas start, round robin
	// lastWrite is when the last request that may have written through
	// pgone ended (read_all_writes), as time since monoBase. It is the
	// database's, shared by the sets a reload makes, so no write is lost
	// between them.
	lastWrite *atomic.Int64
	// userWrites is lastWrite per client user (read_user_writes): user
	// name to *atomic.Int64, shared across reloads like lastWrite. Users
	// are the configured ones, so it stays small.
	userWrites *sync.Map
}

// monoBase anchors times kept in atomics, so they keep the monotonic clock.
var monoBase = time.Now()

// fenced reports whether the set's reads wait for writes.
func (set *replicaSet) fenced() bool {
	switch set.consistency {
	case ReadYourWrites, ReadUserWrites, ReadAllWrites:
		return true
	}
	return false
}

// wrote records that a request of user that may have written ended at t:
// for the database (read_all_writes) or for the user (read_user_writes).
func (set *replicaSet) wrote(user string, t time.Time) {
	clock := set.lastWrite
	if set.consistency == ReadUserWrites {
		clock = set.userClock(user)
	}
	d := int64(t.Sub(monoBase))
	for {
		old := clock.Load()
		if old >= d || clock.CompareAndSwap(old, d) {
			return
		}
	}
}

// nudge asks the monitor for fresh positions: a read waits for a fence
// that is unknown or not reached (pool.Monitor.Nudge).
func (set *replicaSet) nudge() {
	if set.mon != nil {
		set.mon.Nudge()
	}
}

// userClock returns the clock of user's last write (read_user_writes).
func (set *replicaSet) userClock(user string) *atomic.Int64 {
	if c, ok := set.userWrites.Load(user); ok {
		return c.(*atomic.Int64)
	}
	c, _ := set.userWrites.LoadOrStore(user, new(atomic.Int64))
	return c.(*atomic.Int64)
}

// writeFence returns when the last write a read of user must see ended,
// under the set's consistency (read_all_writes, read_user_writes); zero
// when there is none or the level does not share fences.
func (set *replicaSet) writeFence(user string) time.Time {
	var d int64
	switch set.consistency {
	case ReadAllWrites:
		d = set.lastWrite.Load()
	case ReadUserWrites:
		d = set.userClock(user).Load()
	}
	if d == 0 {
		return time.Time{}
	}
	return monoBase.Add(time.Duration(d))
}

// replicaSlot is one replica of a set. Slots outlive reloads that keep the
// replica, so the in-flight count stays right for the sessions holding one.
type replicaSlot struct {
	host string
	port int
	addr string // host:port, the pool key's Replica
	// inflight counts sessions holding a server of this replica.
	inflight atomic.Int64
	// failedAt is when a connection to the replica last failed (unix ns);
	// the replica is skipped until the monitor has checked it since.
	failedAt atomic.Int64
	// tuned is the tuner's weight for the replica (replicaweights.go);
	// 0: the configured one.
	tuned atomic.Int64
}

// add appends replica r to the set, reusing its slot from old (by
// host:port) if it was there before a reload.
func (set *replicaSet) add(r Replica, old map[string]*replicaSlot) {
	addr := net.JoinHostPort(r.Host, strconv.Itoa(r.Port))
	slot := old[set.database+"|"+addr]
	if slot == nil {
		slot = &replicaSlot{host: r.Host, port: r.Port, addr: addr}
	}
	set.slots = append(set.slots, slot)
	set.weights = append(set.weights, int64(max(r.Weight, 1)))
}

// routeDecision is where a request goes and why: the router's reason, or
// one the split adds (router.ReasonNoUsableReplica and those after it).
type routeDecision struct {
	slot   *replicaSlot // nil: the primary
	reason router.Reason
	replay pool.LSN // slot's replay LSN as last sampled, before the pick
}

// mayWrite reports whether a request routed to the primary may write: it
// was not a read that found no replica, nor a read of per-server state
// (pg_stat_activity...; it calls nothing volatile), nor one that runs
// nothing.
func (r routeDecision) mayWrite() bool {
	switch r.reason {
	case router.ReasonNoUsableReplica, router.ReasonReadYourWrites, router.ReasonReplicaUnreachable, router.ReasonEmpty,
		router.ReasonServerDependent, router.ReasonSerializable, router.ReasonCacheFill:
		return false
	}
	return true
}

// splitFor returns the replica set of the session's database, or nil when
// its reads are not split.
func (ss *session) splitFor() *replicaSet {
	sets := ss.srv.splits.Load()
	if sets == nil {
		return nil
	}
	set := (*sets)[ss.poolKey.Database]
	if set == nil || set.consistency == PrimaryOnly {
		return nil
	}
	return set
}

// monitoredSet returns the replica set of the session's database even when
// its reads are not split (primary_only, or the cache's catalog monitor of
// a database without replicas), or nil when no monitor runs for it.
func (ss *session) monitoredSet() *replicaSet {
	sets := ss.srv.splits.Load()
	if sets == nil {
		return nil
	}
	return (*sets)[ss.poolKey.Database]
}

// routeRequest decides where a request runs when the session acquires a
// server for it: a replica if it is a read, else the primary.
func (ss *session) routeRequest(set *replicaSet, req *request) routeDecision {
	read, reason := ss.requestIsRead(req)
	if !read {
		return routeDecision{reason: reason}
	}
	return ss.pickReplica(set, set.mon.View(), reason)
}

// requestIsRead reports whether a request only reads: every statement it
// executes (simple Query texts, the statements its Binds use) is a read,
// and something runs. reason is the router's or pgone's word for it.
func (ss *session) requestIsRead(req *request) (read bool, reason router.Reason) {
	p := &ss.plan
	if !p.splitDone {
		p.read, p.reason = ss.splitVerdict(req)
		p.splitDone = true
	}
	return p.read, p.reason
}

// splitVerdict is requestIsRead's answer, from the request's plan.
func (ss *session) splitVerdict(req *request) (read bool, reason router.Reason) {
	read = true
	runs := false // a statement runs
	check := func(text string, lx lexed) {
		runs = true
		if lx.plainRead {
			reason = router.ReasonRead
			return
		}
		d := ss.decide(text) // plan.go
		reason = d.Reason
		read = d.Target == router.TargetReplica
	}
	// Statements this request parses (renderLocked records the named ones
	// in ss.prepared only later), by name; "" is the unnamed one.
	var parsedBuf [4]parsedText
	parsed := parsedBuf[:0]
	for i := range req.views {
		v := &req.views[i]
		switch v.typ {
		case pgmsg.Query:
			check(v.text, ss.lexOf(v.text))
		case pgmsg.Parse:
			// Parsing runs nothing (a replica parses an INSERT too); what
			// a Bind executes decides.
			if !v.ok {
				read, reason = false, router.ReasonUnknownStatement
				break
			}
			parsed = append(parsed, parsedText{name: v.name, text: v.text})
		case pgmsg.Bind:
			if !v.ok {
				read, reason = false, router.ReasonUnknownStatement
				break
			}
			text, lx, found := ss.executedText(v, parsed) // plan.go
			if !found {
				read, reason = false, router.ReasonUnknownStatement
				break
			}
			check(text, lx)
		case pgmsg.FunctionCall:
			read, reason = false, router.ReasonFunctionCall
		}
		if !read {
			return false, reason
		}
	}
	if !runs {
		// Nothing runs (Parse, Describe, Close, Sync): the primary has
		// everything.
		return false, router.ReasonEmpty
	}
	return true, reason
}

// mayMoveLocked reports whether a request may leave the replica server the
// session holds for the primary, once that server's replies are in. Only a
// request that runs a statement needing the primary may, and only when
// every message before it ended in a Sync, Query or FunctionCall: the
// replies to an open pipeline (ended by Flush, or the first part of a
// request over 1 MiB) need the client's next messages, so waiting for them
// would deadlock, and a request without statement text (a lone Sync,
// Execute+Sync, the tail of a long request) continues what the held server
// began. Such requests go to the held server. Called with mu held.
func (ss *session) mayMoveLocked(set *replicaSet, req *request) bool {
	if ss.expect.open() {
		return false
	}
	if set == nil {
		return true // the split was turned off: the primary
	}
	read, reason := ss.requestIsRead(req)
	return !read && reason != router.ReasonEmpty && reason != router.ReasonUnknownStatement
}

// serializableSetting reports whether a session's settings (the statement
// applying them, as settingsKeyOf or applyParamsSQL writes it: SET,
// set_config, startup options) make default_transaction_isolation
// serializable. It allocates nothing: it runs for every routed request.
func serializableSetting(settingsKey string) bool {
	const name, value = "default_transaction_isolation', E'", "serializable'"
	i := strings.Index(settingsKey, name)
	if i < 0 {
		return false
	}
	rest := settingsKey[i+len(name):]
	return len(rest) >= len(value) && strings.EqualFold(rest[:len(value)], value)
}

// pickReplica chooses among the usable replicas the one with the fewest
// reads in flight for its weight; with read_your_writes, only replicas
// that have applied the client's last commit.
func (ss *session) pickReplica(set *replicaSet, view *pool.ReplicaView, reason router.Reason) routeDecision {
	if view == nil {
		return routeDecision{reason: router.ReasonNoUsableReplica}
	}
	var fence pool.LSN
	switch {
	case set.consistency == ReadAllWrites || set.consistency == ReadUserWrites:
		if at := set.writeFence(ss.poolKey.User); !at.IsZero() {
			lsn, ok := view.FenceAfter(at)
			if !ok {
				set.nudge()
				return routeDecision{reason: router.ReasonReadYourWrites}
			}
			fence = lsn
		}
	case set.consistency == ReadYourWrites && !ss.fenceAt.IsZero():
		if ss.fenceKnown && ss.fenceEpoch != view.Failover.Epoch {
			// A promotion since: the fence is a position on the old
			// timeline. Ask for the new primary's (failover.go).
			ss.fenceKnown = false
		}
		if !ss.fenceKnown {
			lsn, ok := view.FenceAfter(ss.fenceAt)
			if !ok {
				// The monitor has not looked at the primary since the
				// commit: its position is unknown yet.
				set.nudge()
				return routeDecision{reason: router.ReasonReadYourWrites}
			}
			ss.fenceLSN, ss.fenceKnown, ss.fenceEpoch = lsn, true, view.Failover.Epoch
		}
		fence = ss.fenceLSN
	}
	cacheBound := ss.plan.cacheFenced && ss.plan.cacheFence > fence
	if cacheBound {
		fence = ss.plan.cacheFence
	}
	n := len(set.slots)
	if n != len(view.Replicas) {
		return routeDecision{reason: router.ReasonNoUsableReplica} // a reload is between them
	}
	start := int(set.next.Add(1)) % n
	best, bestWeight, bestReplay := (*replicaSlot)(nil), int64(0), pool.LSN(0)
	behind := false
	for k := 0; k < n; k++ {
		i := (start + k) % n
		st, slot := &view.Replicas[i], set.slots[i]
		if !st.Usable() || slot.failedAt.Load() >= st.CheckedAt.UnixNano() {
			continue
		}
		if st.ReplayLSN < fence {
			behind = true
			continue
		}
		// Fewest in flight per weight: a/wa < b/wb.
		if w := slot.weight(set.weights[i]); best == nil || slot.inflight.Load()*bestWeight < best.inflight.Load()*w {
			best, bestWeight, bestReplay = slot, w, st.ReplayLSN
		}
	}
	if best == nil {
		if behind {
			set.nudge() // a replica may have replayed it since its last check
			if cacheBound {
				return routeDecision{reason: router.ReasonCacheFill}
			}
			return routeDecision{reason: router.ReasonReadYourWrites}
		}
		return routeDecision{reason: router.ReasonNoUsableReplica}
	}
	return routeDecision{slot: best, reason: reason, replay: bestReplay}
}

// releasedLocked is called, under mu, when the session's server leaves it
// (released, lost or closed): the replica's in-flight count drops, and
// after a request that may have written on the primary the client's reads
// are fenced to replicas that have applied it.
func (ss *session) releasedLocked() {
	if ss.slot != nil {
		ss.slot.inflight.Add(-1)
		ss.slot = nil
	}
	if ss.mayWrite {
		ss.mayWrite = false
		ss.fenceAt, ss.fenceKnown = time.Now(), false
		if set := ss.splitFor(); set != nil {
			set.wrote(ss.poolKey.User, ss.fenceAt)
		}
	}
	if ss.ddl {
		// Read pg_proc again now that the DDL's transaction is over.
		ss.ddl = false
		ss.srv.functionsChanged(ss.poolKey.Database)
	}
	ss.idle.Broadcast()
}

package proxy

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/pgone/pgone/internal/pgmsg"
	"github.com/pgone/pgone/internal/wire"
	"github.com/pgone/pgone/pool"
)

// sessionStats is what a session records for SHOW STATS, SHOW CLIENTS and
// the metrics. The relay calls it per frame (local adds) and per request
// (a few atomic adds into the pool's striped counters); nothing here locks
// or allocates on that path.
//
// Ownership: rec and received belong to the session goroutine until the
// first server pump starts (which happens after attach sets rec), sent to
// the server pump; the *Locked methods and the request fields run under
// session.mu; waitingSince and labels are atomics read by the console.
type sessionStats struct {
	connected time.Time // immutable
	rec       pool.Recorder

	received int64 // bytes from the client not yet added (session goroutine)
	sent     int64 // bytes to the client not yet added (server pump)

	// Guarded by session.mu.
	outstanding int       // client requests (Query, Sync, FunctionCall) sent, not yet answered
	reqStart    time.Time // when the oldest outstanding request was sent
	xactStart   time.Time // when the current transaction's first request was sent
	lastRequest time.Time

	waitingSince atomic.Int64 // UnixNano while waiting for a server, else 0
	// labels are the database and user the session's errors are counted
	// under; nil until the client is attached (startup errors count with
	// empty labels, so unknown names cannot grow the label set).
	labels atomic.Pointer[errorLabels]
}

type errorLabels struct{ database, user string }

func newSessionStats() sessionStats { return sessionStats{connected: time.Now()} }

// receivedFrame counts a frame read from the client (session goroutine).
func (t *sessionStats) receivedFrame(n int) { t.received += int64(n) }

// sentFrame counts a frame written to the client (server pump).
func (t *sessionStats) sentFrame(n int) { t.sent += int64(n) }

// requestLocked records that a request with syncs Sync/Query/FunctionCall
// messages went to the server (session goroutine, under session.mu).
func (t *sessionStats) requestLocked(syncs int) {
	if t.received != 0 {
		t.rec.AddBytes(t.received, 0)
		t.received = 0
	}
	if syncs == 0 {
		return
	}
	now := time.Now()
	if t.outstanding == 0 {
		t.reqStart = now
	}
	if t.xactStart.IsZero() {
		t.xactStart = now
	}
	t.lastRequest = now
	t.outstanding += syncs
}

// readyLocked records a ReadyForQuery forwarded to the client (server pump,
// under session.mu): one query, and one transaction when status is I.
// Pipelined requests are timed back to back: the next one's time starts at
// this reply.
func (t *sessionStats) readyLocked(status byte) {
	if t.sent != 0 {
		t.rec.AddBytes(0, t.sent)
		t.sent = 0
	}
	if t.outstanding == 0 {
		return // a reply pgone did not count a request for
	}
	now := time.Now()
	t.outstanding--
	t.rec.AddQuery(now.Sub(t.reqStart))
	t.reqStart = now
	if status == pgmsg.TxIdle {
		t.rec.AddTransaction(now.Sub(t.xactStart))
		t.xactStart = time.Time{}
		if t.outstanding > 0 {
			t.xactStart = now
		}
	}
}

// acquire gets a server from the pool as Manager.Acquire does, and records
// the wait: in SHOW CLIENTS while it lasts, in the pool's wait time after.
// slot names a replica's pool; nil is the primary's.
func (ss *session) acquire(ctx context.Context, slot *replicaSlot) (*pool.Conn, error) {
	start := time.Now()
	ss.stats.waitingSince.Store(start.UnixNano())
	server, err := ss.acquireOf(ctx, slot)
	ss.stats.waitingSince.Store(0)
	if err != nil {
		if slot != nil {
			return nil, ss.replicaUnavailable(err)
		}
		return nil, ss.serverUnavailable(err)
	}
	ss.acquired(server, start)
	return server, nil
}

// acquireOf gets a connection of the pool of slot (nil: the primary). A
// database whose primary is found (failover.go) first waits for one the
// monitor trusts.
func (ss *session) acquireOf(ctx context.Context, slot *replicaSlot) (*pool.Conn, error) {
	if slot != nil {
		key, target := ss.poolOf(slot)
		return ss.srv.pools.Acquire(ctx, key, target)
	}
	for {
		key, target, ok := ss.primaryOf()
		if !ok {
			if err := ss.waitPrimary(ctx, ss.failoverFor()); err != nil {
				return nil, err
			}
			continue
		}
		server, err := ss.srv.pools.Acquire(ctx, key, target)
		if err != nil || ss.stillPrimary(server) {
			return server, err
		}
		// The primary changed while this waited: not that server.
		ss.srv.pools.Discard(server)
	}
}

// tryAcquire is acquire without waiting: an idle server or nil.
func (ss *session) tryAcquire(slot *replicaSlot) *pool.Conn {
	key, target := ss.poolOf(slot)
	if slot == nil {
		var ok bool
		if key, target, ok = ss.primaryOf(); !ok {
			return nil
		}
	}
	start := time.Now()
	server := ss.srv.pools.TryAcquire(key, target)
	if server != nil && slot == nil && !ss.stillPrimary(server) {
		// The primary changed as this looked: not that server (acquireOf).
		ss.srv.pools.Discard(server)
		return nil
	}
	if server != nil {
		ss.acquired(server, start)
	}
	return server
}

// poolOf returns the pool key and server of the session's primary pool
// (slot nil) or of a replica's pool.
func (ss *session) poolOf(slot *replicaSlot) (pool.Key, pool.Target) {
	if slot == nil {
		return ss.poolKey, ss.target
	}
	key, target := ss.poolKey, ss.target
	key.Replica = slot.addr
	target.Host, target.Port = slot.host, slot.port
	return key, target
}

// acquired records a server acquired since start.
// The session's traffic counts in the pool that serves it: with the
// read/write split that changes between requests, never during one (a
// request for another pool waits until nothing is outstanding).
func (ss *session) acquired(server *pool.Conn, start time.Time) {
	if ss.stats.labels.Load() == nil {
		// First server: the session now belongs to a pool.
		ss.stats.labels.Store(&errorLabels{database: ss.poolKey.Database, user: ss.poolKey.User})
	}
	if c := server.Counters(); !ss.stats.rec.Of(c) {
		ss.mu.Lock() // the pumps read rec under mu
		ss.stats.rec = c.Recorder()
		ss.mu.Unlock()
	}
	ss.stats.rec.AddWait(time.Since(start))
}

// countReplyLocked counts a server frame in transaction mode (server pump,
// under session.mu), once the pump knows whether it is forwarded.
func (ss *session) countReplyLocked(typ byte, frame []byte, forward bool) {
	if !forward {
		return
	}
	ss.stats.sentFrame(len(frame))
	switch typ {
	case pgmsg.ReadyForQuery:
		ss.stats.readyLocked(frame[wire.HeaderLen])
	case pgmsg.ErrorResponse:
		ss.countServerError(frame)
	}
}

// sqlstateOf returns the SQLSTATE of an ErrorResponse frame without
// decoding the other fields, or nil.
func sqlstateOf(frame []byte) []byte { return pgmsg.ErrorCode(wire.Body(frame)) }

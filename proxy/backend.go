package proxy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgone/pgone/internal/pgmsg"
	"github.com/pgone/pgone/pgerr"
	"github.com/pgone/pgone/pool"
	"github.com/pgone/pgone/router"
)

// The backend stage of transaction mode: a server for the request (the
// one the session holds, or one acquired on the request's route), the wait
// for it, the prelude that brings it to the client's settings, writes to
// it, and its end: released at ReadyForQuery (replies.go), lost, or given
// back clean when the client leaves.

// backend returns the server the request runs on, with ss.mu held: the
// caller renders the request under it. It first waits for the outcome of
// earlier messages the request depends on, and on a server new to the
// request's prepared statements checks their result shapes (shapes.go). On
// error ss.mu is not held and the request gets the error.
func (ss *session) backend(req *request) (*pool.Conn, error) {
	ss.waitForStatementOutcomes(req)
	var server *pool.Conn
	for {
		var err error
		if server, err = ss.ensureServer(req); err != nil {
			return nil, err
		}
		ss.mu.Lock()
		if ss.server == server {
			break // still ours: rendering raises pending, so the pump keeps it
		}
		// The pump released it between our look and the lock: get another.
		ss.mu.Unlock()
	}
	if ss.serverDiedIdleLocked(server, req) { // lost.go; unlocks when true
		return nil, errServerLost
	}
	if !ss.verifyShapesLocked(server, req) {
		ss.mu.Unlock()
		return nil, errStalePlan
	}
	return server, nil
}

// ensureServer returns the attached server, acquiring one when the
// session has none: of the primary, or of a replica when the request is a
// read and its database splits reads (split.go). It is called with a
// request in hand.
func (ss *session) ensureServer(req *request) (*pool.Conn, error) {
	set := ss.plan.set
	ss.mu.Lock()
	server := ss.heldServerLocked(set, req)
	ss.mu.Unlock()
	if server != nil {
		return server, nil
	}
	// No check of shutdown here: the request was taken in before it
	// began or while the session was busy (intake.go), so it is served.
	server, route, err := ss.acquireRouted(set, req)
	if err != nil {
		return nil, err
	}
	ss.mu.Lock()
	ss.attachLocked(server, set, route)
	ss.mu.Unlock()
	return server, nil
}

// heldServerLocked returns the server the session holds for req, or nil.
func (ss *session) heldServerLocked(set *replicaSet, req *request) *pool.Conn {
	server := ss.server
	if server != nil && ss.slot != nil && ss.mayMoveLocked(set, req) {
		// A replica still answers earlier pipelined requests, all synced.
		// A request for the primary waits for those answers: if they leave
		// no transaction open the replica is released and the request is
		// routed afresh; inside a read-only transaction it stays there.
		waited := false
		for ss.server == server && (ss.pending > 0 || ss.expect.len() > 0) && !ss.closed {
			ss.idle.Wait()
			waited = true
		}
		if waited {
			ss.plan.replan() // those answers may have changed the session
		}
		server = ss.server
	}
	if server != nil && ss.slot == nil && !ss.mayWrite && set != nil && set.fenced() {
		// Another request on an attached primary (pipelined, or in a
		// transaction begun by a read that found no replica): it may write.
		ss.mayWrite = true
	}
	return server
}

// acquireRouted acquires a server on the request's route: a replica's
// when set splits reads and the request is a read, else the primary's. A
// replica that cannot be reached sends the request to the primary.
func (ss *session) acquireRouted(set *replicaSet, req *request) (*pool.Conn, routeDecision, error) {
	var route routeDecision
	var server *pool.Conn
	if set != nil {
		route = ss.routeRequest(set, req)
		if route.slot != nil {
			if server = ss.tryAcquire(route.slot); server == nil {
				var err error
				server, err = ss.waitForServer(route.slot)
				if err != nil {
					if pgerr.CodeOf(err) == string(pgerr.TooManyConnections) {
						return nil, route, err // the replica's queue timed out, as the primary's would
					}
					route.slot.failedAt.Store(time.Now().UnixNano())
					ss.log.Warn("replica unreachable; reads go elsewhere until it is checked again",
						"replica", route.slot.addr, "err", err)
					route = routeDecision{reason: router.ReasonReplicaUnreachable}
				}
			}
		}
		ss.countRoute(route)
	}
	if server == nil {
		server = ss.tryAcquire(nil)
	}
	if server == nil {
		var err error
		if server, err = ss.waitForServer(nil); err != nil {
			return nil, route, err
		}
	}
	return server, route, nil
}

// attachLocked makes server the session's, on route, and queues the
// prelude that brings it to the client's settings.
func (ss *session) attachLocked(server *pool.Conn, set *replicaSet, route routeDecision) {
	ss.server = server
	ss.serverFatal, ss.captured = false, nil
	ss.slot, ss.slotReplay = route.slot, route.replay
	if route.slot != nil {
		route.slot.inflight.Add(1)
	} else if set != nil && set.fenced() && route.mayWrite() {
		// What runs on the primary may write: the client's later reads
		// must see it (see releasedLocked).
		ss.mayWrite = true
	}
	if server.State.Settings != ss.settingsKey {
		// Bring the server to the client's settings before its request.
		sql := "RESET ALL"
		if ss.settingsKey != "" {
			sql += "; " + ss.settingsKey
		}
		ss.prelude = encodeQuery(ss.prelude[:0], sql)
		ss.expect.push(expectation{kind: pgmsg.Query, injected: true})
		ss.pending++
		server.State.Settings = ss.settingsKey
	}
}

// waitForServer acquires a server of the primary (slot nil) or of a
// replica when none is idle: it waits in the pool's queue or dials, and
// tells a client that waits long why.
func (ss *session) waitForServer(slot *replicaSlot) (*pool.Conn, error) {
	ctx := ss.srv.ctx // ends the wait when pgone is forced down
	if after := ss.srv.snap.Load().poolCfg.WaitNoticeAfter; after > 0 {
		t := time.AfterFunc(after, func() {
			_ = ss.send(&pgproto3.NoticeResponse{
				Severity: "NOTICE", SeverityUnlocalized: "NOTICE", Code: "01000",
				Message: fmt.Sprintf("pgone: waiting for a server connection to database %q for over %s", ss.database, after),
				Hint:    "The pool is busy; the request runs as soon as a server connection is free.",
			})
		})
		defer t.Stop()
	}
	// acquire's errors are already the client's: coded, without server
	// addresses or dial details (dialerr.go).
	return ss.acquire(ctx, slot)
}

// writeServer writes b to the session's server, flushing when asked. swmu:
// the pump may release this server as soon as its reply is in; it waits
// for this write to finish before handing it on.
func (ss *session) writeServer(server *pool.Conn, b []byte, flush bool) error {
	ss.swmu.Lock()
	defer ss.swmu.Unlock()
	w := server.Writer()
	_, err := w.Write(b)
	if err == nil && flush {
		err = w.Flush()
	}
	return err
}

var errSessionEnded = errors.New("session ended")

// failRequest answers a request that could not get a server: the error,
// then one ReadyForQuery per Sync or Query the client is waiting on.
func (ss *session) failRequest(err error, syncs int) error {
	if errors.Is(err, errSessionEnded) {
		return err
	}
	ss.log.Info("request failed: no server connection", "sqlstate", pgerr.CodeOf(err), "err", err)
	ss.countError(err)
	msgs := []pgproto3.BackendMessage{pgerr.ToResponse(err)}
	for i := 0; i < syncs; i++ {
		msgs = append(msgs, &pgproto3.ReadyForQuery{TxStatus: pgmsg.TxIdle})
	}
	return ss.send(msgs...)
}

// serverEndedTx handles the end of a pump that did not release its server.
// When the session is ending (endTx waits on pumpDone) the server goes back
// through pumpDone. Otherwise the server is lost: it is closed, and the
// client's transaction with it. Each request waiting for replies gets one
// error (the server's own if one was forwarded, else 08006 or 08007, see
// lost.go) and ReadyForQuery; a client idle in its transaction gets 08006 at
// its next request. A pinned client loses state it cannot get back, so it
// is closed.
func (ss *session) serverEndedTx(server *pool.Conn, err error, broken bool) {
	ss.mu.Lock()
	closed := ss.closed
	var waiting []expectation
	pinned := ss.pinned
	if !closed && ss.server == server {
		waiting = ss.detachLostLocked()
	}
	ss.mu.Unlock()
	if closed {
		if errors.Is(err, os.ErrDeadlineExceeded) && !broken {
			ss.pumpDone <- server
			return
		}
		ss.srv.pools.Discard(server)
		ss.pumpDone <- nil
		return
	}
	ss.srv.pools.Discard(server)
	ss.cacheServerLost() // cachehooks.go
	msgs, inDoubt := lostAnswers(waiting)
	code := pgerr.ConnectionFailure
	if inDoubt {
		code = pgerr.TransactionResolutionUnknown
	}
	ss.log.Warn("server connection lost", "server", server.Addr(), "err", err, "sqlstate", code, "pinned", pinned)
	if pinned {
		msg := "server connection lost"
		if inDoubt {
			msg = errOutcomeUnknown.Message
		}
		ss.terminate(pgerr.Fatal(code, "%s", msg))
		return
	}
	if len(msgs) == 0 {
		return
	}
	if err := ss.send(msgs...); err != nil {
		ss.terminate(nil)
	}
}

// detachLostLocked detaches the session's lost server and returns the
// client requests that were waiting for its replies.
func (ss *session) detachLostLocked() []expectation {
	var waiting []expectation
	ss.server = nil
	ss.pumping = false
	ss.releasedLocked()
	for e := ss.expect.front(); e != nil; e = ss.expect.front() {
		if e.endsRequest() {
			waiting = append(waiting, *e)
		}
		if e.shape != nil {
			e.shape <- 0
		}
		ss.expect.pop()
	}
	if len(waiting) == 0 && ss.txStatus != pgmsg.TxIdle {
		ss.lostTx = true
	}
	ss.pending = 0
	ss.txStatus = pgmsg.TxIdle
	ss.txWrites, ss.txAborted = ss.txWrites[:0], false
	return waiting
}

// endTx is the end of a transaction-mode session: stop the pump and give
// the server back clean (rolled back; reset if the client was pinned), or
// close it.
func (ss *session) endTx() {
	ss.stopQueryTimer()
	defer ss.cacheClosed() // cachehooks.go: marks still held end as commits
	ss.mu.Lock()
	server := ss.server
	ss.closed = true
	ss.releasedLocked()
	idle := ss.pending == 0 && ss.expect.len() == 0
	pinned := ss.pinned
	pumping := ss.pumping
	ss.mu.Unlock()
	if server == nil {
		return
	}
	if pumping {
		_ = server.NetConn().SetReadDeadline(time.Now())
		got := <-ss.pumpDone
		_ = server.NetConn().SetReadDeadline(time.Time{})
		if got == nil {
			return // the pump already closed it
		}
	}
	ss.mu.Lock()
	server.TxStatus = ss.txStatus
	ss.mu.Unlock()
	if !idle {
		ss.discardBusy(server)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var err error
	if pinned {
		err = server.Reset(ctx)
	} else {
		err = server.Rollback(ctx)
	}
	if err != nil {
		ss.log.Info("server connection could not be cleaned; closing it", "err", err)
		ss.srv.pools.Discard(server)
		return
	}
	ss.srv.pools.Release(server)
}

package proxy

import (
	"errors"
	"io"
	"net"
	"os"
	"time"

	"github.com/pgone/pgone/internal/pgmsg"
	"github.com/pgone/pgone/internal/wire"
	"github.com/pgone/pgone/pgerr"
	"github.com/pgone/pgone/pool"
)

// pumpResult is how the server pump ended.
type pumpResult struct {
	// atBoundary: the pump stopped because it was asked to, between frames,
	// so the server stream can be reused.
	atBoundary bool
}

// relay moves frames both ways until either side ends, then cleans up the
// server connection.
func (ss *session) relay(server *pool.Conn) {
	done := make(chan pumpResult, 1)
	go ss.pumpServer(server, done)
	unsynced := ss.pumpClient(server)

	ss.mu.Lock()
	idle := ss.pending == 0 && !ss.reapplyQueued.Load()
	// A client that left inside a transaction leaves a server that the next
	// client must not get: clients expect a fresh backend then (pgxpool
	// closes such a connection), and the rollback would be the pool's.
	inTx := ss.txStatus != pgmsg.TxIdle
	server.TxStatus = ss.txStatus
	ss.closed = true
	ss.mu.Unlock()

	var res pumpResult
	select {
	case res = <-done:
	default:
		// Wake the pump from its read; it stops at a frame boundary.
		_ = server.NetConn().SetReadDeadline(time.Now())
		res = <-done
		_ = server.NetConn().SetReadDeadline(time.Time{})
	}
	ss.stopQueryTimer()
	if idle && !unsynced && res.atBoundary && inTx {
		ss.log.Debug("client left inside a transaction; closing its server connection")
		ss.srv.pools.Discard(server)
		return
	}
	ss.releaseServer(server, idle && !unsynced && res.atBoundary)
}

// pumpClient forwards client frames to the server until the client ends.
// It reports whether extended-protocol messages were sent without a Sync.
func (ss *session) pumpClient(server *pool.Conn) (unsynced bool) {
	w := server.Writer()
	for {
		typ, frame, err := ss.cr.Next()
		if err != nil {
			ss.clientGone(err)
			return unsynced
		}
		ss.stats.receivedFrame(len(frame))
		ss.waitTimeoutCancel() // timeout.go
		if ss.reapply.due && !unsynced && typ != pgmsg.Terminate {
			// If nothing of the client's is outstanding the re-apply goes first.
			if err := ss.writeReapply(w, 0); err != nil {
				return true
			}
		}
		switch typ {
		case pgmsg.Terminate:
			return unsynced
		case pgmsg.Query, pgmsg.Sync, pgmsg.FunctionCall: // each gets a ReadyForQuery
			ss.mu.Lock()
			if ss.draining && ss.stateLocked() == stateIdle {
				ss.mu.Unlock()
				ss.terminate(shutdownError())
				return unsynced
			}
			if typ == pgmsg.Sync && ss.copyIn {
				// PostgreSQL ignores a Sync in copy-in mode: no ReadyForQuery.
				ss.mu.Unlock()
				break
			}
			ss.trackSessionLocked(frame) // lostsession.go; before pending counts it
			ss.pending++
			ss.sessionRequestSentLocked() // query_timeout (timeout.go)
			if typ == pgmsg.Sync {
				ss.syncsAfterExecute++
			}
			ss.stats.requestLocked(1)
			ss.mu.Unlock()
			if h := ss.srv.testHooks.afterIntake; h != nil {
				h()
			}
			unsynced = false
		case pgmsg.Execute: // may start a COPY FROM STDIN
			ss.mu.Lock()
			ss.syncsAfterExecute = 0
			ss.trackSessionLocked(frame)
			ss.mu.Unlock()
			unsynced = true
		case pgmsg.Parse, pgmsg.Bind:
			ss.mu.Lock()
			ss.trackSessionLocked(frame)
			ss.mu.Unlock()
			unsynced = true
		case pgmsg.Describe, pgmsg.Close, pgmsg.Flush:
			unsynced = true
		case pgmsg.CopyDone, pgmsg.CopyFail: // copy-in mode ends
			ss.mu.Lock()
			ss.copyIn = false
			ss.mu.Unlock()
		case pgmsg.CopyData:
		default:
			ss.log.Info("invalid frontend message type", "type", typ, "sqlstate", pgerr.ProtocolViolation)
			ss.terminate(pgerr.Fatal(pgerr.ProtocolViolation, "invalid frontend message type %d", typ))
			return unsynced
		}
		reapply := ss.noteReapply(typ, frame)
		if _, err := w.Write(frame); err != nil {
			return true
		}
		if reapply {
			if err := ss.writeReapply(w, 1); err != nil {
				return true
			}
		}
		if !ss.cr.HasFrame() {
			if err := w.Flush(); err != nil {
				return true
			}
		}
	}
}

// clientGone logs why the client stopped and, for bad input, tells it.
func (ss *session) clientGone(err error) {
	cerr := clientReadError(err)
	var pe *pgerr.Error
	switch {
	case errors.As(cerr, &pe):
		ss.log.Info("closing client", "sqlstate", pe.Code, "err", pe.Message)
		ss.terminate(pe)
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		ss.log.Debug("client disconnected")
	default:
		ss.log.Debug("client connection ended", "err", err)
	}
}

// pumpServer forwards server frames to the client in session mode, in
// transaction mode's shape (replies.go): each frame goes to the handler
// of its kind (sessionReplyLocked), which returns a reply; deliverLocked,
// shared with transaction mode, writes and flushes it. A session-mode
// server is never released here (relay does that when the client ends).
func (ss *session) pumpServer(server *pool.Conn, done chan<- pumpResult) {
	fr := server.Frames()
	sawFatal := false
	for {
		typ, frame, err := fr.Next()
		if err != nil {
			done <- ss.sessionReadFailed(server, fr, err, sawFatal)
			return
		}
		ss.wmu.Lock()
		ss.mu.Lock()
		r, fatal := ss.sessionFrameLocked(typ, frame)
		bump := ss.cacheBumpDueLocked(fatal)
		ss.mu.Unlock()
		if bump {
			ss.cacheSessionBump() // cachesession.go: before the client learns of the commit
		}
		werr := ss.deliverLocked(server, &r, fr.HasFrame())
		ss.wmu.Unlock()
		sawFatal = sawFatal || fatal
		if werr != nil {
			// The client is gone; the server may still be sending: not reusable.
			done <- pumpResult{}
			ss.terminate(nil)
			return
		}
		if r.closeAfter {
			ss.log.Info("closing client for shutdown after its transaction")
			ss.terminate(shutdownError())
		}
	}
}

// sessionReadFailed ends the pump on a failed server read: at a frame
// boundary when relay asked it to stop, else the server is lost (after a
// FATAL the client has its error already).
func (ss *session) sessionReadFailed(server *pool.Conn, fr *wire.Reader, err error, sawFatal bool) pumpResult {
	ss.mu.Lock()
	closed := ss.closed
	ss.mu.Unlock()
	if closed && errors.Is(err, os.ErrDeadlineExceeded) && !fr.Broken() {
		return pumpResult{atBoundary: true}
	}
	if closed {
		return pumpResult{}
	}
	if sawFatal {
		ss.terminate(nil)
		return pumpResult{}
	}
	lost := ss.sessionLostError() // lostsession.go
	ss.cacheSessionLost()         // cachesession.go: a write outstanding may have committed
	ss.log.Warn("server connection lost", "server", server.Addr(), "err", err, "sqlstate", lost.Code)
	ss.terminate(lost)
	return pumpResult{}
}

// sessionFrameLocked is session mode's handler table: what to do with
// one server frame, and whether it is a FATAL. Everything but the kinds
// below passes through untouched.
func (ss *session) sessionFrameLocked(typ byte, frame []byte) (r reply, fatal bool) {
	if ss.reapplyQueued.Load() {
		// Replies to settings pgone re-applies are not the client's
		// (reapply.go); the client's ReadyForQuery is held until they end.
		skip, held := ss.reapplyFrameLocked(typ, frame)
		switch {
		case held != nil:
			frame = held
		case skip:
			return reply{}, false
		}
	}
	ss.stats.sentFrame(len(frame))
	switch typ {
	case pgmsg.ReadyForQuery:
		ss.onSessionReadyLocked(frame)
		return reply{frame: frame, forward: true, closeAfter: ss.draining && ss.stateLocked() == stateIdle}, false
	case pgmsg.CopyInResponse:
		ss.onSessionCopyInLocked()
	case pgmsg.ErrorResponse:
		ss.countServerError(frame)
		frame = ss.sessionQueryCanceledLocked(frame)
		if pgmsg.IsFatal(wire.Body(frame)) {
			return reply{frame: ss.sessionFatalLocked(frame), forward: true}, true // lostsession.go: 08007 for a commit
		}
	}
	return reply{frame: frame, forward: true}, false
}

// onSessionReadyLocked accounts a ReadyForQuery: one request answered,
// the transaction status, the statistics.
func (ss *session) onSessionReadyLocked(frame []byte) {
	ss.pending--
	ss.sessionReadyLocked()
	ss.sessionReplyLocked()
	ss.txStatus = frame[wire.HeaderLen]
	ss.cacheReadyLocked(ss.txStatus) // cachesession.go
	ss.stats.readyLocked(ss.txStatus)
}

// onSessionCopyInLocked: Syncs the client sent after the Execute that
// started this COPY reach the server in copy-in mode, which ignores them.
func (ss *session) onSessionCopyInLocked() {
	ss.copyIn = true
	ss.pending -= ss.syncsAfterExecute
	ss.sessionCopyInLocked(ss.syncsAfterExecute)
	ss.cacheCopyInLocked(ss.syncsAfterExecute)
	ss.syncsAfterExecute = 0
}

package proxy

import (
	"errors"
	"os"
	"time"

	"github.com/pgone/pgone/internal/pgmsg"
	"github.com/pgone/pgone/internal/wire"
	"github.com/pgone/pgone/pool"
)

// The replies stage of transaction mode. Each server frame is matched to
// the expectation of the message it answers (expect.go) and handed to the
// handler of its kind: ErrorResponse (onErrorLocked), ReadyForQuery
// (onReadyLocked), any other reply (onReplyLocked); notices,
// notifications, parameter changes and unsolicited messages always reach
// the client. A handler returns what to do with the frame: forward it to
// the client or swallow it (a reply to pgone's own message), release the
// server. flowLocked then decides who reads next (inline.go), and
// deliverLocked writes, releases and flushes. The ways a pump ends: the
// server released at ReadyForQuery I; the replies to what was sent all in,
// the server kept in a transaction (inline only); a hand-off to a pump
// goroutine (inline only: a slow answer, COPY FROM, a pin); the server lost
// (serverEndedTx); the client gone mid-reply.

// reply is what the handlers decided about one server frame.
type reply struct {
	frame      []byte // what the client gets, if forwarded
	forward    bool   // the client gets frame
	release    bool   // the server goes back to its pool
	closeAfter bool   // shutdown: close the client once this is written
	settled    bool   // inline: everything sent is answered; stop reading
	handOff    bool   // inline: a pump goroutine reads on
	// done: the request the hooks follow is answered (hooks.go).
	done *requestView
}

// pumpLoop forwards server replies in transaction mode, matching them to
// expectations, and releases the server when the session is idle. Run
// inline by the session goroutine (see serveReplies), it returns once the
// replies to what was sent are in, with the server kept when a transaction
// is open, or hands over to a pump goroutine.
func (ss *session) pumpLoop(server *pool.Conn, inline bool) {
	fr := server.Frames()
	interruptible := inline
	for {
		if interruptible && fr.WaitHeader() == nil && fr.Spans() {
			// A deadline must not fire inside a frame: this one, and the
			// rest of the reply, are read inline to the end.
			ss.stopInline(server)
			interruptible = false
		}
		typ, frame, err := fr.Next()
		if err != nil {
			ss.readFailed(server, fr, err, inline)
			return
		}
		ss.wmu.Lock()
		ss.mu.Lock()
		r := ss.handleReplyLocked(server, typ, frame)
		ss.flowLocked(server, &r, inline)
		ss.mu.Unlock()
		if r.done != nil {
			ss.beforeLastReplyHooks(r.done) // cachehooks.go: the commit's bump
		}
		werr := ss.deliverLocked(server, &r, fr.HasFrame())
		ss.wmu.Unlock()
		if r.done != nil {
			ss.afterReplyHooks(r.done)
		}
		if !ss.afterReply(server, &r, werr, inline) {
			return
		}
	}
}

// readFailed handles a failed read of the server: a slow answer read
// inline goes to a pump goroutine; otherwise the server is lost, unless
// the client is being closed.
func (ss *session) readFailed(server *pool.Conn, fr *wire.Reader, err error, inline bool) {
	if inline {
		ss.stopInline(server)
		if errors.Is(err, os.ErrDeadlineExceeded) && !fr.Broken() && !ss.terminated.Load() {
			// Slow answer: a pump goroutine waits for it.
			ss.mu.Lock()
			ss.startPumpLocked(server)
			ss.mu.Unlock()
			return
		}
		if ss.terminated.Load() {
			// The client is being closed: endTx closes the server,
			// which is mid-request.
			return
		}
	}
	ss.serverEndedTx(server, err, fr.Broken() || inline)
}

// handleReplyLocked dispatches a server frame to the handler of its kind.
func (ss *session) handleReplyLocked(server *pool.Conn, typ byte, frame []byte) reply {
	// A FATAL: the server is going away (pg_terminate_backend, restart);
	// a cancel pgone sent for query_timeout: say so (lost.go, timeout.go).
	typ, frame = ss.serverFatalLocked(typ, frame)
	frame = ss.queryCanceledLocked(typ, frame)
	if typ == pgmsg.ReadyForQuery {
		// What was sent after an error already reported got no reply:
		// the server skipped it to this Sync.
		skipped := ss.expect.skipUnanswered(nil)
		for i := len(skipped) - 1; i >= 0; i-- {
			ss.undoLocked(&server.State, skipped[i], false)
		}
	}
	e := ss.expect.front()
	v, ends := ss.followedLocked(typ, e)
	var r reply
	switch {
	case typ == pgmsg.NoticeResponse || typ == pgmsg.NotificationResponse || typ == pgmsg.ParameterStatus:
		// Notices, notifications and parameter changes always reach the client.
		r = reply{frame: frame, forward: true}
	case e == nil:
		// Nothing expected: an unsolicited message (e.g. a FATAL); forward it.
		r = reply{frame: frame, forward: true}
	case typ == pgmsg.ErrorResponse:
		r = ss.onErrorLocked(server, e, frame)
	case typ == pgmsg.ReadyForQuery:
		r = ss.onReadyLocked(server, e, frame)
	default:
		r = ss.onReplyLocked(e, typ, frame)
	}
	if v != nil {
		r.done = ss.sampleReplyLocked(v, typ, &r, ends) // hooks.go
	}
	ss.countReplyLocked(typ, r.frame, r.forward)
	ss.wakeStatementWaiterLocked()
	r.closeAfter = typ == pgmsg.ReadyForQuery && ss.draining && ss.stateLocked() == stateIdle
	// Inline reading hands over to a pump goroutine for COPY FROM.
	r.handOff = typ == pgmsg.CopyInResponse || typ == pgmsg.CopyBothResponse
	return r
}

// followedLocked returns the view of the request a reply belongs to when
// hooks follow it, and whether the reply is one of its ReadyForQuery.
func (ss *session) followedLocked(typ byte, e *expectation) (*requestView, bool) {
	if ss.srv.hooks == nil {
		return nil, false
	}
	q := ss.expect.request()
	if q == nil || q.view == nil {
		return nil, false
	}
	return q.view, typ == pgmsg.ReadyForQuery && q == e
}

// onErrorLocked handles an ErrorResponse answering e.
func (ss *session) onErrorLocked(server *pool.Conn, e *expectation, frame []byte) reply {
	// A failed injected Parse explains the Bind's failure: the client sees
	// it, unless pgone's own statement failed.
	forward := !(e.injected && (e.kind == pgmsg.Query || e.quiet))
	if forward {
		ss.errorForwardedLocked()
	} else {
		ss.log.Warn("pgone's own statement failed on the server", "err", errorText(frame))
	}
	if e.kind == pgmsg.Bind && e.base != "" && isStalePlan(frame) {
		// The statement's result type changed (DDL): every server's copy
		// is stale. The client gets this error once; its next prepare uses
		// a fresh server-side name everywhere.
		ss.srv.retireStatement(e.base)
	}
	frame = ss.serverErrorLocked(&server.State, e, frame, forward)
	return reply{frame: frame, forward: forward}
}

// onReadyLocked handles the ReadyForQuery that ends e (a Sync, Query or
// FunctionCall): the request is done, and the server is released when the
// session is idle outside a transaction and holds nothing a pool cannot
// move.
func (ss *session) onReadyLocked(server *pool.Conn, e *expectation, frame []byte) reply {
	status := frame[wire.HeaderLen]
	if e.capture {
		ss.settingsCapturedLocked(server, status)
	}
	if e.forgetPrepared {
		server.State.ForgetAllPrepared()
	}
	r := reply{frame: frame, forward: !e.injected} // before pop, which clears e
	ss.expect.pop()
	ss.pending--
	ss.txStatus = status
	r.release = ss.pending == 0 && status == pgmsg.TxIdle && ss.expect.len() == 0 && !ss.pinned && !ss.closed
	if r.release {
		ss.server = nil
		ss.pumping = false
		ss.releasedLocked()
	} else if ss.pending == 0 {
		ss.idle.Broadcast() // a request for the primary may wait for this (ensureServer)
	}
	ss.setIdleDeadlineLocked()
	return r
}

// settingsCapturedLocked takes the settings snapshot just read as the
// session's settings, and the server's.
func (ss *session) settingsCapturedLocked(server *pool.Conn, status byte) {
	key := settingsKeyOf(ss.captured)
	ss.settingsKey = key
	ss.defaultReadOnly = readOnlyDefault(ss.captured)
	server.State.Settings = key
	if status == pgmsg.TxIdle {
		ss.settingsDirty = false
	}
	ss.captured = nil
}

// onReplyLocked handles any other reply to e: forwarded unless e was
// pgone's, and e is done when this is its last reply.
func (ss *session) onReplyLocked(e *expectation, typ byte, frame []byte) reply {
	r := reply{frame: frame, forward: !e.injected} // before pop, which clears e
	if typ == pgmsg.CopyInResponse && e.kind == pgmsg.Execute {
		// COPY FROM STDIN via Execute: Syncs already sent behind it
		// reach the server in copy-in mode and get no ReadyForQuery.
		ss.copyIn = true
		ss.pending -= ss.expect.dropSyncsAfterFront()
	}
	if e.capture {
		switch typ {
		case pgmsg.RowDescription:
			ss.captured = ss.captured[:0]
		case pgmsg.DataRow:
			ss.captured = append(ss.captured, pgmsg.TextValues(wire.Body(frame)))
		}
	}
	if completes(e.kind, typ) {
		ss.completedLocked(e, frame)
		ss.expect.pop()
	}
	return r
}

// completedLocked records what the last reply to e tells: a statement
// parsed on some server, a statement's result shape.
func (ss *session) completedLocked(e *expectation, frame []byte) {
	if e.kind == pgmsg.Parse && e.base != "" {
		ss.srv.parsed.add(ss.parsedKey(e.base))
	}
	if e.kind == pgmsg.Describe {
		if e.shape != nil {
			e.shape <- shapeHash(frame)
		} else if e.shapeOf != "" {
			ss.shapes[e.shapeOf] = shapeHash(frame)
		}
	}
}

// flowLocked decides who reads next. Inline: stop once what was sent is
// answered (the server stays attached in a transaction), or hand over to a
// pump goroutine for COPY FROM and for a client pinned by this request.
func (ss *session) flowLocked(server *pool.Conn, r *reply, inline bool) {
	r.settled = inline && !r.release && ss.pending == 0 && ss.expect.len() == 0
	r.handOff = inline && !r.release && (r.handOff || (r.settled && ss.pinned))
	if r.handOff {
		ss.stopInline(server)
		ss.pumping = true // the pump starts once frame, which it would overwrite, is written
	} else if r.settled || (inline && r.release) {
		ss.stopInline(server)
	}
}

// deliverLocked writes the frame to the client and, on release, gives the
// server back. It runs under wmu. more: the server has sent more frames.
func (ss *session) deliverLocked(server *pool.Conn, r *reply, more bool) error {
	var werr error
	cw := ss.writerLocked()
	if r.forward {
		_, werr = cw.Write(r.frame)
	}
	if r.release {
		// The server goes back to the pool before the client hears
		// ReadyForQuery: its next request finds it idle rather than
		// dialing another or queueing behind its own release.
		ss.swmu.Lock() // the session goroutine may still be finishing its write
		ss.swmu.Unlock()
		ss.srv.pools.Release(server)
	}
	// Flush at the end of what the server sent, and when this reader stops
	// (settled): bytes the server sent after its ReadyForQuery (a FATAL)
	// would otherwise hold the reply back.
	if werr == nil && (r.release || r.closeAfter || r.settled || !more) {
		werr = cw.Flush()
	}
	if r.release {
		ss.parkWriterLocked()
	}
	return werr
}

// afterReply acts on what was delivered and reports whether this reader
// goes on reading the server.
func (ss *session) afterReply(server *pool.Conn, r *reply, werr error, inline bool) bool {
	if r.handOff {
		go ss.pumpServerTx(server)
	}
	if r.release {
		if r.closeAfter {
			ss.terminate(shutdownError())
		}
		return false
	}
	if werr != nil && !r.handOff {
		// The client is gone mid-reply: end the session first, so the
		// server is not taken for lost.
		if inline {
			ss.stopInline(server)
		}
		ss.terminate(nil)
		ss.serverEndedTx(server, werr, true)
		return false
	}
	if r.closeAfter {
		ss.log.Info("closing client for shutdown after its transaction")
		ss.terminate(shutdownError())
	}
	return !r.handOff && !r.settled
}

// setIdleDeadlineLocked arms the client read deadline for
// idle_transaction_timeout or client_idle_timeout after a ReadyForQuery.
func (ss *session) setIdleDeadlineLocked() {
	if ss.pending != 0 {
		return
	}
	limits := ss.srv.snap.Load().cfg.Limits
	var d time.Duration
	if ss.txStatus != pgmsg.TxIdle {
		d = limits.IdleTransactionTimeout
	} else {
		d = limits.ClientIdleTimeout
	}
	if d > 0 {
		_ = ss.nc.SetReadDeadline(time.Now().Add(d))
		ss.deadlineArmed = true
	} else if ss.deadlineArmed {
		_ = ss.nc.SetReadDeadline(time.Time{})
		ss.deadlineArmed = false
	}
}

func errorText(frame []byte) string {
	er, ok := decodeError(frame)
	if !ok {
		return "undecodable error"
	}
	return string(er.Code) + " " + string(er.Message)
}

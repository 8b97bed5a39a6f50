package proxy

import (
	"context"
	"time"

	"github.com/pgone/pgone/internal/pgmsg"
	"github.com/pgone/pgone/pgerr"
	"github.com/pgone/pgone/pool"
)

// query_timeout. In transaction mode each request gets a deadline when it
// is sent (renderMarkedLocked). One timer per session fires at the
// earliest deadline of its outstanding requests; if the oldest request is
// still running then, pgone sends its server a real CancelRequest (the
// server's own cancel key, as libpq does) and the client gets PostgreSQL's
// 57014 with the text "canceling statement due to query_timeout". A server
// that has not answered the cancel within queryCancelGrace (stopped,
// unreachable) is closed, and the client gets what any request on a lost
// server gets (08006 or 08007, lost.go); the next request gets another
// server.
//
// In session mode the server runs one request at a time: the request
// running is timed from when the one before it ended, or from its sending
// when the session was idle. A server that ignores the cancel is closed,
// and so is the client, which loses its session with it (08006).
//
// As with a client's own cancel, the cancel may reach the server just after
// the request ended there; PostgreSQL ignores a cancel that arrives between
// queries.

// queryCancelGrace is how long a server has to answer pgone's cancel
// before it is given up.
const queryCancelGrace = time.Second

// queryTimer is a session's query_timeout state; it is guarded by
// session.mu.
type queryTimer struct {
	timer *time.Timer // runs onQueryTimer; nil until first needed
	at    int64       // when it fires (unix ns); 0 when not armed
	seq   uint64      // requests numbered so far
	// canceled is the request pgone cancelled; graceEnd is when its server
	// is closed if the request is still waiting.
	canceled uint64
	graceEnd int64
	// Session mode: the request running and its deadline (unix ns, 0:
	// none); answered: the cancel's error came back.
	running         uint64
	runningDeadline int64
	answered        bool
	// timeout is the session's query_timeout under the config snapshot
	// cfg (queryDeadline): looked up again only after a reload.
	cfg     *snapshot
	timeout time.Duration
}

// queryTimeoutFor is the query_timeout of a user on a database: the
// user's, else the database's (or the wildcard entry's), else the limit.
func queryTimeoutFor(cfg *Config, database, user string) time.Duration {
	if u, ok := cfg.Users[user]; ok && u.QueryTimeout > 0 {
		return u.QueryTimeout
	}
	db, ok := cfg.Databases[database]
	if !ok {
		db = cfg.Databases[WildcardDatabase]
	}
	if db.QueryTimeout > 0 {
		return db.QueryTimeout
	}
	return cfg.Limits.QueryTimeout
}

// queryDeadline is the deadline of a request sent now (unix ns), or 0.
// Called with ss.mu held.
func (ss *session) queryDeadline() int64 {
	if snap := ss.srv.snap.Load(); snap != ss.qt.cfg {
		ss.qt.cfg, ss.qt.timeout = snap, queryTimeoutFor(&snap.cfg, ss.poolKey.Database, ss.user)
	}
	d := ss.qt.timeout
	if d <= 0 {
		return 0
	}
	return time.Now().Add(d).UnixNano()
}

// timeRequestLocked numbers a request just rendered and arms the timer for
// its deadline.
func (ss *session) timeRequestLocked(e *expectation, deadline int64) {
	ss.qt.seq++
	e.seq, e.deadline = ss.qt.seq, deadline
	if deadline != 0 {
		ss.armQueryTimerLocked(deadline)
	}
}

// armQueryTimerLocked makes the timer fire at at, unless it fires earlier.
func (ss *session) armQueryTimerLocked(at int64) {
	if ss.qt.at != 0 && ss.qt.at <= at {
		return
	}
	ss.qt.at = at
	d := time.Duration(at - time.Now().UnixNano())
	if ss.qt.timer == nil {
		ss.qt.timer = time.AfterFunc(d, ss.onQueryTimer)
		return
	}
	ss.qt.timer.Reset(d)
}

// stopQueryTimer stops the timer when the session ends.
func (ss *session) stopQueryTimer() {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.qt.timer != nil {
		ss.qt.timer.Stop()
	}
	ss.qt.at = 0
}

// onQueryTimer runs when a deadline or a grace period may have passed: it
// cancels the oldest request if it is overdue, closes its server if a
// cancel went unanswered, and arms the timer for what comes next.
func (ss *session) onQueryTimer() {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.qt.at = 0
	if ss.mode == pool.ModeSession {
		ss.onSessionQueryTimerLocked()
		return
	}
	server := ss.server
	e := ss.expect.request()
	if ss.closed || server == nil || e == nil {
		return
	}
	now := time.Now().UnixNano()
	switch {
	case e.answered:
		// It has its error (the cancel's, maybe): ReadyForQuery is next.
	case e.seq == ss.qt.canceled && now >= ss.qt.graceEnd:
		ss.log.Warn("query_timeout: the server did not answer the cancel; closing it",
			"server", server.Addr(), "grace", queryCancelGrace)
		// Under mu: the server cannot be released to another client first.
		// The pump's read fails and the request is answered as lost.
		_ = server.NetConn().Close()
		return
	case e.seq == ss.qt.canceled:
		ss.armQueryTimerLocked(ss.qt.graceEnd)
		return
	case e.deadline != 0 && now >= e.deadline:
		ss.cancelForTimeoutLocked(server, e.seq, now)
		return
	}
	if next := ss.nextDeadlineLocked(); next != 0 {
		// A later request is overdue behind the oldest: look again soon.
		ss.armQueryTimerLocked(max(next, now+int64(10*time.Millisecond)))
	}
}

// cancelForTimeoutLocked sends server a CancelRequest for request seq and
// arms the grace period.
func (ss *session) cancelForTimeoutLocked(server *pool.Conn, seq uint64, now int64) {
	ss.qt.canceled, ss.qt.graceEnd = seq, now+int64(queryCancelGrace)
	ss.armQueryTimerLocked(ss.qt.graceEnd)
	ss.log.Info("query_timeout: canceling the request on its server", "sqlstate", pgerr.QueryCanceled)
	ss.countQueryTimeout() // metrics.go
	// Claimed under ss.mu while the session holds server: the pool gives
	// it to no other client until PostgreSQL has taken the cancel (cancel.go).
	send := server.StartCancel()
	done := make(chan struct{})
	ss.timeoutCancel.Store(&done)
	go func() {
		defer func() {
			ss.timeoutCancel.CompareAndSwap(&done, nil)
			close(done)
		}()
		ctx, cancel := context.WithTimeout(ss.srv.ctx, queryCancelGrace)
		defer cancel()
		if err := send(ctx); err != nil {
			ss.log.Info("query_timeout: cancel request to server failed", "err", err)
		}
	}()
}

// waitTimeoutCancel holds the session's next request for its server
// until the cancel pgone sent for query_timeout is done (the server closed
// its connection, or queryCancelGrace passed). PostgreSQL's postmaster
// signals the backend twice (its pid, then its process group): the first
// signal may end the statement, and its 57014 reach the client, before
// the second is sent, which would then cancel the client's next statement.
func (ss *session) waitTimeoutCancel() {
	if done := ss.timeoutCancel.Load(); done != nil {
		<-*done
	}
}

// nextDeadlineLocked is the earliest deadline of the outstanding requests
// not yet cancelled or answered, or 0.
func (ss *session) nextDeadlineLocked() int64 {
	var next int64
	for i := ss.expect.head; i < len(ss.expect.items); i++ {
		e := &ss.expect.items[i]
		if !e.endsRequest() || e.deadline == 0 || e.answered || e.seq == ss.qt.canceled {
			continue
		}
		if next == 0 || e.deadline < next {
			next = e.deadline
		}
	}
	return next
}

// queryCanceledLocked rewrites the server's 57014 for a request pgone
// cancelled for query_timeout, so the client knows why: PostgreSQL says
// "canceling statement due to user request".
func (ss *session) queryCanceledLocked(typ byte, frame []byte) []byte {
	if typ != pgmsg.ErrorResponse || ss.qt.canceled == 0 {
		return frame
	}
	if e := ss.expect.request(); e == nil || e.seq != ss.qt.canceled {
		return frame
	}
	out, _ := rewriteQueryCanceled(frame)
	return out
}

// rewriteQueryCanceled turns a 57014 ErrorResponse frame into one saying
// query_timeout (ok); other frames come back as they are.
func rewriteQueryCanceled(frame []byte) (out []byte, ok bool) {
	er, ok := decodeError(frame)
	if !ok || string(er.Code) != string(pgerr.QueryCanceled) {
		return frame, false
	}
	er.Message = queryTimeoutMessage
	return er.Encode(nil, pgmsg.ErrorResponse), true
}

var queryTimeoutMessage = []byte("canceling statement due to query_timeout")

// sessionRequestSentLocked times a request a session-mode client sent:
// from now if it is the only one outstanding.
func (ss *session) sessionRequestSentLocked() {
	if ss.pending == 1 {
		ss.sessionRequestStartsLocked()
	}
}

// sessionReplyLocked follows a ReadyForQuery in session mode: the next
// outstanding request, if any, starts running now.
func (ss *session) sessionReplyLocked() {
	if ss.pending > 0 {
		ss.sessionRequestStartsLocked()
		return
	}
	ss.qt.running, ss.qt.runningDeadline = 0, 0
}

func (ss *session) sessionRequestStartsLocked() {
	deadline := ss.queryDeadline()
	ss.qt.seq++
	ss.qt.running, ss.qt.runningDeadline, ss.qt.answered = ss.qt.seq, deadline, false
	if deadline != 0 {
		ss.armQueryTimerLocked(deadline)
	}
}

// onSessionQueryTimerLocked is onQueryTimer in session mode.
func (ss *session) onSessionQueryTimerLocked() {
	server := ss.server
	if ss.closed || server == nil || ss.pending == 0 || ss.qt.running == 0 || ss.qt.answered {
		return
	}
	now := time.Now().UnixNano()
	switch {
	case ss.qt.canceled == ss.qt.running && now >= ss.qt.graceEnd:
		ss.log.Warn("query_timeout: the server did not answer the cancel; closing it",
			"server", server.Addr(), "grace", queryCancelGrace)
		_ = server.NetConn().Close() // the relay ends: the client is told 08006
	case ss.qt.canceled == ss.qt.running:
		ss.armQueryTimerLocked(ss.qt.graceEnd)
	case ss.qt.runningDeadline != 0 && now >= ss.qt.runningDeadline:
		ss.cancelForTimeoutLocked(server, ss.qt.running, now)
	case ss.qt.runningDeadline != 0:
		ss.armQueryTimerLocked(ss.qt.runningDeadline)
	}
}

// sessionQueryCanceledLocked is queryCanceledLocked for the session-mode
// pump.
func (ss *session) sessionQueryCanceledLocked(frame []byte) []byte {
	if ss.qt.canceled == 0 || ss.qt.canceled != ss.qt.running {
		return frame
	}
	out, ok := rewriteQueryCanceled(frame)
	ss.qt.answered = ss.qt.answered || ok
	return out
}

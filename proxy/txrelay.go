package proxy

import (
	"errors"
	"os"
	"time"

	"github.com/pgone/pgone/internal/pgmsg"
	"github.com/pgone/pgone/pgerr"
)

// Transaction mode. The session goroutine reads whole requests (up to Sync,
// Query, FunctionCall or Flush), attaches a server connection if it has
// none, brings that server to the client's settings and prepared
// statements, and sends the request. The replies are read inline or by a
// pump goroutine, which gives the server back to the pool at a
// ReadyForQuery with status I when nothing else is outstanding. Each stage
// has its file: request.go, backend.go, render.go, replies.go (and
// inline.go, who reads the replies); doc.go has the whole picture.

// relayTx is the session goroutine in transaction mode: one request after
// another through the pipeline, until the client leaves.
func (ss *session) relayTx() {
	var req request
	var out []byte
	for {
		last, ok := ss.collect(&req) // request.go
		if !ok {
			break
		}
		if h := ss.srv.testHooks.afterIntake; h != nil {
			h()
		}
		err := ss.serveRequest(&req, last, &out)
		req.reset()
		if err != nil || !ss.endIntake() { // intake.go
			break
		}
		if cap(out) > maxRequestBytes {
			out = nil
		}
	}
	ss.endTx()
}

// serveRequest takes one collected request through the pipeline: answered
// without a server, or sent to one (backend, render, write) with its
// replies on their way. out is the render buffer, reused between requests.
// An error means the client could not be answered: the session ends.
func (ss *session) serveRequest(req *request, last byte, out *[]byte) error {
	ss.decodeRequest(req)                                   // frameview.go: every stage reads req.views
	if answered, err := ss.intercept(req, last); answered { // request.go
		return err
	}
	ss.plan.begin(ss.splitFor()) // plan.go: decisions are taken as stages ask
	var view *requestView
	var start time.Time // when the hooks' view began waiting for a server
	if h := ss.srv.hooks; h != nil {
		var answered bool
		if view, answered = ss.beforeSend(h, req); answered { // hooks.go
			return nil
		}
		start = time.Now()
	}
	server, err := ss.backend(req) // backend.go: returns with ss.mu held
	if err != nil {
		ss.hooksRequestUnsent(view) // hooks.go
		return ss.failRequest(err, req.syncs)
	}
	before := ss.expect.len()
	*out = ss.renderMarkedLocked(server, req, (*out)[:0]) // render.go, lost.go
	if view != nil {
		ss.watchRequestLocked(view, before, time.Since(start))
	}
	ss.stats.requestLocked(req.syncs)
	ss.intake = false // its replies decide from now on (intake.go)
	ss.mu.Unlock()
	ss.waitTimeoutCancel()                 // timeout.go
	_ = ss.writeServer(server, *out, true) // a failed write shows as a failed read
	ss.serveReplies(server, last)          // inline.go, replies.go
	return nil
}

// clientGoneTx reports why the client's stream ended; idle timeouts get
// their own errors.
func (ss *session) clientGoneTx(err error) {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		ss.mu.Lock()
		inTx := ss.txStatus != pgmsg.TxIdle
		ss.mu.Unlock()
		if inTx {
			ss.log.Info("idle_transaction_timeout: closing client", "sqlstate", pgerr.IdleInTransactionTimeout)
			ss.terminate(pgerr.Fatal(pgerr.IdleInTransactionTimeout, "terminating connection due to idle-in-transaction timeout"))
		} else {
			ss.log.Info("client_idle_timeout: closing client", "sqlstate", pgerr.IdleSessionTimeout)
			ss.terminate(pgerr.Fatal(pgerr.IdleSessionTimeout, "terminating connection due to idle-session timeout"))
		}
		return
	}
	ss.clientGone(err)
}

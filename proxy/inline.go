package proxy

import (
	"time"

	"github.com/pgone/pgone/pool"
)

// Who reads a server's replies (transaction mode). The common case, a
// complete request with nothing more from the client yet and a quick
// answer, is served by the session goroutine itself: no goroutine to
// start and no hand-over between threads, which is most of what
// transaction pooling would otherwise add to a query's latency. A pump
// goroutine takes over when the answer is slow (the session goroutine must
// watch its client: a disconnect or a cancel), when the client pipelines
// (its next requests must flow while replies come back), for COPY FROM
// (the client sends the data), and for pinned clients (notifications
// arrive at any time).

// inlineWait is about how long the session goroutine waits for its
// server's reply itself before the watchdog (watchInline) hands the wait to
// a pump goroutine and the session goes back to watching its client.
const inlineWait = 5 * time.Millisecond

// serveReplies gets the replies to the request just sent on their way,
// inline or by a pump goroutine (see above). last is the request's last
// message.
func (ss *session) serveReplies(server *pool.Conn, last byte) {
	ss.mu.Lock()
	if ss.pumping || ss.server != server {
		ss.mu.Unlock()
		return
	}
	if ss.pending == 0 && ss.expect.len() == 0 && !ss.pinned {
		ss.mu.Unlock()
		return // nothing to wait for (a lone Flush)
	}
	if !endsCollect(last) || ss.pinned || ss.cr.Buffered() > 0 {
		ss.startPumpLocked(server)
		ss.mu.Unlock()
		return
	}
	ss.mu.Unlock()
	ss.inlineMu.Lock()
	if ss.terminated.Load() {
		ss.inlineMu.Unlock()
		return // the client is being closed: endTx takes the server
	}
	ss.inlineServer = server
	ss.inlineSince.Store(time.Now().UnixNano())
	ss.inlineMu.Unlock()
	ss.pumpLoop(server, true)
}

// startPumpLocked hands the server's replies to a pump goroutine.
func (ss *session) startPumpLocked(server *pool.Conn) {
	ss.pumping = true
	go ss.pumpServerTx(server)
}

// pumpServerTx is the pump goroutine of transaction mode.
func (ss *session) pumpServerTx(server *pool.Conn) { ss.pumpLoop(server, false) }

// stopInline ends the session goroutine's own reading of server replies.
// It runs before the server is released, handed to a pump or closed.
func (ss *session) stopInline(server *pool.Conn) {
	ss.inlineMu.Lock()
	ss.inlineServer = nil
	ss.inlineSince.Store(0)
	interrupted := ss.inlineInterrupted
	ss.inlineInterrupted = false
	ss.inlineMu.Unlock()
	if interrupted {
		_ = server.NetConn().SetReadDeadline(time.Time{})
	}
}

// interruptInline makes the session goroutine's wait for its server's
// reply, begun at since, end now with a deadline error: the reply is slow
// and a pump goroutine should wait for it (or the session is ending).
func (ss *session) interruptInline(since int64) {
	ss.inlineMu.Lock()
	defer ss.inlineMu.Unlock()
	if ss.inlineServer == nil || (since != 0 && ss.inlineSince.Load() != since) {
		return // done, or a newer wait
	}
	ss.inlineInterrupted = true
	_ = ss.inlineServer.NetConn().SetReadDeadline(time.Now())
}

// watchInline is the watchdog of inline waits: every inlineWait it
// interrupts the sessions that have waited longer than that. It costs each
// request two atomic stores instead of a timer, and runs until the server
// has shut down.
func (s *Server) watchInline() {
	t := time.NewTicker(inlineWait)
	defer t.Stop()
	var slow []*session
	var since []int64
	for range t.C {
		now := time.Now().UnixNano()
		slow, since = slow[:0], since[:0]
		s.mu.Lock()
		if s.draining && len(s.sessions) == 0 {
			s.mu.Unlock()
			return
		}
		for ss := range s.sessions {
			if t := ss.inlineSince.Load(); t != 0 && now-t >= int64(inlineWait) {
				slow = append(slow, ss)
				since = append(since, t)
			}
		}
		s.mu.Unlock()
		for i, ss := range slow {
			ss.interruptInline(since[i])
		}
	}
}

package proxy

import (
	"context"
	"log/slog"
	"time"
)

// cancel forwards a cancel request to the server running this session's
// query, and only that one. The server is claimed for the cancel under
// ss.mu while the session holds it with a request outstanding: every path
// that gives a server back clears ss.server or sets ss.closed under ss.mu
// first, and the pool's Release then waits for the cancel (pool
// StartCancel). So the cancel cannot reach a server that already serves
// another client, and the server reaches no other client until PostgreSQL
// has taken the cancel (a backend idle by then ignores it).
func (ss *session) cancel() {
	ss.mu.Lock()
	server := ss.server
	if server == nil || ss.pending == 0 || ss.closed {
		ss.mu.Unlock()
		return
	}
	send := server.StartCancel()
	ss.mu.Unlock()
	if h := ss.srv.testHooks.beforeCancelSend; h != nil {
		h()
	}
	ctx, cancel := context.WithTimeout(ss.srv.ctx, 5*time.Second)
	defer cancel()
	if err := send(ctx); err != nil {
		ss.log.Info("cancel request to server failed", "err", err)
	}
}

// cancelRequest handles a CancelRequest; log is the logger of the
// connection that sent it, so the line names that client.
func (s *Server) cancelRequest(key cancelKey, log *slog.Logger) {
	s.mu.Lock()
	ss := s.cancelKeys[key]
	s.mu.Unlock()
	if ss == nil {
		log.Info("cancel request for unknown key ignored")
		return
	}
	ss.cancel()
}

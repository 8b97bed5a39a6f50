package proxy

import (
	"bufio"
	"bytes"

	"github.com/pgone/pgone/internal/pgmsg"
	"github.com/pgone/pgone/internal/wire"
)

// Session mode applies a client's startup parameters with set_config, so
// PostgreSQL's reset value of each is the server's default, not the
// client's startup value as it would be had the client connected directly.
// After a statement that may reset settings (RESET x, RESET ALL, SET x TO
// DEFAULT, DISCARD ALL), pgone sends reapplyStartupSQL, which brings back
// the startup value of every startup parameter no longer set in the
// session, and swallows its replies (ParameterStatus and notifications
// pass). It is sent only where its replies cannot be confused with the
// client's: right behind the client's request when that is the only one
// outstanding, otherwise before the client's next request once every reply
// is in. A statement in the same request that reads the value right after
// the reset (RESET x; SHOW x in one Query) still sees the server default.

// reapplyState tracks the re-application of startup parameters in session
// mode.
type reapplyState struct {
	// Owned by the session goroutine.
	resetStmts  map[string]bool // client statements that may reset settings
	copyStmts   map[string]bool // client statements that may start a COPY
	cycleResets bool            // since the last Sync, a resetting statement was bound
	cycleCopy   bool            // since the last Sync, a COPY statement was bound
	due         bool            // a re-apply is owed: send it when nothing is outstanding

	// Guarded by ss.mu, while reapplyQueued is set: zsBefore is the number
	// of client ReadyForQuery messages still to come before the re-apply's
	// replies; held is the client's ReadyForQuery held back until they end.
	zsBefore int
	held     []byte
}

// mayResetSettings reports whether text may take a setting back to its
// reset value. A cheap look for the words first: most texts have none, and
// only those with one are copied and classified.
func (ss *session) mayResetSettings(text []byte) bool {
	if len(ss.startupParams) == 0 || !containsFold(text, "reset", "default", "discard") {
		return false
	}
	if ss.srv.classifier == nil {
		return true
	}
	return ss.srv.classifier.Classify(string(text), false).ChangesSettings
}

// containsFold reports whether b contains any of words (lower-case ASCII),
// ignoring ASCII case, without allocating.
func containsFold(b []byte, words ...string) bool {
	for i := range b {
		for _, w := range words {
			if len(b)-i >= len(w) && hasPrefixFold(b[i:], w) {
				return true
			}
		}
	}
	return false
}

func hasPrefixFold(b []byte, w string) bool {
	for j := 0; j < len(w); j++ {
		if b[j]|0x20 != w[j] {
			return false
		}
	}
	return true
}

// cstring returns b up to its first NUL (all of b if none).
func cstring(b []byte) []byte {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return b[:i]
	}
	return b
}

// noteReapply looks at a client frame about to be sent to the server and
// reports whether a re-apply must follow it.
func (ss *session) noteReapply(typ byte, frame []byte) bool {
	if len(ss.startupParams) == 0 {
		return false
	}
	r := &ss.reapply
	switch typ {
	case pgmsg.Query:
		text := cstring(wire.Body(frame))
		if !ss.mayResetSettings(text) {
			return false
		}
		if containsFold(text, "copy") {
			// A COPY FROM STDIN would take the re-apply for data: wait.
			r.due = true
			return false
		}
		return true
	case pgmsg.Parse:
		body := wire.Body(frame)
		name := cstring(body)
		if len(name) == len(body) {
			return false
		}
		query := cstring(body[len(name)+1:])
		setFlag(&r.resetStmts, string(name), ss.mayResetSettings(query))
		setFlag(&r.copyStmts, string(name), containsFold(query, "copy"))
	case pgmsg.Bind:
		if len(r.resetStmts) == 0 && len(r.copyStmts) == 0 {
			return false
		}
		if _, stmt, _, ok := bindStatement(frame); ok {
			r.cycleResets = r.cycleResets || r.resetStmts[stmt]
			r.cycleCopy = r.cycleCopy || r.copyStmts[stmt]
		}
	case pgmsg.Close:
		if kind, name, ok := targetOf(frame); ok && kind == pgmsg.TargetStatement {
			delete(r.resetStmts, name)
			delete(r.copyStmts, name)
		}
	case pgmsg.Sync:
		resets, copying := r.cycleResets, r.cycleCopy
		r.cycleResets, r.cycleCopy = false, false
		if resets && copying {
			r.due = true
			return false
		}
		return resets
	}
	return false
}

func setFlag(m *map[string]bool, name string, on bool) {
	if !on {
		delete(*m, name)
		return
	}
	if *m == nil {
		*m = map[string]bool{}
	}
	(*m)[name] = true
}

// writeReapply writes the re-apply behind what w holds if its replies can
// be told apart from the client's: zsBefore is the number of client
// requests outstanding (0 before a new request, 1 right behind the only
// one). Otherwise it stays due.
func (ss *session) writeReapply(w *bufio.Writer, zsBefore int) error {
	ss.mu.Lock()
	ok := ss.pending == zsBefore && !ss.copyIn && !ss.reapplyQueued.Load()
	if ok {
		ss.reapply.zsBefore = zsBefore
		ss.reapplyQueued.Store(true)
	}
	ss.mu.Unlock()
	if !ok {
		ss.reapply.due = true
		return nil
	}
	ss.reapply.due = false
	_, err := w.Write(encodeQuery(nil, reapplyStartupSQL(ss.startupParams)))
	return err
}

// reapplyFrameLocked decides what the pump does with a server frame while a
// re-apply is queued. skip: the client must not see it now. When the
// client's ReadyForQuery comes right before the re-apply's replies it is
// held, and given back as held in place of the re-apply's own
// ReadyForQuery: the client hears the end of its request only once its
// settings are right, as from PostgreSQL, and cannot send its next request
// in between.
func (ss *session) reapplyFrameLocked(typ byte, frame []byte) (skip bool, held []byte) {
	r := &ss.reapply
	if r.zsBefore > 0 {
		if typ == pgmsg.ReadyForQuery {
			r.zsBefore--
			if r.zsBefore == 0 {
				r.held = append(r.held[:0], frame...)
				return true, nil
			}
		}
		return false, nil
	}
	if typ == pgmsg.ReadyForQuery {
		ss.reapplyQueued.Store(false)
		held, r.held = r.held, nil
		return true, held
	}
	// The client's view of reported settings follows the re-apply, and
	// notifications are the client's.
	return typ != pgmsg.ParameterStatus && typ != pgmsg.NotificationResponse, nil
}

// flushClient sends what the pump has written to the client so far (the
// frames after it were swallowed). It reports false if the client is gone.
func (ss *session) flushClient() bool {
	ss.wmu.Lock()
	defer ss.wmu.Unlock()
	if ss.cw == nil || ss.cw.Buffered() == 0 {
		return true
	}
	return ss.cw.Flush() == nil
}

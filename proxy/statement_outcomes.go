package proxy

import (
	"bytes"
	"strings"

	"github.com/pgone/pgone/internal/pgmsg"
	"github.com/pgone/pgone/pool"
)

// What the server made of the statement messages pgone sent: errors that
// name server-side statements, spans skipped after an error, and requests
// that must wait for those outcomes (transaction mode).

// serverErrorLocked handles an ErrorResponse from the server answering e,
// the front expectation: it names the client's statements in the error,
// and undoes the bookkeeping of what the error made the server skip. It
// returns the frame to forward.
func (ss *session) serverErrorLocked(st *pool.SessionState, e *expectation, frame []byte, forward bool) []byte {
	if forward {
		// The statement the failed message named, even if a Close later
		// in the pipeline has taken the client's name off ss.prepared.
		server := ss.prepared[e.client].server
		if e.base != "" {
			server = e.base
		}
		if e.closed != nil {
			server = e.closed.server
		}
		frame = ss.clientNamesInError(frame, e.client, server)
	}
	switch e.kind {
	case pgmsg.Query:
		if e.closed != nil {
			// A translated DEALLOCATE failed: nothing was deallocated.
			ss.undoLocked(st, *e, false)
		}
	case pgmsg.FunctionCall, pgmsg.Sync:
	default:
		skipped := ss.expect.takeToSync(nil)
		for i := len(skipped) - 1; i >= 0; i-- {
			ss.undoLocked(st, skipped[i], i == 0)
		}
	}
	return frame
}

// undoLocked undoes the bookkeeping of a message the server skipped, or
// that failed (failed: the first of the span).
func (ss *session) undoLocked(st *pool.SessionState, e expectation, failed bool) {
	if e.unnamed {
		st.UnnamedOwner = 0 // not known: the next use prepares it again
		if e.kind == pgmsg.Parse && e.unnamedSet != nil && ss.stmts.unnamed == e.unnamedSet {
			ss.stmts.unnamed = e.unnamedPrev
			if failed {
				ss.stmts.unnamed = nil // PostgreSQL drops the old one before parsing
			}
		}
		if e.kind == pgmsg.Close && !e.injected && ss.stmts.unnamed == nil {
			ss.stmts.unnamed = e.unnamedPrev
		}
		return
	}
	switch e.kind {
	case pgmsg.Parse:
		if e.statement != "" {
			st.ForgetPrepared(e.statement) // never created
		}
		if e.creates {
			if cs, ok := ss.prepared[e.client]; ok && cs.server == e.base {
				delete(ss.prepared, e.client)
				delete(ss.shapes, e.client)
			}
		}
	case pgmsg.Close, pgmsg.Query:
		if e.statement != "" {
			st.AddPrepared(e.statement, 0) // still there
		}
		if e.closed != nil {
			if _, taken := ss.prepared[e.client]; !taken {
				ss.prepared[e.client] = *e.closed
			}
		}
	}
}

// pgoneQuoted marks an error that may name a server-side statement.
var pgoneQuoted = []byte(`"pgone_`)

// clientNamesInError rewrites an ErrorResponse frame that names
// server-side statements ("pgone_...") to name the client's instead:
// client's (base: its server-side base name; the statement of the failed
// message) first, then any of the session's. Other frames are returned unchanged.
func (ss *session) clientNamesInError(frame []byte, client, base string) []byte {
	if !bytes.Contains(frame, pgoneQuoted) {
		return frame
	}
	er, ok := decodeError(frame)
	if !ok {
		return frame
	}
	pairs := make([]string, 0, 4+2*len(ss.prepared))
	pairs = append(pairs, `"`+foreignPrefix, `"`)
	if base != "" {
		pairs = append(pairs, `"`+ss.srv.statementName(base)+`"`, `"`+client+`"`)
	}
	for c, cs := range ss.prepared {
		pairs = append(pairs, `"`+ss.srv.statementName(cs.server)+`"`, `"`+c+`"`)
	}
	r := strings.NewReplacer(pairs...)
	for _, f := range []*[]byte{&er.Message, &er.Detail, &er.Hint, &er.Where} {
		*f = []byte(r.Replace(string(*f)))
	}
	return er.Encode(nil, pgmsg.ErrorResponse)
}

// waitForStatementOutcomes holds a request that uses a statement whose
// Parse or Close, sent in an earlier request, the server has not answered
// yet, until it has. Rendering assumes that what was sent succeeded; the
// server may yet fail it or skip it after an error, which undoes it
// (serverErrorLocked), and a request rendered before that would run, or
// refuse, what PostgreSQL would not: a shared server-side copy of a
// statement whose Parse the client's server skipped, or another client's
// unnamed statement. Only pipelining clients wait, and only then.
func (ss *session) waitForStatementOutcomes(req *request) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.expect.len() == 0 || !ss.dependsOnOutstandingLocked(req) {
		return
	}
	ss.stmts.waiting = true
	for ss.server != nil && !ss.closed && ss.dependsOnOutstandingLocked(req) {
		ss.idle.Wait()
	}
	ss.stmts.waiting = false
}

// wakeStatementWaiterLocked wakes waitForStatementOutcomes after the pump
// handled a reply.
func (ss *session) wakeStatementWaiterLocked() {
	if ss.stmts.waiting {
		ss.idle.Broadcast()
	}
}

// dependsOnOutstandingLocked reports whether req uses a client statement
// that an unanswered message of an ended span creates or removes: a named
// one by name, the unnamed one by Bind or Describe before the request
// parses it itself.
func (ss *session) dependsOnOutstandingLocked(req *request) bool {
	// Only messages whose span the server has been sent to its end
	// (Sync, Query) are answered without more from the client; within the
	// open span the server itself skips what follows an error.
	end := len(ss.expect.items)
	for end > ss.expect.head && !endsSpan(ss.expect.items[end-1].kind) {
		end--
	}
	if ss.copyIn {
		end = ss.expect.head // the server ignores Syncs until the copy ends
	}
	var names map[string]bool
	unnamed := false
	for i := ss.expect.head; i < end; i++ {
		e := &ss.expect.items[i]
		switch {
		case e.unnamed:
			unnamed = true
		case e.creates || e.closed != nil:
			if names == nil {
				names = map[string]bool{}
			}
			names[e.client] = true
		}
	}
	if names == nil && !unnamed {
		return false
	}
	parsedUnnamed := false
	for i := range req.views {
		v := &req.views[i]
		name, uses := "", false
		switch v.typ {
		case pgmsg.Parse:
			if v.ok {
				if v.name == "" {
					parsedUnnamed = true
					continue
				}
				name, uses = v.name, true
			}
		case pgmsg.Bind:
			name, uses = v.name, v.ok
		case pgmsg.Describe, pgmsg.Close:
			name, uses = v.name, v.ok && v.kind == pgmsg.TargetStatement && (v.name != "" || v.typ == pgmsg.Describe)
		case pgmsg.Query:
			name, uses = deallocateName(v.text)
		}
		if !uses {
			continue
		}
		if name == "" && unnamed && !parsedUnnamed || name != "" && names[name] {
			return true
		}
	}
	return false
}

// endsSpan reports whether a message of kind ends what an error skips.
func endsSpan(kind byte) bool { return pgmsg.EndsRequest(kind) }

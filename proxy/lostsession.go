package proxy

import (
	"github.com/pgone/pgone/internal/pgmsg"
	"github.com/pgone/pgone/internal/wire"
	"github.com/pgone/pgone/pgerr"
)

// What a session-mode client hears when its server connection dies. The
// client's connection ends with its server, so it gets one FATAL, chosen
// by transaction mode's rules (lost.go): 08007 (outcome unknown) when a
// request still waiting for its ReadyForQuery may have committed (COMMIT,
// COMMIT PREPARED, a write or call outside a transaction block), 08006
// otherwise; a FATAL from the server in reply to a commit becomes 08007
// with the server's message as detail. The session goroutine follows the
// client's stream with an outcomeTracker as it forwards it and queues one
// outcome per request; the pump takes one off at each ReadyForQuery.

// sessionOutcomes is the session-mode state of that, guarded by ss.mu.
type sessionOutcomes struct {
	tracker  outcomeTracker
	midway   bool      // the tracker is inside a request (its inTx is set)
	inFlight []outcome // of the requests sent and not yet answered, oldest first
	// copied is what the requests a COPY's copy-in mode swallowed (their
	// Syncs got no ReadyForQuery) may have done: it goes to the next one.
	copied outcome
}

// trackSessionLocked follows a client message forwarded to the server
// (Parse, Bind, Execute, Query, Sync, FunctionCall; not a Sync that
// copy-in mode ignores) and queues the outcome of each request it ends.
func (ss *session) trackSessionLocked(frame []byte) {
	so := &ss.outcomes
	if !so.midway {
		// Whether a block is open is known only with nothing outstanding;
		// otherwise assume none: writes count as committing by themselves.
		so.tracker.inTx = ss.txStatus != pgmsg.TxIdle && ss.pending == 0
		so.midway = true
		ss.plan.begin(nil) // the texts the router decides are this request's
	}
	var o outcome
	var ends bool
	if long, isLong := ss.trackLongText(frame); isLong {
		o, ends = long, frame[0] == pgmsg.Query
		ss.cacheLongFrameLocked(frame) // cachesession.go
	} else {
		v := ss.plan.decodeFrame(frame)
		o, ends = ss.track(&so.tracker, &v)
		ss.cacheFrameLocked(&v)
	}
	if !ends {
		return
	}
	so.inFlight = append(so.inFlight, max(o, so.copied))
	so.copied, so.midway = outcomeNone, false
}

// maxTrackedText is the longest Query or Parse text the tracker reads.
// Session mode forwards a text as it is; reading a longer one to classify
// it would copy it (a 100 MB literal took pgone from 213 to 370 MB RSS).
const maxTrackedText = 1 << 20

// trackLongText takes a Query or Parse frame longer than maxTrackedText
// without reading its text (isLong; other frames are not taken): a Query
// counts as committing and leaves no block known to be open; a Parse
// leaves its statement unknown, so a Bind of it counts as committing.
func (ss *session) trackLongText(frame []byte) (o outcome, isLong bool) {
	if len(frame) <= maxTrackedText {
		return outcomeNone, false
	}
	t := &ss.outcomes.tracker
	switch frame[0] {
	case pgmsg.Query:
		t.inTx = false
		return outcomeCommit, true
	case pgmsg.Parse:
		name, _, _ := pgmsg.CString(wire.Body(frame), 0)
		if len(t.parsed) == maxTrackedParses {
			t.parsed = append(t.parsed[:0], t.parsed[1:]...)
		}
		t.parsed = append(t.parsed, parsedText{name: string(name), unknown: true})
		return outcomeNone, true
	}
	return outcomeNone, false
}

// sessionReadyLocked takes the oldest request off at its ReadyForQuery.
func (ss *session) sessionReadyLocked() {
	so := &ss.outcomes
	if len(so.inFlight) > 0 {
		so.inFlight[0] = outcomeNone
		so.inFlight = so.inFlight[1:]
	}
}

// sessionCopyInLocked drops the newest n requests, whose Syncs a COPY's
// copy-in mode swallows, keeping what they may do for the request that
// ends the COPY.
func (ss *session) sessionCopyInLocked(n int) {
	so := &ss.outcomes
	n = min(n, len(so.inFlight))
	for _, o := range so.inFlight[len(so.inFlight)-n:] {
		so.copied = max(so.copied, o)
	}
	so.inFlight = so.inFlight[:len(so.inFlight)-n]
}

// sessionFatalLocked rewrites a FATAL ErrorResponse from the server: in reply
// to a request that commits it becomes FATAL 08007; otherwise (the
// statement was aborted, or nothing was running) it passes unchanged.
func (ss *session) sessionFatalLocked(frame []byte) []byte {
	commit := len(ss.outcomes.inFlight) > 0 && ss.outcomes.inFlight[0] == outcomeCommit
	if !commit {
		return frame
	}
	er, ok := decodeError(frame)
	if !ok {
		return frame
	}
	out, err := inDoubtFrame(er.Message, pgerr.SeverityFatal)
	if err != nil {
		return frame
	}
	return out
}

// sessionLostError is the FATAL for a server connection that ended
// without a FATAL of its own.
func (ss *session) sessionLostError() *pgerr.Error {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for _, o := range ss.outcomes.inFlight {
		if o != outcomeNone {
			e := *errOutcomeUnknown // a copy: the shared value stays ERROR
			e.Severity = pgerr.SeverityFatal
			return &e
		}
	}
	return pgerr.Fatal(pgerr.ConnectionFailure, "server connection lost")
}

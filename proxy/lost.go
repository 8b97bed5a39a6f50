package proxy

import (
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgone/pgone/internal/pgmsg"
	"github.com/pgone/pgone/internal/wire"
	"github.com/pgone/pgone/pgerr"
	"github.com/pgone/pgone/pool"
	"github.com/pgone/pgone/router"
)

// What a client hears when its server connection dies (transaction mode).
//
// A request whose server dies before its ReadyForQuery gets exactly one
// error, then ReadyForQuery. Which error depends on what the request may
// have done: pgone says "rolled back" (08006) only when it knows nothing
// was committed: the client sat idle in its transaction, the request was a
// read, or it ran inside a transaction block without ending it. A request
// that may have committed (COMMIT, END, PREPARE TRANSACTION, COMMIT or
// ROLLBACK PREPARED, a write or function call outside a transaction block)
// gets 08007: it may or may not have committed, and a client that retried
// on "rolled back" would write twice. The decision is taken when the
// request is sent, from its text (requestOutcomesLocked), and kept on the
// expectation of its Sync, Query or FunctionCall.

// outcome is what a request may have done that outlives its server.
type outcome uint8

const (
	// outcomeNone: nothing that survives the request's server (reads,
	// statements inside a transaction block, ROLLBACK).
	outcomeNone outcome = iota
	// outcomeWrite: a statement that commits by itself (a write, a call,
	// anything but a plain read outside a transaction block). A FATAL the
	// server sends while running it means it was aborted; a silent death
	// leaves it unknown.
	outcomeWrite
	// outcomeCommit: COMMIT, END, PREPARE TRANSACTION, COMMIT or ROLLBACK
	// PREPARED, or a text that may hold one: unknown whenever the server
	// dies before ReadyForQuery.
	outcomeCommit
)

// errServerLost is what a client hears when its server connection died
// under its transaction and nothing can have committed.
var errServerLost = pgerr.New(pgerr.ConnectionFailure, "server connection lost; the transaction was rolled back")

// errOutcomeUnknown is what a client hears when its server connection died
// while its request may have been committing.
var errOutcomeUnknown = pgerr.New(pgerr.TransactionResolutionUnknown,
	"server connection lost while the transaction was committing; it may or may not have committed").
	WithHint("Check whether the transaction's changes are present before retrying it.")

// lostError is the error for a request whose server died before answering.
func lostError(inDoubt bool) *pgerr.Error {
	if inDoubt {
		return errOutcomeUnknown
	}
	return errServerLost
}

// renderMarkedLocked renders req for server (renderLocked) and marks each
// request it sends with what it may commit and its query_timeout deadline.
func (ss *session) renderMarkedLocked(server *pool.Conn, req *request, out []byte) []byte {
	var buf [8]outcome
	outcomes := ss.requestOutcomesLocked(req, buf[:0]) // from the session's state before this request
	before := ss.expect.len()
	out = ss.renderLocked(server, req, out)
	added := ss.expect.appended(ss.expect.len() - before)
	deadline := ss.queryDeadline()
	i := 0
	for k := range added {
		e := &added[k]
		if !e.endsRequest() {
			continue
		}
		e.outcome = outcomeCommit // a request pgone could not classify
		if i < len(outcomes) {
			e.outcome = outcomes[i]
		}
		i++
		ss.timeRequestLocked(e, deadline)
	}
	return out
}

// serverDiedIdleLocked reports whether the server a client kept through
// its open transaction died while the client was idle, before this
// request: then nothing of the request ran and the transaction is gone,
// so the request gets 08006 rather than "outcome unknown". It asks the
// socket (one non-blocking peek) only for requests that may commit, on a
// server nobody reads (no pump). When it reports true it has detached the
// server, discarded it and unlocked ss.mu.
func (ss *session) serverDiedIdleLocked(server *pool.Conn, req *request) bool {
	if ss.txStatus == pgmsg.TxIdle || ss.pending != 0 || ss.expect.len() != 0 || ss.pumping || ss.pinned {
		return false
	}
	var buf [8]outcome
	inDoubt := false
	for _, o := range ss.requestOutcomesLocked(req, buf[:0]) {
		inDoubt = inDoubt || o != outcomeNone
	}
	if !inDoubt || server.Alive() {
		return false
	}
	ss.server = nil
	ss.releasedLocked()
	ss.txStatus = pgmsg.TxIdle
	ss.mu.Unlock()
	ss.srv.pools.Discard(server)
	ss.log.Warn("server connection lost while the client was idle in its transaction",
		"server", server.Addr(), "sqlstate", pgerr.ConnectionFailure)
	return true
}

// requestOutcomesLocked appends to outcomes, for each Query, Sync and
// FunctionCall of req in order, what the request it ends may leave
// behind. It follows the transaction block through the request (BEGIN
// opens one, COMMIT and ROLLBACK end it). When earlier requests are still
// running, the block they leave is unknown: pgone assumes none, so writes
// count as committing by themselves.
func (ss *session) requestOutcomesLocked(req *request, outcomes []outcome) []outcome {
	if ss.slot != nil {
		// On a replica (split.go): a hot standby commits nothing.
		for i := 0; i < req.syncs; i++ {
			outcomes = append(outcomes, outcomeNone)
		}
		return outcomes
	}
	var parsedBuf [4]parsedText
	t := outcomeTracker{
		inTx:   ss.txStatus != pgmsg.TxIdle && ss.pending == 0 && ss.expect.len() == 0,
		parsed: parsedBuf[:0],
	}
	for i := range req.views {
		v := &req.views[i]
		if v.typ == pgmsg.Sync && ss.copyIn {
			continue // no ReadyForQuery: renderLocked expects none
		}
		if o, ends := ss.track(&t, v); ends {
			outcomes = append(outcomes, o)
		}
	}
	return outcomes
}

// outcomeTracker follows a client's messages, one request after another,
// for what each may leave behind (track). Transaction mode runs one over
// each request it sends, session mode one over the client's stream
// (lostsession.go).
type outcomeTracker struct {
	inTx      bool         // a transaction block is open before the next message
	parsed    []parsedText // statements parsed since the last Sync
	portal    string       // the text the last Bind bound, when bound
	portalLex lexed
	bound     bool
	segment   outcome // what the extended-protocol request so far may have done
}

// maxTrackedParses bounds outcomeTracker.parsed; a Bind of a statement
// dropped from it is taken as unknown, which counts as committing.
const maxTrackedParses = 8

// track takes the client's next message. At a Query, Sync or
// FunctionCall it reports ends, and o is what the request that message
// ends may leave behind.
func (ss *session) track(t *outcomeTracker, v *frameView) (o outcome, ends bool) {
	switch v.typ {
	case pgmsg.Query:
		o, t.inTx = ss.statementOutcome(v.text, ss.lexOf(v.text), t.inTx)
		return o, true
	case pgmsg.Parse:
		if v.ok {
			if len(t.parsed) == maxTrackedParses {
				t.parsed = append(t.parsed[:0], t.parsed[1:]...)
			}
			t.parsed = append(t.parsed, parsedText{name: v.name, text: v.text})
		}
	case pgmsg.Bind:
		t.portal, t.portalLex, t.bound = ss.boundText(v, t.parsed)
	case pgmsg.Execute:
		if !t.bound {
			// A portal of an earlier request: its statement is unknown.
			t.segment = outcomeCommit
			return outcomeNone, false
		}
		o, t.inTx = ss.statementOutcome(t.portal, t.portalLex, t.inTx)
		t.segment = max(t.segment, o)
	case pgmsg.FunctionCall:
		if !t.inTx {
			return outcomeWrite, true
		}
		return outcomeNone, true
	case pgmsg.Sync:
		o = t.segment
		t.segment, t.bound = outcomeNone, false
		clear(t.parsed)
		t.parsed = t.parsed[:0]
		return o, true
	}
	return outcomeNone, false
}

// boundText returns the text of the statement a Bind uses, and lexText of
// it (v is the Bind): parsed in this request, or a named statement of the client. ok is
// false when unknown (the unnamed statement of an earlier request).
func (ss *session) boundText(v *frameView, parsed []parsedText) (text string, lx lexed, ok bool) {
	if !v.ok {
		return "", lexed{}, false
	}
	name := v.name
	for i := len(parsed) - 1; i >= 0; i-- {
		if parsed[i].name == name {
			if parsed[i].unknown {
				return "", lexed{}, false
			}
			return parsed[i].text, ss.lexOf(parsed[i].text), true
		}
	}
	if name == "" {
		return "", lexed{}, false
	}
	cs, ok := ss.prepared[name]
	return cs.query, cs.lex, ok
}

// statementOutcome tells what running text may leave behind, in a
// transaction block (inTx) or not, and whether a block is open after it.
// Plain statements are told by their first words, without parsing (texts
// with inlined literals would each cost a parse); others by the router,
// from the request's plan (plan.go). lx is lexText(text).
func (ss *session) statementOutcome(text string, lx lexed, inTx bool) (o outcome, inTxAfter bool) {
	alone := outcomeWrite // a statement outside a block commits by itself
	if inTx {
		alone = outcomeNone
	}
	if lx.plainRead {
		return outcomeNone, inTx
	}
	if lx.noEffects {
		first, second := leadingWords(text)
		switch first {
		case "begin", "start":
			return outcomeNone, true
		case "commit", "end":
			return outcomeCommit, false // AND CHAIN keeps a block open: assuming none is the safe side
		case "rollback", "abort":
			switch second {
			case "prepared":
				return outcomeCommit, inTx
			case "to":
				return outcomeNone, inTx
			}
			return outcomeNone, false
		case "savepoint", "release":
			return outcomeNone, inTx
		}
		return alone, inTx // a read or a write, run inside the block or committed alone
	}
	d := ss.decide(text) // plan.go
	switch {
	case d.Statements > 1 && d.Tx != router.TxNone:
		// Tx is the last transaction statement: an earlier one may commit.
		return outcomeCommit, d.Tx == router.TxBegin
	case d.Tx == router.TxBegin:
		return outcomeNone, true
	case d.Tx == router.TxCommit, d.Tx == router.TxPrepareTransaction:
		return outcomeCommit, false
	case d.Tx == router.TxCommitPrepared, d.Tx == router.TxRollbackPrepared:
		return outcomeCommit, inTx
	case d.Tx == router.TxRollback:
		return outcomeNone, false
	case d.Tx != router.TxNone:
		return outcomeNone, inTx
	case inTx:
		return outcomeNone, true
	case d.Reason == router.ReasonEmpty || d.Reason == router.ReasonParseError:
		return outcomeNone, false
	case d.Target == router.TargetReplica || d.Reason == router.ReasonSerializable:
		// A read (one the serializable default keeps on the primary too).
		return outcomeNone, false
	}
	return outcomeWrite, false
}

// leadingWords returns the first two words of text, lower case; a text
// starting with anything but a letter has none.
func leadingWords(text string) (first, second string) {
	word := func() string {
		text = strings.TrimLeft(text, " \t\n\r\f\v")
		i := 0
		for i < len(text) && (text[i] >= 'a' && text[i] <= 'z' || text[i] >= 'A' && text[i] <= 'Z' || text[i] == '_') {
			i++
		}
		w := strings.ToLower(text[:i])
		text = text[i:]
		return w
	}
	first = word()
	second = word()
	return first, second
}

// serverFatalLocked turns a FATAL (or PANIC) the server sent into what the
// client of a transaction-mode session should get; typ and frame are
// returned unchanged for other messages. Only the client's transaction is
// lost, so it keeps its connection (unless pinned: it is closed later):
//   - in reply to a request that commits (COMMIT...): 08007, the server's
//     message as detail;
//   - in reply to another request: the same error with severity ERROR (a
//     statement that commits by itself was aborted by the FATAL);
//   - with no request waiting: a WARNING notice. An ErrorResponse nobody
//     asked for would be taken by the client as the answer to its next
//     request (libpq makes it a notice; the request then got only
//     ReadyForQuery: "no results"). The next request hears of the loss.
//
// Whether the error reaches the client is the reply handler's decision
// (pgone swallows replies to its own statements); errorForwardedLocked
// marks the request answered only when it does, so that serverEndedTx
// sends every other waiting request its error.
func (ss *session) serverFatalLocked(typ byte, frame []byte) (byte, []byte) {
	if typ != pgmsg.ErrorResponse {
		return typ, frame
	}
	// The unlocalized severity: a server's lc_messages may translate the
	// other.
	if !pgmsg.IsFatal(wire.Body(frame)) {
		return typ, frame
	}
	er, ok := decodeError(frame)
	if !ok {
		return typ, frame
	}
	ss.serverFatal = true
	if ss.pinned {
		return typ, frame
	}
	e := ss.expect.request()
	if e == nil {
		er.Severity, er.SeverityUnlocalized = severityWarning, severityWarning
		return pgmsg.NoticeResponse, er.Encode(nil, pgmsg.NoticeResponse)
	}
	if e.outcome == outcomeCommit {
		if out, err := inDoubtFrame(er.Message, pgerr.SeverityError); err == nil {
			return typ, out
		}
	}
	er.Severity, er.SeverityUnlocalized = severityError, severityError
	return typ, er.Encode(nil, pgmsg.ErrorResponse)
}

// inDoubtFrame is the ErrorResponse, of severity, for a request that
// may commit and that its server answered with a FATAL saying msg: the
// outcome is unknown (pgone did not see a rollback).
func inDoubtFrame(msg []byte, severity string) ([]byte, error) {
	e := errOutcomeUnknown.WithDetail("The server said: " + string(msg)) // a copy
	e.Severity = severity
	return pgerr.ToResponse(e).Encode(nil)
}

// Severities of the errors pgone rewrites.
var (
	severityError   = []byte(pgerr.SeverityError)
	severityWarning = []byte("WARNING")
)

// errorForwardedLocked records that an ErrorResponse reached the client
// for its oldest waiting request.
func (ss *session) errorForwardedLocked() {
	if e := ss.expect.request(); e != nil {
		e.answered = true
	}
}

// lostAnswers is what the requests still waiting on a server that died
// get: for each, an error unless it had one, then ReadyForQuery. It also
// reports whether any of them may have committed.
func lostAnswers(waiting []expectation) (msgs []pgproto3.BackendMessage, inDoubt bool) {
	for i := range waiting {
		e := &waiting[i]
		if !e.answered {
			msgs = append(msgs, pgerr.ToResponse(lostError(e.outcome != outcomeNone)))
		}
		inDoubt = inDoubt || e.outcome != outcomeNone
		msgs = append(msgs, &pgproto3.ReadyForQuery{TxStatus: pgmsg.TxIdle})
	}
	return msgs, inDoubt
}

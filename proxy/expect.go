package proxy

import "github.com/pgone/pgone/internal/pgmsg"

// expectation is one message pgone sent to the server in transaction mode,
// in order, so the server pump can tell which reply answers which message:
// replies to messages pgone injected are swallowed, and an error skips the
// rest of an extended-protocol request up to its Sync, as the server does.
type expectation struct {
	kind     byte // the frontend message type: P B D E C S Q F
	injected bool // sent by pgone, not the client: its replies are not forwarded
	// statement is the server-side statement name a Parse creates or a
	// Close removes, so that a Parse that failed or was skipped is
	// forgotten and a skipped Close is remembered again.
	statement string
	// base is the base server-side name of the statement a Parse creates
	// or a Bind uses.
	base string
	// client is the client's name for the statement the message uses: it
	// replaces the server-side name in the server's error messages.
	client string
	// creates: a client Parse that made client a name of the session; it
	// is undone if the Parse fails or is skipped.
	creates bool
	// closed is the client statement a Close or DEALLOCATE removed; it is
	// restored if that was skipped or failed.
	closed *clientStatement
	// unnamed: the message sets or clears the server's unnamed statement.
	// unnamedSet and unnamedPrev are the client's unnamed statement after
	// and before a client Parse or Close of it, to undo.
	unnamed                 bool
	unnamedSet, unnamedPrev *clientStatement
	// quiet: an injected message whose error the client does not see.
	quiet bool
	// shapeOf: the client statement whose result shape this Describe tells.
	shapeOf string
	// shape receives the hash of an injected Describe's reply (0 if none came).
	shape chan uint64
	// capture: the rows of the last result are the session's settings.
	capture bool
	// forgetPrepared: after this Query the server has no prepared statements
	// (DISCARD ALL, DEALLOCATE ALL).
	forgetPrepared bool
	// The fields below are set on a client's Sync, Query or FunctionCall,
	// the message whose ReadyForQuery ends a request (lost.go, timeout.go).
	//
	// outcome: what the request may have done that outlives its server
	// (a commit): if the server dies before the request's ReadyForQuery,
	// anything but outcomeNone is unknown (08007), not rolled back.
	outcome outcome
	// answered: an ErrorResponse reached the client for this request.
	answered bool
	// seq numbers the request for query_timeout; deadline is when it times
	// out (unix ns, 0: never).
	seq      uint64
	deadline int64
	// view follows the request for the hooks (hooks.go); nil without hooks.
	view *requestView
}

// completes reports whether a backend message of type typ is the last
// reply to a frontend message of kind kind.
func completes(kind, typ byte) bool {
	switch kind {
	case pgmsg.Parse:
		return typ == pgmsg.ParseComplete
	case pgmsg.Bind:
		return typ == pgmsg.BindComplete
	case pgmsg.Close:
		return typ == pgmsg.CloseComplete
	case pgmsg.Describe:
		return typ == pgmsg.RowDescription || typ == pgmsg.NoData
	case pgmsg.Execute:
		return typ == pgmsg.CommandComplete || typ == pgmsg.EmptyQueryResponse || typ == pgmsg.PortalSuspended
	case pgmsg.Sync, pgmsg.Query, pgmsg.FunctionCall:
		return typ == pgmsg.ReadyForQuery
	}
	return false
}

// expectQueue is a FIFO of expectations. It is guarded by session.mu.
type expectQueue struct {
	items []expectation
	head  int
}

func (q *expectQueue) push(e expectation) { q.items = append(q.items, e) }

func (q *expectQueue) len() int { return len(q.items) - q.head }

// maxRefersScan bounds refersTo.
const maxRefersScan = 64

// refersTo reports whether an unanswered expectation may record cs as the
// client's unnamed statement before or after its message. It looks at no
// more than maxRefersScan of them (a pipeline of thousands would make each
// Parse scan them all) and says true beyond.
func (q *expectQueue) refersTo(cs *clientStatement) bool {
	if q.len() > maxRefersScan {
		return true
	}
	for i := len(q.items) - 1; i >= q.head; i-- {
		if e := &q.items[i]; e.unnamedSet == cs || e.unnamedPrev == cs {
			return true
		}
	}
	return false
}

func (q *expectQueue) front() *expectation {
	if q.head == len(q.items) {
		return nil
	}
	return &q.items[q.head]
}

// open reports whether the last message sent was neither a Sync nor a
// Query nor a FunctionCall: the server waits for more of the request, and
// the replies already due may need it (an error skips to the next Sync).
func (q *expectQueue) open() bool {
	if q.len() == 0 {
		return false
	}
	return !pgmsg.EndsRequest(q.items[len(q.items)-1].kind)
}

// skipUnanswered removes the expectations ahead of the first Sync, Query
// or FunctionCall when a ReadyForQuery comes: the server answered none of
// them, so an error (reported before they were sent) made it skip them. It
// appends them to dst in order, for undoing what their sending was assumed
// to do.
func (q *expectQueue) skipUnanswered(dst []expectation) []expectation {
	if e := q.front(); e == nil || pgmsg.EndsRequest(e.kind) {
		return dst
	}
	return q.takeToSync(dst)
}

func (q *expectQueue) pop() {
	q.items[q.head] = expectation{}
	q.head++
	if q.head == len(q.items) {
		q.items = q.items[:0]
		q.head = 0
	}
}

// appended returns the last n expectations pushed, for marking them.
func (q *expectQueue) appended(n int) []expectation {
	return q.items[len(q.items)-n:]
}

// request returns the oldest client message still waiting for its
// ReadyForQuery (a Sync, Query or FunctionCall pgone did not inject), or nil.
func (q *expectQueue) request() *expectation {
	for i := q.head; i < len(q.items); i++ {
		if e := &q.items[i]; e.endsRequest() {
			return e
		}
	}
	return nil
}

// endsRequest reports whether e is a client's Sync, Query or FunctionCall.
func (e *expectation) endsRequest() bool {
	return !e.injected && pgmsg.EndsRequest(e.kind)
}

// takeToSync removes the expectations an error made the server skip:
// every extended-protocol message from the front (the one that failed) up
// to the next Sync. It appends them to dst in order, for undoing what
// their sending was assumed to do.
func (q *expectQueue) takeToSync(dst []expectation) []expectation {
	for e := q.front(); e != nil && !pgmsg.EndsRequest(e.kind); e = q.front() {
		if e.shape != nil {
			e.shape <- 0
		}
		dst = append(dst, *e)
		q.pop()
	}
	return dst
}

// dropSyncsAfterFront removes the client Syncs queued right behind the
// front expectation and returns how many.
func (q *expectQueue) dropSyncsAfterFront() int {
	if q.len() < 2 {
		return 0
	}
	i := q.head + 1
	j := i
	for j < len(q.items) && q.items[j].kind == pgmsg.Sync && !q.items[j].injected {
		j++
	}
	n := j - i
	if n > 0 {
		q.items = append(q.items[:i], q.items[j:]...)
	}
	return n
}

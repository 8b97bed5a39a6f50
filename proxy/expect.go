package proxy

// expectation is one message pgone sent to the server in transaction mode,
// in order, so the server pump can tell which reply answers which message:
// replies to messages pgone injected are swallowed, and an error skips the
// rest of an extended-protocol request up to its Sync, as the server does.
type expectation struct {
	kind     byte // the frontend message type: P B D E C S Q F
	injected bool // sent by pgone, not the client: its replies are not forwarded
	// statement is the server-side statement name a Parse creates, so a
	// failed Parse can be forgotten.
	statement string
	// base is the base server-side name of the statement a Bind uses.
	base string
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
}

// completes reports whether a backend message of type typ is the last
// reply to a frontend message of kind kind.
func completes(kind, typ byte) bool {
	switch kind {
	case 'P':
		return typ == '1'
	case 'B':
		return typ == '2'
	case 'C':
		return typ == '3'
	case 'D':
		return typ == 'T' || typ == 'n'
	case 'E':
		return typ == 'C' || typ == 'I' || typ == 's'
	case 'S', 'Q', 'F':
		return typ == 'Z'
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

func (q *expectQueue) front() *expectation {
	if q.head == len(q.items) {
		return nil
	}
	return &q.items[q.head]
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
	return !e.injected && (e.kind == 'S' || e.kind == 'Q' || e.kind == 'F')
}

// skipToSync drops the expectations an error made the server skip: every
// extended-protocol message up to the next Sync. It returns the statement
// names of skipped Parses, which were never created.
func (q *expectQueue) skipToSync(dropped []string) []string {
	for e := q.front(); e != nil && e.kind != 'S' && e.kind != 'Q' && e.kind != 'F'; e = q.front() {
		if e.kind == 'P' && e.statement != "" {
			dropped = append(dropped, e.statement)
		}
		if e.shape != nil {
			e.shape <- 0
		}
		q.pop()
	}
	return dropped
}

// dropSyncsAfterFront removes the client Syncs queued right behind the
// front expectation and returns how many.
func (q *expectQueue) dropSyncsAfterFront() int {
	if q.len() < 2 {
		return 0
	}
	i := q.head + 1
	j := i
	for j < len(q.items) && q.items[j].kind == 'S' && !q.items[j].injected {
		j++
	}
	n := j - i
	if n > 0 {
		q.items = append(q.items[:i], q.items[j:]...)
	}
	return n
}

package proxy

import (
	"hash/fnv"
	"strings"
	"time"

	"github.com/pgone/pgone/internal/pgmsg"
	"github.com/pgone/pgone/pgerr"
	"github.com/pgone/pgone/pool"
)

// Result shapes of prepared statements (backend stage). A client that
// prepared a statement before a DDL must not get rows it cannot decode from
// a server that prepares the statement after it: pgone compares the shape
// the client was told with the new server's, and fails the request as
// PostgreSQL does ("cached plan must not change result type").

// isStalePlan reports whether an ErrorResponse frame is PostgreSQL's
// "cached plan must not change result type".
func isStalePlan(frame []byte) bool {
	er, ok := decodeError(frame)
	return ok && string(er.Code) == string(pgerr.FeatureNotSupported) &&
		strings.Contains(string(er.Message), "cached plan must not change result type")
}

// errStalePlan is PostgreSQL's error for a prepared statement whose result
// type changed since the client prepared it.
var errStalePlan = pgerr.New(pgerr.FeatureNotSupported, "cached plan must not change result type")

// shapeHash identifies a statement's result shape by its RowDescription (or
// NoData) reply.
func shapeHash(frame []byte) uint64 {
	h := fnv.New64a()
	h.Write(frame)
	return h.Sum64() | 1 // never 0, which means "no answer"
}

// shapeCheck is a client statement whose shape is checked on a server.
type shapeCheck struct {
	name string // client statement
	cs   clientStatement
}

// verifyShapesLocked prepares, on a server that lacks them, the statements
// the request binds or describes, and checks that their result shape is the
// one the client was told when it prepared. A client prepared before a DDL
// would otherwise get rows it cannot decode from a server that prepared the
// statement after it; PostgreSQL tells such a client "cached plan must not
// change result type", and so does pgone (false: fail the request). It
// waits for one round trip, only when a statement is new to this server.
// Called and returns with ss.mu held.
func (ss *session) verifyShapesLocked(server *pool.Conn, req *request) bool {
	if ss.txStatus != pgmsg.TxIdle || len(ss.shapes) == 0 {
		// Inside a transaction the server does not change; with no shapes
		// known there is nothing to compare.
		return true
	}
	checks := ss.shapeChecksLocked(server, req)
	if len(checks) == 0 {
		return true
	}
	shapes := ss.describeShapesLocked(server, checks)
	ss.mu.Lock()
	ss.pending-- // the hold
	for i, c := range checks {
		if h := shapes[i]; h != 0 && h != ss.shapes[c.name] {
			ss.log.Info("prepared statement changed shape since the client prepared it", "statement", c.name)
			// Other servers' copies predate the change too.
			ss.srv.retireStatement(c.cs.server)
			return false
		}
	}
	return true
}

// shapeChecksLocked lists the client statements req binds or describes
// whose shape the client knows and that server has not prepared.
func (ss *session) shapeChecksLocked(server *pool.Conn, req *request) []shapeCheck {
	var checks []shapeCheck
	for i := range req.views {
		v := &req.views[i]
		if !v.ok || v.typ != pgmsg.Bind && (v.typ != pgmsg.Describe || v.kind != pgmsg.TargetStatement) {
			continue
		}
		name := v.name
		cs, ok := ss.prepared[name]
		if name == "" || !ok || checked(checks, name) {
			continue
		}
		if _, known := ss.shapes[name]; !known || server.State.HasPrepared(ss.srv.statementName(cs.server)) {
			continue
		}
		checks = append(checks, shapeCheck{name, cs})
	}
	return checks
}

// checked reports whether checks holds the statement name.
func checked(checks []shapeCheck, name string) bool {
	for _, c := range checks {
		if c.name == name {
			return true
		}
	}
	return false
}

// describeShapesLocked prepares and describes checks on server and waits
// for their shapes (0: no answer). It is called with ss.mu held and
// returns without it; the server is held for the request (pending).
func (ss *session) describeShapesLocked(server *pool.Conn, checks []shapeCheck) []uint64 {
	got := make(chan uint64, len(checks))
	out := ss.takePreludeLocked(server, nil)
	for _, c := range checks {
		out = ss.injectParse(out, &server.State, c.cs)
		out = encodeTarget(out, pgmsg.Describe, pgmsg.TargetStatement, ss.srv.statementName(c.cs.server))
		ss.expect.push(expectation{kind: pgmsg.Describe, injected: true, shape: got})
	}
	out = append(out, pgmsg.Sync, 0, 0, 0, 4)
	ss.expect.push(expectation{kind: pgmsg.Sync, injected: true})
	ss.pending += 2 // the Sync, and a hold so the pump keeps the server for the request
	if !ss.pumping {
		ss.startPumpLocked(server)
	}
	ss.mu.Unlock()
	_ = ss.writeServer(server, out, true)
	shapes := make([]uint64, 0, len(checks))
	timeout := time.NewTimer(time.Minute)
	defer timeout.Stop()
	for len(shapes) < len(checks) {
		select {
		case h := <-got:
			shapes = append(shapes, h)
		case <-timeout.C:
			shapes = append(shapes, 0)
		}
	}
	return shapes
}

package proxy

import (
	"github.com/pgone/pgone/internal/pgmsg"
	"github.com/pgone/pgone/pgerr"
)

// The request stage of transaction mode: collect a whole request from the
// client (up to Sync, Query, FunctionCall or Flush, or 1 MiB of it), and
// answer what needs no server (a transaction lost while the client was
// idle, Parses and Closes of statements pgone already knows).

// maxRequestBytes is how much of a request pgone buffers before sending
// what it has: the rest follows as the next request.
const maxRequestBytes = 1 << 20

// clientStatement is a client's named prepared statement.
type clientStatement struct {
	server string // server-side name
	query  string
	rest   []byte // parameter types, as in the Parse
	lex    lexed  // lexText(query), taken when it is prepared
}

// request is a client request being collected: whole frames, copied.
type request struct {
	buf    []byte
	frames [][2]int    // start, end in buf
	syncs  int         // Sync, Query and FunctionCall frames: each gets a ReadyForQuery
	views  []frameView // the frames decoded, once complete (decodeRequest)
}

func (r *request) add(frame []byte, typ byte) {
	start := len(r.buf)
	r.buf = append(r.buf, frame...)
	r.frames = append(r.frames, [2]int{start, len(r.buf)})
	if pgmsg.EndsRequest(typ) {
		r.syncs++
	}
}

func (r *request) reset() {
	r.buf = r.buf[:0]
	r.frames = r.frames[:0]
	clear(r.views) // drop the texts
	r.views = r.views[:0]
	r.syncs = 0
}

// frame returns the request's i-th frame.
func (r *request) frame(i int) []byte {
	fr := r.frames[i]
	return r.buf[fr[0]:fr[1]]
}

// endsCollect reports whether a frontend message of type t ends what the
// session collects before sending: it asks for replies.
func endsCollect(t byte) bool { return pgmsg.EndsRequest(t) || t == pgmsg.Flush }

// collect reads client frames into req until a request is complete, and
// returns its last message type. COPY data goes straight to the server
// running the COPY. ok is false when the session must end (the client
// left, sent Terminate or garbage, or its COPY server is gone); the caller
// then ends it.
func (ss *session) collect(req *request) (last byte, ok bool) {
	for {
		typ, frame, err := ss.cr.Next()
		if err != nil {
			ss.clientGoneTx(err)
			return 0, false
		}
		ss.stats.receivedFrame(len(frame))
		switch typ {
		case pgmsg.Terminate:
			return 0, false
		case pgmsg.Query, pgmsg.Sync, pgmsg.FunctionCall, pgmsg.Flush, pgmsg.Parse,
			pgmsg.Bind, pgmsg.Execute, pgmsg.Describe, pgmsg.Close:
			if len(req.frames) == 0 && !ss.takeIn() { // intake.go
				return 0, false
			}
			req.add(frame, typ)
		case pgmsg.CopyData, pgmsg.CopyDone, pgmsg.CopyFail:
			if !ss.copyToServer(typ, frame) {
				return 0, false
			}
			continue
		default:
			ss.log.Info("invalid frontend message type", "type", typ, "sqlstate", pgerr.ProtocolViolation)
			ss.terminate(pgerr.Fatal(pgerr.ProtocolViolation, "invalid frontend message type %d", typ))
			return 0, false
		}
		if endsCollect(typ) || len(req.buf) >= maxRequestBytes {
			return typ, true
		}
	}
}

// copyToServer passes COPY data to the server running the COPY; outside
// COPY PostgreSQL ignores these messages, and so do we. It reports false
// when the server could not be written to.
func (ss *session) copyToServer(typ byte, frame []byte) bool {
	ss.mu.Lock()
	server := ss.server
	if typ != pgmsg.CopyData {
		ss.copyIn = false
	}
	ss.mu.Unlock()
	if server == nil {
		return true
	}
	return ss.writeServer(server, frame, !ss.cr.HasFrame()) == nil
}

// intercept answers the requests that need no server: the next request
// after the server died under the client's idle transaction (08006), and
// Parses and Closes pgone answers itself (answerWithoutServer). err is
// non-nil when the client could not be answered.
func (ss *session) intercept(req *request, last byte) (answered bool, err error) {
	ss.mu.Lock()
	lost := ss.lostTx
	ss.lostTx = false
	ss.mu.Unlock()
	if lost {
		// The server died while the client sat in its transaction.
		return true, ss.failRequest(errServerLost, req.syncs)
	}
	if last == pgmsg.Flush && ss.onlyFlushWithoutServer(req) {
		// Nothing is due: PostgreSQL would flush nothing, and a server
		// taken for it would stay until this client's next Sync.
		return true, nil
	}
	return last == pgmsg.Sync && ss.answerWithoutServer(req), nil
}

// onlyFlushWithoutServer reports whether req is made of Flushes alone
// while the session holds no server.
func (ss *session) onlyFlushWithoutServer(req *request) bool {
	for _, fr := range req.frames {
		if req.buf[fr[0]] != pgmsg.Flush {
			return false
		}
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.server == nil
}

// answerWithoutServer answers a request made only of named Parses and
// statement Closes, then Sync, while the session holds no server: pgone
// records the statements and replies itself; the Parse reaches a server
// ahead of the first Bind or Describe that needs it. Clients that prepare
// synchronously (pgbench -M prepared, libpq's PQprepare) would otherwise
// wait for a server held by another of their own connections. Only
// statements a server has prepared before qualify (answerableParse), so
// that an error in a Parse comes at once, as from PostgreSQL.
func (ss *session) answerWithoutServer(req *request) bool {
	ss.mu.Lock()
	attached := ss.server != nil
	ss.mu.Unlock()
	if attached || req.syncs != 1 || !ss.answerable(req) {
		return false
	}
	var reply []byte
	for i := range req.views {
		v := &req.views[i]
		switch v.typ {
		case pgmsg.Parse:
			ss.prepared[v.name] = newClientStatement(v, ss.lexOf(v.text), nil)
			reply = append(reply, pgmsg.ParseComplete, 0, 0, 0, 4)
		case pgmsg.Close:
			name := v.name
			delete(ss.prepared, name)
			if name == "" {
				ss.closeUnnamedWithoutServer()
			}
			reply = append(reply, pgmsg.CloseComplete, 0, 0, 0, 4)
		case pgmsg.Sync:
			reply = append(reply, pgmsg.ReadyForQuery, 0, 0, 0, 5, pgmsg.TxIdle)
		}
	}
	if err := ss.writeRaw(reply); err != nil {
		ss.terminate(nil)
	}
	return true
}

// answerable reports whether req is only answerable Parses and statement
// Closes, then its Sync.
func (ss *session) answerable(req *request) bool {
	for i := range req.views {
		v := &req.views[i]
		switch v.typ {
		case pgmsg.Parse:
			if !ss.answerableParse(v) {
				return false
			}
		case pgmsg.Close:
			if !v.ok || v.kind != pgmsg.TargetStatement {
				return false
			}
		case pgmsg.Sync:
			if i != len(req.frames)-1 {
				return false
			}
		default:
			return false
		}
	}
	return true
}

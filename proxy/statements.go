package proxy

import (
	"bytes"
	"encoding/binary"
	"hash/fnv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgone/pgone/internal/wire"
	"github.com/pgone/pgone/pool"
)

// Prepared statements in transaction mode. A client's named statement maps
// to a server-side name derived from its text (clientStatement.server);
// each server connection records which of those it holds
// (pool.SessionState), and renderLocked prepares a statement where a Bind
// or Describe needs it. The unnamed statement cannot be shared: each
// client's is remembered, and a request that uses the unnamed statement
// without parsing it on the server first gets the client's own parsed
// again, or, if the client has none, the server's closed, so that the
// server answers 26000 as PostgreSQL would. Unnamed and named portals need
// nothing: a server is released only at ReadyForQuery outside a
// transaction, when PostgreSQL has dropped every portal.
//
// What pgone sends in a span the server skips after an error (up to Sync)
// did not happen: serverErrorLocked undoes its bookkeeping, in reverse
// order, on the server's record and on the client's statements.

// statementState is a session's statement state besides its named
// statements, guarded by session.mu.
type statementState struct {
	unnamed *clientStatement // the client's unnamed statement; nil: none
	id      uint64           // the session's owner id on servers, from sessionIDs
	// waiting: the session goroutine waits for the outcome of messages
	// sent (waitForStatementOutcomes); the pump wakes it at each reply.
	waiting bool
}

// sessionIDs numbers sessions as owners of servers' unnamed statements.
var sessionIDs atomic.Uint64

// ownerID is the session's id as an owner of a server's unnamed statement.
func (ss *session) ownerID() uint64 {
	if ss.stmts.id == 0 {
		ss.stmts.id = sessionIDs.Add(1)
	}
	return ss.stmts.id
}

// closeUnnamedWithoutServer drops the client's unnamed statement while it
// holds no server: with a new owner id, no server holds its unnamed
// statement any more, so its next use gets the server's closed.
func (ss *session) closeUnnamedWithoutServer() {
	ss.stmts.unnamed, ss.stmts.id = nil, 0
}

// maxParsedStatements bounds parsedStatements.
const maxParsedStatements = 10000

// parsedStatements are the statements (parsedKey) a server has prepared
// without error. A named Parse+Sync of one of them is answered without a
// server (answerWithoutServer); any other goes to a server, so that an
// error in it comes at once, as from PostgreSQL. Emptied when full.
type parsedStatements struct {
	mu   sync.RWMutex
	keys map[uint64]struct{}
}

func (p *parsedStatements) has(key uint64) bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	_, ok := p.keys[key]
	return ok
}

func (p *parsedStatements) add(key uint64) {
	if p.has(key) {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.keys == nil || len(p.keys) >= maxParsedStatements {
		p.keys = map[uint64]struct{}{}
	}
	p.keys[key] = struct{}{}
}

// wellFormedParamTypes reports whether the rest of a Parse (after the
// query) is exactly a parameter type count and that many OIDs. A server
// answers anything else with 08P01, and so must pgone.
func wellFormedParamTypes(rest []byte) bool {
	if len(rest) < 2 {
		return false
	}
	n := int(binary.BigEndian.Uint16(rest))
	return len(rest) == 2+4*n
}

// newClientStatement copies what a client Parse defines.
func newClientStatement(pf parseFrame) clientStatement {
	return clientStatement{server: serverStatementName(pf.query, pf.rest), query: pf.query, rest: append([]byte(nil), pf.rest...)}
}

// answerableParse reports whether pgone may answer a client's named Parse
// itself: the statement is well formed, its name is free, and a server has
// prepared the same statement before, so it is known to parse.
func (ss *session) answerableParse(pf parseFrame) bool {
	if pf.name == "" || !wellFormedParamTypes(pf.rest) {
		return false
	}
	if _, taken := ss.prepared[pf.name]; taken {
		return false // 42P05 comes from a server (renderParseLocked)
	}
	return ss.srv.parsed.has(ss.parsedKey(serverStatementName(pf.query, pf.rest)))
}

// parsedKey is the key of a statement in parsedStatements: whether a
// statement parses depends on the database, the role and the settings
// (search_path), not only on its text.
func (ss *session) parsedKey(base string) uint64 {
	h := fnv.New64a()
	for _, s := range [...]string{ss.poolKey.Database, ss.poolKey.User, ss.settingsKey, base} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return h.Sum64()
}

// renderParseLocked renders a client Parse.
func (ss *session) renderParseLocked(out []byte, st *pool.SessionState, frame []byte) []byte {
	pf, ok := decodeParse(frame)
	if !ok || !wellFormedParamTypes(pf.rest) {
		// The server rejects it before it touches any statement.
		ss.expect.push(expectation{kind: 'P'})
		return append(out, frame...)
	}
	// Pins and settings changes of a prepared statement apply when it is
	// prepared.
	ss.statementLocked(pf.query)
	if pf.name == "" {
		cs := newClientStatement(pf)
		prev := ss.stmts.unnamed
		ss.stmts.unnamed = &cs
		st.UnnamedOwner = ss.ownerID()
		ss.expect.push(expectation{kind: 'P', unnamed: true, unnamedSet: &cs, unnamedPrev: prev})
		return append(out, frame...)
	}
	if old, taken := ss.prepared[pf.name]; taken {
		return ss.renderDuplicateParseLocked(out, st, pf.name, old)
	}
	cs := newClientStatement(pf)
	ss.prepared[pf.name] = cs
	delete(ss.shapes, pf.name)
	name := ss.srv.statementName(cs.server)
	if st.HasPrepared(name) {
		// Re-parse under the shared name: close it first (replies swallowed).
		out = encodeTarget(out, 'C', 'S', name)
		ss.expect.push(expectation{kind: 'C', injected: true, statement: name})
	} else if evict := st.AddPrepared(name, maxServerStatements); evict != "" {
		out = encodeTarget(out, 'C', 'S', evict)
		ss.expect.push(expectation{kind: 'C', injected: true, statement: evict})
	}
	out = encodeParse(out, name, cs.query, cs.rest)
	ss.expect.push(expectation{kind: 'P', statement: name, base: cs.server, client: pf.name, creates: true})
	return out
}

// renderDuplicateParseLocked renders a Parse of a name the client has
// already prepared. PostgreSQL answers 42P05 and keeps the first
// statement; so does the server when it gets a Parse of the first
// statement's server-side name, which it holds (prepared first if it did
// not). The error names the client's statement (clientNamesInError).
func (ss *session) renderDuplicateParseLocked(out []byte, st *pool.SessionState, client string, old clientStatement) []byte {
	name := ss.srv.statementName(old.server)
	if !st.HasPrepared(name) {
		out = ss.injectParse(out, st, old)
	}
	out = encodeParse(out, name, old.query, old.rest)
	ss.expect.push(expectation{kind: 'P', client: client})
	return out
}

// ensureNamedLocked returns the server-side name of the client's
// statement name, prepared on the server first if it lacks it. An unknown
// name is returned as it is: the server answers with its own error.
func (ss *session) ensureNamedLocked(out []byte, st *pool.SessionState, name string) ([]byte, string) {
	cs, ok := ss.prepared[name]
	if !ok {
		return out, ss.unknownStatementName(name)
	}
	name = ss.srv.statementName(cs.server)
	if !st.HasPrepared(name) {
		out = ss.injectParse(out, st, cs)
	}
	return out, name
}

// foreignPrefix is put before an unknown client statement name that looks
// like one of pgone's server-side names, which a client must not reach:
// "pgone_" and base 36 never make a name with more than two underscores.
const foreignPrefix = "pgone_client_"

// unknownStatementName is the name a server gets for a statement name the
// client has not prepared: its own, unless it could be one of pgone's
// shared statements, which a client must neither run nor close. A pinned
// client's server is its own (SQL PREPARE may have made such a name).
func (ss *session) unknownStatementName(name string) string {
	if !ss.pinned && strings.HasPrefix(name, "pgone_") {
		return foreignPrefix + name
	}
	return name
}

// ensureUnnamedLocked makes the server's unnamed statement the client's
// before a Bind or Describe uses it: the client's own is parsed again, or,
// if it has none, the server's is closed so that the server answers 26000.
func (ss *session) ensureUnnamedLocked(out []byte, st *pool.SessionState) []byte {
	id := ss.ownerID()
	if st.UnnamedOwner == id {
		return out
	}
	st.UnnamedOwner = id
	if cs := ss.stmts.unnamed; cs != nil {
		ss.expect.push(expectation{kind: 'P', injected: true, unnamed: true})
		return encodeParse(out, "", cs.query, cs.rest)
	}
	ss.expect.push(expectation{kind: 'C', injected: true, unnamed: true})
	return encodeTarget(out, 'C', 'S', "")
}

// renderBindLocked renders a Bind, naming the server-side statement.
func (ss *session) renderBindLocked(out []byte, st *pool.SessionState, frame []byte) []byte {
	pe, name, se, ok := bindStatement(frame)
	switch {
	case !ok:
		out = append(out, frame...)
		ss.expect.push(expectation{kind: 'B'})
	case name == "":
		out = ss.ensureUnnamedLocked(out, st)
		out = append(out, frame...)
		ss.expect.push(expectation{kind: 'B'})
	default:
		var stmt string
		out, stmt = ss.ensureNamedLocked(out, st, name)
		out = rewriteBind(out, frame, pe, se, stmt)
		ss.expect.push(expectation{kind: 'B', base: ss.prepared[name].server, client: name})
	}
	return out
}

// renderDescribeLocked renders a Describe of a statement or portal.
func (ss *session) renderDescribeLocked(out []byte, st *pool.SessionState, frame []byte) []byte {
	kind, name, ok := targetOf(frame)
	switch {
	case !ok || kind != 'S':
		out = append(out, frame...)
		ss.expect.push(expectation{kind: 'D'})
	case name == "":
		out = ss.ensureUnnamedLocked(out, st)
		out = append(out, frame...)
		ss.expect.push(expectation{kind: 'D'})
	default:
		var stmt string
		out, stmt = ss.ensureNamedLocked(out, st, name)
		out = encodeTarget(out, 'D', 'S', stmt)
		ss.expect.push(expectation{kind: 'D', shapeOf: name, client: name})
	}
	return out
}

// renderCloseLocked renders a Close of a statement or portal.
func (ss *session) renderCloseLocked(out []byte, st *pool.SessionState, frame []byte) []byte {
	kind, name, ok := targetOf(frame)
	switch {
	case !ok || kind != 'S':
		out = append(out, frame...)
		ss.expect.push(expectation{kind: 'C'})
	case name == "":
		prev := ss.stmts.unnamed
		ss.stmts.unnamed = nil
		st.UnnamedOwner = ss.ownerID() // the server's is closed too
		out = append(out, frame...)
		ss.expect.push(expectation{kind: 'C', unnamed: true, unnamedPrev: prev})
	default:
		e := expectation{kind: 'C', client: name}
		target := ss.unknownStatementName(name)
		if cs, known := ss.prepared[name]; known {
			delete(ss.prepared, name)
			delete(ss.shapes, name)
			e.closed = &cs
			target = ss.srv.statementName(cs.server)
			if st.HasPrepared(target) {
				st.ForgetPrepared(target)
				e.statement = target
			}
		}
		out = encodeTarget(out, 'C', 'S', target)
		ss.expect.push(e)
	}
	return out
}

// renderQueryLocked renders a client's simple Query, which drops the
// unnamed statement, and translates DEALLOCATE of a protocol-level
// statement. e is the Query's expectation.
func (ss *session) renderQueryLocked(out []byte, st *pool.SessionState, frame []byte, text string, e expectation) []byte {
	ss.stmts.unnamed = nil
	st.UnnamedOwner = ss.ownerID() // neither has one now
	if name, ok := deallocateName(text); ok {
		if cs, known := ss.prepared[name]; known && ss.txStatus != 'E' {
			return ss.renderDeallocateLocked(out, st, name, cs, e)
		}
		if n := ss.unknownStatementName(name); n != name {
			ss.expect.push(e)
			return encodeQuery(out, "DEALLOCATE "+quoteIdent(n))
		}
	}
	ss.expect.push(e)
	return append(out, frame...)
}

// renderDeallocateLocked turns DEALLOCATE of a client's protocol-level
// statement into DEALLOCATE of its server-side copy, prepared first (in a
// span of its own) if the server lacks it: the client gets PostgreSQL's
// command tag, and the name is free. If the DEALLOCATE fails, the client
// keeps the statement (serverErrorLocked), as on PostgreSQL. In an
// aborted transaction (txStatus E) it is not translated: the server
// answers 25P02 whatever the name.
func (ss *session) renderDeallocateLocked(out []byte, st *pool.SessionState, client string, cs clientStatement, e expectation) []byte {
	delete(ss.prepared, client)
	delete(ss.shapes, client)
	name := ss.srv.statementName(cs.server)
	if st.HasPrepared(name) {
		e.statement = name // it is still there if the DEALLOCATE fails
	} else {
		out = ss.injectParse(out, st, cs)
		ss.expect.items[len(ss.expect.items)-1].quiet = true // the Parse just queued
		out = append(out, 'S', 0, 0, 0, 4)
		ss.expect.push(expectation{kind: 'S', injected: true})
		ss.pending++
	}
	st.ForgetPrepared(name)
	e.client, e.closed = client, &cs
	ss.expect.push(e)
	return encodeQuery(out, "DEALLOCATE "+quoteIdent(name))
}

// quoteIdent quotes an SQL identifier.
func quoteIdent(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// serverErrorLocked handles an ErrorResponse from the server answering e,
// the front expectation: it names the client's statements in the error,
// and undoes the bookkeeping of what the error made the server skip. It
// returns the frame to forward.
func (ss *session) serverErrorLocked(st *pool.SessionState, e *expectation, frame []byte, forward bool) []byte {
	if forward {
		server := ss.prepared[e.client].server
		if e.closed != nil {
			server = e.closed.server
		}
		frame = ss.clientNamesInError(frame, e.client, server)
	}
	switch e.kind {
	case 'Q':
		if e.closed != nil {
			// A translated DEALLOCATE failed: nothing was deallocated.
			ss.undoLocked(st, *e, false)
		}
	case 'F', 'S':
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
		if e.kind == 'P' && e.unnamedSet != nil && ss.stmts.unnamed == e.unnamedSet {
			ss.stmts.unnamed = e.unnamedPrev
			if failed {
				ss.stmts.unnamed = nil // PostgreSQL drops the old one before parsing
			}
		}
		if e.kind == 'C' && !e.injected && ss.stmts.unnamed == nil {
			ss.stmts.unnamed = e.unnamedPrev
		}
		return
	}
	switch e.kind {
	case 'P':
		if e.statement != "" {
			st.ForgetPrepared(e.statement) // never created
		}
		if e.creates {
			if cs, ok := ss.prepared[e.client]; ok && cs.server == e.base {
				delete(ss.prepared, e.client)
				delete(ss.shapes, e.client)
			}
		}
	case 'C', 'Q':
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
	var er pgproto3.ErrorResponse
	if er.Decode(wire.Body(frame)) != nil {
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
	er.Message, er.Detail, er.Hint = r.Replace(er.Message), r.Replace(er.Detail), r.Replace(er.Hint)
	er.Where = r.Replace(er.Where)
	out, err := er.Encode(nil)
	if err != nil {
		return frame
	}
	return out
}

// deallocateName returns the statement name of a text that is exactly one
// DEALLOCATE [PREPARE] name (not ALL), as PostgreSQL would read the name.
func deallocateName(text string) (string, bool) {
	lx := sqlWords{s: text}
	if w, q := lx.next(); q || w != "deallocate" {
		return "", false
	}
	name, quoted := lx.next()
	if !quoted && name == "prepare" {
		if n, q := lx.next(); n != "" || q {
			name, quoted = n, q
		}
	}
	if name == "" || (!quoted && name == "all") || !lx.atEnd() {
		return "", false
	}
	return name, true
}

// sqlWords reads identifiers and keywords from SQL text, skipping white
// space and comments. Only what deallocateName needs.
type sqlWords struct {
	s   string
	pos int
}

// skip moves past white space and comments.
func (l *sqlWords) skip() {
	for l.pos < len(l.s) {
		switch c := l.s[l.pos]; {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			l.pos++
		case strings.HasPrefix(l.s[l.pos:], "--"):
			if i := strings.IndexByte(l.s[l.pos:], '\n'); i >= 0 {
				l.pos += i + 1
			} else {
				l.pos = len(l.s)
			}
		case strings.HasPrefix(l.s[l.pos:], "/*"):
			depth := 0
			for l.pos < len(l.s) {
				if strings.HasPrefix(l.s[l.pos:], "/*") {
					depth++
					l.pos += 2
				} else if strings.HasPrefix(l.s[l.pos:], "*/") {
					depth--
					l.pos += 2
					if depth == 0 {
						break
					}
				} else {
					l.pos++
				}
			}
		default:
			return
		}
	}
}

// next returns the next identifier (folded to lower case unless quoted),
// or "" when the next token is not one.
func (l *sqlWords) next() (word string, quoted bool) {
	l.skip()
	if l.pos >= len(l.s) {
		return "", false
	}
	if l.s[l.pos] == '"' {
		var b strings.Builder
		for i := l.pos + 1; i < len(l.s); i++ {
			if l.s[i] != '"' {
				b.WriteByte(l.s[i])
				continue
			}
			if i+1 < len(l.s) && l.s[i+1] == '"' {
				b.WriteByte('"')
				i++
				continue
			}
			l.pos = i + 1
			return b.String(), true
		}
		return "", false // unterminated
	}
	start := l.pos
	for l.pos < len(l.s) {
		c := l.s[l.pos]
		if c == '_' || c >= 0x80 || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			(l.pos > start && (c == '$' || (c >= '0' && c <= '9'))) {
			l.pos++
			continue
		}
		break
	}
	return asciiLower(l.s[start:l.pos]), false
}

// atEnd reports whether only an optional semicolon, white space and
// comments are left.
func (l *sqlWords) atEnd() bool {
	l.skip()
	if l.pos < len(l.s) && l.s[l.pos] == ';' {
		l.pos++
		l.skip()
	}
	return l.pos == len(l.s)
}

// asciiLower folds ASCII letters as PostgreSQL folds unquoted identifiers.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
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
	for _, fr := range req.frames {
		frame := req.buf[fr[0]:fr[1]]
		name, uses := "", false
		switch frame[0] {
		case 'P':
			if pf, ok := decodeParse(frame); ok {
				if pf.name == "" {
					parsedUnnamed = true
					continue
				}
				name, uses = pf.name, true
			}
		case 'B':
			_, n, _, ok := bindStatement(frame)
			name, uses = n, ok
		case 'D', 'C':
			kind, n, ok := targetOf(frame)
			name, uses = n, ok && kind == 'S' && (n != "" || frame[0] == 'D')
		case 'Q':
			text, _, _ := cstringAt(wire.Body(frame), 0)
			name, uses = deallocateName(text)
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
func endsSpan(kind byte) bool { return kind == 'S' || kind == 'Q' || kind == 'F' }

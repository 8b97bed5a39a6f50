package proxy

import (
	"strings"

	"github.com/pgone/pgone/internal/pgmsg"
	"github.com/pgone/pgone/pool"
)

// SQL DEALLOCATE in transaction mode. A client's protocol-level statement
// lives under a server-side name, so DEALLOCATE of the client's name is
// translated; DEALLOCATE ALL and DISCARD ALL are handled in renderLocked.

// renderQueryLocked renders a client's simple Query, which drops the
// unnamed statement, and translates DEALLOCATE of a protocol-level
// statement. e is the Query's expectation.
func (ss *session) renderQueryLocked(out []byte, st *pool.SessionState, frame []byte, text string, e expectation) []byte {
	ss.unnamedChangedLocked()
	ss.stmts.unnamed = nil
	st.UnnamedOwner = ss.ownerID() // neither has one now
	if name, ok := deallocateName(text); ok {
		if cs, known := ss.prepared[name]; known && ss.txStatus != pgmsg.TxFailed {
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
		out = append(out, pgmsg.Sync, 0, 0, 0, 4)
		ss.expect.push(expectation{kind: pgmsg.Sync, injected: true})
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

package router

import "strings"

// NoSessionEffects reports, from the text alone and without parsing, that a
// statement certainly leaves no state on its server connection: no pin
// (LISTEN, advisory lock, temp table, WITH HOLD cursor, PREPARE, SET ROLE,
// LOAD), no settings change, no DISCARD or DEALLOCATE. Transaction pooling
// asks this of every simple-protocol text; texts with inlined literals are
// all different, so the decision cache does not help them, and parsing
// each costs more than the proxy adds to the query.
//
// It is conservative: true only for one statement starting with a keyword
// that cannot carry such state by itself (SELECT, INSERT, UPDATE, DELETE,
// MERGE, WITH, VALUES, TABLE, and transaction control), with no word
// anywhere in the text (in literals and comments too) that could bring it
// in through a function or a clause: set_config, anything with "advisory",
// temp, listen, hold, prepare... A false answer means only "parse it".
func NoSessionEffects(text string) bool {
	first := true
	var w lexWord
	end := false // a ';' was seen: only blanks and ';' may follow
	flush := func() bool {
		b, long, ok := w.take()
		if !ok {
			return true
		}
		word := string(b)
		if first {
			first = false
			return !long && plainFirstWord[word]
		}
		return long || !riskyWord(word)
	}
	for i := 0; i < len(text); i++ {
		c := text[i]
		if w.add(c) {
			if end {
				return false // a second statement
			}
			continue
		}
		if !flush() {
			return false
		}
		switch c {
		case ';':
			end = true
		case ' ', '\t', '\n', '\r', '\f', '\v':
		default:
			if end {
				return false // a second statement
			}
			if first {
				return false // a comment or anything odd first: parse it
			}
		}
	}
	return flush() && !first
}

// lexWord is the word the lexical checks are reading: letters folded to
// lower case, digits and '$' after the first character.
type lexWord struct {
	buf [32]byte
	n   int // length so far; beyond len(buf) the word is too long to matter
}

// add takes c if it starts or continues a word.
func (w *lexWord) add(c byte) bool {
	switch {
	case c >= 'A' && c <= 'Z':
		c += 'a' - 'A'
	case c >= 'a' && c <= 'z' || c == '_' || c >= 0x80:
	case (c >= '0' && c <= '9' || c == '$') && w.n > 0:
	default:
		return false
	}
	if w.n < len(w.buf) {
		w.buf[w.n] = c
	}
	w.n++
	return true
}

// take returns the word read (valid until the next add) and starts a new
// one; long means it did not fit the buffer, ok is false when there was
// none. Callers convert it to a string where they use it, which keeps the
// string on the stack.
func (w *lexWord) take() (word []byte, long, ok bool) {
	if w.n == 0 {
		return nil, false, false
	}
	word, long = w.buf[:min(w.n, len(w.buf))], w.n > len(w.buf)
	w.n = 0
	return word, long, true
}

// plainFirstWord are the statement keywords NoSessionEffects accepts.
var plainFirstWord = map[string]bool{
	"select": true, "insert": true, "update": true, "delete": true, "merge": true,
	"with": true, "values": true, "table": true,
	"begin": true, "start": true, "commit": true, "end": true, "rollback": true,
	"abort": true, "savepoint": true, "release": true,
}

// riskyWord reports words that may bring session state into a statement
// of a plain kind: functions that set or lock for the session, SELECT
// INTO TEMP, and the keywords of the statements that pin or reset. Words
// that matter only first (SET, DO, CALL) are not here: UPDATE ... SET and
// ON CONFLICT DO are everyday DML.
func riskyWord(w string) bool {
	switch w {
	case "set_config", "unlisten", "deallocate", "discard", "reset":
		return true
	}
	_, pins := pinWord(w)
	return pins
}

// pinWord returns the pin a word may stand for in a text read without
// parsing (lexicalPins), so that NoSessionEffects and lexicalPins agree on
// the words that pin.
func pinWord(w string) (Pin, bool) {
	switch {
	case w == "listen":
		return PinListen, true
	case w == "temp" || w == "temporary" || strings.HasPrefix(w, "pg_temp"):
		return PinTempTable, true
	case w == "hold":
		return PinHoldCursor, true
	case w == "prepare":
		return PinPrepare, true
	case w == "role" || w == "authorization":
		return PinSessionAuthorization, true
	case w == "load":
		return PinLoad, true
	case strings.Contains(w, "advisory"):
		return PinAdvisoryLock, true
	}
	return 0, false
}

// PlainRead reports, from the text alone and without parsing, that Route
// would send the statement to a replica outside a transaction. Simple
// protocol clients (pgbench -M simple, ORMs that inline values) send a new
// text for every query, so the decision cache cannot help them; this is
// their fast path.
//
// It is conservative: true only for one SELECT or TABLE statement with no
// parentheses (so no function call and no subquery), no FOR (locking
// clauses) and no INTO, no server-dependent view (perserver.go), no
// comment (so no hint), no escape, bit or dollar-quoted string, and
// nothing after a closing ';' but blanks. A false answer means only "parse it". A text PostgreSQL cannot parse
// ("SELECT * FROM") may pass: a replica answers it with the same syntax
// error as the primary. So may a text too long or too deep for Route to
// parse (bound.go): it is still a plain read.
func PlainRead(text string) bool {
	first := true
	var w lexWord
	end := false
	flush := func() bool {
		b, long, ok := w.take()
		if !ok {
			return true
		}
		word := string(b)
		if first {
			first = false
			return !long && (word == "select" || word == "table")
		}
		if serverWord(word) {
			return false // pg_stat_activity, pg_locks...: the primary
		}
		return long || (word != "for" && word != "into")
	}
	for i := 0; i < len(text); i++ {
		c := text[i]
		if w.add(c) {
			if end {
				return false
			}
			continue
		}
		if c == '\'' || c == '"' {
			if w.n > 0 || end || first || c == '"' && strings.HasPrefix(text[i+1:], "pg_") {
				return false // E'..', B'..', X'..', U&"..", "pg_locks": parse it
			}
			close := strings.IndexByte(text[i+1:], c)
			if close < 0 || strings.IndexByte(text[i+1:i+1+close], '\\') >= 0 {
				// Unterminated, or a backslash that would escape the quote
				// with standard_conforming_strings off: parse it.
				return false
			}
			i += close + 1
			continue
		}
		if !flush() {
			return false
		}
		if end && c != ';' && !isBlank(c) {
			return false
		}
		switch c {
		case ';':
			end = true
		case ' ', '\t', '\n', '\r', '\f', '\v', ',', '.', '=', '<', '>', '*', ':', '+', '%', '[', ']':
			if first && !isBlank(c) {
				return false
			}
		case '-', '/':
			if first || i+1 < len(text) && (text[i+1] == '-' || text[i+1] == '*') {
				return false // a comment
			}
		case '$':
			// A parameter ($1) is digits after '$'; $$ and $tag$ quote.
			j := i + 1
			for j < len(text) && text[j] >= '0' && text[j] <= '9' {
				j++
			}
			if j == i+1 || first {
				return false
			}
			i = j - 1
		default:
			if c >= '0' && c <= '9' {
				// A number; letters right after it (1e5, 1.5e-3) start a
				// word, which is harmless.
				if first {
					return false
				}
				continue
			}
			return false
		}
	}
	return flush() && !first
}

func isBlank(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

// The skip functions below read literals, quoted identifiers, dollar
// quotes and comments as PostgreSQL's lexer does with
// standard_conforming_strings on (as pg_query does); the depth scan
// (bound.go) and lexicalPins use them.

// skipQuoted returns the index of the quote closing the literal or quoted
// identifier opened at text[i] (a doubled quote stays inside; in an E'...'
// string a backslash escapes the next byte), or the last index when it is
// unterminated (pg_query then fails to lex it).
func skipQuoted(text string, i int, backslash bool) int {
	q := text[i]
	stops := text[i : i+1] // the quote
	if backslash {
		stops = `'\` // only E'...' strings take backslash escapes
	}
	for j := i + 1; j < len(text); j++ {
		k := strings.IndexAny(text[j:], stops) // a fast scan: literals can be huge
		if k < 0 {
			break
		}
		j += k
		switch {
		case text[j] == '\\':
			j++
		case j+1 < len(text) && text[j+1] == q:
			j++ // a doubled quote stays inside
		default:
			return j
		}
	}
	return len(text) - 1
}

// skipDollar skips a dollar-quoted string ($$...$$, $tag$...$tag$) or a
// parameter ($1) starting at text[i] and returns the index of its last
// byte. A '$' inside a word never gets here: lexWord takes it.
func skipDollar(text string, i int) int {
	j := i + 1
	for j < len(text) && text[j] >= '0' && text[j] <= '9' {
		j++
	}
	if j > i+1 {
		return j - 1 // a parameter
	}
	for j < len(text) && isTagByte(text[j], j == i+1) {
		j++
	}
	if j >= len(text) || text[j] != '$' {
		return i // not a dollar quote: pg_query rejects a lone '$'
	}
	tag := text[i : j+1]
	end := indexFrom(text, tag, j+1)
	if end < 0 {
		return len(text) - 1
	}
	return end + len(tag) - 1
}

// isTagByte reports bytes of a dollar-quote tag: an identifier without '$'.
func isTagByte(c byte, first bool) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c >= 0x80 ||
		!first && c >= '0' && c <= '9'
}

func skipLineComment(text string, i int) int {
	for j := i + 2; j < len(text); j++ {
		if text[j] == '\n' || text[j] == '\r' {
			return j
		}
	}
	return len(text) - 1
}

// skipBlockComment skips a /* */ comment (PostgreSQL's nest): it returns
// the index of the comment's last byte, or of the text's when the comment
// is unterminated (normkey.go's blockCommentEnd does the scan).
func skipBlockComment(text string, i int) int {
	if end := blockCommentEnd(text, i); end >= 0 {
		return end - 1
	}
	return len(text) - 1
}

func indexFrom(s, sub string, from int) int {
	if k := strings.Index(s[from:], sub); k >= 0 {
		return from + k
	}
	return -1
}

// lexicalPins finds, without parsing, every pin a text may create and
// whether it may UNLISTEN, for texts too long or deep to parse
// (bound.go). It errs toward pinning: a needless pin costs pool
// efficiency, a missed one breaks the client. Every word counts, in
// comments, quoted identifiers and dollar-quoted bodies too (DO, CREATE
// FUNCTION); only when the text starts with a plain statement keyword
// (SELECT, INSERT...) are single-quoted literals skipped, so that bulk data
// mentioning "role" or "temp" does not pin a loader. A quote inside a
// comment, quoted identifier or dollar quote opens no literal there.
func lexicalPins(text string) (pins pinSet, unlisten bool) {
	var p pinScan
	p.scan(text, true)
	return p.pins, p.unlisten
}

// pinScan is the state of lexicalPins.
type pinScan struct {
	pins               pinSet
	unlisten           bool
	first, skipLiteral bool // the first word was read; it was a plain keyword
}

// scan reads the words of text. With code set, text is SQL and, after a
// plain first keyword, its single-quoted literals are skipped; else every
// word of text counts.
func (p *pinScan) scan(text string, code bool) {
	var w lexWord
	for i := 0; i < len(text); i++ {
		c := text[i]
		if w.add(c) {
			continue
		}
		eString := w.n == 1 && w.buf[0] == 'e'
		p.word(&w)
		if !code || !p.skipLiteral {
			continue
		}
		end := i
		switch {
		case c == '\'':
			i = skipQuoted(text, i, eString)
			continue
		case c == '"':
			end = skipQuoted(text, i, false)
		case c == '$':
			end = skipDollar(text, i)
		case c == '-' && i+1 < len(text) && text[i+1] == '-':
			end = skipLineComment(text, i)
		case c == '/' && i+1 < len(text) && text[i+1] == '*':
			end = skipBlockComment(text, i)
		}
		if end > i {
			p.scan(text[i+1:end+1], false)
			i = end
		}
	}
	p.word(&w)
}

// word takes the word w holds, if any. A long word is its first 32 bytes:
// enough for the prefix and substring tests, never equal to a short
// keyword.
func (p *pinScan) word(w *lexWord) {
	b, _, ok := w.take()
	if !ok {
		return
	}
	word := string(b)
	if !p.first {
		p.first, p.skipLiteral = true, plainFirstWord[word]
	}
	if word == "unlisten" {
		p.unlisten = true
	} else if pin, ok := pinWord(word); ok {
		p.pins.add(pin)
	}
}

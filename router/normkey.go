package router

import (
	"strings"
	"unicode/utf8"
)

// The second level of the text cache (router.go) is keyed by a text's
// normalised form: its literals replaced by placeholders, everything else
// kept byte for byte (identifiers, keywords, operators, $n parameters,
// whitespace, and comments, so hints stay in the key). Simple-protocol
// clients inline their values, so "... WHERE aid = 61234" and "... WHERE
// aid = 7" share one normalised key and one parse.
//
// normalizedKey reads a text as pg_query's lexer does (PostgreSQL 16's
// scan.l with standard_conforming_strings on). A key is only worth
// anything if every text with that key is the same token sequence with
// other constant values, so normalizedKey returns no key at the first doubt:
// an unterminated quote or comment, a backslash in a plain '...' string
// (the server may read it with standard_conforming_strings off), U&
// strings and identifiers (UESCAPE takes a literal that changes how they
// decode), adjacent string literals that PostgreSQL would join, number
// forms PostgreSQL 15 and 16 read differently (0x1F, 1_000) or reject
// (1abc, 1..2), a NUL byte (the placeholders use it), bytes that are not
// UTF-8 (pg_query rejects them in a literal, so a literal's bytes would
// decide whether the text parses).
//
// The placeholder names the constant's token type, which the grammar
// does look at: an integer that fits in 32 bits (ICONST), any other
// number (FCONST; a separate placeholder when its exponent has a sign,
// which the depth estimate in bound.go counts as an operator), a string
// (SCONST: '...', E'...', $$...$$), a bit string B'...' or X'...'. Some
// strings stay verbatim: the date/time words isTimeLiteral knows ('now',
// 'today'...), which make a statement uncacheable when cast (parse.go),
// and E'...' strings with backslash escapes, whose value normalizedKey does
// not decode. Whether a text's analysis may be shared under its key is
// decided after parsing it (normalizable in router.go).
const (
	phString      = "\x00s"
	phBits        = "\x00b"
	phHex         = "\x00x"
	phInt         = "\x00i"
	phFloat       = "\x00f"
	phFloatSigned = "\x00g"
)

// litSpan is where a replaced literal lies in the text: [start, end).
type litSpan struct{ start, end int32 }

// normalizedKey appends the normalised key of text to dst[:0] and returns it
// with the number of literals replaced; ok is false when text has no key.
// When lits is not nil it receives the span of each literal replaced. It
// allocates only to grow dst.
func normalizedKey(dst []byte, text string, lits *[]litSpan) (key []byte, replaced int, ok bool) {
	n := normalizer{dst: dst[:0], text: text, lits: lits}
	if lits != nil {
		*lits = (*lits)[:0]
	}
	if strings.IndexByte(text, 0) >= 0 || !utf8.ValidString(text) {
		return n.dst, 0, false
	}
	for i := 0; i < len(text); {
		var next int
		switch c := text[i]; {
		case isIdentStart(c):
			next = n.word(i)
		case c == '\'':
			next = n.quoted(i, i, false)
		case c == '"':
			next = n.quotedIdent(i)
		case c == '$':
			next = n.dollar(i)
		case isDigit(c) || c == '.' && i+1 < len(text) && isDigit(text[i+1]):
			next = n.number(i)
		case c == '-' && i+1 < len(text) && text[i+1] == '-':
			next = lineCommentEnd(text, i)
			n.dst = append(n.dst, text[i:next]...)
		case c == '/' && i+1 < len(text) && text[i+1] == '*':
			next = blockCommentEnd(text, i)
			if next > 0 {
				n.dst = append(n.dst, text[i:next]...)
			}
		default:
			n.dst = append(n.dst, c)
			next = i + 1
		}
		if next <= i {
			return n.dst, n.replaced, false
		}
		i = next
	}
	return n.dst, n.replaced, true
}

// normalizer is normalizedKey's state. Its methods read the token starting at
// i, append its key form to dst and return the index after it, or -1 to
// give up.
type normalizer struct {
	dst      []byte
	text     string
	lits     *[]litSpan
	replaced int
}

// literal appends the placeholder ph for the literal text[start:end].
func (n *normalizer) literal(ph string, start, end int) int {
	n.dst = append(n.dst, ph...)
	n.replaced++
	if n.lits != nil {
		*n.lits = append(*n.lits, litSpan{int32(start), int32(end)})
	}
	return end
}

// word reads an identifier or keyword. A one-letter word right before a
// quote is a string prefix: E'...', B'...', X'...' (N'...' is the keyword
// NCHAR and a plain string, which the caller's next step reads).
func (n *normalizer) word(i int) int {
	text := n.text
	j := i + 1
	for j < len(text) && isIdentCont(text[j]) {
		j++
	}
	if j == i+1 && j < len(text) {
		switch c := text[i] | 0x20; {
		case text[j] == '\'' && c == 'e':
			return n.quoted(i, j, true)
		case text[j] == '\'' && (c == 'b' || c == 'x'):
			return n.bits(i, j)
		case text[j] == '&' && c == 'u' && j+1 < len(text) && (text[j+1] == '\'' || text[j+1] == '"'):
			return -1 // U&'...' or U&"...": UESCAPE may follow
		}
	}
	n.dst = append(n.dst, text[i:j]...)
	return j
}

// quoted reads a '...' string (from its prefix at start, its quote at q).
// With escapes (E'...') a backslash takes the next byte; without, a
// backslash gives up (standard_conforming_strings may be off on the
// server). A time word or an E'...' string with escapes stays verbatim.
func (n *normalizer) quoted(start, q int, escapes bool) int {
	text := n.text
	backslash := false
	j := q + 1
	for ; j < len(text); j++ {
		switch text[j] {
		case '\\':
			if !escapes {
				return -1
			}
			backslash = true
			j++
		case '\'':
			if j+1 < len(text) && text[j+1] == '\'' {
				j++ // a doubled quote stays inside
				continue
			}
			end := j + 1
			if joinsNextString(text, end) {
				return -1
			}
			// A doubled quote is in body as two bytes; no time word has one.
			if backslash || isTimeLiteral(text[q+1:j]) {
				n.dst = append(n.dst, text[start:end]...)
				return end
			}
			return n.literal(phString, start, end)
		}
	}
	return -1 // unterminated
}

// bits reads B'...' or X'...'; their body has no escapes nor doubled quotes.
func (n *normalizer) bits(start, q int) int {
	text := n.text
	k := strings.IndexByte(text[q+1:], '\'')
	if k < 0 {
		return -1
	}
	end := q + 1 + k + 1
	if joinsNextString(text, end) {
		return -1 // also B'1''0', which is two literals
	}
	if text[start]|0x20 == 'b' {
		return n.literal(phBits, start, end)
	}
	return n.literal(phHex, start, end)
}

// joinsNextString reports a quote after the string ending at end, past
// blanks and -- comments: PostgreSQL joins two string literals separated
// by a newline into one constant ('no'\n'w' is 'now'), and rejects them
// otherwise. Either way the text gets no key.
func joinsNextString(text string, end int) bool {
	for j := end; j < len(text); {
		switch c := text[j]; {
		case isBlank(c):
			j++
		case c == '-' && j+1 < len(text) && text[j+1] == '-':
			j = lineCommentEnd(text, j)
		default:
			return c == '\''
		}
	}
	return false
}

// quotedIdent copies a "..." identifier ("" inside).
func (n *normalizer) quotedIdent(i int) int {
	text := n.text
	for j := i + 1; j < len(text); j++ {
		if text[j] != '"' {
			continue
		}
		if j+1 < len(text) && text[j+1] == '"' {
			j++
			continue
		}
		n.dst = append(n.dst, text[i:j+1]...)
		return j + 1
	}
	return -1
}

// dollar reads a parameter ($1, copied) or a dollar-quoted string
// ($$...$$, $tag$...$tag$). A '$' inside a word never gets here.
func (n *normalizer) dollar(i int) int {
	text := n.text
	j := i + 1
	for j < len(text) && isDigit(text[j]) {
		j++
	}
	if j > i+1 {
		if j < len(text) && (isIdentCont(text[j]) || text[j] == '.') {
			return -1 // $1abc is an error; $1.5 is odd
		}
		n.dst = append(n.dst, text[i:j]...)
		return j
	}
	for j < len(text) && isTagByte(text[j], j == i+1) {
		j++
	}
	if j >= len(text) || text[j] != '$' {
		return -1 // a lone '$': an error
	}
	tag := text[i : j+1]
	body := j + 1
	k := strings.Index(text[body:], tag)
	if k < 0 {
		return -1
	}
	end := body + k + len(tag)
	if isTimeLiteral(text[body : body+k]) {
		n.dst = append(n.dst, text[i:end]...)
		return end
	}
	return n.literal(phString, i, end)
}

// number reads a numeric constant: 12, 1.5, .5, 1., 1e5, 1.5e-3. It gives
// up when a letter, digit, '_', '$' or '.' follows (PostgreSQL 16 reads
// 0x1F and 1_000 as integers where 15 rejects them; 1abc and 1..2 are
// errors or odd).
func (n *normalizer) number(i int) int {
	text := n.text
	j := i
	for j < len(text) && isDigit(text[j]) {
		j++
	}
	float := false
	if j < len(text) && text[j] == '.' {
		float = true
		j++
		for j < len(text) && isDigit(text[j]) {
			j++
		}
	}
	signed := false
	if j < len(text) && (text[j] == 'e' || text[j] == 'E') {
		k := j + 1
		sign := k < len(text) && (text[k] == '+' || text[k] == '-')
		if sign {
			k++
		}
		if k < len(text) && isDigit(text[k]) {
			for k < len(text) && isDigit(text[k]) {
				k++
			}
			j, float, signed = k, true, sign
		}
	}
	if j < len(text) && (isIdentCont(text[j]) || text[j] == '.') {
		return -1
	}
	switch {
	case signed:
		return n.literal(phFloatSigned, i, j)
	case float || !fitsInt32(text[i:j]):
		return n.literal(phFloat, i, j)
	}
	return n.literal(phInt, i, j)
}

// fitsInt32 reports whether decimal digits fit in an int32, as the lexer
// decides between an integer and a numeric constant.
func fitsInt32(digits string) bool {
	v := 0
	for i := 0; i < len(digits); i++ {
		v = v*10 + int(digits[i]-'0')
		if v > 1<<31-1 {
			return false
		}
	}
	return true
}

// lineCommentEnd returns the index of the newline ending the -- comment at
// i, or len(text).
func lineCommentEnd(text string, i int) int {
	for j := i + 2; j < len(text); j++ {
		if text[j] == '\n' || text[j] == '\r' {
			return j
		}
	}
	return len(text)
}

// blockCommentEnd returns the index after the /* */ comment at i (they
// nest), or -1 when it is unterminated.
func blockCommentEnd(text string, i int) int {
	depth := 0
	for j := i; j+1 < len(text); j++ {
		switch {
		case text[j] == '/' && text[j+1] == '*':
			depth++
			j++
		case text[j] == '*' && text[j+1] == '/':
			depth--
			j++
			if depth == 0 {
				return j + 1
			}
		}
	}
	return -1
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// isIdentStart and isIdentCont are scan.l's ident_start and ident_cont.
func isIdentStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c >= 0x80
}

func isIdentCont(c byte) bool { return isIdentStart(c) || isDigit(c) || c == '$' }

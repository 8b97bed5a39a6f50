package router

// pg_query runs PostgreSQL's C parser inside pgone's process, on the C
// stack of the calling thread. Its output stage (the parse tree turned into
// protobuf) recurses once per tree level with no depth check, so a text
// whose tree is deep enough overflows that stack and the whole process dies
// of SIGSEGV: a signal in C code cannot be recovered from in Go, and a
// goroutine's stack does not help (cgo calls run on the thread's system
// stack, whose size is RLIMIT_STACK, 8 MB by default). So no text reaches
// pg_query before this file has measured it, without parsing:
//
//   - its length (maxParseLen): parsing costs about 75 bytes of memory per
//     byte of a node-dense text (a 1.2 MB multi-row VALUES peaked at 90 MB),
//     and a 100 MB literal sent twice through pgone `demo` (simple, then
//     extended protocol) peaked at 0.95 GB RSS, 1.25 GB with "as temp";
//     0.43 GB with this bound, the rest being the proxy's own copies;
//   - an estimate of its tree depth (depthOver), which must never be lower
//     than the real depth.
//
// Measured with pg_query_go v5 in a child process (8 MB stack): chains of
// left-associative operators, casts, ->, JOINs crash at about 24,000 terms
// (about 350 bytes of stack per level), UNION chains at 48,000; nested
// subqueries cost about three times a chain level, nested CASE twice;
// nested parentheses, prefix operators, NOT and ARRAY[ hit bison's own
// stack limit (10,000 states) and fail cleanly; AND/OR chains, IN lists,
// VALUES rows and CASE branches are flat lists and parse at 400,000 terms.
// A chain over about 5,000 levels fails anyway, cleanly, in pg_query_go's
// protobuf decoding (recursion limit 10,000 messages).
//
// A text over a bound goes to the primary unparsed and is never cached.
// Its Decision says Target primary, Reason too_long or too_complex,
// Statements 1 (unknown), no tables (the proxy must assume it may write
// anything), Fingerprint 0, not cacheable, no transaction effect. Unless
// NoSessionEffects rules them out, ChangesSettings is true (the proxy
// re-reads the settings) and Pins are those a conservative word scan finds
// (lexicalPins). DISCARD ALL and DEALLOCATE ALL inside such a text are not
// seen.

const (
	// maxParseLen is the longest text parsed, in bytes. Large IN lists
	// (100,000 integers are 590 KB) and multi-row INSERTs of a few
	// thousand rows stay under it.
	maxParseLen = 1 << 20
	// maxParseDepth caps the depth estimate at a quarter of the measured
	// crash depth with an 8 MB stack, and below the depth at which
	// pg_query_go fails anyway.
	maxParseDepth = 5000
	// stackBytesPerLevel is the C stack one level of a chain costs, with a
	// margin over the measured 350 bytes.
	stackBytesPerLevel = 400
)

// parseDepthLimit is the depth bound for this process: maxParseDepth, or a
// quarter of what the thread stack holds when RLIMIT_STACK is smaller than
// 8 MB (a 1 MB stack crashed at 3,000 terms).
var parseDepthLimit = depthLimitFor(stackLimit())

func depthLimitFor(stackBytes uint64) int {
	if stackBytes == 0 {
		return maxParseDepth
	}
	n := stackBytes / stackBytesPerLevel / 4
	if n < maxParseDepth {
		return max(int(n), 64)
	}
	return maxParseDepth
}

// overBound returns ReasonTooLong or ReasonTooComplex when text must not
// reach pg_query, and false when it may.
func overBound(text string, depthLimit int) (Reason, bool) {
	if len(text) > maxParseLen {
		return ReasonTooLong, true
	}
	if depthOver(text, depthLimit) {
		return ReasonTooComplex, true
	}
	return 0, false
}

// unparsedAnalysis is the analysis of a text over a bound: the primary,
// with the session effects the word scans cannot rule out.
func unparsedAnalysis(text string, reason Reason) *analysis {
	a := &analysis{statements: 1, reason: reason}
	if NoSessionEffects(text) {
		return a
	}
	pins, unlisten := lexicalPins(text)
	a.pins, a.unlisten, a.changesSettings = pins.list(), unlisten, true
	return a
}

// unparsed reports an analysis made without parsing.
func (a *analysis) unparsed() bool {
	return a.reason == ReasonTooLong || a.reason == ReasonTooComplex
}

// depthLevel is one open bracket, parenthesis or CASE.
type depthLevel struct {
	closer byte // ')', ']' or 'e' (CASE ... END)
	// base is the depth of the enclosing levels when this one opened,
	// plus its own weight.
	base int
	// fixed counts what nests at this level whatever the separators:
	// SELECT (a subquery costs three chain levels) and set operations.
	fixed int
	// run counts operators since the last separator (',' AND OR WHEN THEN
	// ELSE): a chain nests one level per operator.
	run int
}

func (l *depthLevel) depth() int { return l.base + l.fixed + l.run }

// depthScan estimates the tree depth of a text lexically. It reads the text
// as PostgreSQL's lexer does with standard_conforming_strings on (as
// pg_query does): string literals ('...', and E'...' with backslash escapes),
// quoted identifiers, dollar quotes and nested comments are skipped whole,
// so their contents count for nothing and cannot hide an operator. Every
// operator character counts one level ("::" two, "->>" three), so the
// estimate errs high.
type depthScan struct {
	stack []depthLevel
	max   int
}

func (s *depthScan) top() *depthLevel { return &s.stack[len(s.stack)-1] }

func (s *depthScan) open(closer byte, weight int) {
	s.stack = append(s.stack, depthLevel{closer: closer, base: s.top().depth() + weight})
	s.note()
}

// close pops the innermost level if closer closes it. An unbalanced text
// is one pg_query rejects before it builds a tree to output.
func (s *depthScan) close(closer byte) {
	if len(s.stack) > 1 && s.top().closer == closer {
		s.stack = s.stack[:len(s.stack)-1]
	}
}

func (s *depthScan) note() {
	if d := s.top().depth(); d > s.max {
		s.max = d
	}
}

// word handles a keyword or identifier, folded to lower case.
func (s *depthScan) word(w string) {
	l := s.top()
	switch w {
	case "and", "or", "when", "then", "else":
		l.run = 0 // AND/OR chains are flat lists; CASE branches too
	case "case":
		s.open('e', 2)
	case "end":
		s.close('e')
	case "select":
		l.fixed += 2
	case "union", "intersect", "except":
		l.fixed++
	case "not", "is", "isnull", "notnull", "like", "ilike", "similar", "between",
		"collate", "at", "join", "overlaps", "in", "escape", "operator":
		// Infix and postfix keywords; OPERATOR(schema.+) has its operator
		// inside parentheses, so the keyword stands for it.
		l.run++
	default:
		return
	}
	s.note()
}

// depthOver reports whether text's estimated tree depth exceeds limit.
func depthOver(text string, limit int) bool {
	return depthEstimate(text, limit) > limit
}

// depthEstimate returns the estimated tree depth of text, or the first
// value over limit it reaches (it stops there).
func depthEstimate(text string, limit int) int {
	s := depthScan{stack: make([]depthLevel, 1, 16)}
	var w lexWord
	flush := func() {
		if b, long, ok := w.take(); ok && !long {
			s.word(string(b))
		}
	}
	for i := 0; i < len(text); i++ {
		c := text[i]
		if w.add(c) {
			continue
		}
		eString := w.n == 1 && w.buf[0] == 'e' && c == '\''
		flush()
		switch c {
		case '\'':
			i = skipQuoted(text, i, eString)
		case '"':
			i = skipQuoted(text, i, false)
		case '$':
			i = skipDollar(text, i)
		case '-':
			if i+1 < len(text) && text[i+1] == '-' {
				i = skipLineComment(text, i)
				continue
			}
			s.top().run++
		case '/':
			if i+1 < len(text) && text[i+1] == '*' {
				i = skipBlockComment(text, i)
				continue
			}
			s.top().run++
		case '(':
			s.open(')', 1)
		case '[':
			s.open(']', 1)
		case ')', ']':
			s.close(c)
		case ',':
			s.top().run = 0
		case ';':
			if len(s.stack) == 1 {
				s.stack[0] = depthLevel{} // a new statement, a new tree
			}
		case '+', '*', '<', '>', '=', '~', '!', '@', '#', '%', '^', '&', '|', '`', '?', ':':
			s.top().run++
		default:
			continue
		}
		s.note()
		if s.max > limit {
			return s.max
		}
	}
	flush()
	return s.max
}

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
	var word [32]byte
	n := 0       // length of the word being read; > len(word) means too long to matter
	end := false // a ';' was seen: only blanks and ';' may follow
	flush := func() bool {
		if n == 0 {
			return true
		}
		w := string(word[:min(n, len(word))])
		long := n > len(word)
		n = 0
		if first {
			first = false
			return !long && plainFirstWord[w]
		}
		return long || !riskyWord(w)
	}
	for i := 0; i < len(text); i++ {
		c := text[i]
		switch {
		case c >= 'A' && c <= 'Z':
			c += 'a' - 'A'
			fallthrough
		case c >= 'a' && c <= 'z' || c == '_' || c >= 0x80:
			if end {
				return false // a second statement
			}
			if n < len(word) {
				word[n] = c
			}
			n++
			continue
		case c >= '0' && c <= '9' || c == '$':
			if n > 0 {
				if n < len(word) {
					word[n] = c
				}
				n++
				continue
			}
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
	case "set_config", "temp", "temporary", "listen", "unlisten", "hold",
		"prepare", "deallocate", "discard", "reset", "role", "authorization", "load":
		return true
	}
	return strings.Contains(w, "advisory") || strings.HasPrefix(w, "pg_temp")
}

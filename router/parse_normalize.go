package router

import pg_query "github.com/pganalyze/pg_query_go/v5"

// Normalize returns text with its constants replaced by $n placeholders
// (pg_query's normalisation), for showing a statement without its values
// (the tuner's SHOW QUERIES). It applies the parser's bounds first: a text
// over them, or one pg_query cannot normalise, gives false.
func Normalize(text string) (string, bool) {
	if _, over := overBound(text, parseDepthLimit); over {
		return "", false
	}
	out, err := pg_query.Normalize(text)
	if err != nil {
		return "", false
	}
	return out, true
}

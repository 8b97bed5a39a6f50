package router

import "strings"

// Comment hints: a comment anywhere in the text ("/* pgone:primary */" or
// "-- pgone:primary") whose words include one of these, case-insensitive.
const (
	hintPrimaryWord = "pgone:primary"
	hintReplicaWord = "pgone:replica"
)

// mayHaveHint is a cheap pre-check that spares the scanner on most texts.
func mayHaveHint(text string) bool {
	for i := 0; i+len("pgone:") <= len(text); i++ {
		if (text[i] == 'p' || text[i] == 'P') && strings.EqualFold(text[i:i+len("pgone:")], "pgone:") {
			return true
		}
	}
	return false
}

// commentHints reads the hints in one comment token, markers included.
func commentHints(comment string) (primary, replica bool) {
	body := strings.TrimPrefix(comment, "--")
	body = strings.TrimPrefix(body, "/*")
	body = strings.TrimSuffix(body, "*/")
	for _, w := range strings.FieldsFunc(body, func(r rune) bool {
		return r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == ',' || r == ';'
	}) {
		switch {
		case strings.EqualFold(w, hintPrimaryWord):
			primary = true
		case strings.EqualFold(w, hintReplicaWord):
			replica = true
		}
	}
	return primary, replica
}

package router

import (
	"strings"
	"testing"
)

// TestNormalize: constants become placeholders; a text over the parser's
// length bound never reaches pg_query.
func TestNormalize(t *testing.T) {
	got, ok := Normalize("SELECT * FROM t WHERE id = 42 AND name = 'bob'")
	if !ok || got != "SELECT * FROM t WHERE id = $1 AND name = $2" {
		t.Errorf("Normalize = %q, %v", got, ok)
	}
	if _, ok := Normalize("SELECT '" + strings.Repeat("x", maxParseLen) + "'"); ok {
		t.Error("a text over maxParseLen was normalised")
	}
}

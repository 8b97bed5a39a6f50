package router

import "testing"

// TestNewProcVolatility: a schema-qualified name has its own volatility; a
// bare name shared by several schemas has the most volatile of them, so a
// call the router cannot resolve to a schema is never taken for safer
// than it may be; malformed rows are skipped.
func TestNewProcVolatility(t *testing.T) {
	got := NewProcVolatility([][]string{
		{"pg_catalog", "lower", "i"},
		{"app", "slugify", "i"},
		{"other", "slugify", "v"},
		{"app", "price", "s"},
		{"app", "broken", ""},
		{"app", "short"},
	})
	for _, c := range []struct {
		name string
		v    byte
		ok   bool
	}{
		{"lower", 'i', true}, {"pg_catalog.lower", 'i', true},
		{"app.slugify", 'i', true}, {"other.slugify", 'v', true}, {"slugify", 'v', true},
		{"price", 's', true}, {"app.price", 's', true},
		{"broken", 0, false}, {"app.short", 0, false}, {"missing", 0, false},
	} {
		if v, ok := got.Volatility(c.name); v != c.v || ok != c.ok {
			t.Errorf("Volatility(%q) = %q, %v; want %q, %v", c.name, v, ok, c.v, c.ok)
		}
	}
}

package router

import (
	"regexp"
	"testing"
)

// TestNames checks every enum String is a distinct snake_case word (they
// label metrics) and that out-of-range values do not panic.
func TestNames(t *testing.T) {
	word := regexp.MustCompile(`^[a-z]+(_[a-z]+)*$`)
	check := func(kind string, n int, name func(int) string) {
		seen := map[string]bool{}
		for i := 0; i < n; i++ {
			s := name(i)
			if !word.MatchString(s) || s == "unknown" || seen[s] {
				t.Errorf("%s %d: bad or duplicate name %q", kind, i, s)
			}
			seen[s] = true
		}
		if s := name(200); s != "unknown" {
			t.Errorf("%s 200: %q, want unknown", kind, s)
		}
	}
	check("Target", 2, func(i int) string { return Target(i).String() })
	check("Reason", int(numReasons), func(i int) string { return Reason(i).String() })
	check("Pin", int(numPins), func(i int) string { return Pin(i).String() })
	check("TxEffect", int(numTxEffects), func(i int) string { return TxEffect(i).String() })
}

package proxy

import "testing"

func TestContainsFold(t *testing.T) {
	for _, tc := range []struct {
		text string
		want bool
	}{
		{"RESET datestyle", true},
		{"select 1; ReSeT ALL", true},
		{"SET x TO DEFAULT", true},
		{"discard all", true},
		{"select 'res'", false},
		{"", false},
		{"select 'défault'", false},
		{"RESE", false},
	} {
		if got := containsFold([]byte(tc.text), "reset", "default", "discard"); got != tc.want {
			t.Errorf("containsFold(%q) = %v, want %v", tc.text, got, tc.want)
		}
	}
	if n := testing.AllocsPerRun(10, func() { containsFold([]byte("select 1 from t where a = 'x'"), "reset") }); n != 0 {
		t.Errorf("containsFold allocates %v times", n)
	}
}

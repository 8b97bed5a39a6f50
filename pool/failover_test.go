package pool

import (
	"reflect"
	"testing"
)

// TestDecidePrimary covers each rule of decidePrimary: one server out of
// recovery is trusted, several are a split brain unless the operator
// picked one of them, none keeps a primary that only failed its check,
// and a demoted primary back in recovery is a replica.
func TestDecidePrimary(t *testing.T) {
	up := func(inRecovery bool) serverObs { return serverObs{up: true, inRecovery: inRecovery} }
	down := serverObs{}
	tests := []struct {
		name       string
		obs        []serverObs
		prev, pick int
		want       primaryDecision
	}{
		{"first primary found", []serverObs{up(false), up(true)}, -1, -1,
			primaryDecision{primary: 0, state: PrimaryTrusted, candidates: []int{0}, pick: -1}},
		{"promotion after the primary died", []serverObs{down, up(false)}, 0, -1,
			primaryDecision{primary: 1, state: PrimaryTrusted, candidates: []int{1}, pick: -1}},
		{"primary failed its check, nobody promoted", []serverObs{down, up(true)}, 0, -1,
			primaryDecision{primary: 0, state: PrimaryTrusted, pick: -1}},
		{"primary demoted, nobody promoted", []serverObs{up(true), up(true)}, 0, -1,
			primaryDecision{primary: -1, state: PrimaryNone, pick: -1}},
		{"split brain", []serverObs{up(false), up(false)}, 0, -1,
			primaryDecision{primary: -1, state: PrimarySplitBrain, candidates: []int{0, 1}, pick: -1}},
		{"split brain, operator picked", []serverObs{up(false), up(false)}, -1, 1,
			primaryDecision{primary: 1, state: PrimaryPicked, candidates: []int{0, 1}, pick: 1}},
		{"pick of a server back in recovery is ignored", []serverObs{up(false), up(false), up(true)}, -1, 2,
			primaryDecision{primary: -1, state: PrimarySplitBrain, candidates: []int{0, 1}, pick: -1}},
		{"old primary rejoins as a replica: the pick ends", []serverObs{up(true), up(false)}, 1, 1,
			primaryDecision{primary: 1, state: PrimaryTrusted, candidates: []int{1}, pick: -1}},
		{"nothing reachable, never had a primary", []serverObs{down, down}, -1, -1,
			primaryDecision{primary: -1, state: PrimaryNone, pick: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := decidePrimary(tt.obs, tt.prev, tt.pick); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("decidePrimary = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestDecodeServerRow reads serverCheckSQL's row of a primary and of a
// standby whose timeline is not visible.
func TestDecodeServerRow(t *testing.T) {
	o, err := decodeServerRow([]string{"false", "", "0/3000060", "0/3000098", "2"})
	if err != nil || o.inRecovery || o.flush != 0x3000060 || o.insert != 0x3000098 || o.timeline != 2 || !o.up {
		t.Fatalf("primary row: %+v, %v", o, err)
	}
	o, err = decodeServerRow([]string{"true", "0/3000060", "", "", "0"})
	if err != nil || !o.inRecovery || o.replay != 0x3000060 || o.timeline != 0 {
		t.Fatalf("standby row: %+v, %v", o, err)
	}
	if _, err := decodeServerRow([]string{"true"}); err == nil {
		t.Fatal("a short row decoded")
	}
}

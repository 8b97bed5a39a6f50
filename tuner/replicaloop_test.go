package tuner

import (
	"testing"
	"time"
)

// simReplicas: replicas with fixed latencies; reads are spread by weight.
type simReplicas struct {
	simKnobs
	states []ReplicaState
	lat    []time.Duration
}

func (k *simReplicas) Replicas() []ReplicaState {
	var total int64
	for _, s := range k.states {
		total += s.Weight
	}
	for i := range k.states {
		n := 1000 * k.states[i].Weight / total
		k.states[i].Queries += n
		k.states[i].QueryTime += time.Duration(n) * k.lat[i]
	}
	return append([]ReplicaState(nil), k.states...)
}

func (k *simReplicas) SetReplicaWeight(db, addr string, w int64) bool {
	for i := range k.states {
		if k.states[i].Database == db && k.states[i].Addr == addr {
			k.states[i].Weight = w
			return true
		}
	}
	return false
}

// TestReplicaLoopFollowsLatency: a replica five times slower ends at a
// fifth of the fast one's weight, in steps of at most ×2, then stays put;
// lag lowers a weight further; weights stay within [10, 100].
func TestReplicaLoopFollowsLatency(t *testing.T) {
	k := &simReplicas{states: []ReplicaState{
		{Database: "app", Addr: "r1:5432", Usable: true, Weight: 100},
		{Database: "app", Addr: "r2:5432", Usable: true, Weight: 100},
	}, lat: []time.Duration{2 * time.Millisecond, 10 * time.Millisecond}}
	cfg := Config{ReplicaWeights: ModeOn}
	cfg.Defaults()
	tu := New(cfg, PoolBounds{}, k, nil, nil)
	now := time.Unix(0, 0)
	var weights [][2]int64
	for i := 0; i < 100; i++ {
		now = now.Add(cfg.Interval)
		for _, d := range tu.Step(now) {
			if d.To > 2*d.From || 2*d.To < d.From || d.To < minWeight || d.To > maxWeight {
				t.Fatalf("decision %v: a step over ×2 or out of [10, 100]", d)
			}
		}
		weights = append(weights, [2]int64{k.states[0].Weight, k.states[1].Weight})
	}
	if w := k.states[1].Weight; k.states[0].Weight != 100 || w < 16 || w > 25 {
		t.Fatalf("weights %d, %d; want 100 and 20 within the 20%% deadband", k.states[0].Weight, w)
	}
	for _, w := range weights[50:] {
		if w != weights[99] {
			t.Fatalf("weights still move in steady input: %v", weights[50:])
		}
	}
	k.states[1].Lag = 4 * time.Second // lag: a fifth again, bounded by 10
	for i := 0; i < 50; i++ {
		now = now.Add(cfg.Interval)
		tu.Step(now)
	}
	if w := k.states[1].Weight; w != minWeight {
		t.Errorf("lagging slow replica's weight %d; want the floor %d", w, minWeight)
	}
}

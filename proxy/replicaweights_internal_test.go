package proxy

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgone/pgone/pool"
	"github.com/pgone/pgone/router"
)

// TestTunedReplicaWeight: a weight the tuner sets replaces the configured
// one in pickReplica, and 0 restores the configured one.
func TestTunedReplicaWeight(t *testing.T) {
	t.Parallel()
	set := &replicaSet{database: "db", consistency: Eventual, lastWrite: new(atomic.Int64)}
	for i := 0; i < 2; i++ {
		set.add(Replica{Host: "10.0.0.1", Port: 5432 + i, Weight: 1}, nil)
	}
	s := &Server{}
	s.splits.Store(&map[string]*replicaSet{"db": set})
	checked := time.Now()
	view := &pool.ReplicaView{Replicas: []pool.ReplicaStatus{
		{State: pool.ReplicaHealthy, CheckedAt: checked}, {State: pool.ReplicaHealthy, CheckedAt: checked}}}
	spread := func() (int, int) {
		for _, sl := range set.slots {
			sl.inflight.Store(0)
		}
		counts := map[*replicaSlot]int{}
		ss := &session{}
		for i := 0; i < 400; i++ {
			d := ss.pickReplica(set, view, router.ReasonRead)
			d.slot.inflight.Add(1)
			counts[d.slot]++
		}
		return counts[set.slots[0]], counts[set.slots[1]]
	}
	if !s.SetReplicaWeight("db", set.slots[0].addr, 3) || s.SetReplicaWeight("db", "10.9.9.9:1", 3) || s.SetReplicaWeight("other", set.slots[0].addr, 3) {
		t.Fatal("SetReplicaWeight: want true for a known replica only")
	}
	if a, b := spread(); a != 300 || b != 100 {
		t.Errorf("with the tuned weight 3:1: %d, %d; want 300, 100", a, b)
	}
	ws := s.ReplicaWeights()
	if len(ws) != 2 || ws[0].Weight != 3 || ws[0].Configured != 1 || ws[1].Weight != 1 {
		t.Errorf("ReplicaWeights = %+v; want 3 (configured 1) and 1", ws)
	}
	s.SetReplicaWeight("db", set.slots[0].addr, 0)
	if a, b := spread(); a != 200 || b != 200 {
		t.Errorf("back to the configured 1:1: %d, %d; want 200, 200", a, b)
	}
}

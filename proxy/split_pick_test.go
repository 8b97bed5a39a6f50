package proxy

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgone/pgone/pool"
	"github.com/pgone/pgone/router"
)

// TestPickReplicaBalancesByWeight: reads go to the usable replica with the
// fewest clients in flight for its weight; ties rotate; replicas that are
// not healthy, or failed a connection since their last check, are skipped;
// with none left the primary answers.
func TestPickReplicaBalancesByWeight(t *testing.T) {
	t.Parallel()
	set := &replicaSet{database: "db", consistency: Eventual, lastWrite: new(atomic.Int64)}
	for i, w := range []int{3, 1, 1} {
		set.add(Replica{Host: "10.0.0.1", Port: 5432 + i, Weight: w}, nil)
	}
	checked := time.Now()
	view := &pool.ReplicaView{Replicas: []pool.ReplicaStatus{
		{State: pool.ReplicaHealthy, CheckedAt: checked},
		{State: pool.ReplicaHealthy, CheckedAt: checked},
		{State: pool.ReplicaHealthy, CheckedAt: checked},
	}}
	ss := &session{}
	// Hold every pick, as sessions holding servers do: 500 reads in flight
	// end up spread 3:1:1.
	counts := map[*replicaSlot]int{}
	for i := 0; i < 500; i++ {
		d := ss.pickReplica(set, view, router.ReasonRead)
		if d.slot == nil {
			t.Fatalf("pick %d went to the primary (%s)", i, d.reason)
		}
		d.slot.inflight.Add(1)
		counts[d.slot]++
	}
	if counts[set.slots[0]] != 300 || counts[set.slots[1]] != 100 || counts[set.slots[2]] != 100 {
		t.Errorf("in flight by replica: %d, %d, %d; want 300, 100, 100 (weights 3, 1, 1)",
			counts[set.slots[0]], counts[set.slots[1]], counts[set.slots[2]])
	}
	// Released ones make room: the least loaded for its weight is next.
	set.slots[1].inflight.Add(-50)
	if d := ss.pickReplica(set, view, router.ReasonRead); d.slot != set.slots[1] {
		t.Errorf("after replica 1 freed 50: picked %v, want replica 1", d.slot)
	}

	// Lagging, down and recently failed replicas are skipped.
	view.Replicas[0].State = pool.ReplicaLagging
	view.Replicas[1].State = pool.ReplicaDown
	set.slots[2].failedAt.Store(checked.Add(time.Millisecond).UnixNano())
	if d := ss.pickReplica(set, view, router.ReasonRead); d.slot != nil || d.reason != router.ReasonNoUsableReplica {
		t.Errorf("no usable replica: got %+v, want the primary (%s)", d, router.ReasonNoUsableReplica)
	}
	// Checked healthy again after the failure: back in rotation.
	view.Replicas[2].CheckedAt = checked.Add(time.Second)
	if d := ss.pickReplica(set, view, router.ReasonRead); d.slot != set.slots[2] {
		t.Errorf("replica checked after its failure: got %+v, want replica 2", d)
	}
}

// TestPickReplicaReadYourWrites: after a commit the client reads only from
// replicas that have replayed the primary's position sampled after it, and
// from the primary while none has or while no sample is that recent.
func TestPickReplicaReadYourWrites(t *testing.T) {
	t.Parallel()
	set := &replicaSet{database: "db", consistency: ReadYourWrites, lastWrite: new(atomic.Int64)}
	set.add(Replica{Host: "10.0.0.1", Port: 5432}, nil)
	set.add(Replica{Host: "10.0.0.2", Port: 5432}, nil)
	now := time.Now()
	ss := &session{fenceAt: now}
	view := &pool.ReplicaView{Replicas: []pool.ReplicaStatus{
		{State: pool.ReplicaHealthy, CheckedAt: now, ReplayLSN: 100},
		{State: pool.ReplicaHealthy, CheckedAt: now, ReplayLSN: 200},
	}}
	if d := ss.pickReplica(set, view, router.ReasonRead); d.slot != nil || d.reason != router.ReasonReadYourWrites {
		t.Fatalf("no primary position after the commit yet: got %+v, want the primary", d)
	}
	view = pool.NewReplicaView(view.Replicas, []pool.Fence{{At: now.Add(-time.Second), LSN: 50}, {At: now.Add(time.Millisecond), LSN: 150}})
	if d := ss.pickReplica(set, view, router.ReasonRead); d.slot != set.slots[1] {
		t.Errorf("fence 150: got %+v, want the replica at 200", d)
	}
	if !ss.fenceKnown || ss.fenceLSN != 150 {
		t.Errorf("fence: known %v at %v; want 150", ss.fenceKnown, ss.fenceLSN)
	}
	view.Replicas[1].ReplayLSN = 120
	if d := ss.pickReplica(set, view, router.ReasonRead); d.slot != nil || d.reason != router.ReasonReadYourWrites {
		t.Errorf("both replicas behind the fence: got %+v, want the primary", d)
	}
	// Eventual consistency ignores the fence.
	set.consistency = Eventual
	if d := ss.pickReplica(set, view, router.ReasonRead); d.slot == nil {
		t.Errorf("eventual: got the primary, want a replica")
	}
}

// TestPickReplicaReadAllWrites: with read_all_writes a client that never
// wrote is fenced by another client's write too.
func TestPickReplicaReadAllWrites(t *testing.T) {
	t.Parallel()
	set := &replicaSet{database: "db", consistency: ReadAllWrites, lastWrite: new(atomic.Int64)}
	set.add(Replica{Host: "10.0.0.1", Port: 5432}, nil)
	now := time.Now()
	view := pool.NewReplicaView([]pool.ReplicaStatus{{State: pool.ReplicaHealthy, CheckedAt: now, ReplayLSN: 100}},
		[]pool.Fence{{At: now.Add(-time.Second), LSN: 50}, {At: now.Add(time.Millisecond), LSN: 150}})
	reader := &session{}
	if d := reader.pickReplica(set, view, router.ReasonRead); d.slot == nil {
		t.Fatalf("nobody wrote: got the primary (%s), want the replica", d.reason)
	}
	set.wrote("a", now.Add(-2*time.Second))
	set.wrote("b", now) // another client's write; the max is kept
	set.wrote("a", now.Add(-time.Second))
	if d := reader.pickReplica(set, view, router.ReasonRead); d.slot != nil || d.reason != router.ReasonReadYourWrites {
		t.Errorf("replica at 100 behind another client's write (fence 150): got %+v, want the primary", d)
	}
	view.Replicas[0].ReplayLSN = 150
	if d := reader.pickReplica(set, view, router.ReasonRead); d.slot == nil {
		t.Errorf("replica caught up: got the primary (%s)", d.reason)
	}
	set.wrote("a", now.Add(time.Second)) // after the last sample
	if d := reader.pickReplica(set, view, router.ReasonRead); d.slot != nil {
		t.Errorf("write after the last sample: got a replica, want the primary")
	}
}

// TestPickReplicaReadUserWrites: with read_user_writes a read is fenced by
// the last write of its user, on any connection, and not by another
// user's.
func TestPickReplicaReadUserWrites(t *testing.T) {
	t.Parallel()
	set := &replicaSet{database: "db", consistency: ReadUserWrites, lastWrite: new(atomic.Int64), userWrites: new(sync.Map)}
	set.add(Replica{Host: "10.0.0.1", Port: 5432}, nil)
	now := time.Now()
	view := pool.NewReplicaView([]pool.ReplicaStatus{{State: pool.ReplicaHealthy, CheckedAt: now, ReplayLSN: 100}},
		[]pool.Fence{{At: now.Add(-time.Second), LSN: 50}, {At: now.Add(time.Millisecond), LSN: 150}})
	alice := &session{poolKey: pool.Key{Database: "db", User: "alice"}}
	bob := &session{poolKey: pool.Key{Database: "db", User: "bob"}}
	set.wrote("alice", now) // on another of alice's connections
	if d := alice.pickReplica(set, view, router.ReasonRead); d.slot != nil || d.reason != router.ReasonReadYourWrites {
		t.Errorf("alice's read behind alice's write (fence 150, replica at 100): got %+v, want the primary", d)
	}
	if d := bob.pickReplica(set, view, router.ReasonRead); d.slot == nil {
		t.Errorf("bob's read after alice's write: got the primary (%s), want the replica", d.reason)
	}
	view.Replicas[0].ReplayLSN = 150
	if d := alice.pickReplica(set, view, router.ReasonRead); d.slot == nil {
		t.Errorf("replica caught up with alice's write: got the primary (%s)", d.reason)
	}
	set.wrote("alice", now.Add(time.Second)) // after the last sample
	if d := alice.pickReplica(set, view, router.ReasonRead); d.slot != nil {
		t.Errorf("alice's write after the last sample: got a replica, want the primary")
	}
	if d := bob.pickReplica(set, view, router.ReasonRead); d.slot == nil {
		t.Errorf("bob, after alice's newer write: got the primary (%s), want the replica", d.reason)
	}
}

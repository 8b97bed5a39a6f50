package proxy

import (
	"testing"
	"time"

	"github.com/pgone/pgone/pool"
	"github.com/pgone/pgone/router"
)

// TestFenceAcrossPromotion: a client's read-your-writes fence is a
// position on the timeline it was taken on. After a promotion (a new
// epoch) a replica that has replayed past the old fence but not past the
// new primary's first position may lack the client's write (the old
// primary may have written past the promotion point), so the read goes to
// the primary until a replica has replayed past the new fence.
func TestFenceAcrossPromotion(t *testing.T) {
	slot := &replicaSlot{host: "r", port: 5432, addr: "r:5432"}
	set := &replicaSet{database: "db", consistency: ReadYourWrites, slots: []*replicaSlot{slot}, weights: []int64{1}}
	ss := &session{}
	wroteAt := time.Now()
	ss.fenceAt = wroteAt
	view := func(epoch uint64, fence pool.LSN, replay pool.LSN) *pool.ReplicaView {
		v := pool.NewReplicaView([]pool.ReplicaStatus{{State: pool.ReplicaHealthy, ReplayLSN: replay, CheckedAt: wroteAt.Add(time.Second)}},
			[]pool.Fence{{At: wroteAt.Add(time.Millisecond), LSN: fence}})
		v.Failover = pool.FailoverView{Auto: true, State: pool.PrimaryTrusted, Epoch: epoch}
		return v
	}
	if d := ss.pickReplica(set, view(0, 100, 150), router.ReasonRead); d.slot != slot {
		t.Fatalf("before the promotion, a replica past the fence: routed %+v, want the replica", d)
	}
	if d := ss.pickReplica(set, view(1, 300, 150), router.ReasonRead); d.slot != nil || d.reason != router.ReasonReadYourWrites {
		t.Fatalf("after the promotion, a replica past the old fence only: routed %+v, want the primary (read_your_writes)", d)
	}
	if d := ss.pickReplica(set, view(1, 300, 350), router.ReasonRead); d.slot != slot {
		t.Fatalf("after the promotion, a replica past the new fence: routed %+v, want the replica", d)
	}
}

package tuner

import (
	"fmt"
	"sort"
	"time"
)

// Loop 3: replica weights. Per interval, for each split database, each
// usable replica's mean server latency over the interval (from its pools'
// counters) gives it a target weight: the fastest gets maxWeight, another
// maxWeight × fastest/its latency, divided by 1 + lag/lagScale (lag is a
// penalty: reads there see older data and fences wait for it), bounded to
// [minWeight, maxWeight]. A weight moves only when its target differs by
// more than weightDeadband, at most ×2 or ÷2 at once, and not within
// Cooldown of its database's last change. A replica with too few queries
// keeps its weight.

// ReplicaState is one replica as the Knobs report it; Queries and
// QueryTime are cumulative over its pools.
type ReplicaState struct {
	Database, Addr string
	Usable         bool
	Lag            time.Duration
	Weight         int64
	Queries        int64
	QueryTime      time.Duration
}

// ReplicaKnobs are Knobs that also set replica weights (loop 3).
type ReplicaKnobs interface {
	Replicas() []ReplicaState
	SetReplicaWeight(database, addr string, w int64) bool
}

const (
	minWeight      = 10
	maxWeight      = 100
	weightDeadband = 0.2
	lagScale       = time.Second
)

type replicaLoop struct {
	prev      map[string]ReplicaState // by database/addr
	changedAt map[string]time.Time    // by database
}

func newReplicaLoop() *replicaLoop {
	return &replicaLoop{prev: map[string]ReplicaState{}, changedAt: map[string]time.Time{}}
}

// observe returns the weight changes for one reading of every replica.
func (l *replicaLoop) observe(now time.Time, states []ReplicaState, cooldown time.Duration) []Decision {
	byDB := map[string][]ReplicaState{}
	for _, s := range states {
		byDB[s.Database] = append(byDB[s.Database], s)
	}
	dbs := make([]string, 0, len(byDB))
	for db := range byDB {
		dbs = append(dbs, db)
	}
	sort.Strings(dbs)
	var out []Decision
	for _, db := range dbs {
		out = append(out, l.observeDB(now, db, byDB[db], cooldown)...)
	}
	return out
}

func (l *replicaLoop) observeDB(now time.Time, db string, states []ReplicaState, cooldown time.Duration) []Decision {
	lat := map[string]time.Duration{}
	var fastest time.Duration
	for _, s := range states {
		key := db + "/" + s.Addr
		p, ok := l.prev[key]
		l.prev[key] = s
		if !ok || !s.Usable || s.Queries-p.Queries < minIntervalReqs || s.Queries < p.Queries {
			continue
		}
		m := (s.QueryTime - p.QueryTime) / time.Duration(s.Queries-p.Queries)
		if m <= 0 {
			continue
		}
		lat[s.Addr] = m
		if fastest == 0 || m < fastest {
			fastest = m
		}
	}
	if len(lat) < 2 || now.Sub(l.changedAt[db]) < cooldown {
		return nil // one replica measured: nothing to compare
	}
	var out []Decision
	for _, s := range states {
		m, ok := lat[s.Addr]
		if !ok {
			continue
		}
		target := float64(maxWeight) * float64(fastest) / float64(m) / (1 + float64(s.Lag)/float64(lagScale))
		cur := max(s.Weight, 1)
		if d := target/float64(cur) - 1; d < weightDeadband && d > -weightDeadband {
			continue
		}
		next := int64(target + 0.5)
		next = min(max(next, cur/2, minWeight), cur*2, maxWeight)
		if next == cur {
			continue
		}
		act := "raise"
		if next < cur {
			act = "lower"
		}
		out = append(out, Decision{At: now, Loop: "replica", Target: db + "/" + s.Addr, Action: act, From: int(cur), To: int(next),
			Reason: "weights follow measured latency, lag as a penalty",
			Inputs: fmt.Sprintf("latency=%s fastest=%s lag=%s", m, fastest, s.Lag)})
	}
	if len(out) > 0 {
		l.changedAt[db] = now
	}
	return out
}

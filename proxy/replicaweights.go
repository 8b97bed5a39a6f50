package proxy

import (
	"sort"
	"time"

	"github.com/pgone/pgone/pool"
)

// Replica weights as the tuner sets them (its loop 3): a weight set here
// replaces the configured one (databases.*.replicas[].weight) in
// pickReplica until set back to 0. It lives in the replica's slot, so it
// survives reloads that keep the replica.

// ReplicaWeight is one replica of a split database, for the tuner.
type ReplicaWeight struct {
	Database   string // client-visible
	Addr       string // host:port, as pool.Key.Replica
	Usable     bool
	Lag        time.Duration
	Configured int64 // the configured weight
	Weight     int64 // the weight in force
}

// weight is the weight in force: the tuner's, else configured.
func (s *replicaSlot) weight(configured int64) int64 {
	if t := s.tuned.Load(); t > 0 {
		return t
	}
	return configured
}

// ReplicaWeights lists every replica of every split database.
func (s *Server) ReplicaWeights() []ReplicaWeight {
	splits := s.splits.Load()
	if splits == nil {
		return nil
	}
	var out []ReplicaWeight
	for name, set := range *splits {
		var view []ReplicaWeight
		var status []pool.ReplicaStatus
		if set.mon != nil {
			status = set.mon.Status()
		}
		for i, slot := range set.slots {
			rw := ReplicaWeight{Database: name, Addr: slot.addr, Configured: set.weights[i], Weight: slot.weight(set.weights[i])}
			if i < len(status) && len(status) == len(set.slots) {
				rw.Usable, rw.Lag = status[i].Usable(), status[i].Lag
			}
			view = append(view, rw)
		}
		out = append(out, view...)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Database != out[j].Database {
			return out[i].Database < out[j].Database
		}
		return out[i].Addr < out[j].Addr
	})
	return out
}

// SetReplicaWeight sets the weight of replica addr of database (0: back
// to the configured one); false when there is no such replica.
func (s *Server) SetReplicaWeight(database, addr string, w int64) bool {
	splits := s.splits.Load()
	if splits == nil {
		return false
	}
	set := (*splits)[database]
	if set == nil {
		return false
	}
	for _, slot := range set.slots {
		if slot.addr == addr {
			slot.tuned.Store(max(w, 0))
			return true
		}
	}
	return false
}

package pool

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Positions between rounds. A read fenced behind a commit (read-your-writes
// and its wider levels) needs the primary's position sampled after the
// commit and a replica that has replayed it. The rounds sample both once
// per check interval (1s by default), so after every write its client's
// reads went to the primary for up to two intervals, although a replica
// replays a commit within milliseconds. Nudge asks for a sample now: the
// primary's insert position and every replica's replay position, one
// query each on connections of their own, at most once per
// minPositionGap however many reads ask. It changes no replica's state:
// the rounds alone judge health and lag.

// minPositionGap bounds on-demand samples to 500 a second per database.
const minPositionGap = 2 * time.Millisecond

// maxRecentFences bounds the fences kept from on-demand samples; older
// commits use the rounds' fences.
const maxRecentFences = 64

// Nudge asks for the primary's and the replicas' positions now: a read
// found the fence it must wait for unknown or not reached. It never
// blocks; requests made while a sample is pending are merged.
func (m *Monitor) Nudge() {
	select {
	case m.nudge <- struct{}{}:
	default:
	}
}

// PositionAfter returns the primary's position sampled after t, which
// covers every transaction committed before t (ReplicaView.FenceAfter),
// asking for a sample (Nudge) while there is none. It waits within ctx.
func (m *Monitor) PositionAfter(ctx context.Context, t time.Time) (LSN, error) {
	for {
		m.mu.Lock()
		published := m.published
		m.mu.Unlock()
		if lsn, ok := m.View().FenceAfter(t); ok {
			return lsn, nil
		}
		m.Nudge()
		select {
		case <-published:
		case <-m.stop:
			return 0, errors.New("replica monitor stopped")
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// runPositions takes the samples Nudge asks for until Stop.
func (m *Monitor) runPositions() {
	defer close(m.positionsDone)
	conns := make([]*Conn, len(m.status)+1) // [0] is the primary
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.close()
			}
		}
	}()
	gap := time.NewTimer(0)
	defer gap.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-m.nudge:
		}
		wait := minPositionGap
		if !m.samplePositions(conns) {
			wait = max(wait, m.cfg.Interval) // a server failed: no storm of dials
		}
		gap.Reset(wait)
		select {
		case <-m.stop:
			return
		case <-gap.C:
		}
	}
}

// samplePositions reads the primary's insert position, then every healthy
// replica's replay position, and publishes a view with them. It reports
// whether every query succeeded.
func (m *Monitor) samplePositions(conns []*Conn) bool {
	timeout := max(m.cfg.Interval, time.Second)
	pi, primary, ok := m.primarySlot()
	if !ok {
		return true // no primary trusted: no fence to sample
	}
	m.mu.Lock()
	epoch := m.epochLocked()
	m.mu.Unlock()
	sent := time.Now()
	insert, err := query(m, conns, pi, primary, timeout, decodeLSN, "SELECT pg_catalog.pg_current_wal_insert_lsn()::text")
	if err != nil {
		return false // the round reports the primary
	}
	// Only replicas in rotation: a down one would be dialed at every
	// nudge; the rounds find when it is back.
	m.mu.Lock()
	healthy := make([]bool, len(m.status))
	targets := make([]Target, len(m.status))
	for i, st := range m.status {
		healthy[i], targets[i] = st.State == ReplicaHealthy && i+1 != pi, st.Target
	}
	m.mu.Unlock()
	replays := make([]LSN, len(targets))
	failed := make([]bool, len(targets))
	var wg sync.WaitGroup
	for i := range targets {
		if !healthy[i] {
			continue
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			var err error
			replays[i], err = query(m, conns, i+1, targets[i], timeout, decodeLSN,
				"SELECT COALESCE(pg_catalog.pg_last_wal_replay_lsn()::text, '0/0')")
			failed[i] = err != nil
		}(i)
	}
	wg.Wait()
	m.mu.Lock()
	if m.epochLocked() != epoch {
		// The primary changed meanwhile: these are old-timeline positions.
		m.mu.Unlock()
		return true
	}
	m.recent = append(m.recent, Fence{At: sent, LSN: insert})
	if len(m.recent) > maxRecentFences {
		m.recent = append(m.recent[:0], m.recent[len(m.recent)-maxRecentFences:]...)
	}
	for i, r := range replays {
		m.fresh[i] = max(m.fresh[i], r)
	}
	m.publishLocked()
	m.mu.Unlock()
	for _, f := range failed {
		if f {
			return false
		}
	}
	return true
}

func decodeLSN(row []string) (LSN, error) {
	if len(row) != 1 {
		return 0, errors.New("unexpected reply to the position query")
	}
	return ParseLSN(row[0])
}

// publishLocked makes the view reads are routed by: the replicas' status
// from the last round with the freshest replay positions, and the fences
// of the rounds and of on-demand samples, merged by time.
func (m *Monitor) publishLocked() {
	replicas := append([]ReplicaStatus(nil), m.status...)
	for i := range replicas {
		replicas[i].ReplayLSN = max(replicas[i].ReplayLSN, m.fresh[i])
	}
	fences := make([]Fence, 0, len(m.history)+len(m.recent))
	h, r := 0, 0
	for h < len(m.history) || r < len(m.recent) {
		if r == len(m.recent) || (h < len(m.history) && m.history[h].sent.Before(m.recent[r].At)) {
			fences = append(fences, Fence{At: m.history[h].sent, LSN: m.history[h].insert})
			h++
		} else {
			fences = append(fences, m.recent[r])
			r++
		}
	}
	v := NewReplicaView(replicas, fences)
	v.Failover = m.failoverLocked()
	m.view.Store(v)
	close(m.published)
	m.published = make(chan struct{})
}

package pool

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"
)

// Failover: a monitor made by NewAutoMonitor has no configured primary. It
// checks every server of the database each round (pg_is_in_recovery(),
// replay and WAL positions, timeline) and trusts as primary the one server
// that is not in recovery (decidePrimary). A promotion is followed at the
// first round that sees it: within one check interval. Two servers out of
// recovery are a split brain: no primary is trusted, so writes go to
// neither, until one is back in recovery or the operator picks one
// (PickPrimary). Every server is also a replica slot: those in recovery
// serve reads as any replica does, the primary is shown in state primary.
//
// Positions across a promotion: the new primary's WAL starts where it
// stopped replaying, so LSNs sampled on the old timeline say nothing about
// what the new timeline holds (the old primary may have written past that
// point). A change of the trusted primary starts a new epoch: the monitor
// forgets every position sample, so a fence asked for a commit made before
// the promotion is the first sample of the new primary (at or past the
// promotion point), and readers that kept a fence from the old epoch ask
// again (ReplicaView.Failover.Epoch). A replica whose timeline is older
// than the primary's is not used (ReplicaOldTimeline).

// PrimaryState is what the monitor makes of a database's servers.
type PrimaryState uint8

const (
	// PrimaryUnknown: no round has ended yet.
	PrimaryUnknown PrimaryState = iota
	// PrimaryTrusted: exactly one server is out of recovery (or the
	// trusted one failed its check and no other server claims the role).
	PrimaryTrusted
	// PrimaryPicked: several servers are out of recovery and the operator
	// picked one of them (PickPrimary).
	PrimaryPicked
	// PrimarySplitBrain: several servers are out of recovery; none is
	// trusted, writes are refused.
	PrimarySplitBrain
	// PrimaryNone: every reachable server is in recovery.
	PrimaryNone
)

func (s PrimaryState) String() string {
	switch s {
	case PrimaryTrusted:
		return "ok"
	case PrimaryPicked:
		return "operator_pick"
	case PrimarySplitBrain:
		return "split_brain"
	case PrimaryNone:
		return "no_primary"
	}
	return "unknown"
}

// Writable reports whether writes have a primary to go to.
func (s PrimaryState) Writable() bool { return s == PrimaryTrusted || s == PrimaryPicked }

// FailoverView is the primary part of a ReplicaView of an auto monitor.
type FailoverView struct {
	Auto  bool
	State PrimaryState
	// Primary indexes Replicas (every server); -1 when none is trusted.
	Primary int
	// Epoch counts changes of the trusted primary: fences from an older
	// epoch are void.
	Epoch uint64
	// Timeline is the trusted primary's timeline (0 unknown).
	Timeline uint32
	// Candidates are the servers out of recovery at the last check.
	Candidates []int
}

// PrimaryTarget returns the trusted primary of view v; ok is false when
// writes have none (split brain, none found, no round yet).
func (v *ReplicaView) PrimaryTarget() (Target, bool) {
	if v == nil || !v.Failover.State.Writable() || v.Failover.Primary < 0 {
		return Target{}, false
	}
	return v.Replicas[v.Failover.Primary].Target, true
}

// serverObs is what one round saw of one server of an auto monitor.
type serverObs struct {
	up         bool
	inRecovery bool
	timeline   uint32
	replay     LSN
	flush      LSN // primaries only
	insert     LSN
}

// primaryDecision is decidePrimary's verdict.
type primaryDecision struct {
	primary    int // -1: none
	state      PrimaryState
	candidates []int
	pick       int // the operator's pick to keep, -1 none
}

// decidePrimary trusts the one server out of recovery. With several, the
// operator's pick among them (else split brain: none); with none, the
// previous primary while it merely failed its check (a blip must not stop
// writes; its connections fail by themselves if it is gone), else none. A
// pick lasts only while the split does: once one server is primary again,
// a later split needs a new decision.
func decidePrimary(obs []serverObs, prev, pick int) primaryDecision {
	d := primaryDecision{primary: -1, pick: -1}
	for i, o := range obs {
		if o.up && !o.inRecovery {
			d.candidates = append(d.candidates, i)
		}
	}
	switch len(d.candidates) {
	case 1:
		d.primary, d.state = d.candidates[0], PrimaryTrusted
	case 0:
		d.state = PrimaryNone
		if prev >= 0 && prev < len(obs) && !obs[prev].up {
			d.primary, d.state = prev, PrimaryTrusted
		}
	default:
		d.state = PrimarySplitBrain
		for _, c := range d.candidates {
			if c == pick {
				d.primary, d.state, d.pick = pick, PrimaryPicked, pick
			}
		}
	}
	return d
}

// PrimaryChange is a change of an auto monitor's trusted primary, for
// Monitor.OnPrimaryChange.
type PrimaryChange struct {
	// From and To are the old and new trusted primary; FromOK and ToOK
	// say whether there was one.
	From, To     Target
	FromOK, ToOK bool
	State        PrimaryState
	// Promotion: To replaced another server (or a new timeline of the
	// same one): caches of the database are stale, fences void.
	Promotion bool
	Epoch     uint64
	At        time.Time
}

// Moved reports whether the trusted primary is another server now, or
// there was none before or is none after.
func (c PrimaryChange) Moved() bool {
	return !c.FromOK || !c.ToOK || c.From.Host != c.To.Host || c.From.Port != c.To.Port
}

// NewAutoMonitor returns a monitor of servers, one of which is the
// primary: the monitor finds which (see the top of this file).
func NewAutoMonitor(cfg MonitorConfig, connCfg Config, servers []Target, log *slog.Logger) *Monitor {
	m := NewMonitor(cfg, connCfg, Target{}, servers, log)
	m.auto = &autoState{primary: -1, lastTrusted: -1, pick: -1}
	return m
}

// autoState is an auto monitor's primary bookkeeping, under Monitor.mu.
type autoState struct {
	obs         []serverObs // the last round's
	primary     int
	state       PrimaryState
	candidates  []int
	pick        int
	lastTrusted int    // the last server trusted, -1 never
	timeline    uint32 // of lastTrusted
	epoch       uint64
}

// failoverLocked is the auto state for a view.
func (m *Monitor) failoverLocked() FailoverView {
	a := m.auto
	if a == nil {
		return FailoverView{Primary: -1}
	}
	return FailoverView{Auto: true, State: a.state, Primary: a.primary, Epoch: a.epoch, Timeline: a.timeline,
		Candidates: append([]int(nil), a.candidates...)}
}

// primarySlot returns where the primary's connections live in a
// goroutine's conns (index) and its target; ok is false when an auto
// monitor trusts none.
func (m *Monitor) primarySlot() (i int, t Target, ok bool) {
	if m.auto == nil {
		return 0, m.primary, true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if p := m.auto.primary; p >= 0 && m.auto.state.Writable() {
		return p + 1, m.status[p].Target, true
	}
	return 0, Target{}, false
}

// serverCheckSQL asks a server of an auto monitor its role, positions and
// timeline in one row. The timeline is the current WAL file's on a primary
// and the WAL receiver's on a standby (0: not streaming, or not visible to
// a login without pg_read_all_stats).
const serverCheckSQL = `SELECT r::text,
 COALESCE(pg_catalog.pg_last_wal_replay_lsn()::text, ''),
 CASE WHEN r THEN '' ELSE pg_catalog.pg_current_wal_flush_lsn()::text END,
 CASE WHEN r THEN '' ELSE pg_catalog.pg_current_wal_insert_lsn()::text END,
 COALESCE(CASE WHEN r THEN (SELECT received_tli FROM pg_catalog.pg_stat_wal_receiver LIMIT 1)
  ELSE ('x' || pg_catalog.substr(pg_catalog.pg_walfile_name(pg_catalog.pg_current_wal_lsn()), 1, 8))::bit(32)::int END, 0)::text
FROM pg_catalog.pg_is_in_recovery() AS r`

// decodeServerRow reads serverCheckSQL's row.
func decodeServerRow(row []string) (serverObs, error) {
	o := serverObs{up: true}
	if len(row) != 5 {
		return o, errors.New("unexpected reply to the server check")
	}
	o.inRecovery = row[0] == "true" || row[0] == "t"
	for i, dst := range []*LSN{&o.replay, &o.flush, &o.insert} {
		if row[i+1] == "" {
			continue
		}
		lsn, err := ParseLSN(row[i+1])
		if err != nil {
			return o, err
		}
		*dst = lsn
	}
	tl, err := strconv.ParseUint(row[4], 10, 32)
	if err != nil {
		return o, fmt.Errorf("invalid timeline %q", row[4])
	}
	o.timeline = uint32(tl)
	return o, nil
}

// roundAuto is an auto monitor's round: every server at once, then the
// primary decision, then each server's state.
func (m *Monitor) roundAuto(conns []*Conn) {
	timeout := checkTimeout(m.cfg.Interval)
	sent := time.Now()
	m.mu.Lock() // PickPrimary writes status between rounds
	targets := make([]Target, len(m.status))
	for i, st := range m.status {
		targets[i] = st.Target
	}
	m.mu.Unlock()
	obs := make([]serverObs, len(targets))
	errs := make([]error, len(targets))
	var wg sync.WaitGroup
	for i := range targets {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			obs[i], errs[i] = query(m, conns, i+1, targets[i], timeout, decodeServerRow, serverCheckSQL)
			obs[i].up = errs[i] == nil
		}(i)
	}
	wg.Wait()
	now := time.Now()
	m.mu.Lock()
	change := m.decideLocked(obs, now)
	a := m.auto
	if p := a.primary; p >= 0 && obs[p].up {
		m.advanceReplayable(obs[p].flush, obs[p].insert)
		m.history = append(m.history, lsnSample{sent: sent, at: now, insert: obs[p].insert})
		m.trimHistoryLocked(now)
	}
	changes := m.applyAutoLocked(obs, errs, now)
	m.publishLocked()
	m.mu.Unlock()
	m.reportRound(changes, change)
}

// decideLocked takes the primary decision from a round's (or the last
// round's, after PickPrimary) observations, and starts a new epoch when
// the trusted primary changed. It returns the change to report, if any.
func (m *Monitor) decideLocked(obs []serverObs, now time.Time) *PrimaryChange {
	a := m.auto
	a.obs = obs
	d := decidePrimary(obs, a.primary, a.pick)
	oldPrimary, oldState := a.primary, a.state
	a.primary, a.state, a.candidates, a.pick = d.primary, d.state, d.candidates, d.pick
	tl := uint32(0)
	if d.primary >= 0 {
		tl = obs[d.primary].timeline
	}
	promotion := d.primary >= 0 && a.lastTrusted >= 0 &&
		(d.primary != a.lastTrusted || (tl != 0 && a.timeline != 0 && tl > a.timeline))
	if d.primary >= 0 {
		if promotion {
			a.epoch++
			m.forgetPositionsLocked()
		}
		a.lastTrusted = d.primary
		if tl != 0 {
			a.timeline = tl
		}
	}
	if oldPrimary == d.primary && oldState == d.state && !promotion {
		return nil
	}
	c := &PrimaryChange{State: d.state, Promotion: promotion, Epoch: a.epoch, At: now}
	if oldPrimary >= 0 && oldState.Writable() {
		c.From, c.FromOK = m.status[oldPrimary].Target, true
	}
	if d.primary >= 0 {
		c.To, c.ToOK = m.status[d.primary].Target, true
	}
	return c
}

// forgetPositionsLocked drops every position sampled so far: they are of
// the old primary's timeline.
func (m *Monitor) forgetPositionsLocked() {
	m.history = m.history[:0]
	m.replayable = 0
	m.unflushed = m.unflushed[:0]
	m.recent = m.recent[:0]
	clear(m.fresh)
}

// applyAutoLocked sets each server's state from a round.
func (m *Monitor) applyAutoLocked(obs []serverObs, errs []error, now time.Time) []statusChange {
	a := m.auto
	havePositions := a.primary >= 0 && obs[a.primary].up
	var changes []statusChange
	for i := range m.status {
		old := m.status[i]
		st := old
		st.CheckedAt, st.Err, st.Timeline = now, "", obs[i].timeline
		st.ReplayLSN, st.LagBytes, st.Lag = 0, 0, 0
		o := obs[i]
		switch {
		case errs[i] != nil:
			st.State, st.Err = ReplicaDown, errs[i].Error()
			m.fresh[i] = 0
		case !o.inRecovery && i == a.primary:
			st.State = ReplicaPrimary
			m.fresh[i] = 0
		case !o.inRecovery:
			st.State = ReplicaPromoted
			m.fresh[i] = 0
		case a.timeline != 0 && o.timeline != 0 && o.timeline < a.timeline:
			st.State, st.ReplayLSN = ReplicaOldTimeline, o.replay
			st.Err = fmt.Sprintf("replaying timeline %d, the primary is on %d", o.timeline, a.timeline)
		default:
			st.ReplayLSN = o.replay
			st.State = ReplicaLagging // cannot tell without the primary's position
			if havePositions {
				st.LagBytes, st.Lag = m.lagLocked(o.replay, now)
				if st.LagBytes == 0 || m.cfg.MaxLag <= 0 || st.Lag <= m.cfg.MaxLag {
					st.State = ReplicaHealthy
				}
			}
		}
		if st.State != old.State {
			st.Changes++
			changes = append(changes, statusChange{i, old, st})
		}
		m.status[i] = st
	}
	return changes
}

// PickPrimary is the operator's decision in a split brain: trust the
// server at addr (host:port) while it and others are out of recovery. It
// takes effect at once, from the last round's observations.
func (m *Monitor) PickPrimary(addr string) error {
	if m.auto == nil {
		return errors.New("the database's primary is configured, not found (its servers are not role auto)")
	}
	m.mu.Lock()
	i := -1
	for k, st := range m.status {
		if st.Target.addr() == addr {
			i = k
		}
	}
	a := m.auto
	switch {
	case i < 0:
		m.mu.Unlock()
		return fmt.Errorf("%s is not a server of the database", addr)
	case a.obs == nil || !a.obs[i].up || a.obs[i].inRecovery:
		m.mu.Unlock()
		return fmt.Errorf("%s was not out of recovery at the last check; only a server that claims to be primary can be picked", addr)
	}
	a.pick = i
	now := time.Now()
	change := m.decideLocked(a.obs, now)
	errs := make([]error, len(m.status))
	for k, o := range a.obs {
		if !o.up {
			errs[k] = errors.New(m.status[k].Err)
		}
	}
	changes := m.applyAutoLocked(a.obs, errs, now)
	m.publishLocked()
	m.mu.Unlock()
	m.log.Warn("replica monitor: operator picked the primary", "server", addr)
	m.reportRound(changes, change)
	return nil
}

// WaitPrimary returns the trusted primary, waiting for one while ctx
// lasts; the last view comes back with the error when none came.
func (m *Monitor) WaitPrimary(ctx context.Context) (Target, *ReplicaView, error) {
	for {
		m.mu.Lock()
		published := m.published
		m.mu.Unlock()
		v := m.View()
		if t, ok := v.PrimaryTarget(); ok {
			return t, v, nil
		}
		select {
		case <-published:
		case <-m.stop:
			return Target{}, v, errors.New("replica monitor stopped")
		case <-ctx.Done():
			return Target{}, v, ctx.Err()
		}
	}
}

// epochLocked is the current epoch (0 for a configured primary).
func (m *Monitor) epochLocked() uint64 {
	if m.auto == nil {
		return 0
	}
	return m.auto.epoch
}

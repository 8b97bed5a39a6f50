package pool

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ReplicaState is what the monitor last found of a replica.
type ReplicaState uint8

const (
	// ReplicaUnknown: not checked yet. Not usable.
	ReplicaUnknown ReplicaState = iota
	// ReplicaHealthy: reachable, in recovery, within the lag limit.
	ReplicaHealthy
	// ReplicaLagging: reachable and in recovery, but behind by more than
	// the limit. Not usable until it catches up.
	ReplicaLagging
	// ReplicaDown: the last check could not connect or failed.
	ReplicaDown
	// ReplicaPromoted: no longer in recovery: a primary now, not a replica
	// of ours. Not usable. Of an auto monitor (failover.go): out of
	// recovery but not trusted as primary (split brain).
	ReplicaPromoted
	// ReplicaPrimary: an auto monitor's trusted primary.
	ReplicaPrimary
	// ReplicaOldTimeline: in recovery on a timeline older than the
	// primary's: it has not followed the promotion. Not usable.
	ReplicaOldTimeline
)

func (s ReplicaState) String() string {
	switch s {
	case ReplicaHealthy:
		return "healthy"
	case ReplicaLagging:
		return "lagging"
	case ReplicaDown:
		return "down"
	case ReplicaPromoted:
		return "promoted"
	case ReplicaPrimary:
		return "primary"
	case ReplicaOldTimeline:
		return "old_timeline"
	}
	return "unknown"
}

// ReplicaStatus is one replica's last check.
type ReplicaStatus struct {
	Target Target
	State  ReplicaState
	// ReplayLSN is the WAL position the replica has applied, at CheckedAt.
	ReplayLSN LSN
	// LagBytes is how far the replay was behind the last position the
	// replica can replay: the newest end of a WAL record the primary had
	// flushed (see Monitor.replayable). Lag is 0 when it had applied that;
	// otherwise the time since the primary was last seen at a position the
	// replay has reached: an upper bound, precise to one check interval,
	// that needs no transaction timestamps (an idle primary has none).
	LagBytes  int64
	Lag       time.Duration
	CheckedAt time.Time
	// Err is why the last check failed (ReplicaDown).
	Err string
	// Changes counts state changes since the monitor started.
	Changes int
	// Timeline is the server's timeline at the last check, for an auto
	// monitor (0 unknown).
	Timeline uint32
}

// statusChange is one server's state change in a round.
type statusChange struct {
	i        int
	from, to ReplicaStatus
}

// Usable reports whether reads may go to the replica.
func (s ReplicaStatus) Usable() bool { return s.State == ReplicaHealthy }

// LSN is a WAL position.
type LSN uint64

// ParseLSN reads PostgreSQL's text form of a pg_lsn, "16/B374D848".
func ParseLSN(s string) (LSN, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok {
		return 0, fmt.Errorf("invalid LSN %q", s)
	}
	h, err := strconv.ParseUint(hi, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("invalid LSN %q", s)
	}
	l, err := strconv.ParseUint(lo, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("invalid LSN %q", s)
	}
	return LSN(h<<32 | l), nil
}

func (l LSN) String() string { return fmt.Sprintf("%X/%X", uint64(l)>>32, uint32(l)) }

// MonitorConfig configures replica checks.
type MonitorConfig struct {
	// Interval between checks (replica_check_interval).
	Interval time.Duration
	// MaxLag takes a replica out of rotation while the last transaction it
	// applied is older than this and it has not applied everything
	// (max_replica_lag).
	MaxLag time.Duration
	// PrimaryTaskEvery, if positive, runs Monitor.PrimaryTask this often
	// (task.go).
	PrimaryTaskEvery time.Duration
}

// Monitor checks a primary's replicas: reachable, in recovery, replay
// position and lag. It keeps one connection to each server, opened again
// after a failure.
type Monitor struct {
	cfg     MonitorConfig
	connCfg Config
	primary Target
	log     *slog.Logger
	// OnChange, if set before Start, is called from the monitor's goroutine
	// with each state change.
	OnChange func(replica int, from, to ReplicaStatus)
	// PrimaryTask, if set before Start, is run on the primary between
	// rounds (task.go).
	PrimaryTask PrimaryTask
	// OnPrimaryChange, if set before Start, is called from the monitor's
	// goroutine (or PickPrimary's caller) when an auto monitor's trusted
	// primary or its state changes (failover.go).
	OnPrimaryChange func(PrimaryChange)
	// auto is set by NewAutoMonitor: the primary is found, not given.
	auto *autoState

	mu      sync.Mutex
	status  []ReplicaStatus
	history []lsnSample // the primary's positions over the last checks, oldest first
	// replayable is the newest record end known flushed on the primary;
	// unflushed are sampled record ends past the flush position then,
	// oldest first (see advanceReplayable).
	replayable LSN
	unflushed  []LSN
	// Positions sampled on demand between rounds (positions.go): recent
	// fences, oldest first, and each replica's freshest replay position.
	recent        []Fence
	fresh         []LSN
	nudge         chan struct{}
	positionsDone chan struct{}
	checked       chan struct{} // closed and replaced after each round
	published     chan struct{} // closed and replaced when view changes (PositionAfter)
	view          atomic.Pointer[ReplicaView]

	taskKick chan struct{} // KickPrimaryTask: run the primary task at once

	stop chan struct{}
	done chan struct{}
}

// lsnSample is the primary's WAL position at a time.
type lsnSample struct {
	// sent is when the question was sent, at when the answer came, and
	// insert the primary's pg_current_wal_insert_lsn() between them, the
	// end of the last record inserted: every transaction that committed
	// before sent ends at or before insert, also with synchronous_commit
	// off (its commit record is inserted, maybe not yet written).
	sent, at time.Time
	insert   LSN
}

// ReplicaView is what one round of checks found, for routing reads: the
// replicas' status and the primary's positions. It is immutable; the
// monitor publishes a new one after each round.
type ReplicaView struct {
	Replicas []ReplicaStatus
	fences   []Fence // oldest first
	// Failover is the trusted primary of an auto monitor (failover.go).
	Failover FailoverView
}

// NewReplicaView returns a view of replicas and of the primary's positions
// (fences, oldest first). The monitor makes one after each round.
func NewReplicaView(replicas []ReplicaStatus, fences []Fence) *ReplicaView {
	return &ReplicaView{Replicas: replicas, fences: fences}
}

// Fence is a position the primary had reached by a time: every
// transaction committed before At ends at or before LSN.
type Fence struct {
	At  time.Time
	LSN LSN
}

// FenceAfter returns the lowest position known to cover every transaction
// committed before t: the first sample taken after t. ok is false when
// there is none yet (t is newer than the last check).
func (v *ReplicaView) FenceAfter(t time.Time) (lsn LSN, ok bool) {
	if v == nil {
		return 0, false
	}
	i := sort.Search(len(v.fences), func(i int) bool { return v.fences[i].At.After(t) })
	if i == len(v.fences) {
		return 0, false
	}
	return v.fences[i].LSN, true
}

// NewMonitor returns a monitor of replicas of primary; connCfg gives the
// connect timeout and TLS. Start runs it.
func NewMonitor(cfg MonitorConfig, connCfg Config, primary Target, replicas []Target, log *slog.Logger) *Monitor {
	m := &Monitor{
		cfg: cfg, connCfg: connCfg, primary: primary, log: log,
		status:        make([]ReplicaStatus, len(replicas)),
		checked:       make(chan struct{}),
		published:     make(chan struct{}),
		taskKick:      make(chan struct{}, 1),
		stop:          make(chan struct{}),
		done:          make(chan struct{}),
		fresh:         make([]LSN, len(replicas)),
		nudge:         make(chan struct{}, 1),
		positionsDone: make(chan struct{}),
	}
	for i, t := range replicas {
		m.status[i].Target = t
	}
	return m
}

// Start runs the checks until Stop.
func (m *Monitor) Start() {
	go m.run()
	go m.runPositions()
}

// Stop ends the checks and closes the monitor's connections.
func (m *Monitor) Stop() {
	close(m.stop)
	<-m.done
	<-m.positionsDone
}

// Status returns every replica's last check, in configuration order.
func (m *Monitor) Status() []ReplicaStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]ReplicaStatus(nil), m.status...)
}

// View returns what the last round of checks found; nil before the first
// round ends. It is cheap enough to call for every routed request.
func (m *Monitor) View() *ReplicaView { return m.view.Load() }

// WaitCheck waits for the next round of checks to finish.
func (m *Monitor) WaitCheck(ctx context.Context) error {
	m.mu.Lock()
	ch := m.checked
	m.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (m *Monitor) run() {
	defer close(m.done)
	conns := make([]*Conn, len(m.status)+1) // [0] is the primary
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.close()
			}
		}
	}()
	t := time.NewTicker(m.cfg.Interval)
	defer t.Stop()
	var taskDone time.Time // when the primary task last succeeded
	for {
		if m.taskDue(taskDone) {
			taskDone = m.runPrimaryTask(conns, taskDone)
		}
		if m.auto != nil {
			m.roundAuto(conns)
		} else {
			m.round(conns)
		}
		select {
		case <-m.stop:
			return
		case <-t.C:
		case <-m.taskKick:
			taskDone = m.runPrimaryTask(conns, taskDone)
		}
	}
}

// checkTimeout bounds each check of a round (with the dial of its
// connection, when it needs one): below the interval, so that a replica
// whose check stalls (SIGSTOP: its socket stays open, nothing answers)
// is down within one interval of that check; at least minCheckTimeout, so
// that a dial and authentication on a busy host are not taken for a
// failure (with a shorter interval a stalled replica takes that long).
func checkTimeout(interval time.Duration) time.Duration {
	return max(interval*3/4, minCheckTimeout)
}

// minCheckTimeout is the least time a check is given.
const minCheckTimeout = 750 * time.Millisecond

// round checks the primary, then every replica at once.
func (m *Monitor) round(conns []*Conn) {
	timeout := checkTimeout(m.cfg.Interval)
	sent := time.Now()
	positions, perr := query(m, conns, 0, m.primary, timeout, func(row []string) ([2]LSN, error) {
		var p [2]LSN
		if len(row) != 2 {
			return p, errors.New("unexpected reply to the position query")
		}
		for i := range p {
			lsn, err := ParseLSN(row[i])
			if err != nil {
				return p, err
			}
			p[i] = lsn
		}
		return p, nil
	}, "SELECT pg_catalog.pg_current_wal_flush_lsn()::text, pg_catalog.pg_current_wal_insert_lsn()::text")
	if perr != nil {
		// Without the primary's position lag cannot be measured; the
		// replicas are still checked for reachability and recovery.
		m.log.Debug("replica monitor: primary check failed", "err", perr)
	}
	primaryAt := time.Now()
	type result struct {
		inRecovery bool
		replay     LSN
	}
	results := make([]result, len(m.status))
	errs := make([]error, len(m.status))
	var wg sync.WaitGroup
	for i := range m.status {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			results[i], errs[i] = query(m, conns, i+1, m.status[i].Target, timeout, func(row []string) (result, error) {
				var r result
				r.inRecovery = row[0] == "t"
				if row[1] != "" {
					lsn, err := ParseLSN(row[1])
					if err != nil {
						return r, err
					}
					r.replay = lsn
				}
				return r, nil
			}, "SELECT pg_catalog.pg_is_in_recovery(), COALESCE(pg_catalog.pg_last_wal_replay_lsn()::text, '')")
		}(i)
	}
	wg.Wait()
	now := time.Now()
	var changes []statusChange
	m.mu.Lock()
	if perr == nil {
		m.advanceReplayable(positions[0], positions[1])
		m.history = append(m.history, lsnSample{sent: sent, at: primaryAt, insert: positions[1]})
		m.trimHistoryLocked(primaryAt)
	}
	for i := range m.status {
		old := m.status[i]
		st := old
		st.CheckedAt, st.Err = now, ""
		r := results[i]
		switch {
		case errs[i] != nil:
			st.State, st.Err = ReplicaDown, errs[i].Error()
			m.fresh[i] = 0
		case !r.inRecovery:
			m.fresh[i] = 0
			st.State = ReplicaPromoted
			st.ReplayLSN, st.LagBytes, st.Lag = 0, 0, 0
		default:
			st.ReplayLSN = r.replay
			st.LagBytes, st.Lag = 0, 0
			if perr == nil {
				st.LagBytes, st.Lag = m.lagLocked(r.replay, now)
			}
			st.State = ReplicaHealthy
			if perr != nil {
				st.State = ReplicaLagging // cannot tell: keep reads away
			} else if st.LagBytes > 0 && m.cfg.MaxLag > 0 && st.Lag > m.cfg.MaxLag {
				st.State = ReplicaLagging
			}
		}
		if st.State != old.State {
			st.Changes++
			changes = append(changes, statusChange{i, old, st})
		}
		m.status[i] = st
	}
	m.publishLocked()
	m.mu.Unlock()
	m.reportRound(changes, nil)
}

// trimHistoryLocked keeps enough of the primary's positions to tell lag
// up to twice the limit.
func (m *Monitor) trimHistoryLocked(at time.Time) {
	horizon := at.Add(-2*max(m.cfg.MaxLag, 5*m.cfg.Interval) - m.cfg.Interval)
	drop := 0
	for drop < len(m.history)-1 && m.history[drop].at.Before(horizon) {
		drop++
	}
	m.history = append(m.history[:0], m.history[drop:]...)
}

// reportRound logs and reports a round's state changes and its change of
// primary (auto monitors), then ends the round for WaitCheck.
func (m *Monitor) reportRound(changes []statusChange, primary *PrimaryChange) {
	defer func() {
		// The round is over once its changes are reported.
		m.mu.Lock()
		close(m.checked)
		m.checked = make(chan struct{})
		m.mu.Unlock()
	}()
	if primary != nil {
		from, to, level := "", "", slog.LevelWarn
		if primary.FromOK {
			from = primary.From.addr()
		} else if primary.State == PrimaryTrusted {
			level = slog.LevelInfo // found, not changed
		}
		if primary.ToOK {
			to = primary.To.addr()
		}
		m.log.Log(context.Background(), level, "replica monitor: primary changed", "state", primary.State.String(),
			"from", from, "to", to, "promotion", primary.Promotion, "epoch", primary.Epoch)
		if m.OnPrimaryChange != nil {
			m.OnPrimaryChange(*primary)
		}
	}
	for _, c := range changes {
		i, from, to := c.i, c.from, c.to
		level := slog.LevelInfo
		if to.State != ReplicaHealthy && to.State != ReplicaPrimary {
			level = slog.LevelWarn
		}
		m.log.Log(context.Background(), level, "replica state changed", "replica", to.Target.addr(),
			"from", from.State.String(), "to", to.State.String(), "lag", to.Lag, "lag_bytes", to.LagBytes, "err", to.Err)
		if m.OnChange != nil {
			m.OnChange(i, from, to)
		}
	}
}

// advanceReplayable records a round's primary positions: flush, what
// replicas can have received, and insert, the end of the last record.
// A replica replays whole records only: when the flush position falls
// inside a record (its first pages written, the rest still in the WAL
// buffers, as when the primary goes quiet after a large asynchronous
// write), the replica stops at the record's start, bytes short of the
// flush position, until the primary writes more. Measured against flush,
// such a replica would look lagging for as long as the primary stays
// quiet. So the target is the newest sampled record end at or before
// flush: every commit the replica can see ends at or before it.
func (m *Monitor) advanceReplayable(flush, insert LSN) {
	if insert <= flush {
		m.replayable = max(m.replayable, insert)
		m.unflushed = m.unflushed[:0]
		return
	}
	keep := m.unflushed[:0]
	for _, l := range m.unflushed {
		if l <= flush {
			m.replayable = max(m.replayable, l)
		} else {
			keep = append(keep, l)
		}
	}
	m.unflushed = append(keep, insert)
	if len(m.unflushed) > maxUnflushed {
		m.unflushed = m.unflushed[1:]
	}
}

// maxUnflushed bounds the record ends remembered past the flush position.
const maxUnflushed = 64

// lagLocked measures a replica that has replayed up to replay: bytes
// behind the replayable position and, when behind, the time since the
// primary was last seen at a position the replay has reached.
func (m *Monitor) lagLocked(replay LSN, now time.Time) (int64, time.Duration) {
	if replay >= m.replayable {
		return 0, 0
	}
	lag := now.Sub(m.history[0].at) // behind everything remembered
	for k := len(m.history) - 1; k >= 0; k-- {
		if m.history[k].insert <= replay {
			lag = now.Sub(m.history[k].at)
			break
		}
	}
	return int64(m.replayable - replay), lag
}

// query runs sql on conns[i] (dialing t if needed) and decodes its one row.
func query[T any](m *Monitor, conns []*Conn, i int, t Target, timeout time.Duration, decode func([]string) (T, error), sql string) (T, error) {
	var zero T
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	rows, err := m.queryRows(ctx, conns, i, t, sql)
	if err == nil && (len(rows) != 1 || len(rows[0]) == 0) {
		err = errors.New("unexpected reply to the check query")
		conns[i].close()
		conns[i] = nil
	}
	if err != nil {
		return zero, err
	}
	return decode(rows[0])
}

// queryRows runs sql on the monitor's connection conns[i] to t, dialing it
// first (within ctx) if there is none. A failed query closes the
// connection: the next one dials again.
func (m *Monitor) queryRows(ctx context.Context, conns []*Conn, i int, t Target, sql string) ([][]string, error) {
	if conns[i] == nil {
		cfg := m.connCfg
		if dl, ok := ctx.Deadline(); ok {
			cfg.ServerConnectTimeout = time.Until(dl)
		}
		c, err := dial(ctx, &cfg, t)
		if err != nil {
			return nil, err
		}
		conns[i] = c
	}
	rows, err := conns[i].Query(ctx, sql)
	if err != nil {
		conns[i].close()
		conns[i] = nil
	}
	return rows, err
}

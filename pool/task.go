package pool

import (
	"context"
	"time"
)

// The monitor's primary task: work another package needs done on the
// primary between rounds (the routing side loads the catalog facts it
// routes by with it), run by the monitor's goroutine on
// the monitor's own primary connection, so it costs no pool connection
// and no second login. The monitor knows nothing of what the task reads.

// PrimaryQuery runs sql on the primary with the simple protocol and
// returns the rows of its last result in text form (Conn.Query). A failed
// query closes the connection; the next dials again.
type PrimaryQuery func(ctx context.Context, sql string) ([][]string, error)

// PrimaryTask is run on the primary every MonitorConfig.PrimaryTaskEvery
// and at once after KickPrimaryTask. It reports whether it did its work;
// until it does, it is run again before each round. ctx bounds it.
type PrimaryTask func(ctx context.Context, query PrimaryQuery) bool

// KickPrimaryTask has the primary task run at once (after the round in
// progress, if any). It never blocks; kicks made while one is pending are
// merged.
func (m *Monitor) KickPrimaryTask() {
	if m.PrimaryTask == nil || m.cfg.PrimaryTaskEvery <= 0 {
		return
	}
	select {
	case m.taskKick <- struct{}{}:
	default:
	}
}

// taskDue reports whether the primary task should run before the next
// round: it is set and its last success is older than its period.
func (m *Monitor) taskDue(done time.Time) bool {
	return m.PrimaryTask != nil && m.cfg.PrimaryTaskEvery > 0 &&
		(done.IsZero() || time.Since(done) >= m.cfg.PrimaryTaskEvery)
}

// runPrimaryTask runs the task on conns[0], the primary, and returns when
// it last succeeded: now, or done unchanged.
func (m *Monitor) runPrimaryTask(conns []*Conn, done time.Time) time.Time {
	if m.PrimaryTask == nil {
		return done
	}
	ctx, cancel := context.WithTimeout(context.Background(), max(m.cfg.Interval, 5*time.Second))
	defer cancel()
	pi, primary, ok := m.primarySlot()
	if !ok {
		return done // no primary trusted (failover.go): try again later
	}
	query := func(ctx context.Context, sql string) ([][]string, error) {
		return m.queryRows(ctx, conns, pi, primary, sql)
	}
	if m.PrimaryTask(ctx, query) {
		return time.Now()
	}
	return done
}

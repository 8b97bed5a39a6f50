package pool

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/pgone/pgone/internal/pgtest"
)

// TestMonitorSIGSTOPReplicaLeavesWithinOneInterval: a real replica
// stopped with SIGSTOP (its sockets stay open, nothing answers) is down at
// the end of the first round after its last healthy one, and that round
// ends well within one check interval: the check's timeout is below
// the interval. With a timeout equal to the interval the stalled round
// took the whole interval, and the replica left only as the next round
// was due.
func TestMonitorSIGSTOPReplicaLeavesWithinOneInterval(t *testing.T) {
	t.Parallel()
	const interval = time.Second // the default replica_check_interval
	c := pgtest.New(t, pgtest.Options{Replica: true})
	target := func(s *pgtest.Server) Target {
		return Target{Host: s.Host, Port: s.Port, Database: "postgres", User: "postgres", Password: "postgres"}
	}
	cfg := Config{ServerTLS: ServerTLS{SSLMode: "disable"}}
	cfg.Defaults()
	m := NewMonitor(MonitorConfig{Interval: interval}, cfg, target(c.Primary), []Target{target(c.Replica)},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	wentDown := make(chan [2]ReplicaStatus, 1)
	m.OnChange = func(_ int, from, to ReplicaStatus) {
		if to.State == ReplicaDown {
			select {
			case wentDown <- [2]ReplicaStatus{from, to}:
			default:
			}
		}
	}
	m.Start()
	t.Cleanup(m.Stop)
	waitState(t, m, ReplicaHealthy, 10*time.Second)
	if err := c.Replica.Pause(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Replica.Resume() })
	var change [2]ReplicaStatus
	select {
	case change = <-wentDown:
	case <-time.After(10 * interval):
		t.Fatalf("the stopped replica is still %s", m.Status()[0].State)
	}
	healthy, down := change[0], change[1]
	if healthy.State != ReplicaHealthy {
		t.Fatalf("went down from %s, want healthy", healthy.State)
	}
	// The stalled round began about one interval after the last healthy
	// one ended (give or take that round's few milliseconds): it must end
	// well within the next interval, not at its very end.
	if took := down.CheckedAt.Sub(healthy.CheckedAt) - interval; took > interval*9/10 {
		t.Errorf("the round that met the stopped replica took %s; want well below one interval (%s)", took, interval)
	}
	if down.Usable() {
		t.Errorf("stopped replica still usable: %+v", down)
	}
}

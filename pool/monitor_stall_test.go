package pool

import (
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgone/pgone/internal/pgtest"
)

// checkServer answers the replica monitor's check queries like a primary
// or a replica in recovery, until stall: then it reads the replica check
// and answers nothing, as a stopped (SIGSTOP) server whose socket stays
// open.
type checkServer struct {
	ln      net.Listener
	wg      sync.WaitGroup
	stalled atomic.Bool
	// unanswered receives the time the first unanswered check arrived.
	unanswered chan time.Time
}

func startCheckServer(t *testing.T) *checkServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &checkServer{ln: ln, unanswered: make(chan time.Time, 1)}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer nc.Close()
				s.serve(nc)
			}()
		}
	}()
	// Stop closes the monitor's connections before the listener goes.
	t.Cleanup(func() { ln.Close(); s.wg.Wait() })
	return s
}

func (s *checkServer) serve(nc net.Conn) {
	be := pgproto3.NewBackend(nc, nc)
	if _, err := be.ReceiveStartupMessage(); err != nil {
		return
	}
	be.Send(&pgproto3.AuthenticationOk{})
	be.Send(&pgproto3.BackendKeyData{ProcessID: 1, SecretKey: []byte{1, 2, 3, 4}})
	be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
	if be.Flush() != nil {
		return
	}
	for {
		msg, err := be.Receive()
		if err != nil {
			return
		}
		q, ok := msg.(*pgproto3.Query)
		if !ok {
			continue
		}
		var row []string
		switch {
		case strings.Contains(q.String, "pg_is_in_recovery"):
			if s.stalled.Load() {
				select {
				case s.unanswered <- time.Now():
				default:
				}
				_, _ = io.Copy(io.Discard, nc) // until the monitor gives up and closes
				return
			}
			row = []string{"t", "0/3000000"}
		default:
			row = []string{"0/3000000", "0/3000000"}
		}
		be.Send(&pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{{Name: []byte("a")}, {Name: []byte("b")}}})
		be.Send(&pgproto3.DataRow{Values: [][]byte{[]byte(row[0]), []byte(row[1])}})
		be.Send(&pgproto3.CommandComplete{CommandTag: []byte("SELECT 1")})
		be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
		if be.Flush() != nil {
			return
		}
	}
}

func (s *checkServer) target() Target {
	return Target{Host: "127.0.0.1", Port: s.ln.Addr().(*net.TCPAddr).Port, Database: "db", User: "u"}
}

// TestMonitorStalledReplicaLeavesWithinOneInterval: a replica that stops
// answering (SIGSTOP: its socket stays open) leaves the rotation within
// one check interval of the check it left unanswered: the check query has
// a timeout, so the round does not wait for the replica to wake up.
func TestMonitorStalledReplicaLeavesWithinOneInterval(t *testing.T) {
	t.Parallel()
	const interval = time.Second // the default replica_check_interval
	primary, replica := startCheckServer(t), startCheckServer(t)
	cfg := Config{ServerTLS: ServerTLS{SSLMode: "disable"}}
	cfg.Defaults()
	m := NewMonitor(MonitorConfig{Interval: interval}, cfg, primary.target(), []Target{replica.target()},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	m.Start()
	t.Cleanup(m.Stop)
	waitState(t, m, ReplicaHealthy, 10*time.Second)
	replica.stalled.Store(true)
	var since time.Time
	select {
	case since = <-replica.unanswered:
	case <-time.After(10 * interval):
		t.Fatal("the monitor sent no check to the stalled replica")
	}
	st := waitState(t, m, ReplicaDown, 10*interval)
	if took := st.CheckedAt.Sub(since); took > interval {
		t.Errorf("the stalled replica left the rotation %s after its unanswered check; want within one interval (%s)", took, interval)
	}
	if st.Usable() {
		t.Errorf("stalled replica still usable: %+v", st)
	}
}

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

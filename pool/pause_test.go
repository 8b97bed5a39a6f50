package pool

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgone/pgone/pgerr"
)

// fakeServer is a PostgreSQL stand-in that lets anyone in (trust) and then
// answers every Query with CommandComplete and ReadyForQuery.
type fakeServer struct {
	ln net.Listener
	wg sync.WaitGroup
	// cancels receives the backend PID of each CancelRequest; the cancel
	// connection is closed when holdCancel (if set) gives a value or is
	// closed. Set both before the first connection.
	cancels    chan uint32
	holdCancel chan struct{}

	// closing is closed at cleanup; conns are the open sessions, closed then
	// too, so a test that fails holding a connection ends at once instead
	// of hanging in cleanup until the package times out.
	closing chan struct{}
	mu      sync.Mutex
	conns   map[net.Conn]bool
}

func startFakeServer(t *testing.T) *fakeServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeServer{ln: ln, closing: make(chan struct{}), conns: map[net.Conn]bool{}}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for pid := uint32(1); ; pid++ {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			f.mu.Lock()
			f.conns[nc] = true
			select {
			case <-f.closing: // cleanup has begun: end the session at once
				nc.Close()
			default:
			}
			f.mu.Unlock()
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				defer func() {
					f.mu.Lock()
					delete(f.conns, nc)
					f.mu.Unlock()
					nc.Close()
				}()
				f.session(nc, pid)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		f.mu.Lock()
		close(f.closing)
		for nc := range f.conns {
			nc.Close()
		}
		f.mu.Unlock()
		f.wg.Wait()
	})
	return f
}

func (f *fakeServer) session(nc net.Conn, pid uint32) {
	be := pgproto3.NewBackend(nc, nc)
	start, err := be.ReceiveStartupMessage()
	if err != nil {
		return
	}
	if cr, ok := start.(*pgproto3.CancelRequest); ok {
		if f.cancels != nil {
			select {
			case f.cancels <- cr.ProcessID:
			case <-f.closing:
				return
			}
		}
		if f.holdCancel != nil {
			select {
			case <-f.holdCancel:
			case <-f.closing:
			}
		}
		return // PostgreSQL closes a cancel connection without a reply
	}
	be.Send(&pgproto3.AuthenticationOk{})
	be.Send(&pgproto3.ParameterStatus{Name: "server_version", Value: "16.0"})
	be.Send(&pgproto3.BackendKeyData{ProcessID: pid, SecretKey: []byte{1, 2, 3, 4}})
	be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
	if be.Flush() != nil {
		return
	}
	for {
		msg, err := be.Receive()
		if err != nil {
			return
		}
		switch msg.(type) {
		case *pgproto3.Query:
			be.Send(&pgproto3.CommandComplete{CommandTag: []byte("SELECT 1")})
			be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
			if be.Flush() != nil {
				return
			}
		case *pgproto3.Terminate:
			return
		}
	}
}

func (f *fakeServer) target() Target {
	addr := f.ln.Addr().(*net.TCPAddr)
	return Target{Host: "127.0.0.1", Port: addr.Port, Database: "db", User: "u"}
}

func testManager(t *testing.T, wait time.Duration) *Manager {
	t.Helper()
	cfg := Config{PoolSize: 2, ServerTLS: ServerTLS{SSLMode: "disable"}}
	cfg.Defaults()
	cfg.QueryWaitTimeout = wait
	m := NewManager(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(m.Close)
	return m
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func statusOf(m *Manager, key Key) Status {
	for _, st := range m.Status() {
		if st.Key == key {
			return st
		}
	}
	return Status{}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestPauseHoldsAcquireUntilResume(t *testing.T) {
	t.Parallel()
	f := startFakeServer(t)
	m := testManager(t, 10*time.Second)
	key := Key{Database: "db", User: "u"}
	ctx := ctxFor(t)

	if err := m.Pause(ctx, "db"); err != nil {
		t.Fatal(err)
	}
	if !m.Paused("db") || m.Paused("other") {
		t.Fatalf("Paused(db)=%v Paused(other)=%v, want true, false", m.Paused("db"), m.Paused("other"))
	}
	if err := m.Pause(ctx, "db"); err == nil {
		t.Error("a second PAUSE of db succeeded")
	}
	got := make(chan error, 1)
	go func() {
		c, err := m.Acquire(ctx, key, f.target())
		if err == nil {
			m.Release(c)
		}
		got <- err
	}()
	waitFor(t, "the client to wait at the pause", func() bool { return statusOf(m, key).Waiting == 1 })
	// Still held once it has waited a while: the pause, not a slow dial.
	waitFor(t, "the paused client's wait to reach 50ms", func() bool { return statusOf(m, key).MaxWait >= 50*time.Millisecond })
	select {
	case err := <-got:
		t.Fatalf("Acquire returned during PAUSE: %v", err)
	default:
	}
	if st := statusOf(m, key); st.MaxWait < 50*time.Millisecond || !st.Paused {
		t.Errorf("status during pause %+v: want MaxWait >= 50ms and Paused", st)
	}
	if err := m.Resume("db"); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatalf("Acquire after RESUME: %v", err)
	}
	if st := statusOf(m, key); st.Waiting != 0 || st.Idle != 1 || st.Paused {
		t.Errorf("status after resume %+v: want 0 waiting, 1 idle, not paused", st)
	}
	if err := m.Resume("db"); err == nil {
		t.Error("RESUME of a database that is not paused succeeded")
	}
}

func TestPauseTimesOutWithQueryWaitTimeout(t *testing.T) {
	t.Parallel()
	f := startFakeServer(t)
	m := testManager(t, 200*time.Millisecond)
	ctx := ctxFor(t)
	if err := m.Pause(ctx, ""); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := m.Acquire(ctx, Key{Database: "db", User: "u"}, f.target())
	if pgerr.CodeOf(err) != string(pgerr.TooManyConnections) {
		t.Fatalf("Acquire while paused: %v, want 53300", err)
	}
	if d := time.Since(start); d < 200*time.Millisecond || d > 5*time.Second {
		t.Errorf("gave up after %s, want about query_wait_timeout (200ms)", d)
	}
	if err := m.Resume("db"); err == nil {
		t.Error("RESUME db during a global PAUSE succeeded")
	}
	if err := m.Resume(""); err != nil {
		t.Fatal(err)
	}
}

func TestPauseWaitsForServersToComeBack(t *testing.T) {
	t.Parallel()
	f := startFakeServer(t)
	m := testManager(t, 10*time.Second)
	key := Key{Database: "db", User: "u"}
	ctx := ctxFor(t)
	c, err := m.Acquire(ctx, key, f.target())
	if err != nil {
		t.Fatal(err)
	}
	paused := make(chan error, 1)
	go func() { paused <- m.Pause(ctx, "db") }()
	select {
	case err := <-paused:
		t.Fatalf("PAUSE returned while a server was in use: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	m.Release(c)
	select {
	case err := <-paused:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("PAUSE did not return after the server came back")
	}
	// PAUSE of another database does not wait for db's servers.
	c, err = m.Acquire(ctx, Key{Database: "db2", User: "u"}, f.target())
	if err != nil {
		t.Fatal(err)
	}
	defer m.Release(c)
	if err := m.Resume("db"); err != nil {
		t.Fatal(err)
	}
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := m.Pause(pctx, "db"); err != nil {
		t.Fatalf("PAUSE db with db2 busy: %v", err)
	}
}

func TestKillClosesServersAndPauses(t *testing.T) {
	t.Parallel()
	f := startFakeServer(t)
	m := testManager(t, 10*time.Second)
	key := Key{Database: "db", User: "u"}
	ctx := ctxFor(t)
	busy, err := m.Acquire(ctx, key, f.target())
	if err != nil {
		t.Fatal(err)
	}
	idle, err := m.Acquire(ctx, key, f.target())
	if err != nil {
		t.Fatal(err)
	}
	m.Release(idle)
	if m.Total() != 2 {
		t.Fatalf("Total = %d, want 2", m.Total())
	}
	m.Kill("db")
	if m.Total() != 1 || !m.Paused("db") {
		t.Fatalf("after KILL: Total = %d (want 1: the idle one closed), paused %v (want true)", m.Total(), m.Paused("db"))
	}
	m.Release(busy)
	if m.Total() != 0 {
		t.Fatalf("after releasing the killed connection: Total = %d, want 0", m.Total())
	}
	if err := m.Resume("db"); err != nil {
		t.Fatal(err)
	}
	c, err := m.Acquire(ctx, key, f.target())
	if err != nil {
		t.Fatal(err)
	}
	m.Release(c)
	if st := statusOf(m, key); st.Idle != 1 {
		t.Fatalf("a connection made after KILL was not kept: %+v", st)
	}
}

func TestStatusCountsServers(t *testing.T) {
	t.Parallel()
	f := startFakeServer(t)
	m := testManager(t, 300*time.Millisecond)
	key := Key{Database: "db", User: "u"}
	ctx := ctxFor(t)
	a, err := m.Acquire(ctx, key, f.target())
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.Acquire(ctx, key, f.target())
	if err != nil {
		t.Fatal(err)
	}
	m.Release(b)
	st := statusOf(m, key)
	if st.Active != 1 || st.Idle != 1 || st.Login != 0 || st.Size != 2 || st.Port != f.target().Port {
		t.Fatalf("status %+v: want 1 active, 1 idle, size 2", st)
	}
	// A third client queues while both are taken.
	b, err = m.Acquire(ctx, key, f.target())
	if err != nil {
		t.Fatal(err)
	}
	queued := make(chan error, 1)
	go func() {
		_, err := m.Acquire(ctx, key, f.target())
		queued <- err
	}()
	waitFor(t, "the third client to queue", func() bool { return statusOf(m, key).Waiting == 1 })
	if err := <-queued; pgerr.CodeOf(err) != string(pgerr.TooManyConnections) {
		t.Fatalf("queued Acquire: %v, want 53300", err)
	}
	m.Release(a)
	m.Release(b)
	idle := m.IdleConns()
	if len(idle) != 2 || idle[0].Key != key || idle[0].PID == 0 || idle[0].LocalAddr == nil || idle[0].Created.IsZero() {
		t.Fatalf("IdleConns = %+v", idle)
	}
}

func TestCountersSumStripes(t *testing.T) {
	t.Parallel()
	c := &Counters{}
	var wg sync.WaitGroup
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := c.Recorder()
			for j := 0; j < 100; j++ {
				r.AddQuery(time.Millisecond)
				r.AddTransaction(2 * time.Millisecond)
				r.AddWait(time.Microsecond)
				r.AddBytes(10, 20)
			}
		}()
	}
	wg.Wait()
	want := Totals{
		Transactions: 4000, Queries: 4000, Received: 40000, Sent: 80000,
		TransactionTime: 8 * time.Second, QueryTime: 4 * time.Second, WaitTime: 4 * time.Millisecond, Waits: 4000,
	}
	if got := c.Totals(); got != want {
		t.Fatalf("Totals = %+v, want %+v", got, want)
	}
	var zero Recorder
	zero.AddQuery(time.Second) // records nothing, does not panic
	var none *Counters
	if none.Totals() != (Totals{}) || none.Recorder() != (Recorder{}) {
		t.Fatal("nil Counters are not empty")
	}
}

// BenchmarkRecorderParallel is the relay's per-request cost: one query, one
// transaction and the bytes, from many goroutines on one pool.
func BenchmarkRecorderParallel(b *testing.B) {
	for _, metrics := range []bool{false, true} {
		b.Run("metrics="+strconv.FormatBool(metrics), func(b *testing.B) {
			m := &Manager{pools: map[Key]*pool{}}
			if metrics {
				if err := m.RegisterMetrics(prometheusRegistry()); err != nil {
					b.Fatal(err)
				}
			}
			c := m.newCounters(Key{Database: "db", User: "u"}, Target{})
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				r := c.Recorder()
				for pb.Next() {
					r.AddBytes(100, 200)
					r.AddQuery(time.Millisecond)
					r.AddTransaction(time.Millisecond)
				}
			})
		})
	}
}

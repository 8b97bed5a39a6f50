package pool

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"
)

func TestReservePoolOpensAfterTimeoutAndClosesOnRelease(t *testing.T) {
	t.Parallel()
	f := startFakeServer(t)
	cfg := Config{PoolSize: 1, ReservePoolSize: 1, ReservePoolTimeout: 150 * time.Millisecond, ServerTLS: ServerTLS{SSLMode: "disable"}}
	cfg.Defaults()
	cfg.QueryWaitTimeout = 10 * time.Second
	m := NewManager(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(m.Close)
	key := Key{Database: "db", User: "u"}
	ctx := ctxFor(t)
	first, err := m.Acquire(ctx, key, f.target())
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	second, err := m.Acquire(ctx, key, f.target())
	if err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(began); waited < 150*time.Millisecond {
		t.Errorf("reserve connection after %s, before reserve_pool_timeout", waited)
	}
	if first.PID == second.PID {
		t.Fatal("the reserve connection is the busy one")
	}
	if got := m.Total(); got != 2 {
		t.Fatalf("%d connections open, want 2 (pool 1 + reserve 1)", got)
	}
	// Pool and reserve are both in use: a third client gets nothing.
	short, cancel := context.WithTimeout(ctx, 400*time.Millisecond)
	defer cancel()
	if _, err := m.Acquire(short, key, f.target()); err == nil {
		t.Fatal("a connection beyond pool_size + reserve_pool_size was opened")
	}
	m.Release(second) // beyond the pool size: closed, not kept
	if got := m.Total(); got != 1 {
		t.Errorf("%d connections after releasing the reserve one, want 1", got)
	}
	m.Release(first)
}

func TestMinPoolSizeFillsInTheBackground(t *testing.T) {
	t.Parallel()
	f := startFakeServer(t)
	cfg := Config{PoolSize: 4, MinPoolSize: 3, ServerTLS: ServerTLS{SSLMode: "disable"}}
	cfg.Defaults()
	m := NewManager(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(m.Close)
	key := Key{Database: "db", User: "u"}
	c, err := m.Acquire(ctxFor(t), key, f.target())
	if err != nil {
		t.Fatal(err)
	}
	m.Release(c)
	waitFor(t, "min_pool_size connections", func() bool {
		st := statusOf(m, key)
		return st.Idle == 3 && m.Total() == 3
	})
}

// TestGlobalCapEvictsIdleOfAnotherPool: with max_server_connections full of
// another pool's idle connections, a pool under its own size closes the
// longest-idle of them and dials at once instead of waiting for
// query_wait_timeout.
func TestGlobalCapEvictsIdleOfAnotherPool(t *testing.T) {
	t.Parallel()
	f := startFakeServer(t)
	cfg := Config{PoolSize: 2, MaxServerConnections: 2, ServerTLS: ServerTLS{SSLMode: "disable"}}
	cfg.Defaults()
	cfg.QueryWaitTimeout = 10 * time.Second
	m := NewManager(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(m.Close)
	a, b := Key{Database: "db", User: "a"}, Key{Database: "db", User: "b", Replica: "127.0.0.1:1"}
	ctx := ctxFor(t)
	var held []*Conn
	for i := 0; i < 2; i++ {
		c, err := m.Acquire(ctx, a, f.target())
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	// Busy connections are never evicted: b waits.
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := m.Acquire(short, b, f.target()); err == nil {
		t.Fatal("a connection beyond max_server_connections was opened while all were busy")
	}
	first := held[0]
	for _, c := range held {
		m.Release(c)
	}
	began := time.Now()
	c, err := m.Acquire(ctx, b, f.target())
	if err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(began); waited > 2*time.Second {
		t.Errorf("waited %s for a slot held by an idle connection", waited)
	}
	if got := m.Total(); got != 2 {
		t.Errorf("%d connections open, want 2 (the cap)", got)
	}
	if sa := statusOf(m, a); sa.Idle != 1 || sa.Active != 0 {
		t.Errorf("pool a after the eviction: %+v; want one idle connection left", sa)
	}
	if first.Alive() {
		t.Errorf("the longest-idle connection of pool a is still open")
	}
	m.Release(c)
}

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
	first, err := m.Acquire(ctx, key, f.target(), 1)
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	second, err := m.Acquire(ctx, key, f.target(), 1)
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
	if _, err := m.Acquire(short, key, f.target(), 1); err == nil {
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
	c, err := m.Acquire(ctxFor(t), key, f.target(), 4)
	if err != nil {
		t.Fatal(err)
	}
	m.Release(c)
	waitFor(t, "min_pool_size connections", func() bool {
		st := statusOf(m, key)
		return st.Idle == 3 && m.Total() == 3
	})
}

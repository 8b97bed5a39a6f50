package pool

import (
	"io"
	"log/slog"
	"testing"
	"time"
)

// sizedManager is a Manager whose pools are size connections by default.
func sizedManager(t *testing.T, size int) *Manager {
	t.Helper()
	cfg := Config{PoolSize: size, ServerTLS: ServerTLS{SSLMode: "disable"}}
	cfg.Defaults()
	cfg.QueryWaitTimeout = 10 * time.Second
	m := NewManager(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(m.Close)
	return m
}

func TestSetSizeShrinkClosesIdleAtOnceAndReturnedOnRelease(t *testing.T) {
	t.Parallel()
	f := startFakeServer(t)
	m := sizedManager(t, 4)
	key := Key{Database: "db", User: "u"}
	ctx := ctxFor(t)
	var held []*Conn
	for i := 0; i < 4; i++ {
		c, err := m.Acquire(ctx, key, f.target())
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	m.Release(held[2])
	m.Release(held[3])
	if st := statusOf(m, key); st.Idle != 2 || st.Active != 2 {
		t.Fatalf("before SetSize: %+v, want 2 idle and 2 active", st)
	}
	if !m.SetSize(key, 1) {
		t.Fatal("SetSize of an existing pool reported no pool")
	}
	if st := statusOf(m, key); st.Size != 1 || st.Idle != 0 || st.Active != 2 || m.Total() != 2 {
		t.Fatalf("after SetSize(1): %+v, total %d; want size 1, idle closed, 2 active", st, m.Total())
	}
	m.Release(held[0]) // beyond the size: closed
	if st := statusOf(m, key); st.Idle != 0 || m.Total() != 1 {
		t.Fatalf("a connection released beyond the size was kept: %+v, total %d", st, m.Total())
	}
	m.Release(held[1]) // within the size: kept
	if st := statusOf(m, key); st.Idle != 1 || m.Total() != 1 {
		t.Fatalf("the connection within the size was not kept: %+v, total %d", st, m.Total())
	}
	// An Acquire does not bring the old size back.
	c, err := m.Acquire(ctx, key, f.target())
	if err != nil {
		t.Fatal(err)
	}
	defer m.Release(c)
	if st := statusOf(m, key); st.Size != 1 {
		t.Fatalf("Acquire changed the size: %+v", st)
	}
}

func TestSetSizeGrowLetsWaitersDial(t *testing.T) {
	t.Parallel()
	f := startFakeServer(t)
	m := sizedManager(t, 1)
	key := Key{Database: "db", User: "u"}
	ctx := ctxFor(t)
	busy, err := m.Acquire(ctx, key, f.target())
	if err != nil {
		t.Fatal(err)
	}
	defer m.Release(busy)
	const waiting = 3
	got := make(chan *Conn, waiting)
	for i := 0; i < waiting; i++ {
		go func() {
			c, err := m.Acquire(ctx, key, f.target())
			if err != nil {
				t.Error(err)
			}
			got <- c
		}()
	}
	waitFor(t, "clients queued", func() bool { return statusOf(m, key).Waiting == waiting })
	m.SetSize(key, 1+waiting)
	pids := map[uint32]bool{busy.PID: true}
	for i := 0; i < waiting; i++ {
		c := <-got // no Release: the new size alone lets them dial
		if c == nil {
			t.Fatal("a waiter got no connection")
		}
		if pids[c.PID] {
			t.Fatalf("connection %d handed out twice", c.PID)
		}
		pids[c.PID] = true
		defer m.Release(c)
	}
	if m.Total() != 1+waiting {
		t.Fatalf("%d connections open, want %d", m.Total(), 1+waiting)
	}
}

func TestSizerSizesNewPoolsAndSetSizeOfUnknownPool(t *testing.T) {
	t.Parallel()
	f := startFakeServer(t)
	m := sizedManager(t, 2)
	m.SetSizer(func(k Key) int {
		if k.Database == "big" {
			return 5
		}
		return 0 // counts as 1
	})
	if m.SetSize(Key{Database: "none", User: "u"}, 3) {
		t.Error("SetSize reported a pool that does not exist")
	}
	ctx := ctxFor(t)
	for db, want := range map[string]int{"big": 5, "small": 1} {
		key := Key{Database: db, User: "u"}
		c, err := m.Acquire(ctx, key, f.target())
		if err != nil {
			t.Fatal(err)
		}
		m.Release(c)
		if st := statusOf(m, key); st.Size != want {
			t.Errorf("pool %s has size %d, want %d from the sizer", db, st.Size, want)
		}
	}
}

package pool

import (
	"io"
	"log/slog"
	"testing"
	"time"
)

// TestServerLifetime: a server connection older than server_lifetime is
// closed when it is released, and an idle one is closed by the janitor, so
// the next Acquire dials a new backend.
func TestServerLifetime(t *testing.T) {
	f := startFakeServer(t)
	cfg := Config{PoolSize: 2, ServerTLS: ServerTLS{SSLMode: "disable"}}
	cfg.Defaults()
	cfg.QueryWaitTimeout = 10 * time.Second
	cfg.ServerLifetime = 300 * time.Millisecond
	m := NewManager(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(m.Close)
	key := Key{Database: "db", User: "u"}
	ctx := ctxFor(t)

	// Held past its lifetime, then released: closed at once.
	held, err := m.Acquire(ctx, key, f.target())
	if err != nil {
		t.Fatal(err)
	}
	if held.expires.IsZero() {
		t.Fatal("server_lifetime set, but the connection has no expiry")
	}
	waitFor(t, "the held connection to expire", func() bool { return time.Now().After(held.expires) })
	m.Release(held)
	if st := statusOf(m, key); st.Idle != 0 || st.Active != 0 {
		t.Fatalf("after releasing an expired connection: %+v, want it closed", st)
	}

	// Idle past its lifetime: closed by the janitor; the next one is new.
	idle, err := m.Acquire(ctx, key, f.target())
	if err != nil {
		t.Fatal(err)
	}
	pid := idle.PID
	if pid == held.PID {
		t.Fatalf("backend %d reused after it expired", pid)
	}
	m.Release(idle)
	waitFor(t, "the janitor to close the expired idle connection", func() bool { return statusOf(m, key).Idle == 0 })
	next, err := m.Acquire(ctx, key, f.target())
	if err != nil {
		t.Fatal(err)
	}
	defer m.Release(next)
	if next.PID == pid {
		t.Fatalf("backend %d reused after server_lifetime", pid)
	}
}

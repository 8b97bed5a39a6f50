package pool

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"
)

// TestCancelHoldsConnectionUntilDone checks that a connection with a cancel
// in flight goes back to its pool only once the server has closed the
// cancel connection, and is closed instead when that close was not seen.
func TestCancelHoldsConnectionUntilDone(t *testing.T) {
	t.Parallel()
	f := startFakeServer(t)
	f.cancels, f.holdCancel = make(chan uint32, 1), make(chan struct{})
	cfg := Config{PoolSize: 1, ServerTLS: ServerTLS{SSLMode: "disable"}}
	cfg.Defaults()
	m := NewManager(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(m.Close)
	key := Key{Database: "db", User: "u"}
	ctx := ctxFor(t)
	c, err := m.Acquire(ctx, key, f.target())
	if err != nil {
		t.Fatal(err)
	}
	pid := c.PID

	// Confirmed: Release waits for the cancel, then keeps the connection.
	send := c.StartCancel()
	sent := make(chan error, 1)
	go func() { sent <- send(ctx) }()
	if got := <-f.cancels; got != pid {
		t.Fatalf("cancel for backend %d, want %d", got, pid)
	}
	if s := m.Stats()[0]; s.Canceling != 1 {
		t.Fatalf("Canceling = %d while the cancel is in flight, want 1", s.Canceling)
	}
	released := make(chan struct{})
	go func() { m.Release(c); close(released) }()
	// Release must still be waiting: the cancel could land on the next
	// client's query. (A bounded wait for something that must not happen.)
	select {
	case <-released:
		t.Fatal("Release returned while the cancel was in flight")
	case <-time.After(100 * time.Millisecond):
	}
	f.holdCancel <- struct{}{} // the server closes the cancel connection
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	<-released
	if s := m.Stats()[0]; s.Idle != 1 || s.Canceling != 0 {
		t.Fatalf("after a confirmed cancel: %+v, want the connection idle", s)
	}

	// Unconfirmed (timeout): the cancel may still land, so it is closed.
	c, err = m.Acquire(ctx, key, f.target())
	if err != nil || c.PID != pid {
		t.Fatalf("reacquire: %v, pid %d, want %d", err, c.PID, pid)
	}
	defer close(f.holdCancel)
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if err := c.StartCancel()(short); err == nil {
		t.Fatal("a cancel whose connection stayed open reported success")
	}
	<-f.cancels
	m.Release(c)
	if s := m.Stats()[0]; s.Open != 0 || s.Idle != 0 {
		t.Fatalf("after an unconfirmed cancel: %+v, want the connection closed", s)
	}
}
